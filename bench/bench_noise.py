"""Loss variants, label-noise remedies and the conservative ensemble on planted data.

Runs steps 5-6 of every point of the ``noise`` study of ``config/noise_study.yaml``
(synthetic smooth data, 2,000 train prompts x 10 responses, 200 test prompts x 100,
D = 64; 5 members of 256-128; one cross-prompt pair per prompt; annotation quality 1.0
and 0.5; 3 seeds) through the real workflow, then prints one table (mean and standard
deviation over seeds) and writes ``bench/out/bench_noise.json``. Usage:

    python bench/bench_noise.py [--workdir bench/out/noise] [--cores 2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import yaml
from snakemake.utils import update_config

from embrm.workflow.studies import study_folders

from bench_core import ROOT, snakemake

STUDY = "noise"


CONFIGS = [ROOT / "config.yaml", ROOT / "config/noise_study.yaml"]


def point_folders(configs: list[Path]) -> list[str]:
    """The study's point folders (``results/studies/noise/<point>``) of ``configs``,
    merged as Snakemake merges them (later files override earlier keys)."""
    merged: dict = {}
    for path in configs:
        update_config(merged, yaml.safe_load(path.read_text()) or {})
    return list(study_folders({"studies": {STUDY: merged["studies"][STUDY]}})[STUDY])


def run(workdir: Path, cores: int, configs: list[Path] = CONFIGS) -> None:
    """Steps 5-6 of every point: each point's ``eval_results.json`` as a target (the
    remedy points pull in their first ensemble's preference strength)."""
    workdir.mkdir(parents=True, exist_ok=True)
    targets = [f"{folder}/eval_results.json" for folder in point_folders(configs)]
    snakemake(workdir, configs, *targets, cores=cores, quiet=False)


def point_metrics(folder: Path) -> dict:
    """The numbers of one point: ranking quality per aggregation, best-of-100, the std's
    AUC, label agreement after the remedy and the noisy-label detection."""
    ev = json.loads((folder / "eval_results.json").read_text())
    train = json.loads((folder / "orm/training.json").read_text())
    out = {"label_agreement": train["label_agreement_with_golden"]}
    for how in ("mean", "conservative_1"):
        agg = ev["aggregations"][how]
        out[f"acc_{how}"] = agg["pairwise_accuracy"]
        out[f"spearman_{how}"] = agg["per_prompt_spearman"]
        out[f"bon100_{how}"] = agg["best_of_n"]["100"]["reward"]
    out["std_auc"] = ev["uncertainty"]["auc"]
    out["small_gap_auc"] = ev["uncertainty"]["auc_small_gap"]
    strength = folder / "orm/preference_strength.json"
    if strength.is_file():
        det = json.loads(strength.read_text())["detection"]
        out |= {"base_rate": det["base_rate"], "precision": det["precision"]}
        out["recall"] = det["recall"]
    return out


def collect(workdir: Path) -> dict:
    """``{(experiment, quality): {metric: [values over seeds]}}``."""
    rows: dict = {}
    for folder in sorted((workdir / "results/studies" / STUDY).iterdir()):
        if not (folder / "eval_results.json").is_file():
            raise FileNotFoundError(f"{folder}: no eval_results.json; rerun the study")
        name, quality, _ = folder.name.split("__")
        key = (name, float(quality.split("=")[1]))
        for metric, value in point_metrics(folder).items():
            rows.setdefault(key, {}).setdefault(metric, []).append(value)
    return rows


def table(rows: dict) -> str:
    cols = [
        "acc_mean",
        "spearman_mean",
        "bon100_mean",
        "acc_conservative_1",
        "bon100_conservative_1",
        "std_auc",
        "small_gap_auc",
        "label_agreement",
        "precision",
        "recall",
    ]
    lines = ["| loss / remedy | quality | seeds | " + " | ".join(cols) + " |"]
    lines.append("|" + "---|" * (len(cols) + 3))
    for (name, quality), m in sorted(rows.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        cells = []
        for c in cols:
            v = np.array(m.get(c, [np.nan]))
            cells.append("-" if np.isnan(v).all() else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}")
        lines.append(f"| {name} | {quality} | {len(m['acc_mean'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench/out/noise")
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    run(args.workdir, args.cores)
    rows = collect(args.workdir)
    print(table(rows))
    out = ROOT / "bench/out/bench_noise.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({f"{n}@q{q}": m for (n, q), m in rows.items()}, indent=1))


if __name__ == "__main__":
    main()
