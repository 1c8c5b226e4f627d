"""What a selector sees of a candidate pair: the ensemble's view of its two responses.

Each response some pair uses is read once (the explicit chunked reads of
:func:`embrm.data.arrays.iter_rows`) and runs through the ensemble once, ``ROWS`` at a
time in the run's precision; pairs then gather their two rows.
"""

from __future__ import annotations

import numpy as np
import torch

from embrm.data.arrays import iter_rows
from embrm.rm.precision import autocast

ROWS = 4096


def _per_response(embeddings: np.ndarray, first: np.ndarray, second: np.ndarray, run):
    """``run(x)`` on each response some pair uses, once, read from the ``(N, K, D)``
    array in order of flat id; returns its outputs ``(M, U, W)`` (float32 tensor) and
    the positions of ``first`` and ``second`` among them (int64 tensors)."""
    ids, where = np.unique(np.concatenate([first, second]), return_inverse=True)
    out = None
    for start, block in iter_rows(embeddings, ids):
        for offset in range(0, len(block), ROWS):
            y = run(torch.from_numpy(block[offset : offset + ROWS]))
            if out is None:
                out = torch.empty((y.shape[0], len(ids), y.shape[2]))
            out[:, start + offset : start + offset + y.shape[1]] = y
    where = torch.from_numpy(where.reshape(-1))
    return out, where[: len(first)], where[len(first) :]


@torch.no_grad()
def pair_features(model, embeddings, first, second, precision: str = "fp32"):
    """Per member, the last-hidden-layer differences ``(M, P, H)`` float32 and the score
    gaps ``(M, P)`` float64 of pairs ``(first, second)`` (flat response ids)."""

    def run(x):
        with autocast(precision):
            feats, scores = model.last_hidden(x)
        return torch.cat([feats.float(), scores.float()[..., None]], -1)

    out, a, b = _per_response(embeddings, first, second, run)
    h = out.shape[2] - 1
    diff = torch.empty((out.shape[0], len(first), h))
    for m, member in enumerate(out):  # one member at a time: one (P, H) temporary
        feats = member[:, :h].contiguous()
        torch.index_select(feats, 0, a, out=diff[m])
        diff[m].sub_(feats.index_select(0, b))
    gap = out[:, a, h].double() - out[:, b, h].double()
    return diff.numpy(), gap.numpy()


@torch.no_grad()
def pair_gaps(model, embeddings, first, second, precision: str = "fp32") -> np.ndarray:
    """Every member's score gap ``(M, P)`` of pairs ``(first, second)``."""
    score = model.shared_scorer()

    def run(x):
        with autocast(precision):
            return score(x).T[..., None].float()

    out, a, b = _per_response(embeddings, first, second, run)
    return (out[:, a, 0].double() - out[:, b, 0].double()).numpy()


def fisher_rows(diff: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """``z = sqrt(p (1 - p)) d`` ``(M, P, H)``: a pair's information is ``z z^T``.
    Scales ``diff`` (float32) in place and returns it: at 50,000 pairs a new array
    would cost more than the product."""
    p = 1.0 / (1.0 + np.exp(-gap))
    diff *= np.sqrt(p * (1.0 - p)).astype(np.float32)[..., None]
    return diff
