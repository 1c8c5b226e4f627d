"""Coreset selection (Sener & Savarese, 2018): greedy k-center over the pairs' features.

A pair's feature is every member's last-hidden-layer difference ``phi(a) - phi(b)``,
concatenated over members and projected to ``PROJECTED`` dimensions by a random
Gaussian matrix (Johnson-Lindenstrauss: distances survive within a few percent, and
the search reads 20x less). A pair and its mirror are one comparison, so distances
are sign-free, ``min(|x - y|, |x + y|)``; the zero difference (a tie, which teaches
nothing) counts as covered from the start. Each step picks the candidate farthest
from every pair annotated or picked so far, so the annotated pairs cover the space
the ensemble sees.
"""

from __future__ import annotations

import numpy as np

PROJECTED = 128
CHUNK = 512


def random_projection(members: int, hidden: int, rng: np.random.Generator) -> np.ndarray:
    """``(M, H, PROJECTED)`` float32 Gaussian / sqrt(PROJECTED): ``sum_m x_m R_m`` of a
    pair's member differences ``x_m`` keeps its length in expectation."""
    r = rng.standard_normal((members, hidden, PROJECTED)) / np.sqrt(PROJECTED)
    return r.astype(np.float32)


def project(diff: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``(M, P, H)`` member differences -> ``(P, PROJECTED)`` float32 features."""
    out = np.zeros((diff.shape[1], r.shape[2]), dtype=np.float32)
    for member, matrix in zip(diff, r):
        out += member @ matrix
    return out


def k_center(candidates: np.ndarray, annotated: np.ndarray, n_pick: int) -> np.ndarray:
    """Greedy k-center: ``n_pick`` row indices of ``candidates`` ``(P, F)``, in pick
    order, each the farthest (sign-free) from the zero difference, the ``annotated``
    rows ``(A, F)`` and the picks before it.

    Squared distances ``|x|^2 + |y|^2 - 2 |x . y|`` = ``min(|x - y|, |x + y|)^2``, with
    every candidate's ``|x|^2`` computed once."""
    sq = np.einsum("pk,pk->p", candidates, candidates)
    nearest = sq.copy()  # distance to a tie
    for start in range(0, len(annotated), CHUNK):
        block = annotated[start : start + CHUNK]
        dist = (
            sq[:, None] + np.einsum("pk,pk->p", block, block) - 2.0 * np.abs(candidates @ block.T)
        )
        np.minimum(nearest, dist.min(1), out=nearest)
    picked = np.empty(n_pick, dtype=np.int64)
    for t in range(n_pick):
        i = int(np.argmax(nearest))
        picked[t] = i
        dist = sq + sq[i] - 2.0 * np.abs(candidates @ candidates[i])
        np.minimum(nearest, dist, out=nearest)
        nearest[i] = -np.inf  # never twice, even among identical rows
    return picked
