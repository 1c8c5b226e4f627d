"""The SLURM profile against a real single-node cluster (tests/slurm/cluster.sh).

The project's workflow runs through `--profile profiles/slurm --profile
profiles/slurm-local`: the rules without `localrule: True` (the GPU stages) must reach
sbatch with the `gpu` partition and a GPU request taken from config.yaml's `cluster:`
section, every other rule must run on the submit host, the artifacts must equal those
of a plain local run, and a job failing inside SLURM must fail the run with a clear
message and leave a rerun that resumes. With `cluster.cpu.submit`, each study point's
steps 5-8 must be one SLURM job in the `cpu` partition and equal a local run; without
it nothing CPU-side may be submitted. The cluster is started for real (as root,
installing the Debian packages if missing); if it cannot start, these tests fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from embrm.resources import cpu as cpu_resources
from embrm.workflow import studies
from embrm.workflow.config import with_overrides

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SH = ROOT / "tests" / "slurm" / "cluster.sh"
SLURM_DIR = Path(os.environ.get("EMBRM_SLURM_DIR", "/tmp/embrm-slurm"))
# the rules whose jobs the cluster's TaskProlog fails (tests/slurm/cluster.sh)
FAIL_RULES = SLURM_DIR / "inject" / "fail_rules"
SNAKEFILE = ROOT / "Snakefile"
PROFILE = ROOT / "profiles" / "slurm"
TEST_PROFILE = ROOT / "profiles" / "slurm-local"
# every snakemake call is killed (SIGKILL: a hung snakemake ignores SIGTERM) after this
RUN_TIMEOUT_S = 900
# GPU requests sized for the 2-CPU test node: two GPU jobs run at a time
GPU_STAGES = ("sft", "sample", "annotate", "embed")
TEST_STAGE = {"gpus": 1, "cpus_per_gpu": 1, "mem_mb_per_gpu": 1500, "runtime": 20}
TEST_STAGE["throughput"] = None  # a fixed runtime
TEST_MEM_MB = TEST_STAGE["gpus"] * TEST_STAGE["mem_mb_per_gpu"]
TEST_GPU = {"partition": "gpu", "account": None, **{s: dict(TEST_STAGE) for s in GPU_STAGES}}

pytestmark = pytest.mark.slurm


# --------------------------------------------------------------------------- helpers


def base_config() -> dict:
    """The tiny default (config.yaml) with cluster requests that fit the test node."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["cluster"]["gpu"] = dict(TEST_GPU)
    return cfg


def cpu_study_config(submit: bool) -> dict:
    """Tiny synthetic data and one study of two points; with ``submit``, steps 5-8 go to
    the `cpu` partition (one CPU per job: the test node has two)."""
    cfg = base_config()
    cfg["data"]["source"] = "synthetic"
    cfg["data"]["synthetic"].update(n_train=120, n_test=30, k_train=4, k_test=20, dim=8)
    cfg["orm"].update(n_sample=120, ensemble_number=2, hidden_sizes=[8], max_epochs=2)
    cfg["evaluation"]["bon_n"] = [2, 5]
    cfg["distill"].update(hidden_sizes=[8], distill_epochs=2)
    cfg["studies"] = {"quality": {"grid": {"orm.annotation_quality": [10, 0.5]}, "seeds": [0]}}
    cfg["cluster"]["cpu"].update(submit=submit, cpus=1)
    return cfg


def snakemake(workdir: Path, config: dict, *args: str, label: str, check: bool = True):
    """Run the project's workflow in ``workdir``; the combined output is also kept on disk."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / f"config.{label}.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    cmd = [
        "timeout", "-s", "KILL", str(RUN_TIMEOUT_S),
        sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir),
        "--configfile", str(cfg_path), *args,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SLURM_CONF": str(SLURM_DIR / "etc/slurm.conf")}
    proc = subprocess.run(
        cmd, check=False, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    (workdir / f"snakemake.{label}.log").write_text(proc.stdout)
    # `timeout -s KILL` signals its whole process group, itself included: -9
    if proc.returncode in (124, 137, -9):
        raise AssertionError(f"snakemake ({label}) was killed after {RUN_TIMEOUT_S}s (hang?)")
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake ({label}) failed ({proc.returncode}):\n{proc.stdout}"
            + failed_job_logs(proc.stdout)
        )
    return proc


def failed_job_logs(log: str, lines: int = 40) -> str:
    """The last ``lines`` of every SLURM job log a failed run names: the job's own
    snakemake output, which the submit host's log does not show."""
    tails = []
    for path in dict.fromkeys(re.findall(r"(\S+/slurm_logs/\S+\.log)", log)):
        text = Path(path).read_text(errors="replace") if Path(path).is_file() else "(missing)"
        tail = "\n".join(text.splitlines()[-lines:])
        tails.append(f"\n--- {path}, last {lines} lines ---\n{tail}")
    return "".join(tails)


def on_cluster(*args: str) -> list[str]:
    return ["--profile", str(PROFILE), "--profile", str(TEST_PROFILE), *args]


def job_blocks(log: str) -> list[tuple[str, str, dict]]:
    """(kind, rule, resources) of every job in a snakemake log; kind is rule|localrule."""
    blocks = []
    for match in re.finditer(r"^(rule|localrule) (\w+):\n((?:    .*\n)*)", log, re.MULTILINE):
        res = re.search(r"^    resources: (.*)$", match.group(3), re.MULTILINE)
        resources = dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {}
        blocks.append((match.group(1), match.group(2), resources))
    return blocks


def run_id(log: str) -> str:
    found = re.findall(r"^SLURM run ID: (\S+)$", log, re.MULTILINE)
    assert len(found) == 1, f"expected one 'SLURM run ID' line, found {found}"
    return found[0]


def slurm_jobs(uuid: str) -> list[dict]:
    """scontrol's record of every SLURM job of one snakemake run (kept for MinJobAge)."""
    env = {**os.environ, "SLURM_CONF": str(SLURM_DIR / "etc/slurm.conf")}
    ids = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--name", uuid, "--format=%i"],
        capture_output=True, text=True, env=env, check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    jobs = []
    for job_id in ids:
        out = subprocess.run(
            ["scontrol", "show", "job", "--oneliner", job_id],
            capture_output=True, text=True, env=env, check=True, timeout=30,
        ).stdout  # fmt: skip
        record = dict(re.findall(r"(\S+?)=(\S*)", out))
        comment = re.fullmatch(r"rule_(\w+?)(?:_wildcards_.*)?", record.get("Comment", ""))
        record["rule"] = comment.group(1) if comment else None
        jobs.append(record)
    return jobs


def job_env(job_id: str) -> dict:
    """The environment the job's tasks saw (written by the test cluster's TaskProlog)."""
    env = {}
    for path in sorted((SLURM_DIR / "jobenv").glob(f"{job_id}.*.env")):
        env.update(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return env


def artifacts(workdir: Path) -> dict[str, Path]:
    """Every result file of a run, minus per-run logs, benchmarks (a study's are its
    aggregate.log/.tsv) and the runtime table drawn from them (timings differ between
    any two runs)."""
    base = workdir / "results"
    skip = {"logs", "benchmarks"}
    return {
        str(p.relative_to(base)): p
        for p in sorted(base.rglob("*"))
        if p.is_file()
        and not skip & set(p.relative_to(base).parts)
        and not p.name.startswith(("runtimes.", "aggregate."))
    }


def assert_same_file(name: str, path: Path, other: Path) -> None:
    """Arrays equal (dtype, shape, values), every other file byte-equal."""
    if name.endswith((".npy", ".npz")):
        a, b = np.load(path, allow_pickle=False), np.load(other, allow_pickle=False)
        if name.endswith(".npz"):
            assert a.files == b.files, name
            pairs = [(a[k], b[k]) for k in a.files]
        else:
            pairs = [(a, b)]
        for x, y in pairs:
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert np.array_equal(x, y, equal_nan=True), f"{name} differs"
    else:
        assert path.read_bytes() == other.read_bytes(), f"{name} differs"


def rule_graph(workdir: Path, config: dict) -> dict[str, set[str]]:
    """Upstream rules of each rule (transitively), from `snakemake --rulegraph`."""
    dot = snakemake(workdir, config, "--rulegraph", label="rulegraph").stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, re.MULTILINE))
    parents = {name: set() for name in names.values()}
    for src, dst in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.MULTILINE):
        parents[names[dst]].add(names[src])
    upstream = {}
    for rule, direct in parents.items():
        seen, todo = set(), list(direct)
        while todo:
            parent = todo.pop()
            if parent not in seen:
                seen.add(parent)
                todo.extend(parents[parent])
        upstream[rule] = seen
    return upstream


def mtimes(workdir: Path) -> dict[str, int]:
    return {name: path.stat().st_mtime_ns for name, path in artifacts(workdir).items()}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def cluster():
    """The local cluster: started (idempotently) unless it already runs, with no fault
    injection left from an earlier run; stopped only if this fixture started it."""
    if not shutil.which("bash") or not CLUSTER_SH.exists():
        pytest.fail(f"{CLUSTER_SH} is missing")
    was_up = subprocess.run([str(CLUSTER_SH), "status"], check=False, timeout=60).returncode == 0
    if not was_up:
        proc = subprocess.run(
            [str(CLUSTER_SH), "start"], check=False, capture_output=True, text=True, timeout=900
        )
        if proc.returncode != 0:
            pytest.fail(
                "could not start the local SLURM cluster (tests/slurm/cluster.sh start, needs "
                f"root and apt or the Debian packages munge slurmctld slurmd slurm-client):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
    # a run killed during the fault-injection test leaves its injection behind, and the
    # next run on this cluster would see its jobs of that rule fail
    FAIL_RULES.unlink(missing_ok=True)
    yield SLURM_DIR
    if not was_up:
        subprocess.run([str(CLUSTER_SH), "stop"], timeout=120, check=True)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """`snakemake --profile profiles/slurm -n`: the whole DAG, with each job's resources."""
    proc = snakemake(
        tmp_path_factory.mktemp("dry"), base_config(), "--profile", str(PROFILE), "-n", label="dry"
    )
    blocks = job_blocks(proc.stdout)
    assert blocks, f"the dry run listed no jobs:\n{proc.stdout}"
    gpu = [b for b in blocks if "slurm_partition" in b[2]]
    return {
        "log": proc.stdout,
        "blocks": blocks,
        "gpu_rules": {rule for _, rule, _ in gpu},
        "n_gpu_jobs": len(gpu),
        "local_rules": {rule for _, rule, res in blocks if "slurm_partition" not in res},
    }


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("on_slurm")
    proc = snakemake(workdir, base_config(), *on_cluster(), label="slurm")
    uuid = run_id(proc.stdout)
    return {"dir": workdir, "log": proc.stdout, "uuid": uuid, "jobs": slurm_jobs(uuid)}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("local")
    snakemake(workdir, base_config(), "-c2", label="local")
    return workdir


# --------------------------------------------------------------------------- tests


def test_dry_run_shows_which_jobs_go_to_slurm(dry_run):
    assert dry_run["gpu_rules"], (
        "no job of the default DAG requests a SLURM partition; GPU rules must use "
        "rule_resource(...) resources:\n" + dry_run["log"]
    )
    for _, rule, res in dry_run["blocks"]:
        if rule in dry_run["gpu_rules"]:
            assert res["slurm_partition"] == "gpu", (rule, res)
            assert res["nodes"] == "1", (rule, res)  # torchrun/vLLM/scoring are single-node
            assert int(res["gpu"]) == TEST_STAGE["gpus"], (rule, res)
            assert int(res["cpus_per_gpu"]) == TEST_STAGE["cpus_per_gpu"], (rule, res)
            assert int(res["mem_mb"]) == TEST_MEM_MB, (rule, res)
            assert int(res["runtime"]) == TEST_STAGE["runtime"], (rule, res)
            assert "slurm_account" not in res, (rule, res)
        else:
            assert "gpu" not in res and "cpus_per_gpu" not in res, (rule, res)
    assert dry_run["local_rules"], "every rule would be submitted; CPU rules need `localrule: True`"


def test_cluster_section_of_config_drives_gpu_requests(tmp_path):
    """One place to adapt: partition, account, and per stage GPUs, CPUs, memory, runtime."""
    cfg = base_config()
    stage = {"gpus": 2, "cpus_per_gpu": 6, "mem_mb_per_gpu": 32000, "runtime": 720}
    custom = {"partition": "a100,h100", "account": "proj42"}
    cfg["cluster"]["gpu"] = {**custom, **{s: {**stage, "throughput": None} for s in GPU_STAGES}}
    proc = snakemake(tmp_path, cfg, "--profile", str(PROFILE), "-n", label="dry-custom")
    gpu_jobs = [res for _, _, res in job_blocks(proc.stdout) if "slurm_partition" in res]
    assert gpu_jobs, proc.stdout
    for res in gpu_jobs:
        assert res["slurm_partition"] == "a100,h100"
        assert res.get("slurm_account") == "proj42", f"cluster.gpu.account not applied: {res}"
        assert (int(res["gpu"]), int(res["cpus_per_gpu"])) == (2, 6)
        assert (int(res["mem_mb"]), int(res["runtime"])) == (2 * 32000, 720)

    cfg["cluster"]["gpu"]["sample"]["gpus"] = 0
    bad = snakemake(tmp_path, cfg, "--profile", str(PROFILE), "-n", label="dry-bad", check=False)
    assert bad.returncode != 0 and "cluster" in bad.stdout and "gpus" in bad.stdout, bad.stdout


def test_gpu_jobs_went_through_sbatch_to_the_gpu_partition(slurm_run, dry_run):
    jobs = slurm_run["jobs"]
    assert jobs, "no SLURM job of this run is known to squeue"
    assert {j["rule"] for j in jobs} == dry_run["gpu_rules"]
    assert len(jobs) == dry_run["n_gpu_jobs"]
    for job in jobs:
        where = f"SLURM job {job['JobId']} ({job['rule']})"
        assert job["JobState"] == "COMPLETED", where
        assert job["Partition"] == "gpu", where
        assert job["TresPerJob"] == f"gres:gpu:{TEST_STAGE['gpus']}", where
        assert job["CpusPerTres"] == f"gres:gpu:{TEST_STAGE['cpus_per_gpu']}", where
        assert f"mem={TEST_MEM_MB}M" in job["TRES"], where
        assert job["TimeLimit"] == f"00:{TEST_STAGE['runtime']:02d}:00", where
        assert Path(job["WorkDir"]) == slurm_run["dir"], where
        seen = job_env(job["JobId"])
        assert seen.get("SLURM_JOB_PARTITION") == "gpu", (where, seen)
        assert re.fullmatch(r"\d+(,\d+)*", seen.get("CUDA_VISIBLE_DEVICES", "")), (where, seen)
    # the same jobs appear as submitted (not local) in snakemake's own log
    kinds = {(kind, rule) for kind, rule, _ in job_blocks(slurm_run["log"])}
    assert {rule for kind, rule in kinds if kind == "rule"} == dry_run["gpu_rules"]


def test_cpu_rules_ran_on_the_submit_host(slurm_run, dry_run):
    kinds = {(kind, rule) for kind, rule, _ in job_blocks(slurm_run["log"])}
    local = {rule for kind, rule in kinds if kind == "localrule"}
    assert local == dry_run["local_rules"]
    assert not local & {j["rule"] for j in slurm_run["jobs"]}


def test_artifacts_equal_a_local_run(slurm_run, local_run):
    """Same config and seed: the same files, arrays equal, every other file byte-equal."""
    on_slurm, local = artifacts(slurm_run["dir"]), artifacts(local_run)
    assert on_slurm.keys() == local.keys()
    assert any(name.endswith(".npy") for name in local)
    for name, path in local.items():
        assert_same_file(name, path, on_slurm[name])


def test_failed_slurm_job_fails_the_run_and_a_rerun_resumes(cluster, dry_run, local_run, tmp_path):
    """A GPU stage whose jobs die on the node (the test cluster's fault injection makes
    their TaskProlog exit 1) fails the run with the SLURM job named; once the node is
    fixed, a plain rerun submits only what is missing and redoes nothing finished."""
    config = base_config()
    upstream = rule_graph(tmp_path, config)
    gpu_rules = dry_run["gpu_rules"]
    assert gpu_rules, "the default DAG has no GPU stage to break"
    # break the GPU stage with the most GPU stages upstream: they finish before it fails
    target = max(sorted(gpu_rules), key=lambda rule: len(upstream[rule] & gpu_rules))
    downstream = {rule for rule, ups in upstream.items() if target in ups}

    FAIL_RULES.parent.mkdir(parents=True, exist_ok=True)
    FAIL_RULES.write_text(f"{target}\n")
    try:
        failed = snakemake(tmp_path, config, *on_cluster(), label="fail", check=False)
    finally:
        FAIL_RULES.unlink()
    log = failed.stdout
    assert failed.returncode == 1, log
    assert f"Error in rule {target}:" in log, log
    bad_ids = re.findall(r"SLURM-job '(\d+)' failed, SLURM status is: 'FAILED'", log)
    assert bad_ids, log
    first_jobs = slurm_jobs(run_id(log))
    by_id = {job["JobId"]: job for job in first_jobs}
    assert {by_id[i]["rule"] for i in bad_ids} == {target}
    slurm_log = re.search(
        rf"^    log: .*?(\S+/slurm_logs/rule_{target}/\S+\.log)", log, re.MULTILINE
    )
    assert slurm_log and "injected failure" in Path(slurm_log.group(1)).read_text(), log
    done_before = {j["Comment"] for j in first_jobs if j["JobState"] == "COMPLETED"}
    assert not any(j["rule"] in downstream for j in first_jobs), "ran past the failed stage"
    kept = mtimes(tmp_path)
    assert kept, "the failed run finished nothing before the broken stage"

    rerun = snakemake(tmp_path, config, *on_cluster(), label="rerun")
    second_jobs = slurm_jobs(run_id(rerun.stdout))
    # the rerun submits what did not finish: the broken stage, what follows it, and any
    # sibling that was cancelled or never submitted when the first run stopped
    assert target in {j["rule"] for j in second_jobs}
    assert {j["rule"] for j in second_jobs} <= gpu_rules
    assert not done_before & {j["Comment"] for j in second_jobs}, "a finished job was redone"
    assert all(j["JobState"] == "COMPLETED" for j in second_jobs)
    # every GPU job of the DAG completed exactly once over the two runs
    assert len(done_before) + len(second_jobs) == dry_run["n_gpu_jobs"]
    after = mtimes(tmp_path)
    # the only files that may go are temp() shards, removed once their gather has run
    gone = kept.keys() - after.keys()
    assert all(re.search(r"\.shard\d+\.npz$", name) for name in gone), gone
    survivors = {name: when for name, when in kept.items() if name in after}
    assert {name: after[name] for name in survivors} == survivors, "finished outputs were rewritten"
    assert after.keys() == artifacts(local_run).keys()


# ------------------------------------------------ steps 5-8 on the `cpu` partition


@pytest.fixture(scope="module")
def cpu_runs(cluster, tmp_path_factory):
    """One study (two points) with cluster.cpu.submit on, and the same study with it off
    (today's behaviour: everything CPU on the submit host), both under the profile."""
    runs = {}
    for submit in (True, False):
        workdir = tmp_path_factory.mktemp(f"cpu_submit_{submit}")
        config = cpu_study_config(submit)
        proc = snakemake(workdir, config, *on_cluster("study_quality"), label=f"cpu{submit}")
        uuid = run_id(proc.stdout)
        runs[submit] = {
            "dir": workdir,
            "config": config,
            "log": proc.stdout,
            "jobs": slurm_jobs(uuid),
        }
    return runs


def test_each_study_point_is_one_slurm_job_in_the_cpu_partition(cpu_runs):
    run = cpu_runs[True]
    points = studies.study_folders(run["config"])["quality"]
    assert len(points) == 2
    groups = {cpu_resources.group_id(exp): exp for exp in points}
    jobs = run["jobs"]
    assert len(jobs) == len(points), [j["Comment"] for j in jobs]
    n_points = 1 + len(points)  # the main run's folder counts for the job's own planner
    for job in jobs:
        where = f"SLURM job {job['JobId']} ({job['Comment']})"
        assert job["JobState"] == "COMPLETED", where
        assert job["Partition"] == "cpu", where
        exp = next(e for g, e in groups.items() if job["Comment"].startswith(f"rule_{g}_"))
        groups.pop(cpu_resources.group_id(exp))
        # the group's request: the largest memory and the sum of the runtimes of its steps
        point = with_overrides(run["config"], points[exp])
        first = [cpu_resources.first_attempt(point, s, n_points) for s in cpu_resources.STEPS]
        assert f"mem={max(r['mem_mb'] for r in first)}M" in job["TRES"], where
        minutes = sum(r["runtime"] for r in first)
        assert job["TimeLimit"] == f"{minutes // 60:02d}:{minutes % 60:02d}:00", where
        assert job["NumCPUs"] == "1", where
        assert job_env(job["JobId"]).get("SLURM_JOB_PARTITION") == "cpu", where
        # every step 5-8 of the point ran inside this one job
        slurm_log = Path(re.search(
            rf"jobid {job['JobId']} \(log: (\S+)\)", run["log"]
        ).group(1))  # fmt: skip
        ran = re.findall(r"^localrule (\w+):$", slurm_log.read_text(), re.MULTILINE)
        assert sorted(ran) == sorted(cpu_resources.STEPS), (where, ran)
    assert not groups, f"points without a SLURM job: {sorted(groups.values())}"
    # the data and the aggregation ran on the submit host
    local = {rule for kind, rule, _ in job_blocks(run["log"]) if kind == "localrule"}
    assert local == {"synthetic_data", "study_quality"}, local


def test_with_the_cpu_switch_off_nothing_is_submitted(cpu_runs):
    run = cpu_runs[False]
    assert run["jobs"] == [], [j["Comment"] for j in run["jobs"]]
    local = {rule for kind, rule, _ in job_blocks(run["log"]) if kind == "localrule"}
    assert set(cpu_resources.STEPS) <= local, local
    assert not any(kind == "rule" for kind, _, _ in job_blocks(run["log"]))


def test_grouped_slurm_points_equal_a_local_run(cpu_runs):
    """The same study, steps 5-8 on SLURM or on the submit host: the same files, equal
    arrays, every other file byte-equal."""
    on_slurm, local = artifacts(cpu_runs[True]["dir"]), artifacts(cpu_runs[False]["dir"])
    assert on_slurm.keys() == local.keys()
    assert any(name.endswith("orm/ensemble.ckpt") for name in local)
    for name, path in local.items():
        assert_same_file(name, path, on_slurm[name])
