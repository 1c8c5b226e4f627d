"""Which candidate pairs to annotate next, judged from the current ensemble alone.

A selector sees the candidate pairs, the pairs already annotated, the embeddings and
the ensemble trained on those pairs; it has no argument through which golden rewards
could reach it (:mod:`embrm.active.rounds` hands them to the annotator only).

- ``random``: a uniform sample of the candidates.
- ``uncertainty``: the pairs whose winner the ensemble is least sure of, the smallest
  ``|mean gap| / std gap`` over members (the smallest ``|gap|`` for one member).
- ``dopt``: greedy D-optimal design on the last hidden layer's Fisher information
  (:mod:`embrm.active.dopt`).
- ``coreset``: greedy k-center over the last hidden layer's pair differences
  (:mod:`embrm.active.coreset`).
"""

from __future__ import annotations

import numpy as np

from embrm.active.coreset import k_center, project, random_projection
from embrm.active.dopt import greedy_logdet, information, ridge_of
from embrm.active.features import fisher_rows, pair_features, pair_gaps
from embrm.io.errors import InputError
from embrm.rm.pairs import Pairs
from embrm.workflow.config import ACTIVE_STRATEGIES as STRATEGIES


def pool_and_annotated_features(model, embeddings, candidates, annotated: Pairs, precision):
    """:func:`pair_features` of the candidates ``(first, second)`` and of the annotated
    pairs, in one pass (the two share most responses): ``((diff, gap), (diff, gap))``."""
    n = len(candidates[0])
    diff, gap = pair_features(
        model,
        embeddings,
        np.concatenate([candidates[0], annotated.first]),
        np.concatenate([candidates[1], annotated.second]),
        precision,
    )
    return (diff[:, :n], gap[:, :n]), (diff[:, n:], gap[:, n:])


def select(
    strategy: str,
    *,
    n_pick: int,
    candidates: tuple[np.ndarray, np.ndarray],
    annotated: Pairs,
    embeddings: np.ndarray,
    model,
    rng: np.random.Generator,
    precision: str = "fp32",
) -> np.ndarray:
    """Indices of the ``n_pick`` candidates ``(first, second)`` to annotate next.

    ``annotated``: the pairs labelled so far (``dopt`` counts their information,
    ``coreset`` their coverage);
    ``embeddings`` ``(N, K, D)``: the train split; ``model``: the ensemble trained on
    ``annotated``.
    """
    first, second = candidates
    if n_pick > len(first):
        raise InputError(f"active: cannot select {n_pick} pairs from {len(first)} candidates")
    if strategy == "random":
        return np.sort(rng.choice(len(first), n_pick, replace=False))
    if strategy == "uncertainty":
        gap = pair_gaps(model, embeddings, first, second, precision)
        sure = np.abs(gap.mean(0)) / np.maximum(gap.std(0), 1e-12)
        return np.sort(np.argsort(sure, kind="stable")[:n_pick])
    if strategy in ("dopt", "coreset"):
        (diff, gap), (known_diff, known_gap) = pool_and_annotated_features(
            model, embeddings, candidates, annotated, precision
        )
        if strategy == "coreset":
            r = random_projection(diff.shape[0], diff.shape[2], rng)
            return np.sort(k_center(project(diff, r), project(known_diff, r), n_pick))
        z = fisher_rows(diff, gap)
        info = information(fisher_rows(known_diff, known_gap), ridge_of(z))
        return np.sort(greedy_logdet(z, info, n_pick)[0])
    raise InputError(f"active.strategy must be one of {STRATEGIES}, got {strategy!r}")
