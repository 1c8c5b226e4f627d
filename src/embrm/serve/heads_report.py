"""Every served head on the run's held-out prompts, as a trainer will see it.

Computed when the bundle is built, with the bundle's own :class:`Heads` on the stored
test embeddings of the held-out prompts (label 2 of step 7's split): the calibration
error (MSE against the golden rewards) of each golden-scale head, how many
within-prompt response pairs it ties (a tie is a zero advantage in a GRPO group), and
its ranking metrics. The model card shows it beside step 8's table.
"""

from __future__ import annotations

import numpy as np

from embrm.data.arrays import load_split
from embrm.evaluate.metrics import global_spearman, pairwise_accuracy, per_prompt_spearman
from embrm.serve.heads import HEAD_PARTS, Heads


def within_prompt_ties(pred: np.ndarray) -> float:
    """Fraction of within-prompt response pairs of ``pred`` ``(P, K)`` with equal values."""
    k = pred.shape[1]
    tied = sum(
        int((c * (c - 1) // 2).sum()) for c in (np.unique(r, return_counts=True)[1] for r in pred)
    )
    return tied / (pred.shape[0] * k * (k - 1) / 2)


def held_out_report(heads: Heads, *, embeddings, rewards, split) -> dict:
    """Metrics per head on the held-out prompts; ``embeddings`` ``(N, K, D)`` and
    ``rewards`` ``(N, K)`` of the test split, ``split`` step 7's npz of prompt labels."""
    emb, golden = load_split(embeddings, rewards, check_values=False)
    held = np.load(split)["split"] == 2
    x = np.asarray(emb[held], dtype=np.float32)
    p, k, d = x.shape
    g = np.asarray(golden[held], dtype=np.float64)
    out = {"held_out_prompts": p, "responses_per_prompt": k, "heads": {}}
    for head, (_, kind) in HEAD_PARTS.items():
        pred = heads.rewards(x.reshape(p * k, d), head)[0].reshape(p, k)
        m = {
            "mse": float(np.mean((pred - g) ** 2)) if kind else None,  # raw scales: no MSE
            "within_prompt_ties": within_prompt_ties(pred),
            "pairwise_accuracy": pairwise_accuracy(pred, g),
            "per_prompt_spearman": per_prompt_spearman(pred, g),
            "global_spearman": global_spearman(pred, g),
        }
        out["heads"][head] = m
    return out
