"""Figures for `snakemake --report`: ORM reliability, reward margins, per-rule runtimes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

from embrm.plots import save_figure


def within_prompt_pairs(scores: np.ndarray, golden: np.ndarray):
    """Every within-prompt pair (j < k) with distinct golden rewards, flattened."""
    j, k = np.triu_indices(golden.shape[1], 1)
    ds = (scores[:, j] - scores[:, k]).ravel()
    dg = (golden[:, j] - golden[:, k]).ravel()
    keep = dg != 0
    return ds[keep], dg[keep]


def reliability(score_diff: np.ndarray, golden_diff: np.ndarray, bins: int = 10) -> dict:
    """Predicted P(a > b) = sigmoid(s_a - s_b) vs the observed golden frequency, per bin,
    and the expected calibration error (bin-weighted mean |observed - predicted|)."""
    p = 1.0 / (1.0 + np.exp(-score_diff))
    won = (golden_diff > 0).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            rows.append((p[sel].mean(), won[sel].mean(), int(sel.sum())))
    pred, obs, count = (np.array(c) for c in zip(*rows))
    ece = float(np.sum(count * np.abs(obs - pred)) / count.sum())
    return {"predicted": pred, "observed": obs, "count": count, "ece": ece}


def plot_reliability_and_margins(test_scores, test_rewards, out_reliability, out_margins):
    import matplotlib.pyplot as plt

    scores = np.load(test_scores).mean(-1)
    golden = np.load(test_rewards, mmap_mode="r").astype(np.float64)
    ds, dg = within_prompt_pairs(scores, golden)
    rel = reliability(ds, dg)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.plot(rel["predicted"], rel["observed"], marker="o")
    ax.set_xlabel("predicted P(a > b) = sigmoid(s_a - s_b)")
    ax.set_ylabel("observed frequency (golden)")
    ax.set_title(f"ORM ensemble reliability, ECE = {rel['ece']:.3f}")
    save_figure(fig, out_reliability)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    axes[0].hist(np.abs(dg), bins=50)
    axes[0].set_xlabel("|golden reward difference| of within-prompt pairs")
    axes[1].hist(ds, bins=50)
    axes[1].set_xlabel("predicted margin s_a - s_b (ensemble mean)")
    save_figure(fig, out_margins)
    return rel["ece"]


def runtime_table(benchmark_dir, out_csv, out_plot) -> None:
    """Wall seconds and peak RSS of every rule's `benchmark:` file, as a table and bars."""
    import matplotlib.pyplot as plt

    rows = []
    for path in sorted(Path(benchmark_dir).rglob("*.tsv")):
        with path.open() as fh:
            rec = next(csv.DictReader(fh, delimiter="\t"))
        rows.append(
            (
                str(path.relative_to(benchmark_dir).with_suffix("")),
                float(rec["s"]),
                float(rec["max_rss"]) if rec["max_rss"] != "NA" else float("nan"),
            )
        )
    with open(out_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["job", "wall_s", "max_rss_mb"])
        w.writerows(rows)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1))
    ax.barh([r[0] for r in rows], [r[1] for r in rows])
    ax.set_xlabel("wall time (s)")
    save_figure(fig, out_plot)


def write_config(config: dict, out_path) -> None:
    Path(out_path).write_text(yaml.safe_dump(config, sort_keys=False))
