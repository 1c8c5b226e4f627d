"""Plots for the report: best-of-N curves and calibration (predicted vs golden)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from embrm.io.atomic import atomic_path  # noqa: E402


def save_figure(fig, path) -> None:
    """Write ``fig`` as an image (format from the suffix) atomically, then close it."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def plot_best_of_n(results: dict, path) -> None:
    """Golden reward of the best-of-N pick per aggregation, with oracle and random lines;
    where the proxy gain was measured, a third panel: golden reward vs proxy gain as N
    grows (Gao et al.'s over-optimisation curve)."""
    aggs = results["aggregations"]
    first = next(iter(aggs.values()))["best_of_n"]
    ns = [int(n) for n in first]
    proxy = "proxy_gain" in first[str(ns[0])]
    fig, axes = plt.subplots(1, 3 if proxy else 2, figsize=(15 if proxy else 10, 4))
    for ax, metric in zip(axes, ("reward", "quantile")):
        for how, res in aggs.items():
            ax.plot(ns, [res["best_of_n"][str(n)][metric] for n in ns], marker="o", label=how)
        ax.plot(ns, [first[str(n)][f"oracle_{metric}"] for n in ns], "k--", label="oracle")
        ax.plot(ns, [first[str(n)][f"random_{metric}"] for n in ns], "k:", label="random")
        ax.set_xscale("log")
        ax.set_xlabel("N (responses per prompt)")
        ax.set_ylabel(f"golden {metric} of best-of-N pick")
    if proxy:
        ax = axes[2]
        for how, res in aggs.items():
            bon = res["best_of_n"]
            gain = [bon[str(n)]["proxy_gain"] for n in ns]
            ax.plot(gain, [bon[str(n)]["reward"] for n in ns], marker="o", label=how)
        ax.set_xlabel("proxy gain of the pick (its score - the subset's mean score)")
        ax.set_ylabel("golden reward of best-of-N pick")
        ax.set_title("over-optimisation: N grows along each curve", fontsize=9)
    axes[0].legend()
    fig.suptitle("Best-of-N with the ORM ensemble")
    save_figure(fig, path)


def plot_calibration(predictions: dict, golden: np.ndarray, path, bins: int = 15) -> None:
    """Mean golden reward per bin of predicted reward, one panel per variant."""
    fig, axes = plt.subplots(1, len(predictions), figsize=(4 * len(predictions), 4))
    g = np.ravel(golden)
    for ax, (name, pred) in zip(np.atleast_1d(axes), predictions.items()):
        p = np.ravel(pred)
        edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
        which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
        used = np.unique(which)
        px = [p[which == b].mean() for b in used]
        gy = [g[which == b].mean() for b in used]
        ax.plot(px, gy, marker="o")
        lo, hi = min(g.min(), p.min()), max(g.max(), p.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="y = x")
        ax.set_title(name)
        ax.set_xlabel("predicted (bin mean)")
        ax.set_ylabel("golden (bin mean)")
    save_figure(fig, path)


def plot_strength(strength: np.ndarray, mislabelled, path, bins: int = 60) -> None:
    """Histogram of the preference strength ``(P,)``, correct and ``mislabelled`` pairs
    apart (``(P,)`` bool; None for human pairs, which have no golden order)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    edges = np.histogram_bin_edges(strength, bins=bins)
    if mislabelled is None:
        ax.hist(strength, bins=edges, alpha=0.6, label="human pairs")
    else:
        ax.hist(strength[~mislabelled], bins=edges, alpha=0.6, label="label agrees with golden")
        ax.hist(strength[mislabelled], bins=edges, alpha=0.6, label="label contradicts golden")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("preference strength: mean over members of r(win) - r(lose)")
    ax.set_ylabel("training pairs")
    ax.legend()
    save_figure(fig, path)
