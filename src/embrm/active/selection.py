"""Which candidate pairs to annotate next, judged from the current ensemble alone.

A selector sees the candidate pairs, the pairs already annotated, the embeddings and
the ensemble trained on those pairs; it has no argument through which golden rewards
could reach it (:mod:`embrm.active.rounds` hands them to the annotator only).

- ``random``: a uniform sample of the candidates.
- ``uncertainty``: the pairs whose winner the ensemble is least sure of, the smallest
  ``|mean gap| / std gap`` over members (the smallest ``|gap|`` for one member).
- ``dopt``: greedy D-optimal design. A member's score is linear in its last hidden
  layer ``phi``, so the Fisher information of its last layer under Bradley-Terry is
  ``sum_i p_i (1 - p_i) d_i d_i^T`` with ``d_i = phi(a_i) - phi(b_i)`` and ``p_i`` the
  member's win probability. The members' last layers are separate parameters, so the
  ensemble's information is block diagonal and its log det is the sum over members.
  Starting from the annotated pairs' information (plus a small ridge), each step adds
  the candidate with the largest gain ``sum_m log(1 + z^T A_m^-1 z)`` (matrix
  determinant lemma, ``z = sqrt(p (1 - p)) d``).
"""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from embrm.io.errors import InputError
from embrm.rm.pairs import Pairs
from embrm.rm.precision import autocast

STRATEGIES = ("random", "uncertainty", "dopt")
CHUNK_PAIRS = 2048
# candidates whose gain is brought up to date at once in the lazy greedy search
REFRESH = 128
# picks between two updates of every candidate's gain
BLOCK = 64


def _per_response(embeddings: np.ndarray, first: np.ndarray, second: np.ndarray, run):
    """``run(x)`` on each response some pair uses, once, read from the ``(N, K, D)``
    array in order of flat id; returns its outputs ``(M, U, ...)`` (float32) and the
    positions of ``first`` and ``second`` among them."""
    ids, where = np.unique(np.concatenate([first, second]), return_inverse=True)
    flat = embeddings.reshape(-1, embeddings.shape[-1])
    parts = []
    for start in range(0, len(ids), 2 * CHUNK_PAIRS):
        x = torch.from_numpy(np.asarray(flat[ids[start : start + 2 * CHUNK_PAIRS]], np.float32))
        parts.append(run(x).float().numpy())
    return np.concatenate(parts, axis=1), where[: len(first)], where[len(first) :]


def pair_features(model, embeddings, first, second, precision: str = "fp32"):
    """Per member, the last-hidden-layer differences ``(M, P, H)`` float32 and the score
    gaps ``(M, P)`` float64 of pairs ``(first, second)`` (flat response ids)."""
    h = model.hidden_sizes[-1]

    def run(x):
        with autocast(precision):
            feats, scores = model.last_hidden(x)
        return torch.cat([feats.float(), scores.float()[..., None]], -1)

    out, a, b = _per_response(embeddings, first, second, run)
    diff = out[:, a, :h] - out[:, b, :h]
    gap = out[:, a, h].astype(np.float64) - out[:, b, h]
    return diff, gap


@torch.no_grad()
def pair_gaps(model, embeddings, first, second, precision: str = "fp32") -> np.ndarray:
    """Every member's score gap ``(M, P)`` of pairs ``(first, second)``."""
    score = model.shared_scorer()

    def run(x):
        with autocast(precision):
            return score(x).T

    out, a, b = _per_response(embeddings, first, second, run)
    return out[:, a].astype(np.float64) - out[:, b]


def fisher_rows(diff: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """``z = sqrt(p (1 - p)) d`` ``(M, P, H)``: a pair's information is ``z z^T``."""
    p = 1.0 / (1.0 + np.exp(-gap))
    return diff * np.sqrt(p * (1.0 - p)).astype(np.float32)[..., None]


def information(z: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """``ridge_m I + sum_i z_mi z_mi^T`` ``(M, H, H)`` float64 for rows ``z`` ``(M, P, H)``."""
    z64 = z.astype(np.float64)
    return z64.transpose(0, 2, 1) @ z64 + ridge[:, None, None] * np.eye(z.shape[2])[None]


def greedy_logdet(z: np.ndarray, info: np.ndarray, n_pick: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy D-optimal choice of ``n_pick`` rows of ``z`` ``(M, n, H)`` added to the
    information ``info`` ``(M, H, H)``; returns the picked indices and their log det
    gains (summed over members), in pick order.

    One inverse per member, then rank-one updates only: after picks ``v_1..v_t``
    (``v = A^-1 z / sqrt(1 + z^T A^-1 z)``, Sherman-Morrison) ``A_t^-1 = A_0^-1 -
    sum v v^T``, so a candidate's ``q = z^T A_t^-1 z`` is its old value minus
    ``(v_s . z)^2`` for the picks since it was last computed. Gains never grow (log det
    is submodular), so the search is lazy: within a block of ``BLOCK`` picks only
    candidates whose stale gain beats every other are brought up to date, ``REFRESH``
    at a time; between blocks, the leading candidates are, in large products. The
    result is that of the plain greedy search.
    """
    m, n, h = z.shape
    if n_pick > n:
        raise InputError(f"cannot pick {n_pick} pairs from {n} candidates")
    inv = np.linalg.inv(info)
    inv32 = inv.astype(np.float32)
    q = np.empty((m, n), dtype=np.float64)
    for start in range(0, n, CHUNK_PAIRS):
        block = z[:, start : start + CHUNK_PAIRS]
        q[:, start : start + CHUNK_PAIRS] = np.einsum("mnh,mnh->mn", block @ inv32, block)
    np.maximum(q, 0.0, out=q)
    bound = np.log1p(q).sum(0)
    fresh_at = np.zeros(n, dtype=np.int64)  # the pick count at which q[:, i] was exact
    v = np.zeros((m, n_pick, h), dtype=np.float32)
    picked = np.empty(n_pick, dtype=np.int64)
    gains = np.empty(n_pick, dtype=np.float64)
    for start in range(0, n_pick, BLOCK):
        _refresh_leaders(q, z, v, fresh_at, bound, start)
        # then small products: one BLAS thread (more only wait for each other)
        with threadpool_limits(1, user_api="blas"):
            for t in range(start, min(start + BLOCK, n_pick)):
                _pick(z, inv, q, bound, fresh_at, v, picked, gains, t)
    return picked, gains


def _refresh_leaders(q, z, v, fresh_at, bound, t: int) -> None:
    """At the start of a block, bring candidates up to date in large products, in
    order of their stale gains, until ``BLOCK`` exact gains beat every stale one left
    (those cannot be among the next picks before the lazy search reaches them)."""
    order = np.flatnonzero(np.isfinite(bound))
    order = order[np.argsort(-bound[order], kind="stable")]
    for c in range(0, len(order), CHUNK_PAIRS):
        idx = order[c : c + CHUNK_PAIRS]
        if c >= BLOCK and bound[idx[0]] < np.partition(bound[order[:c]], -BLOCK)[-BLOCK]:
            return
        _bring_up_to_date(q, z, v, fresh_at, idx, t)
        bound[idx] = np.log1p(q[:, idx]).sum(0)


def _pick(z, inv, q, bound, fresh_at, v, picked, gains, t: int) -> None:
    """Pick ``t`` of :func:`greedy_logdet`: bring the candidates with the largest stale
    gains up to date until the largest gain is exact, take it, extend ``v``."""
    n = z.shape[1]
    while True:
        i = int(np.argmax(bound))
        if fresh_at[i] == t:
            break
        top = np.argpartition(-bound, REFRESH)[:REFRESH] if n > REFRESH else np.arange(n)
        top = np.union1d(top[(fresh_at[top] < t) & np.isfinite(bound[top])], [i])
        _bring_up_to_date(q, z, v, fresh_at, top, t)
        bound[top] = np.log1p(q[:, top]).sum(0)
    picked[t], gains[t] = i, bound[i]
    zi = z[:, i].astype(np.float64)  # (M, H)
    u = np.einsum("mhk,mk->mh", inv, zi)
    if t:
        u -= np.einsum("mth,mt->mh", v[:, :t], np.einsum("mth,mh->mt", v[:, :t], zi))
    v[:, t] = u / np.sqrt(1.0 + q[:, i])[:, None]
    bound[i] = -np.inf


def _bring_up_to_date(q, z, v, fresh_at, idx: np.ndarray, t: int) -> None:
    """Subtract from ``q[:, idx]`` the picks made since each was last exact."""
    since = int(fresh_at[idx].min())
    proj = z[:, idx] @ v[:, since:t].transpose(0, 2, 1)  # (M, len(idx), t - since)
    counted = np.arange(since, t)[None, :] >= fresh_at[idx][:, None]
    lost = np.einsum("mit,it->mi", proj.astype(np.float64) ** 2, counted)
    q[:, idx] = np.maximum(q[:, idx] - lost, 0.0)
    fresh_at[idx] = t


def ridge_of(z: np.ndarray) -> np.ndarray:
    """Per member, the prior ``ridge I``: one average candidate's information spread
    over the ``H`` directions, so an unexplored direction counts but does not dominate."""
    scale = np.einsum("mph,mph->m", z, z, dtype=np.float64) / (z.shape[1] * z.shape[2])
    return np.maximum(scale, 1e-12)


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

    ``annotated``: the pairs labelled so far (``dopt`` counts their information);
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
    if strategy == "dopt":
        z = fisher_rows(*pair_features(model, embeddings, first, second, precision))
        known = fisher_rows(
            *pair_features(model, embeddings, annotated.first, annotated.second, precision)
        )
        picked, _ = greedy_logdet(z, information(known, ridge_of(z)), n_pick)
        return np.sort(picked)
    raise InputError(f"active.strategy must be one of {STRATEGIES}, got {strategy!r}")
