"""Length bias of golden and learned rewards, where response texts exist (generated data).

A reward model that prefers longer answers regardless of content is a known failure of
RLHF reward models. Measured here on the test split: the Spearman correlation between a
response's length (in whitespace-separated words) and its reward, within each prompt
(averaged over prompts, so a prompt's overall reward level does not count) and pooled
over all responses; for the golden rewards and for every aggregation of the ensemble.
A learned reward whose correlation exceeds the golden one's has picked up length.
"""

from __future__ import annotations

import numpy as np

from embrm.evaluate.metrics import global_spearman, per_prompt_spearman
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl


def response_lengths(samples, shape: tuple[int, int]) -> np.ndarray:
    """Words per response ``(N, K)`` from the step-2 samples file (one row per prompt,
    ``responses`` a list of K texts), checked against the rewards' ``shape``."""
    rows = read_jsonl(samples)
    lengths = np.array([[len(r.split()) for r in row["responses"]] for row in rows], dtype=float)
    if lengths.shape != tuple(shape):
        raise InputError(
            f"{samples}: {lengths.shape} responses (N, K) but the rewards have {tuple(shape)}"
        )
    return lengths


def length_bias(lengths: np.ndarray, golden: np.ndarray, learned: dict) -> dict:
    """Within-prompt and pooled Spearman of length ``(N, K)`` against the golden rewards
    ``(N, K)`` and each learned ``(N, K)`` score in ``learned`` (name -> scores)."""
    rewards = {"golden": golden, **learned}
    return {
        name: {
            "within_prompt_spearman": per_prompt_spearman(values, lengths),
            "pooled_spearman": global_spearman(values, lengths),
        }
        for name, values in rewards.items()
    }
