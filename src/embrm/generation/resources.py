"""SLURM requests of the four GPU stages, from ``cluster.gpu.<stage>`` of the config.

Each stage (``sft``, ``sample``, ``annotate``, ``embed``) has its own ``gpus``,
``cpus_per_gpu``, ``mem_mb_per_gpu`` (host RAM grows with the GPUs: one torchrun rank,
vLLM worker or scoring process per GPU), ``runtime`` (minutes: start-up and model
loading) and ``throughput`` (work items per GPU-minute; null: ``runtime`` alone). The
runtime request is ``runtime + items / (gpus * throughput)``, where the items of one job
come from the data size: SFT examples x epochs; responses of one sampling shard;
texts of one annotation or embedding shard (for preference pairs: two per pair, out
of ``data.pairs.max_pairs``).
"""

from __future__ import annotations

import math

STAGES = ("sft", "sample", "annotate", "embed")
# a GPU rule's `resources:`, as snakemake-executor-plugin-slurm reads them
RESOURCE_KEYS = ("slurm_partition", "slurm_account", "gpu", "cpus_per_gpu", "mem_mb", "runtime")
SHARDS = {"sample": "sampling", "annotate": "golden", "embed": "embedding"}


def work_items(config: dict, stage: str, split: str | None) -> int | None:
    """Work of one job of ``stage`` (for ``split``); None when the prompts are unbounded."""
    gen = config["generation"]
    if config["data"]["source"] == "pairs" and stage == "embed":
        n = config["data"]["pairs"]["max_pairs"]
        return None if n is None else math.ceil(n / gen["embedding"]["shards"]) * 2
    if stage == "sft":
        n = gen["prompts"]["max_train_prompts"]
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


def stage_resources(config: dict, stage: str) -> dict:
    """The requests of every job of ``stage`` but its runtime: ``slurm_partition``,
    ``slurm_account``, ``gpu``, ``cpus_per_gpu``, ``threads`` (all CPUs of the job),
    ``mem_mb`` (first attempt)."""
    res = stage_settings(config, stage)
    return {
        "slurm_partition": config["cluster"]["gpu"]["partition"],
        "slurm_account": config["cluster"]["gpu"].get("account"),
        "gpu": res["gpus"],
        "cpus_per_gpu": res["cpus_per_gpu"],
        "threads": res["cpus_per_gpu"] * res["gpus"],
        "mem_mb": res["mem_mb_per_gpu"] * res["gpus"],
    }


def rule_resource(config: dict, stage: str, key: str):
    """A GPU rule's ``threads``/``resources:`` value for ``key`` (a key of
    :func:`stage_resources`, or ``runtime``). ``mem_mb`` and ``runtime`` (which depends
    on the job's split) are functions of ``(wildcards, attempt)`` that grow with the
    attempt: a job retried after a timeout or OOM asks for more."""
    if key == "runtime":
        return lambda wc, attempt: attempt * runtime_minutes(config, stage, wc.get("split"))
    value = stage_resources(config, stage)[key]
    return (lambda wc, attempt: attempt * value) if key == "mem_mb" else value


def rule_resources(config: dict, stage: str) -> dict:
    """A GPU rule's whole ``resources:`` directive: :func:`rule_resource` of every key
    of ``RESOURCE_KEYS``."""
    return {key: rule_resource(config, stage, key) for key in RESOURCE_KEYS}
