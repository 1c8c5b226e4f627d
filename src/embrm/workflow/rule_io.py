"""The glue every workflow script shares: log to the rule's log file, run one call."""

from __future__ import annotations

import logging
import sys
import time


def run(smk, func, *args, **kwargs):
    """Run ``func`` with logging sent to ``smk.log[0]``; failures are logged, then raised."""
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
    except Exception:
        log.exception("rule %s failed", smk.rule)
        raise
    log.info("rule %s done in %.1f s", smk.rule, time.perf_counter() - start)
    return result
