"""Step 6: score the test split with every ensemble member and measure ranking quality.

The test embeddings stream from disk in chunks of prompts through all members at once
(one wide GEMM for the first layer), so memory is bounded by the chunk, not by N. The
per-member scores ``(N, K, M)`` are saved: steps 7-8 reuse them instead of re-scoring.
"""

from __future__ import annotations

import logging

import numpy as np

from embrm.arrays import load_split, save_array
from embrm.jsonio import write_json
from embrm.metrics import best_of_n, pairwise_accuracy, per_prompt_spearman
from embrm.orm import load_ensemble
from embrm.plots import plot_best_of_n
from embrm.scoring import score_array

log = logging.getLogger(__name__)

AGGREGATIONS = ("mean", "min", "first")


def aggregate(scores: np.ndarray, how: str) -> np.ndarray:
    """Ensemble scores ``(N, K, M)`` -> ``(N, K)`` by mean, min (conservative) or first."""
    if how == "mean":
        return scores.mean(-1)
    if how == "min":
        return scores.min(-1)
    if how == "first":
        return scores[..., 0]
    raise ValueError(f"unknown aggregation {how!r}")


def ranking_metrics(scores: np.ndarray, golden: np.ndarray) -> dict:
    return {
        "per_prompt_spearman": per_prompt_spearman(scores, golden),
        "pairwise_accuracy": pairwise_accuracy(scores, golden),
    }


def evaluate(
    ensemble_ckpt,
    test_embeddings,
    test_rewards,
    out_json,
    out_scores,
    out_plot,
    eval_cfg: dict,
    *,
    seed: int,
    precision: str = "fp32",
) -> dict:
    emb, golden = load_split(test_embeddings, test_rewards)
    model, payload = load_ensemble(ensemble_ckpt, input_dim=emb.shape[-1])
    scores = score_array(model, emb, eval_cfg["chunk_prompts"], precision)
    save_array(out_scores, scores)
    golden = np.asarray(golden, dtype=np.float64)
    results = {
        "members": len(payload["members"]),
        "test_prompts": golden.shape[0],
        "responses_per_prompt": golden.shape[1],
        "aggregations": {},
    }
    aggregated = {how: aggregate(scores, how) for how in AGGREGATIONS}
    bon = best_of_n(aggregated, golden, eval_cfg["bon_n"], eval_cfg["bon_subsets"], seed)
    for how, agg in aggregated.items():
        results["aggregations"][how] = {**ranking_metrics(agg, golden), "best_of_n": bon[how]}
    results["per_member_spearman"] = [
        per_prompt_spearman(scores[..., i], golden) for i in range(scores.shape[-1])
    ]
    write_json(out_json, results)
    plot_best_of_n(results, out_plot)
    return results
