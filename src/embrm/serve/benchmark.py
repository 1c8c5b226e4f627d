"""``embrm score BUNDLE --benchmark FILE_OR_ID --layout v1|v2``: a standard benchmark
(RewardBench v1 or 2, see docs/benchmarks.md) scored with a bundle's head.

Each completion is read as step 4 read the training text (the prompt as an HH
dialogue, the completion as its assistant turn), so the bundle scores the benchmark as
the workflow's ``evaluate_benchmark`` scores it with the run's ensemble.
"""

from __future__ import annotations

import numpy as np

from embrm.data.texts import plain_text
from embrm.evaluate.benchmarks.rewardbench import Item, item_outcomes
from embrm.evaluate.benchmarks.scores import with_interval
from embrm.evaluate.benchmarks.steps import BOOTSTRAP


def completion_rewards(model, texts: list[str], chunk: int) -> np.ndarray:
    """Rewards ``(T,)`` of step-4 texts under the model's head, ``chunk`` at a time."""
    from tqdm import tqdm

    out = []
    for start in tqdm(range(0, len(texts), chunk), unit="chunk", desc="benchmark"):
        out.append(model.rewards_and_spread(texts[start : start + chunk])[0])
    return np.concatenate(out).astype(np.float64)


def score_benchmark(model, *, items: list[Item], source: str, layout: str, chunk: int) -> dict:
    """The benchmark summary (subsets, sections for v1, overall, 95 % bootstrap
    intervals) of ``model``'s head on ``items`` (read and checked by
    :func:`~embrm.evaluate.benchmarks.layouts.read_benchmark` before the model loads)."""
    texts = [plain_text(it.prompt, c) for it in items for c in it.completions]
    rewards = completion_rewards(model, texts, chunk)
    summary = with_interval(item_outcomes(items, rewards, layout), layout, BOOTSTRAP, seed=0)
    return {
        "benchmark": source,
        "layout": layout,
        "head": model.head,
        "conservative": model.conservative,
        "items": len(items),
        "completions": len(texts),
        **summary,
    }
