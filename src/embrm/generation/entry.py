"""Spawn-safe command line of the GPU stages: ``python -m embrm.generation.entry STAGE JOB``.

vLLM's engine and the per-GPU scoring workers may start processes with ``spawn``, which
re-imports the parent's ``__main__`` in the child. Run as a module, ``__main__`` is this
file, whose guard keeps a child from running the stage again; a Snakemake ``script:``
is not guarded (its child dies on the missing ``snakemake`` object). ``JOB`` is a JSON
object of the stage function's keyword arguments; logs go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import time

STAGES = {
    "sft": "embrm.generation.sft:train_sft",
    "sample": "embrm.generation.sampling:sample_shard",
    "annotate": "embrm.generation.golden:annotate_shard",
    "embed": "embrm.generation.embeddings:embed_shard",
}

log = logging.getLogger("embrm.generation.entry")


def run_stage(stage: str, job: dict):
    """Call the stage's function with ``job`` as keyword arguments."""
    module, name = STAGES[stage].split(":")
    return getattr(importlib.import_module(module), name)(**job)


def job(**kwargs):
    """The rule side: a Snakemake params function giving ``JOB``, the keyword arguments
    as JSON; a value may be a function of ``(wildcards)`` or ``(wildcards, input,
    output)``."""

    def resolve(value, args):
        if not callable(value):
            return value
        return value(*args[: len(inspect.signature(value).parameters)])

    def as_json(wildcards, input, output):
        args = (wildcards, input, output)
        return json.dumps({k: resolve(v, args) for k, v in kwargs.items()}, sort_keys=True)

    return as_json


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m embrm.generation.entry")
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("job", help="JSON object: the stage function's keyword arguments")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    start = time.perf_counter()
    run_stage(args.stage, json.loads(args.job))
    log.info("stage %s done in %.1f s", args.stage, time.perf_counter() - start)


if __name__ == "__main__":
    main()
