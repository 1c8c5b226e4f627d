"""Requests of the four GPU stages, from ``cluster.gpu`` of the config.

Each stage (``sft``, ``sample``, ``annotate``, ``embed``) has its own ``gpus``,
``cpus_per_gpu``, ``mem_mb_per_gpu`` (host RAM grows with the GPUs: one torchrun rank,
vLLM worker or scoring process per GPU), ``runtime`` (minutes: start-up and model
loading) and ``throughput`` (work items per GPU-minute; null: ``runtime`` alone). The
runtime request is ``runtime + items / (gpus * throughput)``, where the items of one job
come from the data size: SFT examples (`sft.data.max_examples`, else the train-prompt
cap) x epochs; responses of one sampling shard;
texts of one annotation or embedding shard (for preference pairs: two per pair, out
of ``data.pairs.max_pairs``).

Every GPU job asks for one node (``nodes: 1``: torchrun runs ``--standalone``, vLLM's
tensor parallelism and the scoring workers are single-node) and for ``gpu`` GPUs, which
a local run counts against ``--resources gpu=N``. A retry (the profile's ``retries``)
asks for more only where more can help and a node can give it: memory doubles up to
``cluster.gpu.max_mem_mb`` (null: never above the first request), and the runtime of a
stage that does not checkpoint doubles up to ``cluster.gpu.max_runtime``. SFT saves
checkpoints and resumes from its last one, so its retry asks for the same time.

Settings that change how a job runs but never what it writes (the GPUs, vLLM's memory
share, the SFT checkpoint interval) reach the job through its resources
(:func:`run_settings`), not its params: Snakemake reruns a job whose params changed.
"""

from __future__ import annotations

import json
import math

from embrm.io.errors import InputError

STAGES = ("sft", "sample", "annotate", "embed")
# a GPU rule's `resources:`: what snakemake-executor-plugin-slurm reads, and what the
# job reads back (gpu, run_settings)
RESOURCE_KEYS = (
    "slurm_partition",
    "slurm_account",
    "nodes",
    "gpu",
    "cpus_per_gpu",
    "mem_mb",
    "runtime",
    "run_settings",
)
SHARDS = {"sample": "sampling", "annotate": "golden", "embed": "embedding"}
CHECKPOINTING = ("sft",)  # stages that resume a retry from their last checkpoint
# per stage: its generation section, and the keys of it that change how a job runs but
# never what it writes
RUN_ONLY = {
    "sft": ("sft", ("checkpoint_steps",)),
    "sample": ("sampling", ("gpu_memory_utilization",)),
}


# the cap on the rows of the data sources step 4 embeds two texts of
ROWS_CAP = {"pairs": "max_pairs", "ratings": "max_responses"}


def work_items(config: dict, stage: str, split: str | None) -> int | None:
    """Work of one job of ``stage`` (for ``split``); None when the prompts are unbounded."""
    gen = config["generation"]
    source = config["data"]["source"]
    if source in ROWS_CAP and stage == "embed":  # two texts per pair / rated response
        n = config["data"][source][ROWS_CAP[source]]
        return None if n is None else math.ceil(n / gen["embedding"]["shards"]) * 2
    if stage == "sft":
        data = gen["sft"]["data"] or {}
        n = data.get("max_examples") or gen["prompts"]["max_train_prompts"]
        return None if n is None else math.ceil(n * gen["sft"]["epochs"])
    n = gen["prompts"][f"max_{split}_prompts"]
    if n is None:
        return None
    return math.ceil(n / gen[SHARDS[stage]]["shards"]) * gen["sampling"][f"k_{split}"]


def stage_settings(config: dict, stage: str) -> dict:
    """``cluster.gpu.<stage>``."""
    if stage not in STAGES:
        raise ValueError(f"unknown GPU stage {stage!r}; use one of {STAGES}")
    return config["cluster"]["gpu"][stage]


def runtime_minutes(config: dict, stage: str, split: str | None = None) -> int:
    """The first attempt's runtime request of one job of ``stage`` (for ``split``)."""
    res = stage_settings(config, stage)
    items = work_items(config, stage, split) if res["throughput"] else None
    return res["runtime"] + (math.ceil(items / (res["gpus"] * res["throughput"])) if items else 0)


def run_settings(config: dict, stage: str) -> dict:
    """Keyword arguments of the stage that change how it runs, never what it writes."""
    section, keys = RUN_ONLY.get(stage, (None, ()))
    return {key: config["generation"][section][key] for key in keys}


def output_settings(config: dict, stage: str) -> dict:
    """The stage's generation section without its :func:`run_settings`: what a job's
    params may hold."""
    section, keys = RUN_ONLY[stage]
    return {k: v for k, v in config["generation"][section].items() if k not in keys}


def stage_resources(config: dict, stage: str) -> dict:
    """The requests of every job of ``stage`` but its runtime: ``slurm_partition``,
    ``slurm_account``, ``nodes``, ``gpu``, ``cpus_per_gpu``, ``threads`` (all CPUs of
    the job), ``mem_mb`` (first attempt), ``run_settings`` (JSON of :func:`run_settings`)."""
    res = stage_settings(config, stage)
    return {
        "slurm_partition": config["cluster"]["gpu"]["partition"],
        "slurm_account": config["cluster"]["gpu"]["account"],
        "nodes": 1,
        "gpu": res["gpus"],
        "cpus_per_gpu": res["cpus_per_gpu"],
        "threads": res["cpus_per_gpu"] * res["gpus"],
        "mem_mb": res["mem_mb_per_gpu"] * res["gpus"],
        "run_settings": json.dumps(run_settings(config, stage), separators=(",", ":")),
    }


def grown(first: int, attempt: int, limit: int | None) -> int:
    """A request on retry ``attempt``: doubled per retry up to ``limit`` (None: ``first``)."""
    if limit is None:
        return first
    return max(first, min(first * 2 ** (attempt - 1), limit))


def rule_resource(config: dict, stage: str, key: str):
    """A GPU rule's ``threads``/``resources:`` value for ``key`` (a key of
    :func:`stage_resources`, or ``runtime``). ``mem_mb`` and ``runtime`` (which depends
    on the job's split) are functions of ``(wildcards, attempt)``: see the module
    docstring for how a retry grows them."""
    gpu = config["cluster"]["gpu"]
    if key == "runtime":
        limit = None if stage in CHECKPOINTING else gpu["max_runtime"]
        return lambda wc, attempt: grown(
            runtime_minutes(config, stage, wc.get("split")), attempt, limit
        )
    value = stage_resources(config, stage)[key]
    if key == "mem_mb":
        return lambda wc, attempt: grown(value, attempt, gpu["max_mem_mb"])
    return value


def rule_resources(config: dict, stage: str) -> dict:
    """A GPU rule's whole ``resources:`` directive: :func:`rule_resource` of every key
    of ``RESOURCE_KEYS``."""
    return {key: rule_resource(config, stage, key) for key in RESOURCE_KEYS}


def check_requests(config: dict) -> None:
    """Refuse, naming the keys, a first request above the node maxima of ``cluster.gpu``:
    SLURM would reject the job, or hold it forever, after the jobs before it ran."""
    gpu = config["cluster"]["gpu"]
    for stage in STAGES:
        res = stage_settings(config, stage)
        mem = res["mem_mb_per_gpu"] * res["gpus"]
        if gpu["max_mem_mb"] is not None and mem > gpu["max_mem_mb"]:
            raise InputError(
                f"config keys cluster.gpu.{stage}: gpus x mem_mb_per_gpu = {res['gpus']} x "
                f"{res['mem_mb_per_gpu']} = {mem} MB exceeds cluster.gpu.max_mem_mb="
                f"{gpu['max_mem_mb']} (the most memory a node gives a job)"
            )
        minutes = max(runtime_minutes(config, stage, split) for split in ("train", "test"))
        if gpu["max_runtime"] is not None and minutes > gpu["max_runtime"]:
            raise InputError(
                f"config keys cluster.gpu.{stage}: a job asks for {minutes} minutes (runtime "
                f"{res['runtime']} plus its items over throughput), more than "
                f"cluster.gpu.max_runtime={gpu['max_runtime']} (the partition's time limit)"
            )
