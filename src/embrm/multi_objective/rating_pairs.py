"""Preference pairs derived from ratings, with Llama-2 margins from the score gap.

Two recipes over the responses of each prompt (``group``), by one score per response:

- ``best_vs_random`` (UltraFeedback's binarisation): the best-rated response (a tie for
  best broken at random) against one random response rated strictly lower; a prompt
  whose responses are all rated the same gives no pair;
- ``all_pairs``: every two responses of a prompt rated differently.

Ties are dropped (a tie has no preference to learn). Each pair is stored with its winner
first (label 1); its margin is ``margin_scale * (score_win - score_lose)``, the
rating-gap margin of Llama 2's ``-log sigmoid(r_win - r_lose - m)``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from embrm.io.errors import InputError
from embrm.rm.pairs import Pairs

RECIPES = ("best_vs_random", "all_pairs")


def rating_pairs(
    scores: np.ndarray,
    group: np.ndarray,
    *,
    recipe: str,
    seed: int,
    margin_scale: float = 1.0,
    k: int = 1,
) -> tuple[Pairs, np.ndarray, dict]:
    """``(pairs, margin (P,), counts)`` over row ids of ``scores`` ``(R,)``, whose prompt
    is ``group`` ``(R,)``. ``k``: the rows per prompt of the embeddings the ids index
    (1 for a flat list of rated responses, K for an ``(N, K)`` layout)."""
    if recipe not in RECIPES:
        raise InputError(f"ratings pair recipe must be one of {RECIPES}, got {recipe!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != np.shape(group) or scores.ndim != 1:
        raise InputError(f"scores {scores.shape} and groups {np.shape(group)} must be (R,)")
    rng = np.random.default_rng([seed, 24])
    counts = Counter()
    first, second = [], []
    _, inverse = np.unique(group, return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    for rows in members:
        counts["prompts"] += 1
        s = scores[rows]
        if recipe == "all_pairs":
            i, j = np.triu_indices(len(rows), 1)
            tied = s[i] == s[j]
            counts["ties_dropped"] += int(tied.sum())
            i, j = i[~tied], j[~tied]
            win = np.where(s[i] > s[j], i, j)
            first.append(rows[win])
            second.append(rows[np.where(win == i, j, i)])
            continue
        top = np.flatnonzero(s == s.max())
        lower = np.flatnonzero(s < s.max())
        if len(lower) == 0:
            counts["prompts_without_pair"] += 1
            continue
        first.append(rows[[rng.choice(top)]])
        second.append(rows[[rng.choice(lower)]])
    first = np.concatenate(first) if first else np.zeros(0, np.int64)
    second = np.concatenate(second) if second else np.zeros(0, np.int64)
    margin = (margin_scale * (scores[first] - scores[second])).astype(np.float32)
    pairs = Pairs(
        first.astype(np.int64), second.astype(np.int64), np.ones(len(first), np.float32), k
    )
    counts["pairs"] = len(pairs)
    return pairs, margin, dict(counts)
