"""The step-5/6 knobs of loss variants, noise remedies and conservative ensembles in the
workflow: config checks, the default studies' plans, and one real remedy run."""

import re

import numpy as np
import pytest

from embrm.io.errors import InputError
from embrm.io.jsonio import read_json
from embrm.workflow.config import check_config, check_orm_options, with_overrides
from embrm.workflow.schema import check_schema

from conftest import SCHEMA, orm_config, planned_jobs, run_snakemake, small_config


@pytest.mark.parametrize(
    ("orm", "message"),
    [
        ({"objective": "bt", "loss": "clf"}, "contradicts orm.objective=bt"),
        ({"objective": "clf", "loss": "margin"}, "needs orm.objective=bt"),
        ({"objective": "clf", "noise_remedy": "adaptive_margin"}, "needs orm.objective=bt"),
        ({"loss": "hinge", "label_smoothing": 0.1}, "not hinge"),
        ({"consider_first_n": 4, "comparison": "cross_prompt"}, "within_prompt"),
        ({"consider_first_n": 4, "comparison": "within_prompt", "n_pairs": 2}, "n_pairs=1"),
        ({"listwise": True}, "orm.listwise needs K-wise"),
        (
            {"loss": "margin", "margin_source": "given", "noise_remedy": "flip"},
            "set orm.noise_remedy=none",
        ),
    ],
)
def test_contradicting_orm_options_are_refused(orm, message):
    base = {"objective": "bt", "consider_first_n": 2, "comparison": "cross_prompt", "n_pairs": 1}
    with pytest.raises(InputError, match=message):
        check_orm_options(orm_config(**{**base, **orm}))


def test_given_margins_need_human_pairs():
    cfg = small_config(orm={"loss": "margin", "margin_source": "given"})
    with pytest.raises(InputError, match="needs data.source=pairs, got synthetic"):
        check_config(cfg)


def test_a_config_without_the_new_keys_takes_them_as_study_overrides():
    cfg = small_config()
    for key in ("loss", "noise_remedy"):
        del cfg["orm"][key]
    del cfg["evaluation"]["conservative_lambdas"]
    check_schema(cfg, SCHEMA)  # fills the schema's defaults, as every run does
    assert cfg["orm"]["loss"] is None and cfg["orm"]["noise_remedy"] == "none"
    out = with_overrides(cfg, {"orm.noise_remedy": "flip", "evaluation.conservative_lambdas": [1]})
    assert out["orm"]["noise_remedy"] == "flip" and out["evaluation"]["conservative_lambdas"] == [1]
    with pytest.raises(InputError, match="no key 'nois_remedy'"):
        with_overrides(cfg, {"orm.nois_remedy": "flip"})


def test_default_studies_plan_a_first_ensemble_only_where_a_remedy_reads_it(tmp_path):
    cfg = small_config()
    plan = run_snakemake(tmp_path, cfg, "-n", "study_label_noise_remedy", "study_loss")
    jobs = planned_jobs(plan.stdout + plan.stderr)
    # flip, drop, adaptive_margin x 2 qualities x 3 seeds; none reads no first ensemble
    assert jobs["preference_strength"] == 3 * 2 * 3
    assert jobs["train_orm"] == 4 * 2 * 3 + 5 * 3
    plan = run_snakemake(tmp_path, cfg, "-n", "study_conservative")
    assert planned_jobs(plan.stdout + plan.stderr)["evaluate_orm"] == 3


@pytest.mark.workflow
def test_the_report_declares_the_benchmarks_it_tabulates(tmp_path):
    """The runtime table's benchmark files are inputs of report_figures (with the first
    ensemble's where a remedy reads it), not a glob of the folder."""
    plan = run_snakemake(
        tmp_path, small_config(orm={"noise_remedy": "flip"}), "-n", "results/report/runtimes.csv"
    )
    out = plan.stdout + plan.stderr
    block = out[out.index("rule report_figures:") :]
    inputs = re.search(r"input: (.*)", block).group(1).split(", ")
    steps = ["train_orm", "preference_strength", "calibrate_student", "validate_variants"]
    assert {f"results/benchmarks/{s}.tsv" for s in steps} <= set(inputs)
    assert "results/benchmarks/distill_student_harmless_bt.tsv" in inputs


@pytest.mark.workflow
def test_a_flip_remedy_run_reads_the_first_ensemble_and_reports_detection(tmp_path):
    cfg = small_config(
        orm={"noise_remedy": "flip", "annotation_quality": 1.0},
        evaluation={"conservative_lambdas": [1], "uncertainty": True},
    )
    run_snakemake(tmp_path, cfg, "results/eval_results.json")
    res = tmp_path / "results"
    strength = np.load(res / "orm/preference_strength.npy")
    report = read_json(res / "orm/preference_strength.json")
    summary = read_json(res / "orm/training.json")
    assert strength.shape == (report["n_pairs"], 2) == (summary["n_pairs"], 2)
    assert summary["noise_remedy"]["pairs_changed"] == report["detection"]["flagged"] > 0
    assert 0 <= report["detection"]["precision"] <= 1
    assert (res / "orm/preference_strength.png").stat().st_size > 1000
    evaluation = read_json(res / "eval_results.json")
    assert "conservative_1" in evaluation["aggregations"]
    assert 0 <= evaluation["uncertainty"]["auc"] <= 1
