"""Benchmark planning a paper-scale study: dry-run time and peak RSS of the DAG.

Plans a study of 4 annotation qualities x 5 n_sample x 2 objectives x 3
consider_first_n x ``--seeds`` seeds (5 seeds: 600 points) on the paper's shape of
synthetic data (``bench/paper_shape.yaml``, 10,000 train prompts x 10 responses,
D = 2048; dry run, so no array is generated), then the same with ``--factor`` times
the seeds (2x: 1,200 points). Each plan is ``snakemake -n study_grid`` in a fresh
folder; its wall time and the peak RSS of that snakemake process (``wait4``) are
recorded. ``--cpu-submit`` plans with ``cluster.cpu.submit: true`` under
``--profile profiles/slurm`` (grouped jobs and their requests; needs ``sbatch`` on the
path), ``--profile-top N`` prints the N hottest functions of an in-process cProfile of
the first plan, and ``--paper-studies`` also plans ``config/paper_studies.yaml`` for
SLURM on header-only stand-ins of the release (its job count, time and memory for
docs/results.md). Prints a table and writes JSON. Usage:

    python bench/bench_dag.py [--seeds 5] [--factor 1 2] [--cpu-submit] [--profile-top 25]
                              [--paper-studies]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from embrm.data.importer import release_files

ROOT = Path(__file__).resolve().parents[1]
GRID = {
    "orm.annotation_quality": [10, 1.0, 0.5, 0.1],
    "orm.n_sample": [500, 1000, 2000, 5000, 10000],
    "orm.objective": ["bt", "clf"],
    "orm.consider_first_n": [2, -1, -2],
}


def grid_config(seeds: int, cpu_submit: bool) -> dict:
    """config.yaml with bench/paper_shape.yaml over it and one study, ``grid``."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for key, value in yaml.safe_load((ROOT / "bench" / "paper_shape.yaml").read_text()).items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    cfg["studies"] = {"grid": {"grid": GRID, "seeds": list(range(seeds))}}
    cfg["cluster"]["cpu"]["submit"] = cpu_submit
    return cfg


def command(workdir: Path, config: Path, cpu_submit: bool) -> list[str]:
    profile = ["--profile", str(ROOT / "profiles" / "slurm")] if cpu_submit else []
    return [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
        "--configfile", str(config), *profile, "-n", "study_grid", "--quiet", "rules",
    ]  # fmt: skip


def plan(workdir: Path, seeds: int, cpu_submit: bool) -> dict:
    """One dry run in a fresh folder: wall seconds, peak RSS (MB) and the job count."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "bench_config.yaml"
    config.write_text(yaml.safe_dump(grid_config(seeds, cpu_submit)))
    return {"points": seeds * _grid_size(), **timed(command(workdir, config, cpu_submit), workdir)}


def timed(cmd: list[str], workdir: Path) -> dict:
    """Run one dry run: its job count, wall seconds and peak RSS (MB, ``wait4``)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"dry run failed:\n{out}")
    total = re.search(r"^total\s+(\d+)$", out, re.MULTILINE)
    return {
        "jobs": int(total.group(1)) if total else None,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


# the release's shape (REFERENCE): ~40,000 train prompts x 10, ~2,000 test prompts x 500
RELEASE = {"train": (10, 40_000), "test": (500, 2_000)}
RELEASE_DIMS = {"gemma2b": 2048, "gemma7b": 3072, "llama3-8b": 4096}


def stand_in_release(folder: Path, preset: dict) -> None:
    """Header-complete, sparse stand-ins of every release file the preset's study names
    (zeros, no disk blocks): planning reads the headers only."""
    study = preset["studies"]["paper_grid"]
    imp = preset["data"]["import"]
    for task in study["experiments"].values():
        for embed in study["grid"]["data.import.embed_model"]:
            settings = {**imp, "dir": str(folder), "embed_model": embed}
            settings.update({k.split(".")[-1]: v for k, v in task.items() if k != "task"})
            for split, (k, n) in RELEASE.items():
                emb, rew = release_files(settings, split)
                for path, shape in ((emb, (k, n, RELEASE_DIMS[embed])), (rew, (k, n))):
                    if not Path(path).exists():
                        np.lib.format.open_memmap(path, "w+", np.float32, shape).flush()


def plan_paper_studies(workdir: Path) -> dict:
    """``config/paper_studies.yaml`` planned for SLURM (dry run of study_paper_grid) on
    stand-ins of the release: wall seconds, peak RSS, jobs."""
    workdir.mkdir(parents=True, exist_ok=True)
    preset = yaml.safe_load((ROOT / "config" / "paper_studies.yaml").read_text())
    (workdir / "release").mkdir(exist_ok=True)
    stand_in_release(workdir / "release", preset)
    (workdir / "config.yaml").write_text((ROOT / "config.yaml").read_text())
    cmd = [
        sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
        "--configfile", str(ROOT / "config" / "paper_studies.yaml"),
        "--profile", str(ROOT / "profiles" / "slurm"), "-n", "study_paper_grid",
        "--quiet", "rules",
    ]  # fmt: skip
    return timed(cmd, workdir)


def _grid_size() -> int:
    size = 1
    for values in GRID.values():
        size *= len(values)
    return size


def profile_plan(workdir: Path, seeds: int, cpu_submit: bool, top: int) -> str:
    """cProfile of one dry run inside a child interpreter; its ``top`` hottest functions
    by cumulative and by own time."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "bench_config.yaml"
    config.write_text(yaml.safe_dump(grid_config(seeds, cpu_submit)))
    stats = workdir / "plan.prof"
    args = command(workdir, config, cpu_submit)[1:]  # drop the interpreter
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(stats), *args], cwd=workdir, check=True,
        stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    code = (
        "import pstats, sys; p = pstats.Stats(sys.argv[1]); "
        f"p.sort_stats('cumulative').print_stats({top}); p.sort_stats('tottime').print_stats({top})"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(stats)], capture_output=True, text=True, check=True
    ).stdout


def cpu_flags() -> list[str]:
    """The CPU model and the lscpu flags that matter for numeric work."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [platform.processor()]
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    keep = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))]
    return [
        fields.get("Model name", "").strip(),
        f"CPU(s) {fields.get('CPU(s)', '').strip()}",
    ] + keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds of the base grid (5: 600 points)")
    ap.add_argument("--factor", type=int, nargs="+", default=[1, 2], help="seed multipliers")
    ap.add_argument("--cpu-submit", action="store_true", help="plan for SLURM (cluster.cpu)")
    ap.add_argument("--profile-top", type=int, default=0, help="cProfile the first plan")
    ap.add_argument(
        "--paper-studies", action="store_true",
        help="also plan config/paper_studies.yaml for SLURM on stand-ins of the release",
    )  # fmt: skip
    ap.add_argument("--workdir", default=str(ROOT / "bench" / "out" / "dag"))
    ap.add_argument("--json", default=str(ROOT / "bench" / "out" / "bench_dag.json"))
    args = ap.parse_args()
    rows = []
    for factor in args.factor:
        seeds = args.seeds * factor
        rows.append(plan(Path(args.workdir) / f"x{factor}", seeds, args.cpu_submit))
        print(
            f"{rows[-1]['points']:6d} points {rows[-1]['jobs'] or '?':>7} jobs "
            f"{rows[-1]['wall_s']:8.1f} s {rows[-1]['peak_rss_mb']:8.0f} MB"
        )
    paper = None
    if args.paper_studies:
        paper = plan_paper_studies(Path(args.workdir) / "paper_studies")
        print(f"paper_studies.yaml {paper['jobs']} jobs {paper['wall_s']:.1f} s "
              f"{paper['peak_rss_mb']:.0f} MB")  # fmt: skip
    profile = ""
    if args.profile_top:
        workdir = Path(args.workdir) / "profile"
        profile = profile_plan(
            workdir, args.seeds * args.factor[0], args.cpu_submit, args.profile_top
        )
        print(profile)
    summary = {
        "grid": GRID,
        "cpu_submit": args.cpu_submit,
        "cpu": cpu_flags(),
        "load_average": os.getloadavg(),
        "plans": rows,
        "paper_studies": paper,
        "profile": profile,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
