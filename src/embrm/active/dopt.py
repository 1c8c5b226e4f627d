"""Greedy D-optimal design of the pairs to annotate.

A member's score is linear in its last hidden layer ``phi``, so the Fisher information
of its last layer under Bradley-Terry is ``sum_i p_i (1 - p_i) d_i d_i^T`` with
``d_i = phi(a_i) - phi(b_i)`` and ``p_i`` the member's win probability. The members'
last layers are separate parameters, so the ensemble's information is block diagonal
and its log det is the sum over members. Starting from the annotated pairs'
information (plus a small ridge), each step adds the candidate with the largest gain
``sum_m log(1 + z^T A_m^-1 z)`` (matrix determinant lemma, ``z = sqrt(p (1 - p)) d``).
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from embrm.io.errors import InputError

CHUNK_PAIRS = 2048
# candidates whose gain is brought up to date at once in the lazy greedy search
REFRESH = 32
# picks between two updates of the leading candidates' gains in large products
BLOCK = 64
# the leading candidates at a block's start: a stale gain above the last pick's less
# this many times the last block's fall in gain
FLOOR_FALLS = 2


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
    ``(v_s . z)^2`` for the picks since it was last computed. Picks go in blocks of
    ``BLOCK``: at a block's start the leading candidates' ``q`` are brought up to date
    in large products (on flat gains the lazy search below touches most of them
    anyway); within the block the search is lazy, as gains never grow (log det is
    submodular): only candidates whose stale gain beats every other are brought up
    to date, ``REFRESH`` at a time. The result is that of the plain greedy search.
    """
    n = z.shape[1]
    if n_pick > n:
        raise InputError(f"cannot pick {n_pick} pairs from {n} candidates")
    search = _LazyGreedy(z, info, n_pick)
    for start in range(0, n_pick, BLOCK):
        search.start_block(start)
        # then small products: one BLAS thread (more only wait for each other)
        with threadpool_limits(1, user_api="blas"):
            for t in range(start, min(start + BLOCK, n_pick)):
                search.pick(t)
    return search.picked, search.gains


class _LazyGreedy:
    """The state of :func:`greedy_logdet`: ``q`` ``(M, n)`` (exact as of pick
    ``fresh_at[i]`` for candidate ``i``), the picks' ``v`` ``(M, n_pick, H)``, each
    candidate's gain bound ``log(1 + q)`` summed over members, and ``A^-1`` as of the
    block's start. Within a block the search looks at the ``lead`` candidates only, as
    long as one of them beats the best stale bound of the others."""

    def __init__(self, z: np.ndarray, info: np.ndarray, n_pick: int):
        m, n, h = z.shape
        self.z = z
        self.inv = np.linalg.inv(info)
        inv32 = self.inv.astype(np.float32)
        self.q = np.empty((m, n), dtype=np.float64)
        for start in range(0, n, CHUNK_PAIRS):
            rows = z[:, start : start + CHUNK_PAIRS]
            self.q[:, start : start + CHUNK_PAIRS] = np.einsum("mnh,mnh->mn", rows @ inv32, rows)
        np.maximum(self.q, 0.0, out=self.q)
        self.fresh_at = np.zeros(n, dtype=np.int64)
        self.v = np.zeros((m, n_pick, h), dtype=np.float32)
        self.picked = np.empty(n_pick, dtype=np.int64)
        self.gains = np.empty(n_pick, dtype=np.float64)
        self.bound = np.log1p(self.q).sum(0)
        self.block_start = 0

    def start_block(self, start: int) -> None:
        """Bring the candidates that might be picked in the block starting at pick
        ``start`` up to date in large products; on flat gains the lazy search would
        touch most of them anyway. Those are the ones whose stale gain beats the last
        pick's less ``FLOOR_FALLS`` times the last block's fall; they become the
        ``lead``."""
        self.block_start = start
        floor = -np.inf
        if start:
            done = self.v[:, start - BLOCK : start].astype(np.float64)
            self.inv -= done.transpose(0, 2, 1) @ done
            last, fall = self.gains[start - 1], self.gains[start - BLOCK] - self.gains[start - 1]
            floor = last - FLOOR_FALLS * fall
            lead = np.flatnonzero(self.bound >= floor)
            _bring_up_to_date(self.q, self.z, self.v, self.fresh_at, lead, start)
            self.bound[lead] = np.log1p(self.q[:, lead]).sum(0)
        self.inv32 = self.inv.astype(np.float32)
        self._set_lead(floor)

    def _set_lead(self, floor: float) -> None:
        above = self.bound >= floor
        self.lead = np.flatnonzero(above)
        self.outside = self.bound[~above].max(initial=-np.inf)

    def pick(self, t: int) -> None:
        """Pick ``t``: bring the candidates with the largest stale gains up to date
        until the largest gain is exact, take it, extend ``v``."""
        bound, fresh_at = self.bound, self.fresh_at
        while True:
            lead_bound = bound[self.lead]
            i = int(self.lead[np.argmax(lead_bound)]) if len(self.lead) else -1
            if i < 0 or bound[i] < self.outside:  # the lead is spent: search everything
                self._set_lead(-np.inf)
                continue
            if fresh_at[i] == t:
                break
            if len(self.lead) > REFRESH:
                top = self.lead[np.argpartition(-lead_bound, REFRESH)[:REFRESH]]
            else:
                top = self.lead
            top = np.union1d(top[(fresh_at[top] < t) & np.isfinite(bound[top])], [i])
            _bring_up_to_date(self.q, self.z, self.v, fresh_at, top, t)
            bound[top] = np.log1p(self.q[:, top]).sum(0)
        self.picked[t], self.gains[t] = i, bound[i]
        zi = self.z[:, i, :, None]  # (M, H, 1)
        u = (self.inv32 @ zi)[..., 0]
        if t > self.block_start:
            recent = self.v[:, self.block_start : t]
            u -= (recent.transpose(0, 2, 1) @ (recent @ zi))[..., 0]
        self.v[:, t] = u / np.sqrt(1.0 + self.q[:, i])[:, None]
        bound[i] = -np.inf


def _bring_up_to_date(q, z, v, fresh_at, idx: np.ndarray, t: int) -> None:
    """Subtract from ``q[:, idx]`` the picks made since each was last exact.

    Candidates go in groups of similar staleness (within a factor of two), one product
    per group, so none pays for more than twice the picks it missed."""
    idx = idx[fresh_at[idx] < t]
    order = idx[np.argsort(-fresh_at[idx], kind="stable")]
    stale = t - fresh_at[order]  # ascending
    start = 0
    while start < len(order):
        end = int(np.searchsorted(stale, 2 * stale[start], side="right"))
        for c in range(start, end, CHUNK_PAIRS):
            _subtract_missed(q, z, v, fresh_at, order[c : min(c + CHUNK_PAIRS, end)], t)
        start = end


def _subtract_missed(q, z, v, fresh_at, rows: np.ndarray, t: int) -> None:
    """Bring candidates ``rows`` up to date at pick ``t``: subtract ``(v_s . z)^2``
    for each pick ``s`` they missed."""
    since = int(fresh_at[rows].min())
    proj = z[:, rows] @ v[:, since:t].transpose(0, 2, 1)  # (M, g, t - since)
    proj *= np.arange(since, t)[None, :] >= fresh_at[rows][:, None]
    q[:, rows] = np.maximum(q[:, rows] - np.einsum("mgt,mgt->mg", proj, proj), 0.0)
    fresh_at[rows] = t


def ridge_of(z: np.ndarray) -> np.ndarray:
    """Per member, the prior ``ridge I``: one average candidate's information spread
    over the ``H`` directions, so an unexplored direction counts but does not dominate."""
    scale = np.einsum("mph,mph->m", z, z, dtype=np.float64) / (z.shape[1] * z.shape[2])
    return np.maximum(scale, 1e-12)
