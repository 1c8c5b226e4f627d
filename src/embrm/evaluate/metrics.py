"""Metrics shared by evaluation (step 6), validation (step 8) and the report: ensemble
aggregation, ranking quality, best-of-N, and pairwise calibration (ECE)."""

from __future__ import annotations

import numpy as np

AGGREGATIONS = ("mean", "min", "first")


CONSERVATIVE = "conservative_"


def aggregations(lambdas=()) -> tuple[str, ...]:
    """The aggregation names: mean, min, first and ``conservative_<lambda>`` per lambda."""
    return AGGREGATIONS + tuple(f"{CONSERVATIVE}{lam:g}" for lam in lambdas)


def aggregate(scores: np.ndarray, how: str) -> np.ndarray:
    """Ensemble scores ``(N, K, M)`` -> ``(N, K)`` by mean, min, first, or
    ``conservative_<lambda>`` = mean - lambda * std over members (a lower confidence bound)."""
    if how.startswith(CONSERVATIVE):
        lam = float(how[len(CONSERVATIVE) :])
        return scores.mean(-1) - lam * scores.std(-1)
    if how == "mean":
        return scores.mean(-1)
    if how == "min":
        return scores.min(-1)
    if how == "first":
        return scores[..., 0]
    raise ValueError(f"unknown aggregation {how!r}")


def ranking_metrics(scores: np.ndarray, golden: np.ndarray) -> dict:
    """Per-prompt Spearman and pairwise accuracy of ``(N, K)`` scores."""
    return {
        "per_prompt_spearman": per_prompt_spearman(scores, golden),
        "pairwise_accuracy": pairwise_accuracy(scores, golden),
    }


def row_ranks(a: np.ndarray, method: str = "average") -> np.ndarray:
    """1-based ranks within each row of ``a`` ``(N, K)``; ties get their average rank
    (``average``) or their lowest (``min``). scipy's ``rankdata`` gives the same numbers,
    but importing ``scipy.stats`` costs every job about a second."""
    a = np.asarray(a)
    n, k = a.shape
    order = np.argsort(a, axis=1, kind="stable")
    ordered = np.take_along_axis(a, order, axis=1)
    first = np.ones((n, k), dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    pos = np.broadcast_to(np.arange(k), (n, k))
    low = np.maximum.accumulate(np.where(first, pos, 0), axis=1)
    last = np.ones((n, k), dtype=bool)
    last[:, :-1] = first[:, 1:]
    high = np.flip(np.minimum.accumulate(np.flip(np.where(last, pos, k), 1), axis=1), 1)
    sorted_ranks = low + 1.0 if method == "min" else (low + high) / 2.0 + 1.0
    ranks = np.empty((n, k), dtype=np.float64)
    np.put_along_axis(ranks, order, sorted_ranks, axis=1)
    return ranks


def per_prompt_spearman(scores: np.ndarray, golden: np.ndarray) -> float:
    """Spearman correlation within each prompt ``(N, K)``, averaged over prompts.

    Prompts whose scores or golden rewards are constant have no correlation and are
    left out of the average.
    """
    rs = row_ranks(scores)
    rg = row_ranks(golden)
    rs -= rs.mean(1, keepdims=True)
    rg -= rg.mean(1, keepdims=True)
    denom = np.sqrt((rs**2).sum(1) * (rg**2).sum(1))
    ok = denom > 0
    return float(((rs * rg).sum(1)[ok] / denom[ok]).mean()) if ok.any() else float("nan")


def global_spearman(scores: np.ndarray, golden: np.ndarray) -> float:
    rs = row_ranks(np.ravel(scores)[None, :])[0]
    rg = row_ranks(np.ravel(golden)[None, :])[0]
    return float(np.corrcoef(rs, rg)[0, 1])


def pairwise_accuracy(scores: np.ndarray, golden: np.ndarray, chunk: int = 16) -> float:
    """Fraction of within-prompt response pairs ordered as the golden rewards order them.

    Pairs tied in golden reward have no right answer and are excluded; a tie in the
    predicted scores counts as half right. Pooled over all pairs of all prompts.
    """
    right = 0.0
    total = 0
    for start in range(0, scores.shape[0], chunk):
        s = np.asarray(scores[start : start + chunk], dtype=np.float64)
        g = np.asarray(golden[start : start + chunk], dtype=np.float64)
        ds = np.sign(s[:, :, None] - s[:, None, :])
        dg = np.sign(g[:, :, None] - g[:, None, :])
        upper = np.triu(np.ones(ds.shape[1:], dtype=bool), 1)
        counted = (dg != 0) & upper
        right += ((ds == dg) & counted).sum() + 0.5 * ((ds == 0) & counted).sum()
        total += counted.sum()
    return float(right / total) if total else float("nan")


def best_of_n(
    scores: dict, golden: np.ndarray, ns, subsets: int, seed: int, proxy: bool = False
) -> dict:
    """Best-of-N for several score arrays: golden reward and within-prompt quantile of
    the top-scored response, keyed like ``scores``; with ``proxy``, also the pick's own
    score minus the subset's mean score (the over-optimisation curve: proxy gain vs
    golden reward as N grows).

    For each N (at most K) and prompt, ``subsets`` random N-subsets of the prompt's
    responses are drawn; the same subsets serve every score array, the oracle (highest
    golden reward) and the random baseline (expected golden reward of a uniform pick).
    One random permutation per (prompt, subset) is drawn and its first N entries used
    for every N, so the curve's points share their randomness.
    """
    n_prompts, k = golden.shape
    quantile = (row_ranks(golden, method="min") - 1) / max(k - 1, 1)
    rng = np.random.default_rng([seed, 6])
    perm = np.argsort(rng.random((n_prompts, subsets, k), dtype=np.float32), axis=2)
    out = {name: {} for name in scores}
    for n in (n for n in ns if n <= k):
        sub = perm[:, :, :n]
        g = np.take_along_axis(golden[:, None, :], sub, axis=2)
        q = np.take_along_axis(quantile[:, None, :], sub, axis=2)
        best = np.argmax(g, axis=2)[..., None]
        baselines = {
            "oracle_reward": float(np.take_along_axis(g, best, 2).mean()),
            "oracle_quantile": float(np.take_along_axis(q, best, 2).mean()),
            "random_reward": float(g.mean()),
            "random_quantile": float(q.mean()),
        }
        for name, s in scores.items():
            picked = np.take_along_axis(s[:, None, :], sub, axis=2)
            pick = np.argmax(picked, axis=2)[..., None]
            out[name][str(n)] = {
                "reward": float(np.take_along_axis(g, pick, 2).mean()),
                "quantile": float(np.take_along_axis(q, pick, 2).mean()),
                **baselines,
            }
            if proxy:
                gain = np.take_along_axis(picked, pick, 2)[..., 0] - picked.mean(2)
                out[name][str(n)]["proxy_gain"] = float(gain.mean())
    return out


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for the ``positive`` items: the chance that
    a positive outscores a negative, ties counting half (Mann-Whitney)."""
    ranks = row_ranks(np.asarray(score, dtype=np.float64)[None, :])[0]
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def uncertainty_auc(scores: np.ndarray, golden: np.ndarray, chunk: int = 16) -> dict:
    """Does the ensemble's disagreement flag its ranking errors? For every within-prompt
    pair with distinct golden rewards, the std over members of the score difference
    ``(N, K, M)`` -> per pair, against whether the mean score orders the pair wrongly
    (a tie in the mean counts as wrong); AUC 0.5 = no signal. ``auc_small_gap`` is the
    reference predictor, a small |mean difference|, which the std has to beat to add
    anything."""
    stds, gaps, errors = [], [], []
    j, k = np.triu_indices(golden.shape[1], 1)
    for start in range(0, scores.shape[0], chunk):
        s = np.asarray(scores[start : start + chunk], dtype=np.float64)
        g = np.asarray(golden[start : start + chunk], dtype=np.float64)
        diff = s[:, j] - s[:, k]  # (n, pairs, M)
        dg = g[:, j] - g[:, k]
        keep = dg != 0
        stds.append(diff.std(-1)[keep])
        gaps.append(np.abs(diff.mean(-1))[keep])
        errors.append((np.sign(diff.mean(-1)) != np.sign(dg))[keep])
    std, gap, error = (np.concatenate(x) for x in (stds, gaps, errors))
    return {
        "pairs": int(len(std)),
        "error_rate": float(error.mean()),
        "auc": auc(std, error),
        "auc_small_gap": auc(-gap, error),
    }


def within_prompt_pairs(scores: np.ndarray, golden: np.ndarray):
    """Every within-prompt pair (j < k) with distinct golden rewards, flattened."""
    j, k = np.triu_indices(golden.shape[1], 1)
    ds = (scores[:, j] - scores[:, k]).ravel()
    dg = (golden[:, j] - golden[:, k]).ravel()
    keep = dg != 0
    return ds[keep], dg[keep]


def reliability(score_diff: np.ndarray, golden_diff: np.ndarray, bins: int = 10) -> dict:
    """Predicted P(a > b) = sigmoid(s_a - s_b) vs the observed golden frequency, per bin,
    and the expected calibration error (bin-weighted mean |observed - predicted|)."""
    p = 1.0 / (1.0 + np.exp(-score_diff))
    won = (golden_diff > 0).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            rows.append((p[sel].mean(), won[sel].mean(), int(sel.sum())))
    pred, obs, count = (np.array(c) for c in zip(*rows))
    ece = float(np.sum(count * np.abs(obs - pred)) / count.sum())
    return {"predicted": pred, "observed": obs, "count": count, "ece": ece}
