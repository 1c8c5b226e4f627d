"""SLURM requests of steps 5-8 (cluster.cpu): sized from the data, grown on retry.

The memory estimate must bound the peak RSS measured by bench/bench_core.py at 1x, 2x
and 4x the paper's shape (docs/results.md) without being far above it, and every request must
follow the sizes that set it: the pairs (n_sample x n_pairs), D, the members, the test
responses; an imported release's sizes come from its .npy headers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from embrm.data.importer import release_files
from embrm.resources import cpu as cpu_resources
from embrm.resources.cpu import DataShape, first_attempt, rule_resources, step_memory_mb

ROOT = Path(__file__).resolve().parents[1]
# bench/bench_core.py, docs/results.md "Growth with the data": peak RSS (MB) at 1x / 2x / 4x
MEASURED_RSS = {
    "train_orm": {1: 1185, 2: 1240, 4: 1324},
    "evaluate_orm": {1: 718, 2: 702, 4: 733},
    "distill_student": {1: 468, 2: 531, 4: 704},
}


def paper_shape(scale: int = 1) -> dict:
    """config.yaml with bench/paper_shape.yaml over it, its sizes times ``scale``."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    bench = yaml.safe_load((ROOT / "bench" / "paper_shape.yaml").read_text())
    for key, value in bench.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    syn = cfg["data"]["synthetic"]
    syn["n_train"] *= scale
    syn["n_test"] *= scale
    cfg["orm"]["n_sample"] *= scale
    return cfg


@pytest.mark.parametrize("step", sorted(MEASURED_RSS))
@pytest.mark.parametrize("scale", [1, 2, 4])
def test_memory_estimate_bounds_the_measured_peak(step, scale):
    cfg = paper_shape(scale)
    estimate = step_memory_mb(cfg, step, DataShape.of(cfg))
    measured = MEASURED_RSS[step][scale]
    assert measured <= estimate <= 2 * measured, (step, scale, estimate, measured)


def test_training_memory_grows_with_the_pairs_and_the_width():
    cfg = paper_shape()
    shape = DataShape.of(cfg)
    base = step_memory_mb(cfg, "train_orm", shape)
    pairs_mb = cfg["orm"]["n_sample"] * 2 * shape.dim * 4 / 2**20
    doubled = paper_shape(2)
    grown = step_memory_mb(doubled, "train_orm", DataShape.of(doubled))
    assert grown - base == pytest.approx(cpu_resources.PAIR_COPIES * pairs_mb)
    cfg["orm"]["n_pairs"] = 3
    assert step_memory_mb(cfg, "train_orm", shape) - base == pytest.approx(
        2 * cpu_resources.PAIR_COPIES * pairs_mb
    )
    wide = paper_shape()
    wide["data"]["synthetic"]["dim"] *= 2
    assert step_memory_mb(wide, "train_orm", DataShape.of(wide)) > 1.9 * (base - 1000)


def test_runtime_follows_the_work_and_a_group_sums_it():
    cfg = paper_shape()
    steps = cpu_resources.STEPS
    minutes = {s: first_attempt(cfg, s)["runtime"] for s in steps}
    assert all(m >= 1 for m in minutes.values())
    assert minutes["train_orm"] == max(minutes.values())
    # training time is linear in epochs x members x pairs: twice the epochs, ~twice it
    cfg["orm"]["max_epochs"] *= 2
    doubled = first_attempt(cfg, "train_orm")["runtime"]
    assert 2 * minutes["train_orm"] - 2 <= doubled <= 2 * minutes["train_orm"]
    cfg["orm"]["ensemble_number"] = 1
    assert first_attempt(cfg, "train_orm")["runtime"] < doubled / 5
    # evaluation scores every test response: 4x the test prompts, about 4x its work
    big = paper_shape(4)
    assert first_attempt(big, "evaluate_orm")["runtime"] > 2 * minutes["evaluate_orm"]


def test_requests_grow_with_the_attempt_and_fixed_values_win():
    cfg = paper_shape()
    res = rule_resources(lambda wc: cfg, cfg, "train_orm")
    first = res["mem_mb"]({}, 1), res["runtime"]({}, 1)
    assert (res["mem_mb"]({}, 2), res["runtime"]({}, 2)) == (2 * first[0], 2 * first[1])
    assert res["slurm_partition"] == cfg["cluster"]["cpu"]["partition"]
    # the job's own Snakemake process plans every experiment: more points, more memory
    assert first_attempt(cfg, "train_orm", 1000)["mem_mb"] > first[0]
    # disk: what the step writes (the ensemble grows with the members), at least the floor
    disk = res["disk_mb"]({})
    cfg["orm"]["ensemble_number"] *= 4
    assert res["disk_mb"]({}) == pytest.approx(4 * disk, rel=0.01)
    small = rule_resources(lambda wc: cfg, cfg, "calibrate_student")["disk_mb"]({})
    assert small == cpu_resources.MIN_DISK_MB
    cfg["cluster"]["cpu"].update(mem_mb=3000, runtime=45)
    assert first_attempt(cfg, "validate_variants") == {"mem_mb": 3000, "runtime": 45}


def test_each_experiment_is_sized_by_its_own_config():
    """A study point with 4x n_sample asks for more than the main run (the rule's
    functions read the point's effective config)."""
    main = paper_shape()
    point = paper_shape()
    point["orm"]["n_sample"] = main["orm"]["n_sample"] // 4
    configs = {"results": main, "results/studies/s/p": point}
    res = rule_resources(lambda wc: configs[wc["exp"]], main, "train_orm")
    assert res["mem_mb"]({"exp": "results"}, 1) > res["mem_mb"]({"exp": "results/studies/s/p"}, 1)


def test_an_imported_release_is_sized_from_its_headers(tmp_path):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    imp = cfg["data"]["import"]
    cfg["data"]["source"] = "import"
    imp["dir"] = str(tmp_path)
    for split, (k, n, d) in {"train": (10, 700, 24), "test": (50, 90, 24)}.items():
        emb, rew = release_files(imp, split)
        np.save(emb, np.zeros((k, n, d), np.float32))
        np.save(rew, np.zeros((k, n), np.float32))
    assert DataShape.of(cfg) == DataShape(n_train=700, k_train=10, n_test=90, k_test=50, dim=24)
    imp["max_prompts"] = 80
    assert DataShape.of(cfg).n_test == 80


def test_generated_data_fall_back_for_what_parsing_cannot_know():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    shape = DataShape.of(cfg)  # generate: K and the prompt caps known, D not
    gen = cfg["generation"]
    assert (shape.k_train, shape.k_test) == (gen["sampling"]["k_train"], gen["sampling"]["k_test"])
    assert shape.n_test == gen["prompts"]["max_test_prompts"]
    assert shape.dim == cpu_resources.FALLBACK["dim"]
    gen["prompts"]["max_test_prompts"] = None
    assert DataShape.of(cfg).n_test == cpu_resources.FALLBACK["n_test"]


def test_all_train_pairs_when_n_sample_is_null():
    """Preference-pair data (``orm.n_sample: null``) train on every train prompt's pairs:
    the request is the one of an explicit n_sample equal to the train split."""
    cfg = paper_shape()
    shape = DataShape.of(cfg)
    explicit = step_memory_mb(cfg, "train_orm", shape)
    cfg["orm"]["n_sample"] = None
    assert step_memory_mb(cfg, "train_orm", shape) == explicit  # n_sample = n_train here
