"""Precision switch: fp32, bf16 autocast for the matrix products on CPU, or ``auto``.

bf16 halves the ORM's time where the CPU multiplies bf16 natively (AVX-512 BF16 or AMX)
and is two orders of magnitude slower where it does not (AVX2 only), so ``auto`` reads
the CPU's flags and picks bf16 only on the first kind. The choice is logged and written
into each step's JSON, so a run says which precision produced its numbers.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (empty where there is none)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def resolve(precision: str, flags: frozenset[str] | None = None) -> str:
    """``fp32`` or ``bf16`` as given; ``auto`` -> bf16 where the CPU has native bf16 GEMM."""
    if precision != "auto":
        autocast(precision)  # refuses unknown values
        return precision
    found = cpu_flags() if flags is None else flags
    native = sorted(NATIVE_BF16_FLAGS & found)
    choice = "bf16" if native else "fp32"
    log.info(
        "precision auto -> %s (%s)",
        choice,
        f"CPU has {', '.join(native)}" if native else "no native bf16 GEMM on this CPU",
    )
    return choice


def autocast(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")


def storage_dtype(precision: str) -> torch.dtype:
    """Dtype for cached input rows: bf16 halves gather traffic when autocast is on."""
    return torch.bfloat16 if precision == "bf16" else torch.float32
