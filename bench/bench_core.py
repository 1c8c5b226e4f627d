"""Benchmark steps 5-8 at the paper's shape through the real workflow.

Generates planted-reward data shaped like the paper's release (10,000 train prompts x
10 responses, 200 test prompts x 500, D=2048), then runs steps 5-8 with `snakemake`
and reads each rule's `benchmark:` file (wall seconds, peak RSS of the job). Prints a
table and writes JSON. Usage:

    python bench/bench_core.py [--config bench/paper_shape.yaml] [--precision bf16|fp32]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = [
    ("5 train ORM ensemble", "train_orm"),
    ("6 evaluate (all members)", "evaluate_orm"),
    ("7a isotonic teacher map", "calibrate_teacher"),
    ("7b distil student", "distill_student_harmless_bt"),
    ("7c isotonic student map", "calibrate_student"),
    ("8 validate 4 variants", "validate_variants"),
]


def snakemake(workdir: Path, config: Path, *targets: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(config),
        "-c2",
        *targets,
        "--quiet",
        "progress",
    ]
    subprocess.run(cmd, check=True)


def read_benchmark(path: Path) -> dict:
    with path.open() as fh:
        row = next(csv.DictReader(fh, delimiter="\t"))
    return {"wall_s": float(row["s"]), "peak_rss_mb": float(row["max_rss"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "bench" / "paper_shape.yaml"))
    ap.add_argument("--precision", choices=["bf16", "fp32"])
    ap.add_argument("--workdir", default=str(ROOT / "bench" / "out" / "work"))
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "bench_core.json"))
    args = ap.parse_args()
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section, values in yaml.safe_load(Path(args.config).read_text()).items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) else values
    if args.precision:
        cfg["precision"] = args.precision
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "bench_config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    data = "results/data/synthetic/test_rewards.npy"
    snakemake(workdir, config, data)  # data generation is not part of steps 5-8
    shutil.rmtree(workdir / "results" / "benchmarks", ignore_errors=True)
    for sub in ("orm", "eval", "calibration"):
        shutil.rmtree(workdir / "results" / sub, ignore_errors=True)
    start = time.perf_counter()
    snakemake(workdir, config, "all")
    total = time.perf_counter() - start
    rows = []
    for label, name in STAGES:
        rows.append(
            {"stage": label, **read_benchmark(workdir / "results/benchmarks" / f"{name}.tsv")}
        )
    results = {
        k: json.loads((workdir / "results" / k).read_text())
        for k in ("eval_results.json", "validation_results.json")
    }
    mean = results["eval_results.json"]["aggregations"]["mean"]
    val = results["validation_results.json"]["variants"]
    summary = {
        "config": cfg,
        "stages": rows,
        "sum_of_stages_s": sum(r["wall_s"] for r in rows),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        "snakemake_wall_s": total,
        "quality": {
            "test_per_prompt_spearman_mean_agg": mean["per_prompt_spearman"],
            "test_pairwise_accuracy_mean_agg": mean["pairwise_accuracy"],
            "heldout_mse_teacher_isotonic": val["teacher_isotonic"]["mse"],
            "heldout_mse_student_isotonic": val["student_isotonic"]["mse"],
        },
    }
    print(f"{'stage':32s} {'wall s':>8s} {'peak RSS MB':>12s}")
    for r in rows:
        print(f"{r['stage']:32s} {r['wall_s']:8.1f} {r['peak_rss_mb']:12.0f}")
    print(
        f"{'steps 5-8 (sum of jobs)':32s} {summary['sum_of_stages_s']:8.1f} "
        f"{summary['peak_rss_mb']:12.0f}"
    )
    print(f"snakemake wall (incl. scheduling): {total:.1f} s; precision {cfg['precision']}")
    for k, v in summary["quality"].items():
        print(f"{k}: {v:.4f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
