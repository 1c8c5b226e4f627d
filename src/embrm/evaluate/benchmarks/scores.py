"""Benchmark scores of every head of an ensemble (each member, the mean, min and
conservative aggregations) with 95 % bootstrap intervals.

The interval resamples items with replacement within each subset (Ties: whole prompt
ids, ref and tied rows together), so each subset keeps its size and the section and
overall weights stay those of the benchmark; percentiles of ``bootstrap`` resamples.
"""

from __future__ import annotations

import numpy as np

from embrm.evaluate.benchmarks.rewardbench import Item, Outcomes, item_outcomes, summarize
from embrm.evaluate.metrics import aggregate, aggregations


def heads(scores: np.ndarray, lambdas=()) -> dict[str, np.ndarray]:
    """Completion scores ``(T,)`` per head from member scores ``(T, M)``: the
    aggregations (mean, min, first, conservative_<lambda>), then ``member_<m>``."""
    out = {how: aggregate(scores[:, None, :], how)[:, 0] for how in aggregations(lambdas)}
    return out | {f"member_{m}": scores[:, m] for m in range(scores.shape[1])}


def resample(out: Outcomes, rng: np.random.Generator) -> Outcomes:
    """One stratified bootstrap draw of ``out``."""
    idx = [
        rng.choice(np.flatnonzero(out.subsets == name), size=int((out.subsets == name).sum()))
        for name in sorted(set(out.subsets))
    ]
    idx = np.concatenate(idx) if idx else np.empty(0, np.int64)
    ties = rng.integers(0, len(out.ref), len(out.ref))
    return Outcomes(out.values[idx], out.subsets[idx], out.ref[ties], out.tied[ties])


def flat(summary: dict) -> dict[str, float]:
    """``overall``, each section and each subset of a summary as one flat mapping."""
    return {
        "overall": summary["overall"],
        **{f"section:{k}": v for k, v in summary.get("sections", {}).items()},
        **{f"subset:{k}": v for k, v in summary["subsets"].items()},
    }


def with_interval(out: Outcomes, layout: str, bootstrap: int, seed: int) -> dict:
    """The summary of ``out`` and a 95 % percentile interval of each of its numbers."""
    summary = summarize(out, layout)
    rng = np.random.default_rng(seed)
    draws = [flat(summarize(resample(out, rng), layout)) for _ in range(bootstrap)]
    ci = {
        key: [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))]
        for key in flat(summary)
        for v in [np.array([d[key] for d in draws], dtype=np.float64)]
    }
    return {**summary, "ci95": ci}


def score_heads(
    items: list[Item], scores: np.ndarray, *, layout: str, lambdas=(), bootstrap: int, seed: int
) -> dict:
    """Per head (:func:`heads`) the benchmark summary with intervals; ``scores``
    ``(T, M)``: every completion of ``items`` in order under each member."""
    return {
        name: with_interval(
            item_outcomes(items, s.astype(np.float64), layout), layout, bootstrap, seed
        )
        for name, s in heads(scores, lambdas).items()
    }
