"""Streaming scores of a StackedMLP over an ``(N, K, D)`` array, chunk by chunk."""

from __future__ import annotations

import numpy as np
import torch

from embrm.data.arrays import iter_chunks
from embrm.rm.precision import storage_dtype


@torch.no_grad()
def score_array(model, emb: np.ndarray, chunk_prompts: int, precision: str) -> np.ndarray:
    """Scores ``(N, K, M)`` of every response under every member of a StackedMLP; under
    ``bf16`` the weights are cast once and every product runs in bf16, as autocast would
    run it."""
    n, k, d = emb.shape
    out = np.empty((n, k, model.members), dtype=np.float32)
    score = model.shared_scorer(storage_dtype(precision))
    for start, block in iter_chunks(emb, chunk_prompts):
        s = score(torch.from_numpy(block.reshape(-1, d)))
        out[start : start + block.shape[0]] = s.float().numpy().reshape(block.shape[0], k, -1)
    return out
