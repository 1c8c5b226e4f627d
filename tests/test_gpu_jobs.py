"""How the GPU jobs are scheduled, sized, retried and cached, on CPU.

- GPUs: a job holds exactly the GPUs it asked for, and two jobs never hold one (real
  processes, real ``flock``; the GPU names are given, as no GPU is here).
- Requests: one node, memory and runtime that a retry grows only up to the node maxima,
  and never the runtime of the stage that resumes from checkpoints.
- Code identity: a real run of steps 1-4 on a copy of the package; editing a module a
  GPU stage runs reruns that stage (and what follows), and no other GPU stage; settings
  that change no output (GPUs, memory, time, vLLM's memory share, the checkpoint
  interval) rerun nothing. The same run shows that with ``--resources gpu=1`` no two
  GPU jobs ran at once.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime

import pytest

from embrm.generation import gpus
from embrm.io.errors import InputError
from embrm.resources import gpu as resources

from conftest import GEN_ARRAYS, ROOT, planned_jobs, run_snakemake, small_generation_config

GPU_RULES = {"sft", "sample_shard", "annotate_shard", "embed_shard"}

# --------------------------------------------------------------------------- GPUs

HOLD = """
import sys, time
from pathlib import Path
from embrm.generation import gpus
names = gpus.claim(int(sys.argv[1]), stage="embed", visible=["0", "1"], where=Path(sys.argv[2]),
                   poll_s=0.05)
import os
print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
while not Path(sys.argv[3]).exists():
    time.sleep(0.05)
"""


def holder(n: int, locks, release) -> subprocess.Popen:
    cmd = [sys.executable, "-c", HOLD, str(n), str(locks), str(release)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def test_concurrent_jobs_hold_distinct_gpus_and_wait_for_a_free_one(tmp_path):
    locks = tmp_path / "locks"
    locks.mkdir()
    first = holder(1, locks, tmp_path / "release_first")
    assert first.stdout.readline().strip() == "0"
    second = holder(1, locks, tmp_path / "release_second")
    assert second.stdout.readline().strip() == "1"  # not the GPU the first job holds
    third = holder(1, locks, tmp_path / "release_third")
    time.sleep(1.0)
    assert third.poll() is None  # both GPUs are held: it waits, it does not share one
    (tmp_path / "release_first").touch()
    assert first.wait(timeout=30) == 0
    assert third.stdout.readline().strip() == "0"  # the first job's GPU, once released
    for name in ("release_second", "release_third"):
        (tmp_path / name).touch()
    assert second.wait(timeout=30) == 0 and third.wait(timeout=30) == 0
    both = holder(2, locks, tmp_path / "release_second")  # every lock is free again
    assert both.stdout.readline().strip() == "0,1" and both.wait(timeout=30) == 0


@pytest.mark.parametrize(
    "listed, names",
    [("0,1", ["0", "1"]), ("GPU-3f2a,2", ["GPU-3f2a", "2"]), ("", []), ("NoDevFiles", [])],
)
def test_visible_gpus_are_those_cuda_visible_devices_lists(monkeypatch, listed, names):
    """SLURM sets the variable to the job's GPUs (NoDevFiles: none)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", listed)
    assert gpus.visible_gpus() == names


def test_a_job_asking_for_more_gpus_than_it_sees_is_refused(tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"cluster\.gpu\.sample\.gpus=3, but this job sees 2"):
        gpus.claim(3, stage="sample", visible=["0", "1"], where=tmp_path)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpus.claim(2, stage="sft", visible=[], where=tmp_path) == []  # a CPU: nothing
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


# ----------------------------------------------------------------------- requests


def preset(name: str) -> dict:
    import yaml
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((ROOT / "config" / name).read_text()))
    return cfg


def test_gpu_jobs_ask_for_one_node_and_retries_stay_within_the_node_maxima():
    cfg = preset("paper_gemma-7b_helpful.yaml")  # sft: 8 GPUs x 48,000 MB
    wc = {"split": "test"}
    sft, sample = resources.rule_resources(cfg, "sft"), resources.rule_resources(cfg, "sample")
    assert sft["nodes"] == sample["nodes"] == 1
    assert sft["gpu"] == 8 and sample["gpu"] == 2
    first = sft["mem_mb"](wc, 1)
    assert first == 8 * 48000
    # no node maxima given: a retry asks for what the first attempt asked for
    assert sft["mem_mb"](wc, 2) == first and sample["runtime"](wc, 2) == sample["runtime"](wc, 1)
    cfg["cluster"]["gpu"].update(max_mem_mb=512000, max_runtime=600)
    sft, sample = resources.rule_resources(cfg, "sft"), resources.rule_resources(cfg, "sample")
    assert sft["mem_mb"](wc, 2) == 512000 and sft["mem_mb"](wc, 3) == 512000  # not 768,000
    assert sample["mem_mb"](wc, 2) == 2 * sample["mem_mb"](wc, 1)  # within the maximum
    runtime = sample["runtime"](wc, 1)
    assert sample["runtime"](wc, 2) == min(2 * runtime, 600)
    assert sft["runtime"](wc, 2) == sft["runtime"](wc, 1)  # sft resumes: same time


def test_requests_above_the_node_maxima_are_refused_naming_the_keys():
    cfg = preset("paper_gemma-7b_helpful.yaml")
    cfg["cluster"]["gpu"]["max_mem_mb"] = 256000
    with pytest.raises(InputError, match=r"cluster\.gpu\.sft: .*384000 MB exceeds .*max_mem_mb"):
        resources.check_requests(cfg)
    cfg["cluster"]["gpu"].update(max_mem_mb=None, max_runtime=30)
    with pytest.raises(InputError, match=r"cluster\.gpu\.sft: a job asks for \d+ minutes"):
        resources.check_requests(cfg)


def test_resource_only_settings_are_resources_not_params():
    cfg = preset("gpu_smoke.yaml")
    sample = resources.stage_resources(cfg, "sample")
    assert sample["run_settings"] == '{"gpu_memory_utilization":0.5}'
    assert "gpu_memory_utilization" not in resources.output_settings(cfg, "sample")
    sft = resources.stage_resources(cfg, "sft")
    assert (
        sft["run_settings"]
        == f'{{"checkpoint_steps":{cfg["generation"]["sft"]["checkpoint_steps"]}}}'
    )
    assert "checkpoint_steps" not in resources.output_settings(cfg, "sft")
    assert resources.stage_resources(cfg, "embed")["run_settings"] == "{}"


def test_conda_deployment_is_refused_with_the_way_to_go(tmp_path):
    proc = run_snakemake(tmp_path, small_generation_config(), "-n", "--sdm", "conda", check=False)
    assert proc.returncode != 0
    assert (
        "--sdm conda (software-deployment-method: conda) is not supported"
        in proc.stdout + proc.stderr
    )


# ------------------------------------------------- code identity, caching, scheduling


def job_intervals(logs) -> list[tuple[str, datetime, datetime]]:
    """(log, first, last timestamp) of every GPU job's log."""
    stamp = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.MULTILINE)
    out = []
    for log in logs:
        times = [
            datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t in stamp.findall(log.read_text())
        ]
        out.append((log.name, min(times), max(times)))
    return out


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    """Steps 1-4 on the small generation config (one shard per stage), run with a copy
    of the package first on the path and at most one GPU job at a time:
    ``(package copy, workdir, config, env, snakemake output)``."""
    pkg = tmp_path_factory.mktemp("pkg")
    for part in ("src", "workflow", "envs"):
        shutil.copytree(ROOT / part, pkg / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / part, pkg / part)
    cfg = small_generation_config()
    for section in ("sampling", "golden", "embedding"):
        cfg["generation"][section]["shards"] = 1
    env = {"PYTHONPATH": str(pkg / "src")}
    workdir = tmp_path_factory.mktemp("run")
    proc = run_snakemake(
        workdir, cfg, *GEN_ARRAYS, "--resources", "gpu=1", snakefile=pkg / "Snakefile", env=env
    )
    return pkg, workdir, cfg, env, proc.stdout + proc.stderr


def planned(gpu_run, cfg=None) -> set[str]:
    pkg, workdir, base, env, _ = gpu_run
    proc = run_snakemake(
        workdir, cfg or base, *GEN_ARRAYS, "-n", snakefile=pkg / "Snakefile", env=env
    )
    out = proc.stdout + proc.stderr
    return set(planned_jobs(out)) if "Job stats:" in out else set()


def test_no_two_gpu_jobs_ran_at_once_under_resources_gpu_1(gpu_run):
    _, workdir, _, _, output = gpu_run
    logs = sorted((workdir / "results/logs/generate/tiny").rglob("*.log"))
    gpu_logs = [log for log in logs if log.parent.name in {"sample_shard", "annotate_shard"}]
    gpu_logs += [log for log in logs if log.parent.name == "embed_shard" or log.name == "sft.log"]
    assert len(gpu_logs) == 7, [log.name for log in logs]  # sft + 3 stages x 2 splits
    spans = sorted(job_intervals(gpu_logs), key=lambda s: s[1])
    for (a, _, end), (b, start, _) in zip(spans, spans[1:]):
        assert end <= start, f"{a} and {b} ran at the same time"
    assert "gpu=1" in output  # the rules asked for the resource snakemake counted


@pytest.mark.parametrize(
    "module, reruns, keeps",
    [
        ("generation/sampling.py", {"sample_shard"}, {"sft"}),
        ("generation/golden.py", {"annotate_shard"}, {"sft", "sample_shard", "embed_shard"}),
        ("generation/embeddings.py", {"embed_shard"}, {"sft", "sample_shard", "annotate_shard"}),
        ("data/texts.py", {"annotate_shard", "embed_shard"}, {"sft", "sample_shard"}),
        ("generation/sft.py", {"sft"}, set()),
        ("generation/sft_data.py", {"sft"}, set()),
        ("generation/gpus.py", GPU_RULES, set()),  # the entry itself imports it
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_editing_a_module_a_gpu_stage_runs_reruns_that_stage(gpu_run, module, reruns, keeps):
    source = gpu_run[0] / "src/embrm" / module
    original = source.read_text()
    try:
        source.write_text(original + "\n# an edit\n")
        jobs = planned(gpu_run)
    finally:
        source.write_text(original)
    assert reruns <= jobs, (module, jobs)
    assert not keeps & jobs, (module, jobs)


def test_resource_only_settings_rerun_nothing(gpu_run):
    cfg = copy.deepcopy(gpu_run[2])
    gpu = cfg["cluster"]["gpu"]
    for stage in ("sft", "sample", "annotate", "embed"):
        gpu[stage].update(gpus=2, cpus_per_gpu=2, mem_mb_per_gpu=999, runtime=7, throughput=5)
    gpu.update(max_mem_mb=100000, max_runtime=1000, partition="other", account="acct")
    cfg["generation"]["sampling"]["gpu_memory_utilization"] = 0.31
    cfg["generation"]["sft"]["checkpoint_steps"] = 3
    assert planned(gpu_run, cfg) == set()
    assert planned(gpu_run) == set()  # and the run itself is complete
    changed = copy.deepcopy(gpu_run[2])
    changed["generation"]["sampling"]["top_p"] = 0.5  # a setting that changes the samples
    assert {"sample_shard", "annotate_shard", "embed_shard"} <= planned(gpu_run, changed)
