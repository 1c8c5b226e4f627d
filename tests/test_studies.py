"""Studies as one cached DAG, and the report."""

import copy
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from embrm.data.importer import release_paths
from embrm.data.layout import DataVariants, data_path
from embrm.evaluate.metrics import reliability
from embrm.io.errors import InputError
from embrm.resources.cpu import STEPS
from embrm.workflow.config import with_overrides
from embrm.workflow.schema import check_schema, fill_defaults
from embrm.workflow.studies import EXPERIMENT, point_config, study_folders, study_points
from embrm.workflow.study_table import aggregate, summarise

from conftest import (
    SCHEMA,
    planned_jobs,
    run_snakemake,
    small_config,
    small_generation_config,
)


def schema_of(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_schema_fills_its_defaults_into_the_run_and_every_study_point():
    cfg = small_config()
    del cfg["active"], cfg["orm"]["loss"], cfg["orm"]["stopping"], cfg["cluster"]["gpu"]["account"]
    cfg["evaluation"]["uncertainty"] = True  # a given value stays
    cfg["studies"] = {"s": {"grid": {"orm.stopping": ["accuracy"]}}}
    check_schema(cfg, SCHEMA)
    assert cfg["orm"]["loss"] is None and cfg["orm"]["stopping"] == "calibrated_loss"
    assert cfg["cluster"]["gpu"]["account"] is None and cfg["evaluation"]["uncertainty"] is True
    assert cfg["active"]["enabled"] is False and cfg["active"]["seeds"] == [0, 1, 2]
    point = point_config(cfg, "results/studies/s/stopping=accuracy")
    assert point["orm"]["stopping"] == "accuracy" and point["orm"]["loss"] is None
    assert point["active"] == cfg["active"]
    # a default is a fresh copy: changing one config's list leaves the next one's alone
    cfg["active"]["seeds"].append(9)
    assert fill_defaults({}, schema_of(SCHEMA))["active"]["seeds"] == [0, 1, 2]


def test_defaults_inside_oneof_branches_are_never_written():
    schema = {
        "properties": {
            "plain": {"type": "object", "default": {}, "properties": {"a": {"default": 1}}},
            "either": {
                "oneOf": [
                    {"type": "null"},
                    {"type": "object", "properties": {"b": {"default": 2}}},
                ]
            },
        }
    }
    assert fill_defaults({"either": {}}, schema) == {"either": {}, "plain": {"a": 1}}
    assert fill_defaults({"plain": {"a": 5}, "either": None}, schema)["plain"] == {"a": 5}


def test_grid_times_seeds_gives_named_points():
    points = study_points(
        {"grid": {"orm.n_sample": [100, 500], "orm.objective": ["bt"]}, "seeds": [0, 1]}
    )
    assert len(points) == 4
    assert points[1] == (
        "n_sample=100__objective=bt__seed=1",
        {"orm.n_sample": 100, "orm.objective": "bt", "seed": 1},
    )


def test_named_experiments_times_grid_times_seeds():
    minilm = {"generation.embedding.model": "minilm", "generation.embedding.pooling": "mean"}
    study = {
        "experiments": {"minilm": minilm, "tiny-lm": {"generation.embedding.model": "tiny"}},
        "grid": {"orm.objective": ["bt", "clf"]},
        "seeds": [0, 1],
    }
    points = dict(study_points(study))
    assert len(points) == 8
    assert points["minilm__objective=clf__seed=1"] == {
        EXPERIMENT: "minilm",
        **minilm,
        "orm.objective": "clf",
        "seed": 1,
    }
    cfg = small_generation_config()
    cfg["studies"] = {"emb": study}
    point = point_config(cfg, "results/studies/emb/tiny-lm__objective=bt__seed=0")
    assert point["generation"]["embedding"]["model"] == "tiny" and EXPERIMENT not in point
    cfg["studies"]["emb"]["grid"] = {"generation.embedding.model": ["minilm"]}
    with pytest.raises(InputError, match="experiment 'minilm' and the grid both set generation"):
        study_folders(cfg)


def test_study_table_names_experiments_and_groups_list_values(tmp_path):
    """The table and plot logic on hand-written metric files (the metrics are not the point)."""
    import json

    points = {}
    for name, seed, hidden in [("a", 0, [8]), ("a", 1, [8]), ("b", 0, [16]), ("b", 1, [16])]:
        folder = tmp_path / f"{name}__seed={seed}"
        folder.mkdir()
        agg = {
            "per_prompt_spearman": seed + len(hidden),
            "pairwise_accuracy": 0.5,
            "best_of_n": {"2": {"reward": 1.0 + seed}},
        }
        (folder / "eval_results.json").write_text(json.dumps({"aggregations": {"mean": agg}}))
        variants = {
            "teacher_isotonic": {"mse": 1.0},
            "student_isotonic": {"mse": 2.0},
            "student": {"pairwise_accuracy": 0.6},
        }
        (folder / "validation_results.json").write_text(json.dumps({"variants": variants}))
        points[str(folder)] = {EXPERIMENT: name, "distill.hidden_sizes": hidden, "seed": seed}
    out = [tmp_path / f for f in ("t.csv", "t.md", "s.md", "p.png")]
    table = aggregate(
        study="demo", points=points, table=out[0], markdown=out[1], summary=out[2], plot=out[3]
    )
    assert list(table[EXPERIMENT]) == ["a", "a", "b", "b"]
    assert table["distill.hidden_sizes"].tolist() == ["[8]", "[8]", "[16]", "[16]"]
    summary = (tmp_path / "s.md").read_text()
    assert summary.count("| a ") == 1 and summary.count("| b ") == 1  # one row per experiment
    assert out[3].stat().st_size > 1000


def test_point_config_applies_overrides_and_checks_them():
    cfg = small_config()
    cfg["studies"] = {"q": {"grid": {"orm.annotation_quality": [0.5]}, "seeds": [3]}}
    (exp,) = study_folders(cfg)["q"]
    point = point_config(cfg, exp)
    assert point["orm"]["annotation_quality"] == 0.5 and point["seed"] == 3
    assert cfg["orm"]["annotation_quality"] == 10  # the main config is untouched
    cfg["studies"] = {"big": {"grid": {"orm.n_sample": [10**6]}}}
    (exp,) = study_folders(cfg)["big"]
    with pytest.raises(InputError, match="study 'big'.*orm.n_sample"):
        point_config(cfg, exp)


def test_data_folders_are_named_by_what_builds_them():
    cfg = small_generation_config()
    rewards = data_path(cfg, "rewards", "train")
    assert rewards == "results/data/generate/tiny/train_rewards.npy"
    other = with_overrides(cfg, {"generation.embedding.model": "minilm", "seed": 3})
    assert data_path(other, "rewards", "train") == rewards  # same policy, same samples
    assert data_path(other, "embeddings", "train") == (
        "results/data/generate/tiny/minilm_last/train_embeddings.npy"
    )
    hub = with_overrides(cfg, {"generation.policy": "google/gemma-2b"})
    assert data_path(hub, "rewards", "test") == (
        "results/data/generate/google--gemma-2b/test_rewards.npy"
    )
    variants = DataVariants(cfg, [other, hub])
    assert variants.policy("google--gemma-2b") == "google/gemma-2b"
    assert variants.embedding("minilm_last")["dtype"] == cfg["generation"]["embedding"]["dtype"]
    with pytest.raises(InputError, match="no configured experiment uses the policy folder 'x'"):
        variants.policy("x")


def test_two_models_that_would_share_a_folder_are_refused():
    cfg = small_generation_config()
    a, b = (with_overrides(cfg, {"generation.policy": p}) for p in ("org/m", "org--m"))
    with pytest.raises(InputError, match="generation.policy.*share the data folder 'org--m'"):
        DataVariants(cfg, [a, b])


def test_a_data_key_its_data_source_ignores_is_refused():
    cfg = small_config()  # synthetic data: the embedding model changes nothing
    cfg["studies"] = {"emb": {"grid": {"generation.embedding.model": ["minilm", "tiny"]}}}
    exp = next(iter(study_folders(cfg)["emb"]))
    with pytest.raises(InputError, match="study 'emb': generation.embedding.model applies"):
        point_config(cfg, exp)


def test_the_task_varies_only_with_an_imported_release():
    """Generated rewards are named by the policy alone: two tasks would share them."""
    cfg = small_generation_config()
    cfg["generation"]["golden"]["models"]["helpful"] = {"model": "tiny", "format": "raw"}
    cfg["studies"] = {"tasks": {"grid": {"task": ["harmless", "helpful"]}}}
    exp = next(iter(study_folders(cfg)["tasks"]))
    with pytest.raises(InputError, match="study 'tasks': task applies to data.source import"):
        point_config(cfg, exp)


@pytest.mark.parametrize(
    "study, message",
    [
        ({"grid": {"generation.sft.lr": [1e-4]}}, "generation.sft.lr"),
        (
            {"grid": {"generation.embedding.pooling": ["avg"]}},
            "study point results/studies/bad/pooling=avg",
        ),
        ({"experiments": {"x": {"generation.sft.lr": 1e-4}}}, "generation.sft.lr"),
        ({"experiments": {"a__b": {"orm.lr": 0.1}}}, "a__b"),
        ({"seeds": [0]}, "seeds"),
    ],
)
def test_bad_studies_fail_before_any_job(tmp_path, study, message):
    cfg = small_generation_config()
    cfg["studies"] = {"bad": study}
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_default_embedding_study_plans_one_generation_and_two_embeddings(tmp_path):
    cfg = small_generation_config()
    plan = run_snakemake(tmp_path, cfg, "-n", "study_embedding_model")
    jobs = planned_jobs(plan.stdout + plan.stderr)
    assert jobs["sft"] == 1 and jobs["annotate_golden"] == 2  # shared by both embedders
    assert jobs["embed_responses"] == 2 * 2 and jobs["train_orm"] == 2 * 3  # x 3 seeds
    for folder in ("tiny/minilm_mean/train_embeddings.npy", "tiny/tiny_last/test_embeddings.npy"):
        assert f"results/data/generate/{folder}" in plan.stdout + plan.stderr


def test_summary_gives_seed_mean_and_t_interval():
    table = pd.DataFrame({"orm.objective": ["bt"] * 3, "seed": [0, 1, 2], "m": [1.0, 2.0, 3.0]})
    row = summarise(table, ["orm.objective"]).iloc[0]
    assert row["m"] == 2.0 and row["seeds"] == 3
    assert row["m_ci95"] == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-3)


def test_reliability_of_a_calibrated_predictor_has_small_ece():
    rng = np.random.default_rng(0)
    d = rng.normal(0, 2, 200_000)
    won = rng.random(d.size) < 1 / (1 + np.exp(-d))
    rel = reliability(d, np.where(won, 1.0, -1.0))
    assert rel["ece"] < 0.01
    assert reliability(3 * d, np.where(won, 1.0, -1.0))["ece"] > 0.05  # overconfident


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    cfg = small_config()
    cfg["studies"] = {"duo": {"grid": {"orm.annotation_quality": [10, 0.5]}}}
    run_snakemake(workdir, cfg, "study_duo")
    return workdir, cfg


def test_two_point_study_has_one_finite_row_per_point(study_run):
    workdir, _ = study_run
    table = pd.read_csv(workdir / "results/studies/duo/table.csv")
    assert sorted(table["orm.annotation_quality"]) == [0.5, 10]
    assert np.isfinite(table.select_dtypes("number").to_numpy()).all()
    assert (workdir / "results/studies/duo/study_plot.png").stat().st_size > 1000
    assert "annotation_quality=0.5" in (workdir / "results/studies/duo/table.md").read_text()
    # both points read the same data: built once, by one job
    assert len(list((workdir / "results/data").rglob("train_embeddings.npy"))) == 1


def test_adding_a_point_schedules_only_that_point(study_run):
    workdir, built = study_run
    cfg = copy.deepcopy(built)  # the fixture's config stays what was built
    cfg["studies"]["duo"]["grid"]["orm.annotation_quality"] = [10, 0.5, 1.0]
    proc = run_snakemake(workdir, cfg, "-n", "study_duo")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert jobs == {**dict.fromkeys(STEPS, 1), "study_duo": 1}  # steps 5-8, once each
    assert "annotation_quality=1.0" in proc.stdout + proc.stderr


def test_report_builds_with_every_figure(study_run):
    workdir, cfg = study_run
    run_snakemake(workdir, cfg)  # the main run, then its report
    run_snakemake(workdir, cfg, "--report", "report.zip", "all", "all_studies")
    names = zipfile.ZipFile(workdir / "report.zip").namelist()
    for fig in (
        "study_plot.png",
        "bon_curve.png",
        "calibration_plot.png",
        "reliability.png",
        "margins.png",
        "runtimes.png",
        "config.yaml",
    ):
        assert any(n.endswith(fig) for n in names), fig


@pytest.mark.workflow
def test_embedding_model_study_shares_samples_and_rewards(generated):
    workdir, base, _ = generated
    cfg = copy.deepcopy(base)
    cfg["orm"].update(ensemble_number=2, hidden_sizes=[32, 16], max_epochs=5)
    cfg["distill"].update(hidden_sizes=[16], distill_epochs=3)
    cfg["studies"] = {"embedders": {"grid": {"generation.embedding.model": ["tiny", "minilm"]}}}
    proc = run_snakemake(workdir, cfg, "study_embedders")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    # the tiny point reads the main run's embeddings; only MiniLM embeds, nothing resamples
    assert jobs["embed_responses"] == 2 and jobs["train_orm"] == 2
    assert not {"sft", "sample_shard", "annotate_golden"} & set(jobs)
    table = pd.read_csv(workdir / "results/studies/embedders/table.csv")
    assert sorted(table["generation.embedding.model"]) == ["minilm", "tiny"]
    assert np.isfinite(table.select_dtypes("number").to_numpy()).all()
    minilm = np.load(workdir / "results/data/generate/tiny/minilm_last/test_embeddings.npy")
    assert minilm.shape == (15, 6, 384)  # all-MiniLM-L6-v2 on the same samples
    assert (workdir / "results/studies/embedders/study_plot.png").stat().st_size > 1000

    # a second policy: only its own steps 1-4 are planned, both points run steps 5-8
    cfg["studies"] = {
        "policies": {
            "grid": {"generation.policy": ["tiny", str(workdir / "results/models/tiny/policy")]}
        }
    }
    plan = run_snakemake(workdir, cfg, "-n", "study_policies")
    jobs = planned_jobs(plan.stdout + plan.stderr)
    steps_1_to_4 = dict(prepare_prompts=2, sft=1, sample_shard=4, gather_samples=2)
    assert {k: jobs.get(k) for k in steps_1_to_4} == steps_1_to_4
    assert jobs["annotate_golden"] == 2 and jobs["embed_responses"] == 2
    assert "build_tiny_models" not in jobs and jobs["train_orm"] == 2


@pytest.mark.workflow
def test_release_embedder_study_imports_each_release_once(tmp_path):
    """Two embedders of the published release, side by side, from one release folder."""
    from conftest import write_linear_split

    release, src = tmp_path / "release", tmp_path / "src"
    release.mkdir()
    rotate = np.linalg.qr(np.random.default_rng(0).standard_normal((16, 16)))[0]
    w = None
    for split, n, k in (("train", 300, 10), ("test", 30, 40)):
        w = write_linear_split(src, split, n, k, 16, seed=n, w=w)
        emb = np.load(src / f"{split}_embeddings.npy")
        # the release is response-major, (K, N, D) and (K, N); one reward file per policy
        for embed, x in (("gemma7b", emb), ("gemma2b", (emb @ rotate).astype(np.float32))):
            e_path, r_path = release_paths(release, "hh", "gemma2b", embed, "ray", split)
            np.save(e_path, x.transpose(1, 0, 2))
        np.save(r_path, np.load(src / f"{split}_rewards.npy").T)
    cfg = small_config()
    cfg["data"]["source"] = "import"
    cfg["data"]["import"].update(
        dir=str(release),
        dataset="hh",
        gen_model="gemma2b",
        embed_model="gemma7b",
        reward_model="ray",
    )
    cfg["studies"] = {"release": {"grid": {"data.import.embed_model": ["gemma2b", "gemma7b"]}}}
    proc = run_snakemake(tmp_path, cfg, "study_release")
    assert (
        planned_jobs(proc.stdout + proc.stderr)["import_release"] == 2 * 2
    )  # 2 embedders x 2 splits
    table = pd.read_csv(tmp_path / "results/studies/release/table.csv")
    assert sorted(table["data.import.embed_model"]) == ["gemma2b", "gemma7b"]
    assert np.isfinite(table.select_dtypes("number").to_numpy()).all()
    for embed in ("gemma2b", "gemma7b"):
        imported = np.load(
            tmp_path / f"results/data/import/hh_gemma2b_{embed}_ray/test_rewards.npy"
        )
        assert imported.shape == (30, 40)
