"""Shared fixtures: small planted-reward arrays and a real `snakemake` runner."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"

# Under pytest-xdist (pyproject's addopts: ``-n``, ``--dist loadfile``) a file's tests run
# on one worker, so a module fixture (one snakemake run that a file's tests read) is
# built once, and the files run in collection order. The files that take longest go
# first, so the workers end together; the SLURM tests first of all: they mostly wait for
# the cluster while the other worker computes.
LONGEST_FIRST = ("test_slurm", "test_workflow", "test_ratings_workflow", "test_benchmarks")


def pytest_collection_modifyitems(items):
    """The longest files first; the order inside a file is kept."""

    def rank(item) -> int:
        module = item.path.stem
        return LONGEST_FIRST.index(module) if module in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable


def with_defaults(config: dict) -> dict:
    """``config`` with the schema's defaults filled in (in place), as the workflow
    reads every config; sections it lacks stay absent unless the schema gives them a
    default."""
    from embrm.workflow.schema import fill_defaults

    return fill_defaults(config, yaml.safe_load(SCHEMA.read_text()))


def write_linear_split(directory: Path, split: str, n: int, k: int, d: int, seed: int, w=None):
    """Embeddings N(0, 1) and a planted linear golden reward ``x . w`` (returns ``w``)."""
    rng = np.random.default_rng(seed)
    if w is None:
        w = rng.standard_normal(d)
    x = rng.standard_normal((n, k, d)).astype(np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / f"{split}_embeddings.npy", x)
    np.save(directory / f"{split}_rewards.npy", (x @ w).astype(np.float32))
    return w


@pytest.fixture
def linear_data(tmp_path):
    """Train (400 x 10) and test (40 x 20) splits of a planted linear reward, D=16."""
    w = write_linear_split(tmp_path, "train", 400, 10, 16, seed=1)
    write_linear_split(tmp_path, "test", 40, 20, 16, seed=2, w=w)
    return tmp_path


def import_release(emb: Path, rew: Path, out: Path, split: str = "train", **options):
    """Step 1's import of a release pair ``(K, N, D)`` / ``(K, N)`` into ``out`` as
    ``{split}_embeddings.npy`` / ``{split}_rewards.npy``; returns ``(N, K, D)``."""
    from embrm.data.importer import convert

    return convert(
        release_embeddings=emb,
        release_rewards=rew,
        embeddings=out / f"{split}_embeddings.npy",
        rewards=out / f"{split}_rewards.npy",
        split=split,
        **options,
    )


def small_config(**sections) -> dict:
    """The repository's config.yaml with a small synthetic dataset and overrides."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["data"]["source"] = "synthetic"
    cfg["data"]["synthetic"].update(n_train=300, n_test=30, k_train=10, k_test=40, dim=16)
    cfg["orm"].update(n_sample=300, ensemble_number=3, hidden_sizes=[32, 16], max_epochs=10)
    cfg["distill"].update(hidden_sizes=[16], distill_epochs=5)
    for section, values in sections.items():
        cfg[section].update(values)
    return with_defaults(cfg)


# step 1's `sft` section for direct calls: a tiny LoRA run
SMALL_SFT = dict(
    lora_r=4,
    lora_alpha=8,
    lora_dropout=0.0,
    lr=1e-3,
    epochs=1,
    batch_size=4,
    max_length=64,
    min_completion_tokens=4,
    gradient_checkpointing=False,
    deepspeed=None,
    data=None,
    append_eos=True,
    global_batch_size=None,
)


# step 5's `orm` section for direct calls: 400 prompts, 4 cross-prompt pairs each
SMALL_ORM = dict(
    n_sample=400,
    consider_first_n=2,
    comparison="cross_prompt",
    n_pairs=4,
    annotation_quality=1.0,
    reward_scale="auto",
    objective="bt",
    ensemble_number=3,
    hidden_sizes=[64, 32],
    lr=0.003,
    batch_size=256,
    max_epochs=25,
    checks_per_epoch=1,
    patience=3,
    val_fraction=0.2,
)


def orm_config(**overrides):
    """The settings of a small `orm` section (``SMALL_ORM``) with ``overrides``
    replacing its keys and the schema's defaults for the rest."""
    from embrm.rm.options import OrmSettings

    return OrmSettings.of(with_defaults({"orm": {**SMALL_ORM, **overrides}})["orm"])


def train_in(directory: Path, orm, rewards: str = "train_rewards.npy", **options):
    """Step 5 on ``directory``'s train split (``rewards``: the golden rewards or
    preferences file there), seed 0: writes ``ens.ckpt`` and ``train.json`` beside it."""
    from embrm.rm.ensemble import train_ensemble

    return train_ensemble(
        embeddings=directory / "train_embeddings.npy",
        rewards=directory / rewards,
        ckpt=directory / "ens.ckpt",
        summary_json=directory / "train.json",
        orm=orm,
        seed=0,
        task="t",
        **options,
    )


def evaluate_in(directory: Path, eval_cfg: dict) -> dict:
    """Step 6 of ``train_in``'s ensemble on ``directory``'s test split, seed 0: writes
    ``eval.json``, ``scores.npy`` ``(N, K, M)`` and ``bon.png`` (``eval_cfg``: the
    `evaluation` keys to set; the schema's defaults for the rest)."""
    from embrm.evaluate.evaluation import evaluate

    return evaluate(
        ckpt=directory / "ens.ckpt",
        embeddings=directory / "test_embeddings.npy",
        rewards=directory / "test_rewards.npy",
        results=directory / "eval.json",
        test_scores=directory / "scores.npy",
        plot=directory / "bon.png",
        eval_cfg=with_defaults({"evaluation": eval_cfg})["evaluation"],
        seed=0,
    )


def small_generation_config() -> dict:
    """config.yaml's generation defaults, shrunk; the tiny LM as embedder (last token, fp16)."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["data"]["source"] = "generate"
    gen = cfg["generation"]
    gen["prompts"].update(max_train_prompts=24, max_test_prompts=15)
    gen["sft"].update(epochs=1, max_length=96)
    gen["sampling"].update(k_train=4, k_test=6, max_new_tokens=12, shards=2)
    gen["embedding"].update(model="tiny", pooling="last", normalize=False, dtype="float16")
    cfg["orm"]["n_sample"] = 24
    return with_defaults(cfg)


GEN_DATA = "results/data/generate/tiny"  # named after the policy
GEN_EMB = f"{GEN_DATA}/tiny_last"  # named after the embedder and its pooling
GEN_ARRAYS = [
    f"{d}/{s}_{k}.npy"
    for s in ("train", "test")
    for d, k in ((GEN_DATA, "rewards"), (GEN_EMB, "embeddings"))
]


# the jobs a change to step 7b (its code or its knobs) reruns in a finished run: its own,
# the steps after it, the report's figures (they read the run) and the target `all`
STEP_7B_ONWARDS = {
    "distill_student",
    "calibrate_student",
    "validate_variants",
    "report_figures",
    "all",
}


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """Steps 1-4 on the small generation config, run once and shared: ``(workdir, config,
    snakemake's output)``. Tests may add to the folder, never change what is there."""
    workdir = tmp_path_factory.mktemp("generated")
    cfg = small_generation_config()
    proc = run_snakemake(workdir, cfg, *GEN_ARRAYS)
    return workdir, cfg, proc.stdout + proc.stderr


def run_snakemake(
    workdir: Path,
    config: dict,
    *args: str,
    timeout: int = 600,
    check: bool = True,
    snakefile: Path = ROOT / "Snakefile",
    env: dict | None = None,
):
    """Run the real snakemake on the project's Snakefile (or ``snakefile``) in
    ``workdir``, with extra environment ``env``; hangs are killed."""
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "test_config.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    cmd = [
        "timeout",
        "-s",
        "KILL",
        str(timeout),
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(snakefile),
        "-d",
        str(workdir),
        "--configfile",
        str(cfg_path),
        "-c2",
        *args,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned_jobs(output: str) -> dict[str, int]:
    """Rule name -> job count from snakemake's "Job stats" table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Job stats:"))
    jobs = {}
    for line in lines[start + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        jobs[parts[0]] = int(parts[1])
    return jobs


@contextmanager
def embrm_serve(bundle: Path, logfile: Path, *args: str):
    """The real `embrm serve` of ``bundle`` on a free loopback port, its output in
    ``logfile``: yields ``(base URL, process)``; the server is stopped on exit."""
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    embrm = str(Path(sys.executable).with_name("embrm"))
    cmd = [embrm, "serve", str(bundle), "--port", str(port), *args]
    with logfile.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.5)
        else:
            raise AssertionError(f"server did not start:\n{logfile.read_text()}")
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
