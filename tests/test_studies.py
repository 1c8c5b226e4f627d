"""Studies as one cached DAG, and the report."""

import math
import zipfile

import numpy as np
import pandas as pd
import pytest

from embrm.errors import InputError
from embrm.report_figures import reliability
from embrm.studies import expand, point_config, point_name, study_points
from embrm.study_table import summarise

from conftest import planned_jobs, run_snakemake, small_config


def test_grid_times_seeds_gives_named_points():
    points = study_points(
        {"grid": {"orm.n_sample": [100, 500], "orm.objective": ["bt"]}, "seeds": [0, 1]}
    )
    assert len(points) == 4
    assert point_name(points[1]) == "n_sample=100__objective=bt__seed=1"


def test_point_config_applies_overrides_and_checks_them():
    cfg = small_config()
    cfg["studies"] = {"q": {"grid": {"orm.annotation_quality": [0.5]}, "seeds": [3]}}
    (exp,) = expand(cfg)["q"]
    point = point_config(cfg, exp)
    assert point["orm"]["annotation_quality"] == 0.5 and point["seed"] == 3
    assert cfg["orm"]["annotation_quality"] == 10  # the main config is untouched
    cfg["studies"] = {"big": {"grid": {"orm.n_sample": [10**6]}}}
    (exp,) = expand(cfg)["big"]
    with pytest.raises(InputError, match="study 'big'.*orm.n_sample"):
        point_config(cfg, exp)


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
    workdir, cfg = study_run
    cfg["studies"]["duo"]["grid"]["orm.annotation_quality"] = [10, 0.5, 1.0]
    proc = run_snakemake(workdir, cfg, "-n", "study_duo")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    per_point = [
        "train_orm",
        "evaluate_orm",
        "calibrate_teacher",
        "distill_student",
        "calibrate_student",
        "validate_variants",
    ]
    assert jobs == {**dict.fromkeys(per_point, 1), "study_duo": 1}
    assert "annotation_quality=1.0" in proc.stdout + proc.stderr


def test_report_builds_with_every_figure(study_run):
    workdir, cfg = study_run
    run_snakemake(workdir, cfg)  # the main run, then its report
    run_snakemake(workdir, cfg, "--report", "report.zip")
    names = zipfile.ZipFile(workdir / "report.zip").namelist()
    for fig in (
        "bon_curve.png",
        "calibration_plot.png",
        "reliability.png",
        "margins.png",
        "runtimes.png",
        "config.yaml",
    ):
        assert any(n.endswith(fig) for n in names), fig
