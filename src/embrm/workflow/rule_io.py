"""The glue every workflow script shares: log to the rule's log file, run one call."""

from __future__ import annotations

import logging
import sys
import time

from embrm.data.arrays import check_written


def run(smk, func, *args, check_arrays: dict | None = None, **kwargs):
    """Run ``func`` with logging sent to ``smk.log[0]``; failures are logged, then raised.

    ``check_arrays`` (``{path: ndim}``): canonical arrays ``func`` wrote for the split
    ``smk.wildcards.split``, checked (N > 0, K >= 2, finite, in chunks) before the job
    counts as done.
    """
    handlers = [logging.StreamHandler(sys.stderr)]
    if len(smk.log):
        handlers.append(logging.FileHandler(smk.log[0], mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        handlers=handlers,
        force=True,
    )
    log = logging.getLogger(f"rule.{smk.rule}")
    start = time.perf_counter()
    try:
        result = func(*args, **kwargs)
        for path, ndim in (check_arrays or {}).items():
            check_written(path, ndim, smk.wildcards.split)
    except Exception:
        log.exception("rule %s failed", smk.rule)
        raise
    log.info("rule %s done in %.1f s", smk.rule, time.perf_counter() - start)
    return result
