"""Benchmark steps 5-8 at the paper's shape, and at 2x and 4x, through the real workflow.

Runs the published code's own step-5 setup (``bench/paper_shape.yaml``: n_sample 10,000,
one cross-prompt pair per prompt, two random ranks, annotation quality 10, reward scale
6.0, 10 members, BT) on the ``rough`` planted-reward data (10,000 train prompts x 10
responses, 200 test prompts x 500, D = 2048). ``--scales 1 2 4`` multiplies the train
prompts, the test prompts and n_sample. For each scale it generates the data (not
timed), runs ``snakemake all`` and reads each job's ``benchmark:`` file (wall seconds,
peak RSS); it also times each job's imports alone, its fixed cost. Prints a table per
scale and the growth across scales, and writes JSON. Usage:

    python bench/bench_core.py [--scales 1 2 4] [--precision auto|bf16|fp32]
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
    ("5 train ORM ensemble", "train_orm", "embrm.rm.ensemble"),
    ("6 evaluate (all members)", "evaluate_orm", "embrm.evaluate.evaluation"),
    ("7a isotonic teacher map", "calibrate_teacher", "embrm.calibrate.isotonic"),
    ("7b distil student", "distill_student", "embrm.calibrate.distill"),
    ("7c isotonic student map", "calibrate_student", "embrm.calibrate.isotonic"),
    ("8 validate 4 variants", "validate_variants", "embrm.evaluate.validation"),
]
STUDENT = "distill_student"  # its benchmark file is named after task and objective


def snakemake(
    workdir: Path, config: Path | list[Path], *args: str, cores: int = 2, quiet: bool = True
) -> None:
    """Run the project's workflow in ``workdir`` on ``config`` (one file, or a list whose
    later files override the earlier) with targets and options ``args``."""
    configs = config if isinstance(config, list) else [config]
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        *map(str, configs),
        f"-c{cores}",
        *args,
    ]
    if quiet:
        cmd += ["--quiet", "progress"]
    subprocess.run(cmd, check=True)


def read_benchmark(path: Path) -> dict:
    with path.open() as fh:
        row = next(csv.DictReader(fh, delimiter="\t"))
    return {"wall_s": float(row["s"]), "peak_rss_mb": float(row["max_rss"])}


def import_seconds(module: str, repeats: int = 3) -> float:
    """A job's fixed cost: the fastest of ``repeats`` fresh interpreters importing it."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def scaled_config(base: dict, scale: int) -> dict:
    cfg = json.loads(json.dumps(base))
    syn = cfg["data"]["synthetic"]
    syn["n_train"] *= scale
    syn["n_test"] *= scale
    cfg["orm"]["n_sample"] *= scale
    return cfg


def run_scale(cfg: dict, workdir: Path) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "bench_config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    snakemake(workdir, config, "results/data/synthetic/test_rewards.npy")  # not timed
    for sub in ("benchmarks", "orm", "eval", "calibration"):
        shutil.rmtree(workdir / "results" / sub, ignore_errors=True)
    start = time.perf_counter()
    snakemake(workdir, config, "all")
    total = time.perf_counter() - start
    student = f"distill_student_{cfg['task']}_{cfg['orm']['objective']}"
    bench = workdir / "results" / "benchmarks"
    rows = [
        {"stage": label, **read_benchmark(bench / f"{student if name == STUDENT else name}.tsv")}
        for label, name, _ in STAGES
    ]
    res = workdir / "results"
    evaluation = json.loads((res / "eval_results.json").read_text())
    val = json.loads((res / "validation_results.json").read_text())["variants"]
    training = json.loads((res / "orm" / "training.json").read_text())
    mean = evaluation["aggregations"]["mean"]
    return {
        "stages": rows,
        "sum_of_stages_s": sum(r["wall_s"] for r in rows),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        "snakemake_wall_s": total,
        "precision": training["precision"],
        "quality": {
            "test_per_prompt_spearman_mean_agg": mean["per_prompt_spearman"],
            "test_per_prompt_spearman_first_member": evaluation["per_member_spearman"][0],
            "test_per_prompt_spearman_worst_member": min(evaluation["per_member_spearman"]),
            "test_pairwise_accuracy_mean_agg": mean["pairwise_accuracy"],
            "heldout_mse_teacher_isotonic": val["teacher_isotonic"]["mse"],
            "heldout_mse_student": val["student"]["mse"],
            "heldout_mse_student_isotonic": val["student_isotonic"]["mse"],
        },
        "label_agreement_with_golden": training["label_agreement_with_golden"],
        "member_steps_run": [m["steps_run"] for m in training["members"]],
    }


def print_scale(scale: int, out: dict, startup: dict) -> None:
    print(f"\nscale {scale}x (precision {out['precision']})")
    print(f"{'stage':28s} {'wall s':>8s} {'imports s':>10s} {'peak RSS MB':>12s}")
    for (_, _, module), r in zip(STAGES, out["stages"]):
        wall, rss = r["wall_s"], r["peak_rss_mb"]
        print(f"{r['stage']:28s} {wall:8.1f} {startup[module]:10.1f} {rss:12.0f}")
    print(
        f"{'steps 5-8 (sum of jobs)':28s} {out['sum_of_stages_s']:8.1f} {'':10s} "
        f"{out['peak_rss_mb']:12.0f}"
    )
    for k, v in out["quality"].items():
        print(f"  {k}: {v:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "bench" / "paper_shape.yaml"))
    ap.add_argument("--scales", type=int, nargs="+", default=[1])
    ap.add_argument("--precision", choices=["auto", "bf16", "fp32"])
    ap.add_argument("--workdir", default=str(ROOT / "bench" / "out" / "work"))
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "bench_core.json"))
    args = ap.parse_args()
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for section, values in yaml.safe_load(Path(args.config).read_text()).items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) else values
    if args.precision:
        cfg["precision"] = args.precision
    startup = {module: import_seconds(module) for module in {m for *_, m in STAGES}}
    results = {}
    for scale in args.scales:
        out = run_scale(scaled_config(cfg, scale), Path(args.workdir) / f"x{scale}")
        results[scale] = out
        print_scale(scale, out, startup)
    if len(results) > 1:
        first = results[args.scales[0]]
        print(f"\n{'scale':>5s} {'steps 5-8 s':>12s} {'x time':>7s} {'RSS MB':>8s} {'x RSS':>6s}")
        for scale, out in results.items():
            print(
                f"{scale:4d}x {out['sum_of_stages_s']:12.1f} "
                f"{out['sum_of_stages_s'] / first['sum_of_stages_s']:7.2f} "
                f"{out['peak_rss_mb']:8.0f} {out['peak_rss_mb'] / first['peak_rss_mb']:6.2f}"
            )
    summary = {"config": cfg, "import_seconds": startup, "scales": results}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
