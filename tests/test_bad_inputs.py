"""The bad-input and fault catalog: each case once made results silently wrong, ran
code from a file, left a half-written artifact or failed late; each must stay fixed.

Test names are numbered by kind: 1 train/test overlap, 2 code identity, 3 best-of-N
sizes, 4 bad arrays and JSON, 5 unpickling, 6-7 full disk, 8 parse-time sizes,
9 unreadable prompts and configs, 10 study folder names.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from embrm.evaluate.evaluation import usable_bon_sizes
from embrm.generation import prompts
from embrm.io.errors import InputError
from embrm.io.jsonio import write_json
from embrm.workflow import studies
from embrm.workflow.rule_io import run

from conftest import (
    ROOT,
    STEP_7B_ONWARDS,
    import_release,
    planned_jobs,
    run_snakemake,
    small_config,
)

pytestmark = pytest.mark.workflow


def hh(prompt: str, rid=None, split=None) -> dict:
    record = {"chosen": f"\n\nHuman: {prompt}\n\nAssistant: sure", "rejected": "x"}
    record.update({k: v for k, v in (("id", rid), ("split", split)) if v is not None})
    return record


def prompt_cfg(source: Path, **limits) -> dict:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())["generation"]["prompts"]
    cfg.update(source=str(source), max_train_prompts=None, max_test_prompts=None, **limits)
    return cfg


def write_lines(path: Path, lines) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def prepared(cfg: dict, tmp_path: Path) -> dict[str, list[dict]]:
    out = {}
    for split in ("train", "test"):
        prompts.prepare_prompts(cfg=cfg, split=split, out_path=tmp_path / f"{split}.jsonl")
        out[split] = [
            json.loads(x) for x in (tmp_path / f"{split}.jsonl").read_text().split("\n") if x
        ]
    return out


# 1. train/test overlap ------------------------------------------------------------


def test_01_one_local_file_gives_prompt_disjoint_splits(tmp_path):
    records = [hh(f"question {i % 60}") for i in range(200)]  # every prompt occurs 3-4 times
    cfg = prompt_cfg(write_lines(tmp_path / "p.jsonl", map(json.dumps, records)))
    got = prepared(cfg, tmp_path)
    train, test = ({p["prompt"] for p in got[s]} for s in ("train", "test"))
    assert train and test and not train & test


def test_01_split_field_selects_each_splits_records(tmp_path):
    records = [hh(f"q{i}", rid=f"r{i}", split="train" if i < 8 else "test") for i in range(10)]
    cfg = prompt_cfg(write_lines(tmp_path / "p.jsonl", map(json.dumps, records)))
    got = prepared(cfg, tmp_path)
    assert [p["id"] for p in got["test"]] == ["r8", "r9"] and len(got["train"]) == 8


@pytest.mark.parametrize(
    ("test_record", "message"),
    [
        (hh("q1", rid="t1", split="test"), r"1 test prompts are also train prompts.*t1.*a1"),
        (hh("new", rid="a0", split="test"), r"1 ids are in both.*first: a0"),
    ],
)
def test_01_overlapping_splits_are_refused(tmp_path, test_record, message):
    train = [hh(f"q{i}", rid=f"a{i}", split="train") for i in range(3)]
    cfg = prompt_cfg(write_lines(tmp_path / "p.jsonl", map(json.dumps, [*train, test_record])))
    with pytest.raises(InputError, match=message):
        prompts.prepare_prompts(cfg=cfg, split="test", out_path=tmp_path / "test.jsonl")
    assert not (tmp_path / "test.jsonl").exists()


# 2. code identity: a real run on a copy of the package ----------------------------


@pytest.fixture(scope="module")
def package_run(tmp_path_factory):
    """The small synthetic DAG run to the end with a copy of the package first on the
    path: ``(package copy, workdir, config, env)``."""
    pkg = tmp_path_factory.mktemp("pkg")
    for part in ("src", "workflow", "envs"):
        shutil.copytree(ROOT / part, pkg / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / part, pkg / part)
    env = {"PYTHONPATH": str(pkg / "src")}
    workdir = tmp_path_factory.mktemp("run")
    cfg = small_config()
    run_snakemake(workdir, cfg, snakefile=pkg / "Snakefile", env=env)
    return pkg, workdir, cfg, env


def test_02_package_edit_reruns_the_steps_that_import_it_and_no_other(package_run):
    pkg, workdir, cfg, env = package_run

    def planned_after_editing(module: str) -> dict:
        with (pkg / "src/embrm" / module).open("a") as fh:
            fh.write("\n# an edit\n")
        proc = run_snakemake(workdir, cfg, "-n", snakefile=pkg / "Snakefile", env=env)
        out = proc.stdout + proc.stderr
        return planned_jobs(out) if "Job stats:" in out else {}

    assert planned_after_editing("generation/sampling.py") == {}  # no step 5-8 imports it
    jobs = planned_after_editing("calibrate/distill.py")
    assert set(jobs) == STEP_7B_ONWARDS


# 3. best-of-N sizes above K --------------------------------------------------------


def test_03_bon_sizes_all_above_known_k_refused_at_parse_time(tmp_path):
    cfg = small_config(evaluation={"bon_n": [500]})  # K_test = 40
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0
    assert "evaluation.bon_n=[500]: every size exceeds K = 40" in proc.stdout + proc.stderr


def test_03_bon_sizes_above_k_are_named_and_none_left_fails(caplog):
    assert usable_bon_sizes([2, 500, 50], 40, "r.npy") == [2]
    assert "[50, 500] exceed K = 40" in caplog.text
    with pytest.raises(InputError, match="every size exceeds K = 40"):
        usable_bon_sizes([500], 40, "r.npy")


# 4. non-finite or degenerate arrays, found where they are written ----------------


def release(tmp_path: Path, k: int, n: int, d: int = 4) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    emb, rew = tmp_path / "EMBD.npy", tmp_path / "REWARD.npy"
    np.save(emb, rng.standard_normal((k, n, d)).astype(np.float32))
    np.save(rew, rng.standard_normal((k, n)).astype(np.float32))
    return emb, rew


def test_04_nan_in_imported_embeddings_named_by_file_row_and_column(tmp_path):
    emb, rew = release(tmp_path, k=3, n=7)
    bad = np.load(emb)
    bad[1, 5, 2] = np.nan  # response 1 of prompt 5
    np.save(emb, bad)
    with pytest.raises(InputError, match=r"test_embeddings.*prompt row 5, response column 1"):
        import_release(emb, rew, tmp_path / "out", split="test", chunk=2)
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(("k", "n", "message"), [(1, 5, "K = 1"), (3, 0, r"N = 0")])
def test_04_degenerate_imported_split_refused(tmp_path, k, n, message):
    with pytest.raises(InputError, match=message):
        import_release(*release(tmp_path, k=k, n=n), tmp_path / "out", split="test", chunk=2)


def test_04_generation_stage_fails_on_the_array_it_wrote(tmp_path):
    """annotate_golden and embed_responses check their output through ``check_arrays``."""
    smk = SimpleNamespace(log=[str(tmp_path / "job.log")], rule="annotate_golden")
    smk.wildcards = SimpleNamespace(split="test")
    out = tmp_path / "test_rewards.npy"
    with pytest.raises(InputError, match=r"test_rewards.npy: the test split has K = 1"):
        run(smk, np.save, out, np.zeros((5, 1), np.float32), check_arrays={out: 2})


def test_04_json_artifacts_never_hold_bare_nan(tmp_path):
    write_json(tmp_path / "r.json", {"spearman": float("nan"), "per": [np.float32(np.inf), 1.0]})
    strict = json.loads(
        (tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}")
    )
    assert strict["spearman"] is None and strict["per"] == [None, 1.0]
    assert set(strict["null_reasons"]) == {"spearman", "per[0]"}


# 5. nothing in the workflow unpickles ---------------------------------------------


class Payload:
    """Unpickling this creates the marker file: proof that a file's code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant(path: Path, marker: Path) -> None:
    if path.suffix == ".joblib":
        import joblib

        joblib.dump(Payload(marker), path)
    elif path.suffix == ".npy":
        np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    else:
        torch.save({"format": "embrm.ensemble/1", "x": Payload(marker)}, path)


@pytest.mark.parametrize(
    ("planted", "forced", "reader"),
    [
        ("isotonic_teacher_map.joblib", "validate_variants", "validate_variants"),
        ("isotonic_student_map.joblib", "validate_variants", "validate_variants"),
        ("eval/test_scores.npy", "calibrate_teacher", "calibrate_teacher"),
        ("orm/ensemble.ckpt", "evaluate_orm", "evaluate_orm"),
    ],
)
def test_05_malicious_file_in_results_never_runs(package_run, tmp_path, planted, forced, reader):
    _, finished, cfg, _ = package_run
    workdir = tmp_path / "w"
    shutil.copytree(finished, workdir)
    marker = tmp_path / "payload-ran"
    plant(workdir / "results" / planted, marker)
    proc = run_snakemake(workdir, cfg, "--forcerun", forced, check=False)
    assert reader in planned_jobs(proc.stdout + proc.stderr)  # the reader did run
    assert not marker.exists()


def test_05_no_loader_in_the_workflow_can_unpickle():
    banned = ("joblib.load", "pickle.load", "allow_pickle=True", "weights_only=False")
    sources = [*(ROOT / "src").rglob("*.py"), *(ROOT / "workflow").rglob("*.py")]
    sources += [*(ROOT / "workflow").rglob("*.smk"), ROOT / "Snakefile"]
    found = [f"{p}: {b}" for p in sources for b in banned if b in p.read_text()]
    assert not found
    loads = [p for p in sources if "torch.load(" in p.read_text()]
    assert all("weights_only=True" in p.read_text() for p in loads)


# 6./7. a full disk: no final-named or temporary file left, one clear message -----

WRITERS = {
    "synthetic memmaps": """
from embrm.data.synthetic import generate
generate(**{f"{s}_{k}": f"{OUT}/{s}_{k}.npy" for s in ("train", "test")
            for k in ("embeddings", "rewards")},
         n_train=200, n_test=20, k_train=10, k_test=10, dim=64, seed=0)
""",
    "importer memmaps": """
import numpy as np
from embrm.data.importer import convert
np.save(f"{SRC}/e.npy", np.ones((4, 300, 64), np.float32))
np.save(f"{SRC}/r.npy", np.ones((4, 300), np.float32))
convert(release_embeddings=f"{SRC}/e.npy", release_rewards=f"{SRC}/r.npy",
        embeddings=f"{OUT}/test_embeddings.npy", rewards=f"{OUT}/test_rewards.npy",
        split="test")
""",
    "np.save": """
import numpy as np
from embrm.data.arrays import save_array
save_array(f"{OUT}/scores.npy", np.ones((300, 64), np.float32))
""",
    "np.savez": """
import numpy as np
from embrm.io.atomic import atomic_path
with atomic_path(f"{OUT}/split.npz") as tmp:
    np.savez(tmp, a=np.ones((300, 64)))
""",
    "torch checkpoint": """
import torch
from embrm.io.atomic import atomic_path
with atomic_path(f"{OUT}/student.ckpt", temp_name="student.tmp") as tmp:
    torch.save({"w": torch.ones(300, 64)}, tmp)
""",
    "joblib map": """
import numpy as np
from embrm.calibrate.isotonic import fit_isotonic, save_map
x = np.arange(20000.0)
save_map(fit_isotonic(x, x), [f"{OUT}/map.joblib"], f"{SRC}/map.json")
""",
    "plot": """
import matplotlib.pyplot as plt
import numpy as np
from embrm.evaluate.plots import save_figure
fig, ax = plt.subplots(figsize=(20, 20))
ax.imshow(np.random.default_rng(0).random((500, 500)))
save_figure(fig, f"{OUT}/plot.png")
""",
}


@pytest.fixture
def full_disk(tmp_path):
    """A 2 MiB tmpfs with about 32 KiB left free."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        (mount / "filler").write_bytes(b"\0" * (2 * 2**20 - 32 * 2**10))
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_06_07_full_disk_leaves_nothing_and_says_so(full_disk, tmp_path, writer):
    out = full_disk / "artifacts"
    code = f"OUT = {str(out)!r}\nSRC = {str(tmp_path)!r}\n" + WRITERS[writer]
    # a subprocess: a sparse memory map on a full disk dies of SIGBUS
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("embrm.io.errors.NoSpaceError") and "no space left on device" in last
    assert str(out) in last
    assert not out.exists() or not list(out.iterdir())


# 8. what is known at parse time is refused at parse time --------------------------


def synthetic_config(**synthetic) -> dict:
    cfg = small_config()
    cfg["data"]["synthetic"].update(synthetic)
    return cfg


def import_config(tmp_path: Path, n_train: int, n_test: int, **orm) -> dict:
    cfg = small_config(orm=orm)
    imp = cfg["data"]["import"]
    cfg["data"]["source"] = "import"
    imp["dir"] = str(tmp_path / "release")
    (tmp_path / "release").mkdir()
    for split, n in (("train", n_train), ("test", n_test)):
        tags = f"{imp['dataset']}_{imp['gen_model']}"
        np.save(
            tmp_path / f"release/EMBD_{tags}_{imp['embed_model']}_{split}.npy", np.ones((4, n, 3))
        )
        rew = (
            f"release/REWARD_{imp['dataset']}_{imp['reward_model']}_{imp['gen_model']}_{split}.npy"
        )
        np.save(tmp_path / rew, np.ones((4, n)))
    return cfg


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda t: small_config(distill={"cv_folds": 25}), r"distill.cv_folds=25 exceeds the 24"),
        (lambda t: synthetic_config(n_test=4), r"data.synthetic.n_test=4 test prompts split"),
        (lambda t: import_config(t, 50, 30, n_sample=100), r"orm.n_sample=100 exceeds the 50"),
    ],
)
def test_08_impossible_sizes_refused_before_any_job(tmp_path, make, message):
    proc = run_snakemake(tmp_path / "w", make(tmp_path), "-n", check=False)
    assert proc.returncode != 0
    assert re.search(message, proc.stdout + proc.stderr)
    assert not (tmp_path / "w/results").exists()


# 9. unreadable prompt files and incomplete configs: one line ----------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], r"p.jsonl: empty prompt file"),
        ([json.dumps(hh("a")), "", '{"chosen": "x",'], r"p.jsonl: line 3: malformed JSON"),
    ],
)
def test_09_bad_prompt_file_named_with_its_line(tmp_path, lines, message):
    cfg = prompt_cfg(write_lines(tmp_path / "p.jsonl", lines))
    with pytest.raises(InputError, match=message):
        prompts.prepare_prompts(cfg=cfg, split="train", out_path=tmp_path / "train.jsonl")


def test_09_partial_configfile_without_config_yaml_says_which_file_is_missing(tmp_path):
    partial = tmp_path / "partial.yaml"
    partial.write_text(yaml.safe_dump({"orm": {"n_sample": 100}}))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d"]
    cmd += [str(tmp_path / "w"), "--configfile", str(partial), "-n"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config.yaml is missing from the working directory" in out
    assert len(out.splitlines()) < 15


# 10. study point folders never collide --------------------------------------------


def test_10_study_values_mapping_to_one_folder_are_refused():
    cfg = small_config()
    cfg["studies"] = {"pol": {"grid": {"generation.policy": ["org/m", "org_m"]}}}
    with pytest.raises(InputError, match="share the folder 'policy=org_m'"):
        studies.expand(cfg)
