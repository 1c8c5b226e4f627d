"""Preference pairs from golden rewards, labelled by a simulated annotator.

Follows the published method: the first ``n_sample`` prompts; candidate responses per
prompt chosen by ``consider_first_n``; comparisons within a prompt or across prompts;
labels drawn with P(a wins) = sigmoid(quality * (r_a - r_b) / scale). Each comparison
is stored once, as (a, b, label); nothing is mirrored. Human preference pairs come
labelled (:func:`given_pairs`).

K-wise comparisons (InstructGPT): ``consider_first_n`` = k > 2 random responses per
prompt, ranked by one simulated annotator (a Plackett-Luce draw with weights
exp(quality * r / scale): sort by quality * r / scale + Gumbel noise), and all
k(k-1)/2 pairs of the ranking. With every prompt giving C(k, 2) pairs, the mean loss
over pairs is InstructGPT's per-prompt 1 / C(k, 2) weighting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl


@dataclass
class Pairs:
    """Comparisons over flat response ids ``prompt * K + response``."""

    first: np.ndarray  # (P,) int64
    second: np.ndarray  # (P,) int64
    label: np.ndarray  # (P,) float32, 1 if ``first`` won
    k: int
    ranking: np.ndarray | None = None  # (n_sample, k') flat ids, best first (K-wise)

    def __len__(self) -> int:
        return len(self.first)


def candidate_columns(rewards: np.ndarray, consider_first_n: int, rng) -> np.ndarray:
    """``(N, 2)`` response columns each prompt may use, by rank of golden reward.

    ``2``: two random ranks (a random pair of distinct columns, so a file sorted by
    reward gives no bias); ``-1``: ranks {0, K-1} (maximal diversity); ``-2``: the two
    middle ranks (minimal diversity); ``k > 2``: ``(N, k)``, k random distinct columns.
    """
    n, k = rewards.shape
    if consider_first_n > k:
        raise InputError(f"orm.consider_first_n={consider_first_n} exceeds the K = {k} responses")
    if consider_first_n >= 2:
        return np.argsort(rng.random((n, k)), axis=1)[:, :consider_first_n]
    order = np.argsort(rewards, axis=1, kind="stable")
    if consider_first_n == -1:
        return order[:, [0, k - 1]]
    if consider_first_n == -2:
        return order[:, [k // 2 - 1, k // 2]]
    raise InputError(f"orm.consider_first_n must be >= 2, -1 or -2, got {consider_first_n}")


def reward_scale(rewards: np.ndarray, setting) -> float:
    """``auto`` = std of the golden rewards in use (the later infrastructure's choice)."""
    if setting == "auto":
        scale = float(np.std(rewards))
        if not scale > 0:
            raise InputError("orm.reward_scale=auto but all golden rewards are equal")
        return scale
    return float(setting)


def annotate(diff: np.ndarray, quality: float, rng: np.random.Generator) -> np.ndarray:
    """Labels for ``diff = (r_a - r_b) / scale``; quality < 0 is a perfect annotator."""
    if quality < 0:
        ties = diff == 0
        label = (diff > 0).astype(np.float32)
        label[ties] = rng.integers(0, 2, ties.sum())
        return label
    p_first = 1.0 / (1.0 + np.exp(-quality * diff))
    return (rng.random(diff.shape) < p_first).astype(np.float32)


def given_pairs(preferences: np.ndarray, *, n_sample: int | None, source="preferences") -> Pairs:
    """The human-labelled pairs of ``preferences`` ``(N, 2)`` (1 marks the chosen column):
    pair ``i`` compares flat ids ``2i`` and ``2i + 1``, labelled 1 where column 0 won.
    ``n_sample``: the first that many pairs; None: all (more than N is an error)."""
    pref = np.asarray(preferences)
    if pref.ndim != 2 or pref.shape[1] != 2:
        raise InputError(f"{source}: preferences must be (N, 2), found {pref.shape}")
    if not np.isin(pref, (0, 1)).all() or not (pref.sum(1) == 1).all():
        raise InputError(f"{source}: each row of preferences must be one 1 and one 0")
    n = len(pref) if n_sample is None else n_sample
    if n > len(pref):
        raise InputError(
            f"orm.n_sample={n_sample} but {source} holds {len(pref)} pairs; "
            "null trains on all of them"
        )
    first = 2 * np.arange(n, dtype=np.int64)
    return Pairs(first, first + 1, pref[:n, 0].astype(np.float32), 2)


def build_pairs(
    rewards: np.ndarray,
    *,
    n_sample: int | None,
    consider_first_n: int,
    comparison: str,
    n_pairs: int,
    annotation_quality: float,
    reward_scale_setting,
    seed: int,
) -> tuple[Pairs, float]:
    """Pairs over the first ``n_sample`` prompts (None: all); returns them and the scale."""
    n_total, k = rewards.shape
    n_sample = n_total if n_sample is None else n_sample
    if n_sample > n_total:
        raise InputError(f"orm.n_sample={n_sample} but the train split has {n_total} prompts")
    if comparison == "cross_prompt" and n_sample < 2:
        raise InputError("orm.comparison=cross_prompt needs orm.n_sample >= 2")
    rew = np.asarray(rewards[:n_sample], dtype=np.float64)
    rng = np.random.default_rng([seed, 2])
    cand = candidate_columns(rew, consider_first_n, rng)
    c = cand.shape[1]
    if c > 2:
        if comparison != "within_prompt":
            raise InputError("orm.consider_first_n > 2 (K-wise rankings) needs within_prompt")
        return ranked_pairs(rew, cand, annotation_quality, reward_scale_setting, rng)
    prompt = np.repeat(np.arange(n_sample), n_pairs)
    pick_a = rng.integers(0, c, prompt.size)
    if comparison == "within_prompt":
        other = prompt
        pick_b = (pick_a + rng.integers(1, c, prompt.size)) % c  # a different candidate
    elif comparison == "cross_prompt":
        other = (prompt + rng.integers(1, n_sample, prompt.size)) % n_sample  # never itself
        pick_b = rng.integers(0, c, prompt.size)
    else:
        raise InputError(f"orm.comparison must be cross_prompt or within_prompt: {comparison}")
    col_a = cand[prompt, pick_a]
    col_b = cand[other, pick_b]
    first = prompt * k + col_a
    second = other * k + col_b
    # one comparison per unordered pair: a repeat would sit on both sides of a split
    _, keep = np.unique(np.sort(np.stack([first, second], 1), axis=1), axis=0, return_index=True)
    keep.sort()
    first, second = first[keep], second[keep]
    scale = reward_scale(rew, reward_scale_setting)
    flat = rew.reshape(-1)
    diff = (flat[first] - flat[second]) / scale
    label = annotate(diff, annotation_quality, rng)
    return Pairs(first.astype(np.int64), second.astype(np.int64), label, k), scale


def ranked_pairs(rew, cand, quality: float, scale_setting, rng) -> tuple[Pairs, float]:
    """K-wise: one simulated ranking of each prompt's ``cand`` ``(N, k)`` columns and all
    its k(k-1)/2 pairs, each stored with the better-ranked response first (label 1)."""
    n, k = rew.shape
    scale = reward_scale(rew, scale_setting)
    cand_rew = np.take_along_axis(rew, cand, axis=1) / scale
    if quality < 0:  # a perfect annotator: the golden order, ties in random order
        order = np.lexsort((rng.random(cand.shape), cand_rew), axis=1)[:, ::-1]
    else:
        order = np.argsort(-(quality * cand_rew + rng.gumbel(size=cand.shape)), axis=1)
    ranking = (np.arange(n)[:, None] * k + np.take_along_axis(cand, order, axis=1)).astype(np.int64)
    i, j = np.triu_indices(cand.shape[1], 1)
    first, second = ranking[:, i].ravel(), ranking[:, j].ravel()
    return Pairs(first, second, np.ones(len(first), np.float32), k, ranking), scale


def mislabelled(rewards: np.ndarray, pairs: Pairs) -> np.ndarray:
    """``(P,)`` bool: the simulated label disagrees with the golden order (a tie counts
    as a second-response win, as the label-agreement check always did)."""
    flat = np.asarray(rewards, dtype=np.float64).reshape(-1)
    golden = (flat[pairs.first] > flat[pairs.second]).astype(np.float32)
    return golden != pairs.label


def golden_margin(rewards: np.ndarray, pairs: Pairs, scale: float, margin_scale: float):
    """The "known margin" ``(P,)``: ``margin_scale * |r_a - r_b| / scale`` of the golden
    rewards, in the units the annotator's noise uses."""
    flat = np.asarray(rewards, dtype=np.float64).reshape(-1)
    return (margin_scale * np.abs(flat[pairs.first] - flat[pairs.second]) / scale).astype(
        np.float32
    )


def given_margin(rows_path, pairs: Pairs, margin_scale: float) -> np.ndarray:
    """Llama 2's margin ``(P,)`` of human pairs: ``margin_scale`` times each pair's own
    ``margin`` field (e.g. a rating gap), read from the pairs file ``rows_path`` whose
    row ``i`` is pair ``i`` (:func:`given_pairs`)."""
    rows = read_jsonl(rows_path)[: len(pairs)]
    missing = [r.get("id", i) for i, r in enumerate(rows) if r.get("margin") is None]
    if missing or len(rows) < len(pairs):
        raise InputError(
            f"{rows_path}: orm.margin_source=given needs every pair's margin field; pair "
            f"{missing[0] if missing else len(rows)} has none"
        )
    margin = np.array([r["margin"] for r in rows], dtype=np.float64)
    if (margin < 0).any():
        raise InputError(
            f"{rows_path}: a margin is the chosen response's lead and cannot be negative "
            f"(pair {rows[int(np.argmax(margin < 0))].get('id')})"
        )
    return (margin_scale * margin).astype(np.float32)


def margin_summary(margin: np.ndarray) -> dict:
    """Mean, least and greatest value of margins ``(P,)`` (what a margin loss read, what
    a pairs file holds)."""
    return {"mean": float(margin.mean()), "min": float(margin.min()), "max": float(margin.max())}
