"""Precision switch: fp32, or bf16 autocast for the matrix products on CPU."""

from __future__ import annotations

import contextlib

import torch


def autocast(precision: str):
    if precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    if precision == "fp32":
        return contextlib.nullcontext()
    raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")


def storage_dtype(precision: str) -> torch.dtype:
    """Dtype for cached input rows: bf16 halves gather traffic when autocast is on."""
    return torch.bfloat16 if precision == "bf16" else torch.float32
