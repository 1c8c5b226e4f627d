"""One table of every study point's step-6 and step-8 metrics, seed means with a 95% CI,
and the study plots. For pair data, the step-6 pair metrics: held-out accuracy with the
half-width of its Wilson interval (the test set's own sampling error, which a CI over
seeds does not contain), the logistic floor's accuracy, ECE and the McNemar p-value.
Points scored on standard benchmarks (``evaluation.benchmarks``) add a
``benchmark_<name>`` column each, beside the in-distribution metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from embrm.evaluate.metrics import CONSERVATIVE
from embrm.evaluate.plots import save_figure
from embrm.io.atomic import atomic_path, write_text
from embrm.workflow.studies import EXPERIMENT, knob_label

METRICS = {
    "test_spearman": ("eval_results.json", ["aggregations", "mean", "per_prompt_spearman"]),
    "test_pairwise_acc": ("eval_results.json", ["aggregations", "mean", "pairwise_accuracy"]),
    "heldout_mse_teacher_iso": ("validation_results.json", ["variants", "teacher_isotonic", "mse"]),
    "heldout_mse_student_iso": ("validation_results.json", ["variants", "student_isotonic", "mse"]),
    "heldout_acc_student": (
        "validation_results.json",
        ["variants", "student", "pairwise_accuracy"],
    ),
}
BENCHMARK = "benchmark_"
PAIR_METRICS = {
    "test_pair_acc": ("pair_eval_results.json", ["ensemble", "accuracy"]),
    "test_pair_acc_wilson95": ("pair_eval_results.json", ["ensemble", "ci95"]),
    "floor_pair_acc": ("pair_eval_results.json", ["baseline", "accuracy"]),
    "test_pair_ece": ("pair_eval_results.json", ["ensemble", "ece"]),
    "mcnemar_p": ("pair_eval_results.json", ["mcnemar", "p_value"]),
}


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


def point_rows(points: dict[str, dict], pair_data: bool = False) -> pd.DataFrame:
    """One row per point folder: its overrides, then its metrics (a Wilson interval as
    its half-width)."""
    rows = []
    for folder, overrides in points.items():
        # list values (hidden_sizes) as text, so points group by them
        knobs = {k: str(v) if isinstance(v, list) else v for k, v in overrides.items()}
        row = {"point": Path(folder).name, **knobs}
        for metric, (file, path) in (PAIR_METRICS if pair_data else METRICS).items():
            value = _get(json.loads((Path(folder) / file).read_text()), path)
            row[metric] = (value[1] - value[0]) / 2 if isinstance(value, list) else value
        row.update(benchmark_columns(Path(folder)))
        if pair_data:
            rows.append(row)
            continue
        evaluation = json.loads((Path(folder) / "eval_results.json").read_text())
        for n, bon in evaluation["aggregations"]["mean"]["best_of_n"].items():
            row[f"bon{n}_reward"] = bon["reward"]
        row.update(extra_columns(evaluation))
        strength = Path(folder) / "orm" / "preference_strength.json"
        if strength.is_file():  # the points whose remedy read a first ensemble
            found = json.loads(strength.read_text())["detection"]
            row["noisy_label_precision"] = found["precision"]
            row["noisy_label_recall"] = found["recall"]
        rows.append(row)
    return pd.DataFrame(rows)


def benchmark_columns(folder: Path) -> dict:
    """``benchmark_<name>``: the mean head's overall score on each standard benchmark
    the point scored (``benchmark_eval/<name>.json``), beside the in-distribution metrics."""
    return {
        f"{BENCHMARK}{path.stem}": json.loads(path.read_text())["heads"]["mean"]["overall"]
        for path in sorted((folder / "benchmark_eval").glob("*.json"))
    }


def extra_columns(evaluation: dict) -> dict:
    """The optional step-6 results a point has: each conservative aggregation's pairwise
    accuracy and best-of-largest-N reward, and the std's AUC as an error predictor."""
    out = {}
    for how, res in evaluation["aggregations"].items():
        if how.startswith(CONSERVATIVE):
            n_max = max(res["best_of_n"], key=int)
            out[f"test_pairwise_acc_{how}"] = res["pairwise_accuracy"]
            out[f"bon{n_max}_reward_{how}"] = res["best_of_n"][n_max]["reward"]
    if "uncertainty" in evaluation:
        out["std_error_auc"] = evaluation["uncertainty"]["auc"]
    return out


def summarise(table: pd.DataFrame, knobs: list[str]) -> pd.DataFrame:
    """Mean and 95% t-interval half-width over seeds for each grid setting."""
    metrics = [c for c in table.columns if c not in knobs + ["point", "seed"]]
    groups = table.groupby(knobs, dropna=False) if knobs else [((), table)]
    out = []
    for key, group in groups:
        row = dict(zip(knobs, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = len(group)
        for m in metrics:
            values = group[m].to_numpy(dtype=float)
            row[m] = values.mean()
            half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
            row[f"{m}_ci95"] = half if len(values) > 1 else float("nan")
        out.append(row)
    return pd.DataFrame(out)


def plot_study(summary: pd.DataFrame, knobs: list[str], path) -> None:
    """Each metric against the study's first knob (log x for n_sample), one line per
    setting of the other knobs, with 95% CIs; a categorical first knob (objective,
    embedding or policy model, a named experiment) gives one bar per setting."""
    import matplotlib.pyplot as plt

    benchmarks = [c for c in summary if c.startswith(BENCHMARK) and not c.endswith("_ci95")]
    names = [m for m in (*METRICS, *PAIR_METRICS) if m in summary and "wilson" not in m]
    names += benchmarks
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6))
    x_key, others = (knobs[0], knobs[1:]) if knobs else (None, [])
    for ax, m in zip(np.atleast_1d(axes), names):
        err = summary.get(f"{m}_ci95")
        xlabel = " / ".join(knob_label(k) for k in knobs)
        if x_key is None:
            ax.bar(["all"], summary[m], yerr=err)
        elif pd.api.types.is_numeric_dtype(summary[x_key]):
            lines = summary.groupby(others, dropna=False) if others else [((), summary)]
            for key, s in lines:
                s = s.sort_values(x_key)
                label = setting_label(others, key)
                ax.errorbar(s[x_key], s[m], yerr=s[f"{m}_ci95"], marker="o", capsize=3, label=label)
            if others:
                ax.legend(fontsize=7)
            if x_key.endswith("n_sample"):
                ax.set_xscale("log")
            xlabel = knob_label(x_key)
        else:
            ax.bar(
                summary[knobs].astype(str).agg(" / ".join, axis=1), summary[m], yerr=err, capsize=3
            )
            ax.tick_params(axis="x", labelrotation=30 if others else 0)
        ax.set_xlabel(xlabel)
        ax.set_title(m, fontsize=9)
    save_figure(fig, path)


def setting_label(keys: list[str], values) -> str:
    """A legend entry: ``objective=bt, seed=0``."""
    values = values if isinstance(values, tuple) else (values,)
    return ", ".join(f"{knob_label(k)}={v}" for k, v in zip(keys, values))


def aggregate(
    *,
    study: str,
    points: dict[str, dict],
    table,
    markdown,
    summary,
    plot,
    pair_data: bool = False,
):
    """One study's ``table`` (CSV) and ``markdown`` of every point, its ``summary`` (mean
    and 95% CI over seeds) and ``plot``; ``points``: ``{point folder: overrides}``;
    ``pair_data``: the points learnt from human preference pairs."""
    rows = point_rows(points, pair_data)
    knobs = [k for k in rows.columns if "." in k or k == EXPERIMENT]
    means = summarise(rows, knobs)
    plot_knobs = knobs
    if EXPERIMENT in rows:  # an experiment's own settings follow from its name
        per_name = rows.groupby(EXPERIMENT)
        varied = [
            k for k in knobs if k != EXPERIMENT and per_name[k].nunique(dropna=False).max() > 1
        ]
        plot_knobs = [EXPERIMENT, *varied]
    with atomic_path(table) as tmp:
        rows.to_csv(tmp, index=False)
    write_text(markdown, f"# Study {study}: every point\n\n{rows.to_markdown(index=False)}\n")
    write_text(
        summary,
        f"# Study {study}: mean over seeds (95% CI half-width)\n\n"
        f"{means.to_markdown(index=False)}\n",
    )
    plot_study(means, plot_knobs, plot)
    return rows
