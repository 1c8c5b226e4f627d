"""The benchmark figure: each head's overall score, and the mean head's sections (v1)
or subsets (v2), with 95 % bootstrap intervals."""

from __future__ import annotations

import numpy as np

from embrm.evaluate.plots import save_figure


def bars(ax, labels: list[str], values: list[float], intervals: list[list[float]], title: str):
    """Horizontal bars with interval whiskers, first label on top."""
    y = np.arange(len(labels))[::-1]
    lo = np.array([v - ci[0] for v, ci in zip(values, intervals)])
    hi = np.array([ci[1] - v for v, ci in zip(values, intervals)])
    ax.barh(y, values, xerr=[lo, hi], capsize=3, color="tab:blue", alpha=0.8)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 1)
    ax.set_xlabel("score")
    ax.set_title(title)


def plot_benchmark(result: dict, path) -> None:
    """Two panels from an ``evaluate_benchmark`` result: heads, then the mean head's parts."""
    import matplotlib.pyplot as plt

    heads = result["heads"]
    mean = heads["mean"]
    part = "sections" if result["layout"] == "v1" else "subsets"
    names = list(mean[part])
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.8 + 0.35 * max(len(heads), len(names), 3)))
    bars(
        axes[0],
        list(heads),
        [h["overall"] for h in heads.values()],
        [h["ci95"]["overall"] for h in heads.values()],
        f"{result['benchmark']} ({result['layout']}): overall per head",
    )
    bars(
        axes[1],
        names,
        [mean[part][n] for n in names],
        [mean["ci95"][f"{part[:-1]}:{n}"] for n in names],
        f"mean head: {part}",
    )
    save_figure(fig, path)
