"""The learning curve: step-6 metrics of every round against the pairs annotated so far,
one line per strategy, mean and 95% t-interval over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from embrm.evaluate.plots import save_figure
from embrm.io.atomic import atomic_path, write_text
from embrm.workflow.study_table import summarise

METRICS = ("test_spearman", "test_pairwise_acc", "bon_quantile")


def round_row(point: dict) -> dict:
    """One round of one strategy and seed: ``point`` names its ``results`` (step-6
    JSON) and ``training`` (step-5 summary) files."""
    results = json.loads(Path(point["results"]).read_text())
    mean = results["aggregations"]["mean"]
    largest = max(mean["best_of_n"], key=int)
    return {
        "strategy": point["strategy"],
        "seed": point["seed"],
        "round": point["round"],
        "annotated_pairs": json.loads(Path(point["training"]).read_text())["n_pairs"],
        "test_spearman": mean["per_prompt_spearman"],
        "test_pairwise_acc": mean["pairwise_accuracy"],
        "bon_quantile": mean["best_of_n"][largest]["quantile"],
        "bon_n": int(largest),
    }


def plot_curve(summary: pd.DataFrame, path) -> None:
    """Each metric against the annotated pairs, one line per strategy, 95% CI bands."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.6))
    for ax, metric in zip(axes, METRICS):
        for strategy, s in summary.groupby("strategy"):
            s = s.sort_values("annotated_pairs")
            x, y = s["annotated_pairs"], s[metric]
            ax.plot(x, y, marker="o", label=strategy)
            ci = np.nan_to_num(s[f"{metric}_ci95"].to_numpy(dtype=float))
            ax.fill_between(x, y - ci, y + ci, alpha=0.2)
        ax.set_xlabel("annotated pairs")
        title = metric
        if metric == "bon_quantile":
            title = f"best-of-{int(summary['bon_n'].iloc[0])} quantile"
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    save_figure(fig, path)


def learning_curve(*, points: list[dict], table, markdown, plot) -> pd.DataFrame:
    """``table`` (CSV, one row per strategy, seed and round), ``markdown`` (mean and 95%
    CI half-width over seeds per strategy and round) and ``plot``."""
    rows = pd.DataFrame([round_row(p) for p in points])
    means = summarise(rows.drop(columns="annotated_pairs"), ["strategy", "round"])
    pairs = rows.groupby(["strategy", "round"])["annotated_pairs"].mean()
    means.insert(2, "annotated_pairs", pairs.loc[list(zip(means.strategy, means["round"]))].values)
    means = means.drop(columns=["bon_n_ci95"]).astype({"bon_n": int, "annotated_pairs": int})
    with atomic_path(table) as tmp:
        rows.to_csv(tmp, index=False)
    write_text(
        markdown,
        "# Active learning curve: mean over seeds (95% CI half-width)\n\n"
        f"{means.to_markdown(index=False, floatfmt='.4f')}\n",
    )
    plot_curve(means, plot)
    return means
