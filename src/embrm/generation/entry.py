"""Spawn-safe command line of the GPU stages:
``python -m embrm.generation.entry STAGE JOB --paths PATHS --gpus N --settings SETTINGS``.

vLLM's engine and the per-GPU scoring workers may start processes with ``spawn``, which
re-imports the parent's ``__main__`` in the child. Run as a module, ``__main__`` is this
file, whose guard keeps a child from running the stage again; a Snakemake ``script:``
is not guarded (its child dies on the missing ``snakemake`` object). ``JOB`` and
``PATHS`` are JSON objects of the stage function's keyword arguments (see :func:`job`):
the settings that decide the stage's output, and its files. ``--gpus`` (the rule's
``gpu`` resource) and
``--settings`` (a JSON object of more keyword arguments that change how the job runs,
never what it writes: the rule's ``run_settings`` resource) stay out of the params, so
changing them reruns nothing. Before the stage module is imported, the job claims its
GPUs (:mod:`embrm.generation.gpus`); the stage gets their count as ``gpus``. Logs go
to stderr.

``STAGES`` is the table the workflow's code identity follows: a GPU rule's ``code``
param hashes its stage's module and every package module it imports.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import time

from embrm.generation import gpus

STAGES = {
    "sft": "embrm.generation.sft:train_sft",
    "sample": "embrm.generation.sampling:sample_shard",
    "annotate": "embrm.generation.golden:annotate_shard",
    "embed": "embrm.generation.embeddings:embed_shard",
}

log = logging.getLogger("embrm.generation.entry")


def stage_module(stage: str) -> str:
    """The module that runs ``stage``."""
    return STAGES[stage].split(":")[0]


def run_stage(stage: str, job: dict):
    """Call the stage's function with ``job`` as keyword arguments."""
    module, name = STAGES[stage].split(":")
    return getattr(importlib.import_module(module), name)(**job)


def job(**kwargs):
    """The rule side, ``params: **job(...)``: the stage function's keyword arguments as
    two JSON params. ``job``: the values and functions of ``(wildcards)``, which decide
    the output; Snakemake compares them with the last run's, so a change reruns the
    job. ``paths``: the functions of ``(wildcards, input, output)``; Snakemake leaves
    params derived from files out of that comparison (their files have triggers of
    their own), so they must not carry settings."""

    def derived(value):
        return callable(value) and len(inspect.signature(value).parameters) > 1

    def resolve(value, args):
        if not callable(value):
            return value
        return value(*args[: len(inspect.signature(value).parameters)])

    def as_json(names, args):
        return json.dumps({k: resolve(kwargs[k], args) for k in names}, sort_keys=True)

    settings = [k for k, v in kwargs.items() if not derived(v)]
    paths = [k for k, v in kwargs.items() if derived(v)]
    return {
        "job": lambda wildcards: as_json(settings, (wildcards,)),
        "paths": lambda wildcards, input, output: as_json(paths, (wildcards, input, output)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m embrm.generation.entry")
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("job", help="JSON object: the stage function's keyword arguments")
    parser.add_argument("--paths", default="{}", help="JSON object: more of them, the files")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs the job asked for")
    parser.add_argument(
        "--settings", default="{}", help="JSON object: keyword arguments that change no output"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    start = time.perf_counter()
    log.info("stage %s asks for %d GPU(s)", args.stage, args.gpus)
    gpus.claim(args.gpus, stage=args.stage)
    kwargs = {**json.loads(args.job), **json.loads(args.paths), **json.loads(args.settings)}
    run_stage(args.stage, {**kwargs, "gpus": args.gpus})
    log.info("stage %s done in %.1f s", args.stage, time.perf_counter() - start)


if __name__ == "__main__":
    main()
