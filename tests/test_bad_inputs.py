"""The bad-input and fault catalog: each case once made results silently wrong, ran
code from a file, left a half-written artifact or failed late; each must stay fixed.

Test names are numbered by kind: 1 train/test overlap, 2 code identity, 3 best-of-N
sizes, 4 bad arrays and JSON (release files included), 5 unpickling, 6-7 full disk,
8 parse-time sizes, 9 unreadable prompts and configs, 10 study folders, 11 the
reward-model bundle. Tests that run the real snakemake are marked ``workflow``; the
rest call the check functions directly and run under ``-m "not workflow"`` in seconds.
"""

from __future__ import annotations

import copy
import gzip
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
from snakemake.utils import update_config

from embrm.calibrate.distill import FORMAT as STUDENT_FORMAT
from embrm.data import preferences, prompts
from embrm.data.importer import release_files
from embrm.evaluate.evaluation import usable_bon_sizes
from embrm.io.errors import InputError
from embrm.io.jsonio import write_json
from embrm.rm.ensemble import save_ensemble
from embrm.rm.stacked_mlp import StackedMLP
from embrm.serve.bundle import build_bundle
from embrm.workflow import studies
from embrm.workflow.config import check_config, retype_cli_config
from embrm.workflow.rule_io import run
from embrm.workflow.schema import check_schema

from conftest import (
    ROOT,
    STEP_7B_ONWARDS,
    import_release,
    planned_jobs,
    run_snakemake,
    small_config,
    small_generation_config,
)

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


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


@pytest.mark.workflow
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


@pytest.mark.workflow
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


def test_04_nan_in_imported_embeddings_named_by_release_file_response_and_prompt(tmp_path):
    emb, rew = release(tmp_path, k=3, n=7)
    bad = np.load(emb)
    bad[1, 5, 2] = np.nan  # response 1 of prompt 5
    np.save(emb, bad)
    where = r"EMBD\.npy: non-finite value .* at response 1, prompt 5, dimension 2"
    with pytest.raises(InputError, match=where + ".*data.import.max_prompts to 5 or fewer"):
        import_release(emb, rew, tmp_path / "out", split="test", chunk=2)
    assert not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize(("k", "n", "message"), [(1, 5, "K = 1"), (3, 0, r"N = 0")])
def test_04_degenerate_imported_split_refused(tmp_path, k, n, message):
    with pytest.raises(InputError, match=r"REWARD\.npy: .*" + message):
        import_release(*release(tmp_path, k=k, n=n), tmp_path / "out", split="test", chunk=2)
    assert not (tmp_path / "out").exists()


def cut_to(nbytes: int):
    """A release file cut short, as an interrupted copy leaves it."""
    return lambda path: path.write_bytes(path.read_bytes()[:nbytes])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda path: np.save(path, np.ones(50)),
            r"expected 2 dimensions \(K, N\), found shape \(50,\)",
        ),
        (cut_to(0), r"not a readable \.npy file .*cut short"),
        (cut_to(20), r"not a readable \.npy file .*cut short"),
        (lambda path: np.save(path, np.ones((4, 50), np.int64)), r"expected a float array"),
    ],
)
def test_04_broken_release_rewards_named_at_parse_time_and_by_the_import(tmp_path, damage, message):
    cfg = import_config(tmp_path, 50, 30)
    emb, rew = map(Path, release_files(cfg["data"]["import"], "train"))
    damage(rew)
    with pytest.raises(InputError, match=re.escape(str(rew)) + ": " + message):
        check_config(cfg)
    with pytest.raises(InputError, match=re.escape(str(rew)) + ": " + message):
        import_release(emb, rew, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_04_release_splits_of_different_widths_refused_at_parse_time(tmp_path):
    cfg = import_config(tmp_path, 50, 30)
    train, _ = release_files(cfg["data"]["import"], "train")
    test, _ = release_files(cfg["data"]["import"], "test")
    np.save(test, np.ones((4, 30, 32)))  # train D = 3
    with pytest.raises(
        InputError, match=rf"{re.escape(train)} has D = 3 but .*_test\.npy has D = 32"
    ):
        check_config(cfg)


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


@pytest.mark.workflow
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


@pytest.mark.workflow
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


def generate_config(**orm) -> dict:
    cfg = small_generation_config()  # K_train = 4
    cfg["orm"].update(orm)
    return cfg


def active_config(make, **active) -> dict:
    cfg = make()
    cfg["active"] |= {"enabled": True, "pool": "within_prompt", **active}
    return cfg


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda t: small_config(
                orm=dict(consider_first_n=20, comparison="within_prompt", n_pairs=1)
            ),
            r"orm.consider_first_n=20 exceeds the K = 10 .*data.synthetic.k_train.*at most 10",
        ),
        (
            lambda t: import_config(
                t, 50, 30, consider_first_n=6, comparison="within_prompt", n_pairs=1
            ),
            r"orm.consider_first_n=6 exceeds the K = 4 .*REWARD_.*_train\.npy",
        ),
        (
            lambda t: generate_config(consider_first_n=5, comparison="within_prompt", n_pairs=1),
            r"orm.consider_first_n=5 exceeds the K = 4 .*generation.sampling.k_train",
        ),
        # 300 prompts x K = 10: 13500 within-prompt pairs
        (
            lambda t: active_config(
                small_config, budget=20000, initial=10, candidates=10000, rounds=2
            ),
            r"active.budget=20000 exceeds the 13500 within_prompt pairs of orm.n_sample=300",
        ),
        (
            lambda t: active_config(
                small_config, budget=1000, initial=100, candidates=13000, rounds=2
            ),
            r"active.candidates=13000: with the 550 pairs annotated before the last round",
        ),
        # 40 prompts x K = 4: 240 within-prompt pairs
        (
            lambda t: active_config(
                lambda: import_config(t, 50, 30, n_sample=40),
                budget=100,
                initial=20,
                candidates=200,
                rounds=2,
            ),
            r"active.candidates=200: .*the 240 within_prompt pairs .*REWARD_.*_train\.npy",
        ),
    ],
)
def test_08_settings_the_known_k_cannot_meet_refused_at_parse_time(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        check_config(make(tmp_path))


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


# a record saved as Latin-1: "caf\u00e9" as the single byte 0xe9
NOT_UTF8 = json.dumps(hh("caf\u00e9"), ensure_ascii=False).encode("latin-1")


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_09_prompt_file_not_utf8_named_with_its_line(tmp_path, suffix):
    path = tmp_path / f"p{suffix}"
    data = json.dumps(hh("a")).encode() + b"\n" + NOT_UTF8 + b"\n"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    column = NOT_UTF8.index(b"\xe9") + 1
    with pytest.raises(
        InputError,
        match=rf"p{re.escape(suffix)}: line 2: not UTF-8 text \(byte 0xe9 at column {column}\)",
    ):
        prompts.prepare_prompts(cfg=prompt_cfg(path), split="train", out_path=tmp_path / "t.jsonl")


def pairs_cfg(source: Path) -> dict:
    cfg = yaml.safe_load((ROOT / "config/pairs_hh_harmless.yaml").read_text())["data"]["pairs"]
    return {**cfg, "source": str(source)}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("p.jsonl", json.dumps(hh("a")).encode() + b"\n" + NOT_UTF8 + b"\n"),
        ("p.json", b"[" + json.dumps(hh("a")).encode() + b",\n" + NOT_UTF8 + b"]"),
    ],
)
def test_09_pair_file_not_utf8_named_with_its_line(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    out = {s: tmp_path / f"{s}.out" for s in ("train", "test")}
    with pytest.raises(InputError, match=rf"{re.escape(name)}: line 2: not UTF-8 text"):
        preferences.prepare_pairs(
            cfg=pairs_cfg(tmp_path / name),
            out_pairs=out,
            out_preferences=out,
            report=tmp_path / "r",
        )


def test_09_record_without_dialogue_fields_named_with_file_and_record(tmp_path):
    lines = [json.dumps(hh("a")), json.dumps({"id": "q7", "text": "no dialogue"})]
    cfg = prompt_cfg(write_lines(tmp_path / "p.jsonl", lines))
    with pytest.raises(
        InputError, match=r"p.jsonl: record q7 has none of the fields.*\['id', 'text'\]"
    ):
        prompts.prepare_prompts(cfg=cfg, split="train", out_path=tmp_path / "train.jsonl")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        (
            "orm",
            "ensemble_number",
            2.0,
            "orm.ensemble_number: 2.0 is a float where an integer is meant; write 2",
        ),
        (
            "orm",
            "n_sample",
            300.0,
            "orm.n_sample: 300.0 is a float .*; write 300",
        ),  # oneOf null / int
        ("orm", "consider_first_n", -1.0, "orm.consider_first_n: -1.0 is a float"),  # enum [-1, -2]
        ("orm", "hidden_sizes", [32, 16.5], r"orm.hidden_sizes.1: 16.5 is a float .*whole number"),
        ("distill", "cv_folds", 5.0, "distill.cv_folds: 5.0 is a float"),
    ],
)
def test_09_float_for_an_integer_key_refused_naming_the_key(section, key, value, message):
    cfg = small_config(**{section: {key: value}})
    with pytest.raises(InputError, match=message):
        check_schema(cfg, SCHEMA)
    cfg["studies"] = {"s": {"grid": {f"{section}.{key}": [value]}}}
    cfg[section][key] = small_config()[section][key]
    (point,) = studies.all_point_configs(cfg).values()
    with pytest.raises(InputError, match="study point: config key " + message):
        check_schema(point, SCHEMA, where="study point: config")


def test_09_nested_command_line_values_get_their_types():
    """Snakemake reads ``--config orm='{...}'`` with YAML's base loader (strings only) and
    merges it into the config with ``update_config``."""
    cfg = small_config()
    cli = {"orm": {"ensemble_number": "5", "lr": "1e-3", "loss": "null", "hidden_sizes": ["8"]}}
    cli.update(distill={"split": ["0.5", "0.25", "0.25"]}, data={"synthetic": {"model": "rough"}})
    update_config(cfg, copy.deepcopy(cli))
    retype_cli_config(cfg, cli)
    assert cfg["orm"]["ensemble_number"] == 5 and cfg["orm"]["lr"] == 1e-3
    assert cfg["orm"]["loss"] is None and cfg["orm"]["hidden_sizes"] == [8]
    assert cfg["distill"]["split"] == [0.5, 0.25, 0.25]
    assert cfg["data"]["synthetic"]["model"] == "rough" and cfg["data"]["synthetic"]["dim"] == 16
    check_schema(cfg, SCHEMA)


@pytest.mark.workflow
def test_09_readme_nested_config_example_parses(tmp_path):
    proc = run_snakemake(tmp_path, small_config(), "-n", "--config", "distill={distill_epochs: 5}")
    assert "distill_student" in planned_jobs(proc.stdout + proc.stderr)


@pytest.mark.workflow
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
        studies.study_folders(cfg)


def test_10_grid_values_one_and_one_point_zero_are_one_point():
    cfg = small_config()
    cfg["studies"] = {"lr": {"grid": {"orm.lr": [0.5, 1, 1.0]}, "seeds": [0]}}
    with pytest.raises(
        InputError, match=r"points .*lr=1__seed=0 .* and .*lr=1.0__seed=0 .* run the same config"
    ):
        studies.all_point_configs(cfg)
    cfg["studies"] = {"x": {"experiments": {"a": {"orm.lr": 0.5}, "b": {"orm.n_sample": 300}}}}
    cfg["orm"]["lr"] = 0.5  # both experiments are the main config
    with pytest.raises(InputError, match=r"points results/studies/x/a .* and results/studies/x/b"):
        studies.all_point_configs(cfg)


def test_10_point_artifact_linked_from_outside_results_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    point = Path("results/studies/s/n_sample=10")
    (point / "orm").mkdir(parents=True)
    (tmp_path / "results/data").mkdir()
    (tmp_path / "results/data/x.json").write_text("{}")
    (point / "eval_results.json").symlink_to(tmp_path / "results/data/x.json")  # inside: fine
    studies.check_point_links([str(point)])
    (tmp_path / "elsewhere.json").write_text("{}")
    (point / "orm/ensemble.ckpt").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(
        InputError,
        match=r"orm/ensemble.ckpt is a symbolic link to .*elsewhere.json, outside results/.*delete",
    ):
        studies.check_point_links([str(point)])
    (point / "orm/ensemble.ckpt").unlink()
    Path("results/studies/t").mkdir()
    Path("results/studies/t/p").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(InputError, match=r"results/studies/t/p is a symbolic link"):
        studies.check_point_links(["results/studies/t/p"])


# 11. the reward-model bundle --------------------------------------------------------


def bundle_inputs(tmp_path: Path, validation: dict) -> dict:
    """The step 5-8 artifacts ``build_bundle`` reads, for D = 4 embeddings."""
    teacher, student = StackedMLP(4, [8], [0, 1]), StackedMLP(4, [8], [2])
    save_ensemble(tmp_path / "ens.ckpt", teacher, "bt", [{"name": "m0"}, {"name": "m1"}])
    state = {"format": STUDENT_FORMAT, "input_dim": 4, "hidden_sizes": [8]}
    torch.save({**state, "state_dict": student.member_state(0)}, tmp_path / "student.ckpt")
    for name, data in {
        "stats.json": {"precision": "fp32"},
        "map.json": {"x": [0.0, 1.0], "y": [0.0, 1.0]},
        "distillation.json": {"hyperparameters": {"lr": 0.01}},
        "validation.json": validation,
    }.items():
        write_json(tmp_path / name, data)
    (tmp_path / "plot.png").write_bytes(b"png")
    rng = np.random.default_rng(0)  # the test split: 5 prompts x 3 responses, 2 held out
    np.save(tmp_path / "test_emb.npy", rng.standard_normal((5, 3, 4)).astype(np.float32))
    np.save(tmp_path / "test_rew.npy", rng.standard_normal((5, 3)).astype(np.float32))
    np.savez(tmp_path / "split.npz", split=np.array([0, 0, 1, 2, 2]))
    files = dict(ensemble="ens.ckpt", student="student.ckpt", student_stats="stats.json")
    files.update(test_embeddings="test_emb.npy", test_rewards="test_rew.npy", split="split.npz")
    files.update(teacher_map_json="map.json", student_map_json="map.json")
    files.update(calibration_plot="plot.png")
    files.update(distillation_config="distillation.json", validation="validation.json")
    return {k: tmp_path / v for k, v in files.items()}


EMBEDDING = dict(model="org/embedder", pooling="last", normalize=False, max_length=64)
EMBEDDING.update(truncation="keep_response", batch_size=8, dtype="float32")


def test_11_null_validation_metric_builds_a_bundle_and_a_failure_leaves_no_temp(tmp_path):
    metrics = {"global_spearman": 0.5, "per_prompt_spearman": float("nan")}  # null in the file
    metrics.update(pairwise_accuracy=0.75, mse=0.1, mse_meaningful=True)
    validation = {"held_out_prompts": 3, "variants": {"student_isotonic": metrics}}
    inputs = bundle_inputs(tmp_path, validation)
    run_info = {"task": "t", "objective": "bt", "data": "tiny"}
    bundle = tmp_path / "results/reward_model"
    kwargs = dict(embedding=EMBEDDING, embedder_path="unused", run=run_info, bundle=bundle)
    build_bundle(**inputs, **kwargs)
    assert (
        "| student_isotonic | 0.5000 | undefined | 0.7500 | 0.1000 |"
        in (bundle / "README.md").read_text()
    )
    (tmp_path / "plot.png").unlink()  # a failure after the temporary folder exists
    with pytest.raises(FileNotFoundError):
        build_bundle(**inputs, **{**kwargs, "bundle": tmp_path / "results/second"})
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["reward_model"]
