"""The real `snakemake` on a small synthetic config: end to end, targets, reruns, bad config."""

import json
import math

import joblib
import numpy as np
import pytest
import torch

from conftest import ROOT, STEP_7B_ONWARDS, planned_jobs, run_snakemake, small_config

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    cfg = small_config()
    run_snakemake(workdir, cfg)
    return workdir, cfg


def _finite(tree):
    if isinstance(tree, dict):
        return all(_finite(v) for v in tree.values())
    if isinstance(tree, list):
        return all(_finite(v) for v in tree)
    return not isinstance(tree, float) or math.isfinite(tree)


def test_end_to_end_artifacts(finished_run):
    workdir, cfg = finished_run
    res = workdir / "results"
    ens = torch.load(res / "orm/ensemble.ckpt", weights_only=True)
    assert len(ens["members"]) == cfg["orm"]["ensemble_number"]
    ev = json.loads((res / "eval_results.json").read_text())
    assert set(ev["aggregations"]) == {"mean", "min", "first"}
    assert "length_bias" not in ev  # synthetic data have no texts
    assert ev["aggregations"]["mean"]["per_prompt_spearman"] > 0.5
    assert set(ev["aggregations"]["mean"]["best_of_n"]) == {"2", "5", "10", "30"}  # K_test=40
    val = json.loads((res / "validation_results.json").read_text())
    assert set(val["variants"]) == {"teacher", "teacher_isotonic", "student", "student_isotonic"}
    assert _finite(ev) and _finite(val)
    assert val["variants"]["teacher_isotonic"]["mse"] < val["variants"]["teacher"]["mse"]
    teacher = joblib.load(res / "isotonic_teacher_map.joblib")
    legacy = joblib.load(res / "isotonic_map.joblib")
    assert np.array_equal(teacher.X_thresholds_, legacy.X_thresholds_)
    dist = json.loads((res / "distillation_config.json").read_text())
    assert sum(dist["split_sizes"].values()) == cfg["data"]["synthetic"]["n_test"]
    assert (res / "distilled_rm_harmless_bt.ckpt").is_file()
    for png in ("bon_curve.png", "calibration_plot.png"):
        assert (res / png).stat().st_size > 1000
    for rule in ("train_orm", "evaluate_orm", "calibrate_teacher", "validate_variants"):
        assert (res / "logs" / f"{rule}.log").read_text().strip()
        assert (res / "benchmarks" / f"{rule}.tsv").is_file()


def test_single_target_rebuilds_only_what_it_needs(finished_run):
    workdir, cfg = finished_run
    target = workdir / "results/isotonic_teacher_map.joblib"
    target.unlink()
    proc = run_snakemake(workdir, cfg, "results/isotonic_teacher_map.joblib")
    assert planned_jobs(proc.stdout + proc.stderr) == {"calibrate_teacher": 1}
    assert target.is_file()


def test_changing_distill_epochs_reruns_only_steps_7_and_8(finished_run):
    workdir, cfg = finished_run
    changed = small_config(distill={"distill_epochs": 3})
    proc = run_snakemake(workdir, changed, "-n")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert set(jobs) == STEP_7B_ONWARDS  # the report's figures read the finished run


def test_dry_run_of_fresh_dir_shows_the_whole_dag(tmp_path):
    proc = run_snakemake(tmp_path, small_config(), "-n")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert {"synthetic_data", "train_orm", "evaluate_orm", "calibrate_teacher"} <= set(jobs)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["orm"].update(learning_rate=0.1), "learning_rate"),
        (lambda c: c["orm"].update(consider_first_n=0), "consider_first_n"),
        (lambda c: c["orm"].update(n_sample="many"), "n_sample"),
        (lambda c: c["orm"].update(n_sample=10_000), "orm.n_sample"),
        (lambda c: c["distill"].update(split=[0.5, 0.2, 0.2]), "distill.split"),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, mutate, message):
    cfg = small_config()
    mutate(cfg)
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_embedded_default_runs_all_eight_stages_offline(tmp_path):
    """config.yaml as shipped: tiny local models, steps 1-8, no hub, no GPU."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert cfg["data"]["source"] == "generate"
    proc = run_snakemake(tmp_path, cfg, timeout=900)
    jobs = planned_jobs(proc.stdout + proc.stderr)
    for rule in (
        "build_tiny_models",
        "sft",
        "sample_shard",
        "annotate_golden",
        "embed_responses",
        "train_orm",
        "validate_variants",
        "reward_model",
    ):
        assert rule in jobs
    assert jobs["sample_shard"] == 2 * cfg["generation"]["sampling"]["shards"]
    data = tmp_path / "results/data/generate/tiny"
    gen = cfg["generation"]
    n_train, n_test = gen["prompts"]["max_train_prompts"], gen["prompts"]["max_test_prompts"]
    emb = np.load(data / "minilm_mean/train_embeddings.npy", mmap_mode="r")
    assert emb.shape == (n_train, gen["sampling"]["k_train"], 384)  # all-MiniLM-L6-v2
    assert np.load(data / "test_rewards.npy").shape == (n_test, gen["sampling"]["k_test"])
    samples = [json.loads(line) for line in (data / "test_samples.jsonl").open()]
    assert len(samples) == n_test
    assert all(len(s["responses"]) == gen["sampling"]["k_test"] for s in samples)
    assert (tmp_path / "results/generate/tiny/sft/adapter/adapter_config.json").is_file()
    assert (tmp_path / "results/validation_results.json").is_file()
    bundle = json.loads((tmp_path / "results/reward_model/config.json").read_text())
    assert bundle["embedder"]["name"] == "minilm" and not bundle["embedder"]["bundled"]
    assert bundle["input_dim"] == 384


@pytest.mark.parametrize(
    "preset",
    # paper_studies and the paper_sft_gpt4 overlay go over a preset (tested on their own)
    sorted(
        p
        for p in (ROOT / "config").glob("paper_*.yaml")
        if p.stem not in ("paper_studies", "paper_sft_gpt4")
    ),
    ids=lambda p: p.stem,
)
def test_paper_presets_validate_and_plan_the_cluster_dag(tmp_path, preset):
    import yaml
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load(preset.read_text()))  # as --configfile merges it
    proc = run_snakemake(tmp_path, cfg, "-n")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert "build_tiny_models" not in jobs  # real checkpoints come from the hub
    assert jobs["sample_shard"] == 2 * 5  # the paper's five shards per split
    assert {"sft", "annotate_golden", "embed_responses", "validate_variants"} <= set(jobs)


def test_paper_studies_preset_plans_one_job_group_per_point(tmp_path):
    """config/paper_studies.yaml on header-complete stand-ins of the release (sparse
    zeros of the release's train size, so every n_sample fits): 720 points of steps
    5-8, one import per release file pair and split, one study table."""
    import yaml
    from snakemake.utils import update_config

    from embrm.data.importer import release_files

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((ROOT / "config/paper_studies.yaml").read_text()))
    cfg["data"]["import"]["dir"] = str(tmp_path / "release")
    (tmp_path / "release").mkdir()
    study = cfg["studies"]["paper_grid"]
    shapes = {"train": (10, 10_000), "test": (500, 40)}
    for task in study["experiments"].values():
        for embed in study["grid"]["data.import.embed_model"]:
            imp = {**cfg["data"]["import"], "embed_model": embed}
            imp.update({k.split(".")[-1]: v for k, v in task.items() if k != "task"})
            for split, (k, n) in shapes.items():
                emb, rew = release_files(imp, split)
                for path, shape in ((emb, (k, n, 8)), (rew, (k, n))):
                    np.lib.format.open_memmap(path, "w+", np.float32, shape).flush()
    proc = run_snakemake(tmp_path, cfg, "-n", "study_paper_grid", "--quiet", "rules")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    points = 2 * 3 * 4 * 5 * 2 * 3  # tasks x embedders x quality x n_sample x objective x seeds
    steps = ("train_orm", "evaluate_orm", "calibrate_teacher", "distill_student")
    assert all(jobs[step] == points for step in steps), jobs
    assert jobs["validate_variants"] == points
    assert jobs["import_release"] == 2 * 3 * 2  # (task, embedder) x split
    assert jobs["study_paper_grid"] == 1
