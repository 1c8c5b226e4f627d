"""Does bf16 autocast keep the metrics, and is it faster on this CPU?

Measures torch GEMM throughput (fp32 vs bf16) at an ORM-layer shape, then runs steps
5-8 of the default synthetic config twice through the real workflow, once per
precision, and compares the metrics. Prints a table and writes JSON. Usage:

    python bench/bench_precision.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import yaml

from bench_core import ROOT, snakemake

GEMM = (2048, 2048, 1024)  # rows x D x hidden: the first ORM layer on one micro-batch
SMALL_ORM = {"hidden_sizes": [128, 64], "ensemble_number": 3}


def gemm_gflops(dtype: torch.dtype, repeats: int = 2) -> float:
    n, d, h = GEMM
    a, b = torch.randn(n, d, dtype=dtype), torch.randn(d, h, dtype=dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n * d * h * repeats / (time.perf_counter() - start) / 1e9


def run(precision: str, workdir: Path) -> dict:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["precision"] = precision
    cfg["orm"].update(SMALL_ORM)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    start = time.perf_counter()
    snakemake(workdir, config, "all")
    wall = time.perf_counter() - start
    ev = json.loads((workdir / "results/eval_results.json").read_text())["aggregations"]["mean"]
    val = json.loads((workdir / "results/validation_results.json").read_text())["variants"]
    return {
        "wall_s": wall,
        "test_per_prompt_spearman": ev["per_prompt_spearman"],
        "test_pairwise_accuracy": ev["pairwise_accuracy"],
        "heldout_mse_teacher_isotonic": val["teacher_isotonic"]["mse"],
        "heldout_mse_student_isotonic": val["student_isotonic"]["mse"],
    }


def main() -> None:
    out = ROOT / "bench" / "out"
    gemm = {p: gemm_gflops(d) for p, d in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    runs = {p: run(p, out / f"precision_{p}") for p in ("fp32", "bf16")}
    print(f"GEMM {GEMM}: fp32 {gemm['fp32']:.1f} GFLOP/s, bf16 {gemm['bf16']:.1f} GFLOP/s")
    keys = list(runs["fp32"])
    print(f"{'metric':32s} {'fp32':>10s} {'bf16':>10s}")
    for k in keys:
        print(f"{k:32s} {runs['fp32'][k]:10.4f} {runs['bf16'][k]:10.4f}")
    (out / "bench_precision.json").write_text(
        json.dumps(
            {"gemm_gflops": gemm, "gemm_shape": GEMM, "orm": SMALL_ORM, "runs": runs}, indent=2
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
