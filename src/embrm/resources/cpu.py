"""SLURM requests of steps 5-8 (``cluster.cpu``), sized from the data and the knobs.

With ``cluster.cpu.submit: true`` the step 5-8 rules of an experiment folder (the main
run or one study point) form one Snakemake group, submitted as one SLURM job to
``cluster.cpu.partition``. Snakemake sizes a group job from its rules' requests: the
steps run one after another (each is the only job of its layer), so the job asks for
the **largest** ``mem_mb`` and ``threads`` (--cpus-per-task) of its steps and the
**sum** of their ``runtime``. Each step's request here is a first-attempt estimate
times the attempt, so the profile's retry asks for twice as much.

Estimates (``mem_mb`` in MiB, ``runtime`` in minutes), from the sizes known before any
job runs (:mod:`embrm.resources.known_sizes`: the config for synthetic data, the
release's ``.npy`` headers for an import; generated data fall back to ``FALLBACK`` for
what is unknown at parse time) and the step's knobs:

- memory: a fixed base (interpreter, torch) plus the arrays the step holds: step 5 the
  embeddings of its pairs (n_sample x n_pairs x 2 x D, counted as float32:
  ``PAIR_COPIES`` times) and the members' weights with gradients and Adam moments;
  step 6 one chunk of test prompts through every member plus the scores; step 7b the
  student's training rows; the rest the scores. The constants were fitted to the peak
  RSS of ``bench/bench_core.py`` at 1x, 2x and 4x (docs/results.md), which the
  estimates bound from above. The job's own Snakemake process (it plans the whole
  workflow again) adds ``PLANNER_MB`` plus ``PLANNER_MB_PER_POINT`` per experiment.
- runtime: a minute of start-up per step plus its floating-point work at
  ``FLOPS_PER_S`` (a conservative fp32 rate): step 5 assumes every member runs
  ``max_epochs`` (early stopping usually ends far sooner) with validation as costly as
  training; step 6 scores every test response through every member; step 7b trains the
  student ``distill_epochs`` times over its rows.

``cluster.cpu.mem_mb`` / ``runtime`` set to a number replace the estimate of every step
(the first attempt's request per step; a group still takes the max and the sum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from embrm.resources.known_sizes import known_sizes

STEPS = (
    "train_orm",
    "evaluate_orm",
    "calibrate_teacher",
    "distill_student",
    "calibrate_student",
    "validate_variants",
)
# what a generated data set's size falls back to while unknown at parse time: the
# paper's largest embedder width, and the HH-RLHF test split's order of magnitude
FALLBACK = {"dim": 4096, "n_test": 10_000, "n_train": 200_000}
MIB = 2**20
FLOAT = 4  # bytes: every estimate assumes float32 storage (float16 data need less)
BASE_MB = 600  # interpreter, torch and numpy of one step's process
TRAIN_BASE_MB = 700  # step 5 adds the members' activations and gradients of one micro-batch
PAIR_COPIES = 1.0  # the pairs' embeddings (held in bf16 or fp32) and one chunk read
ADAM_COPIES = 4  # weights, gradients, two Adam moments
PLANNER_MB = 400  # the job's own Snakemake process
PLANNER_MB_PER_POINT = 0.5  # ... which plans every experiment folder of the config
FLOPS_PER_S = 50e9  # a conservative fp32 rate of a job's cores
MARGIN = 1.25  # on top of every memory estimate
MIN_DISK_MB = 100


@dataclass(frozen=True)
class DataShape:
    """Split sizes of one experiment's data: prompts N, responses per prompt K, width D."""

    n_train: int
    k_train: int
    n_test: int
    k_test: int
    dim: int

    @classmethod
    def of(cls, config: dict) -> DataShape:
        sizes = {k: s.value for k, s in known_sizes(config).items()}
        return cls(**{k: sizes.get(k, FALLBACK.get(k)) for k in cls.__annotations__})


def mlp_params(dim: int, hidden: list[int]) -> int:
    """Weights and biases of one MLP ``dim -> hidden... -> 1``."""
    widths = [dim, *hidden, 1]
    return sum(a * b + b for a, b in zip(widths, widths[1:]))


def train_pairs(orm: dict, shape: DataShape) -> int:
    """Comparisons step 5 trains on: ``n_pairs`` per used prompt (``n_sample: null``,
    preference-pair data: every train prompt)."""
    used = shape.n_train if orm["n_sample"] is None else min(orm["n_sample"], shape.n_train)
    return used * orm["n_pairs"]


@dataclass(frozen=True)
class StepSizes:
    """What the step estimates count: members M, one member's weights, test responses
    N_test x K_test, step 5's comparisons, and step 7b's training rows and weights."""

    members: int
    orm_params: int
    test_rows: int
    pairs: int
    student_rows: float
    student_params: int

    @classmethod
    def of(cls, config: dict, shape: DataShape) -> StepSizes:
        orm, distill = config["orm"], config["distill"]
        test_rows = shape.n_test * shape.k_test
        return cls(
            members=orm["ensemble_number"],
            orm_params=mlp_params(shape.dim, orm["hidden_sizes"]),
            test_rows=test_rows,
            pairs=train_pairs(orm, shape),
            student_rows=distill["split"][1] * test_rows,
            student_params=mlp_params(shape.dim, distill["hidden_sizes"]),
        )


def step_memory_mb(config: dict, step: str, shape: DataShape) -> float:
    """Peak RSS estimate of one step (MiB, without margin or planner)."""
    size = StepSizes.of(config, shape)
    if step == "train_orm":
        pair_bytes = size.pairs * 2 * shape.dim * FLOAT
        weight_bytes = ADAM_COPIES * FLOAT * size.members * size.orm_params
        return TRAIN_BASE_MB + (PAIR_COPIES * pair_bytes + weight_bytes) / MIB
    if step == "evaluate_orm":
        chunk = min(config["evaluation"]["chunk_prompts"], shape.n_test) * shape.k_test
        width = shape.dim + size.members * sum(config["orm"]["hidden_sizes"])
        held = chunk * width + 2 * size.test_rows * size.members + size.members * size.orm_params
        return BASE_MB + held * FLOAT / MIB
    if step == "distill_student":
        held = size.student_rows * shape.dim + ADAM_COPIES * size.student_params
        return BASE_MB + held * FLOAT / MIB
    if step in STEPS:
        return BASE_MB + size.test_rows * (size.members + 8) * 2 * FLOAT / MIB
    raise ValueError(f"unknown step {step!r}; use one of {STEPS}")


def step_flops(config: dict, step: str, shape: DataShape) -> float:
    """Floating-point work of one step (multiply-adds x 2), an upper bound for step 5."""
    size = StepSizes.of(config, shape)
    if step == "train_orm":
        # forward + backward (3x) of both sides of a pair; validation as costly again
        per_epoch = size.members * size.pairs * 2 * 3 * 2 * size.orm_params
        return 2 * per_epoch * config["orm"]["max_epochs"]
    if step == "evaluate_orm":
        return size.members * size.test_rows * 2 * size.orm_params
    if step == "distill_student":
        epochs = config["distill"]["distill_epochs"]
        return epochs * size.student_rows * 3 * 2 * size.student_params
    if step in STEPS:
        return 0.0
    raise ValueError(f"unknown step {step!r}; use one of {STEPS}")


def step_disk_mb(config: dict, step: str, shape: DataShape) -> int:
    """What one step writes (MiB, at least ``MIN_DISK_MB``): the ensemble, the test
    scores, the student and its scores. Set so that Snakemake does not size every job's
    disk from its inputs (its default, ``2 x input size``), which reads every input
    file's size at planning time and means nothing here: no step copies its inputs."""
    size = StepSizes.of(config, shape)
    written = {
        "train_orm": size.members * size.orm_params,
        "evaluate_orm": size.test_rows * size.members,
        "distill_student": size.test_rows + size.student_params,
    }.get(step, 2 * size.test_rows)
    return max(MIN_DISK_MB, math.ceil(written * FLOAT / MIB))


def first_attempt(config: dict, step: str, n_points: int = 1) -> dict[str, int]:
    """``mem_mb`` and ``runtime`` of one step's first attempt (``n_points``: experiment
    folders the config plans, which the job's own Snakemake process holds)."""
    cpu = config["cluster"]["cpu"]
    shape = DataShape.of(config)
    mem = cpu["mem_mb"]
    if mem == "auto":
        planner = PLANNER_MB + PLANNER_MB_PER_POINT * n_points
        mem = math.ceil((MARGIN * step_memory_mb(config, step, shape) + planner) / 100) * 100
    runtime = cpu["runtime"]
    if runtime == "auto":
        runtime = 1 + math.ceil(step_flops(config, step, shape) / FLOPS_PER_S / 60)
    return {"mem_mb": int(mem), "runtime": int(runtime)}


def group_id(exp: str) -> str:
    """The Snakemake group of one experiment folder's steps 5-8 (a SLURM job's comment
    starts with it): ``results/studies/s/p`` -> ``steps5to8_results.studies.s.p``."""
    return "steps5to8_" + exp.replace("/", ".")


def rule_resources(config_of, config: dict, step: str, n_points: int = 1) -> dict:
    """A step-5-8 rule's ``resources:`` under ``cluster.cpu.submit``: the partition and
    account of ``cluster.cpu``, ``mem_mb``/``runtime`` functions of
    ``(wildcards, attempt)`` that size the experiment's own data (``config_of(wc)``:
    its effective config) and grow with the attempt, and ``disk_mb`` (what it writes)."""
    cpu = config["cluster"]["cpu"]

    def sized(key):
        return lambda wc, attempt: attempt * first_attempt(config_of(wc), step, n_points)[key]

    return {
        "slurm_partition": cpu["partition"],
        "slurm_account": cpu["account"],
        "mem_mb": sized("mem_mb"),
        "runtime": sized("runtime"),
        "disk_mb": lambda wc: step_disk_mb(config_of(wc), step, DataShape.of(config_of(wc))),
    }
