"""Step 6: score the test split with every ensemble member and measure ranking quality.

The test embeddings stream from disk in chunks of prompts through all members at once
(one wide GEMM for the first layer), so memory is bounded by the chunk, not by N. The
per-member scores ``(N, K, M)`` are saved: steps 7-8 reuse them instead of re-scoring.
"""

from __future__ import annotations

import logging

import numpy as np

from embrm.data.arrays import load_split, save_array
from embrm.evaluate.length_bias import length_bias, response_lengths
from embrm.evaluate.metrics import (
    aggregate,
    aggregations,
    best_of_n,
    per_prompt_spearman,
    ranking_metrics,
    uncertainty_auc,
)
from embrm.evaluate.plots import plot_best_of_n
from embrm.io.errors import InputError
from embrm.io.jsonio import write_json
from embrm.rm.ensemble import load_ensemble
from embrm.rm.precision import resolve
from embrm.rm.scoring import score_array

log = logging.getLogger(__name__)


def usable_bon_sizes(sizes, k: int, rewards) -> list[int]:
    """The best-of-N sizes that fit K responses per prompt; the others are logged by name,
    and none fitting is an error (an empty curve would pass as a result)."""
    kept = [n for n in sizes if n <= k]
    dropped = sorted(set(sizes) - set(kept))
    if not kept:
        raise InputError(
            f"evaluation.bon_n={list(sizes)}: every size exceeds K = {k} responses per "
            f"prompt of {rewards}; choose sizes <= {k}"
        )
    if dropped:
        log.warning("evaluation.bon_n sizes %s exceed K = %d and are skipped", dropped, k)
    return kept


def evaluate(
    *,
    ckpt,
    embeddings,
    rewards,
    results,
    test_scores,
    plot,
    eval_cfg: dict,
    seed: int,
    precision: str = "fp32",
    samples=None,
) -> dict:
    """Score the test split with the ensemble ``ckpt`` and write its metrics.

    ``embeddings`` ``(N, K, D)``, ``rewards`` ``(N, K)``: the test split. Writes
    ``test_scores`` ``(N, K, M)`` float32 (every member), ``results`` (JSON: ranking
    metrics and best-of-N per aggregation, with ``conservative_<lambda>`` aggregations for
    ``evaluation.conservative_lambdas``, which also add the over-optimisation panel
    (proxy gain of the pick vs its golden reward); the ensemble std's AUC as an error predictor for
    ``evaluation.uncertainty``; with the test ``samples`` of generated data, the length
    bias of the golden and learned rewards) and the best-of-N ``plot``.
    """
    precision = resolve(precision)
    emb, golden = load_split(embeddings, rewards)
    bon_n = usable_bon_sizes(eval_cfg["bon_n"], golden.shape[1], rewards)
    model, payload = load_ensemble(ckpt, input_dim=emb.shape[-1])
    scores = score_array(model, emb, eval_cfg["chunk_prompts"], precision)
    save_array(test_scores, scores)
    golden = np.asarray(golden, dtype=np.float64)
    out = {
        "members": len(payload["members"]),
        "precision": precision,
        "test_prompts": golden.shape[0],
        "responses_per_prompt": golden.shape[1],
        "best_of_n_dropped": sorted(set(eval_cfg["bon_n"]) - set(bon_n)),
        "aggregations": {},
    }
    lambdas = eval_cfg["conservative_lambdas"]
    aggregated = {how: aggregate(scores, how) for how in aggregations(lambdas)}
    bon = best_of_n(aggregated, golden, bon_n, eval_cfg["bon_subsets"], seed, proxy=bool(lambdas))
    for how, agg in aggregated.items():
        out["aggregations"][how] = {**ranking_metrics(agg, golden), "best_of_n": bon[how]}
    out["per_member_spearman"] = [
        per_prompt_spearman(scores[..., i], golden) for i in range(scores.shape[-1])
    ]
    if eval_cfg["uncertainty"]:
        out["uncertainty"] = uncertainty_auc(scores, golden)
    if samples:
        lengths = response_lengths(samples, golden.shape)
        out["length_bias"] = length_bias(lengths, golden, aggregated)
    write_json(results, out)
    plot_best_of_n(out, plot)
    return out
