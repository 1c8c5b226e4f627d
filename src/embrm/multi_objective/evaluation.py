"""How a multi-objective model is judged: per attribute as a regression, and as a reward.

Per attribute ``j``: the Spearman correlation of predicted and observed ratings over
all responses, and their MSE. As a reward: accuracy on held-out pairs (the labelled
winner scored higher; a tie counts half) and, where a golden reward ``(N, K)`` exists,
within-prompt pairwise accuracy and best-of-N (:mod:`embrm.evaluate.metrics`).
"""

from __future__ import annotations

import numpy as np

from embrm.evaluate.metrics import best_of_n, global_spearman, pairwise_accuracy
from embrm.io.errors import InputError
from embrm.rm.pairs import Pairs


def attribute_metrics(predicted: np.ndarray, observed: np.ndarray, names) -> dict:
    """``{name: {"spearman", "mse"}}`` of predicted vs observed ratings ``(R, J)``."""
    predicted = np.asarray(predicted, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    if predicted.shape != observed.shape or predicted.shape[1] != len(names):
        raise InputError(
            f"attribute metrics: predicted {predicted.shape}, observed {observed.shape}, "
            f"{len(names)} names"
        )
    return {
        name: {
            "spearman": global_spearman(predicted[:, j], observed[:, j]),
            "mse": float(((predicted[:, j] - observed[:, j]) ** 2).mean()),
        }
        for j, name in enumerate(names)
    }


def pair_accuracy(rewards: np.ndarray, pairs: Pairs) -> float:
    """Share of ``pairs`` whose labelled winner gets the higher reward ``(R,)``."""
    diff = rewards[pairs.first] - rewards[pairs.second]
    right = np.where(pairs.label == 1, diff > 0, diff < 0) + 0.5 * (diff == 0)
    return float(right.mean())


def reward_metrics(
    rewards: np.ndarray, golden: np.ndarray, *, ns=(1, 2, 4, 8, 16), subsets=50, seed=0
) -> dict:
    """Pairwise accuracy and best-of-N of rewards ``(N, K)`` against golden ``(N, K)``."""
    return {
        "pairwise_accuracy": pairwise_accuracy(rewards, golden),
        "best_of_n": best_of_n({"gated": rewards}, golden, ns, subsets, seed)["gated"],
    }
