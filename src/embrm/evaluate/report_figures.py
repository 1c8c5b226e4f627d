"""Figures for `snakemake --report`: ORM reliability, reward margins, per-rule runtimes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

from embrm.evaluate.metrics import reliability, within_prompt_pairs
from embrm.evaluate.plots import save_figure
from embrm.io.atomic import atomic_path, write_text


def plot_reliability_and_margins(*, test_scores, rewards, reliability_plot, margins_plot) -> float:
    """The ensemble-mean reliability plot (pairwise probabilities vs golden frequency)
    and margin histograms, from ``test_scores`` ``(N, K, M)`` and ``rewards`` ``(N, K)``;
    returns the ECE."""
    import matplotlib.pyplot as plt

    scores = np.load(test_scores).mean(-1)
    golden = np.load(rewards, mmap_mode="r").astype(np.float64)
    ds, dg = within_prompt_pairs(scores, golden)
    rel = reliability(ds, dg)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.plot(rel["predicted"], rel["observed"], marker="o")
    ax.set_xlabel("predicted P(a > b) = sigmoid(s_a - s_b)")
    ax.set_ylabel("observed frequency (golden)")
    ax.set_title(f"ORM ensemble reliability, ECE = {rel['ece']:.3f}")
    save_figure(fig, reliability_plot)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    axes[0].hist(np.abs(dg), bins=50)
    axes[0].set_xlabel("|golden reward difference| of within-prompt pairs")
    axes[1].hist(ds, bins=50)
    axes[1].set_xlabel("predicted margin s_a - s_b (ensemble mean)")
    save_figure(fig, margins_plot)
    return rel["ece"]


def runtime_table(*, benchmarks, benchmark_dir, runtimes_csv, runtimes_plot) -> None:
    """Wall seconds and peak RSS of the `benchmark:` files ``benchmarks`` (each named by
    its path below ``benchmark_dir``), as a table and bars."""
    import matplotlib.pyplot as plt

    rows = []
    for path in sorted(map(Path, benchmarks)):
        with path.open() as fh:
            rec = next(csv.DictReader(fh, delimiter="\t"))
        rows.append(
            (
                str(path.relative_to(benchmark_dir).with_suffix("")),
                float(rec["s"]),
                float(rec["max_rss"]) if rec["max_rss"] != "NA" else float("nan"),
            )
        )
    with atomic_path(runtimes_csv) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["job", "wall_s", "max_rss_mb"])
        w.writerows(rows)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1))
    ax.barh([r[0] for r in rows], [r[1] for r in rows])
    ax.set_xlabel("wall time (s)")
    save_figure(fig, runtimes_plot)


def write_config(config: dict, path) -> None:
    """The experiment's effective config as YAML, for the report."""
    write_text(path, yaml.safe_dump(config, sort_keys=False))
