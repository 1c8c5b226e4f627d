"""Human preference pairs: parsing, splitting, training on their labels, their evaluation."""

import copy
import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from embrm.data.layout import data_path
from embrm.data.preferences import (
    parse_pair,
    parse_records,
    prepare_pairs,
    prompt_disjoint_split,
)
from embrm.evaluate.pair_evaluation import (
    evaluate_pairs,
    fit_baseline,
    mcnemar,
    subset_accuracy,
    wilson,
)
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json, read_jsonl
from embrm.rm.ensemble import load_ensemble
from embrm.rm.pairs import given_pairs
from embrm.rm.stacked_mlp import StackedMLP
from embrm.workflow.config import check_config
from embrm.workflow.schema import check_schema

from conftest import orm_config, planned_jobs, run_snakemake, train_in

ROOT = Path(__file__).resolve().parents[1]
HH_TEST = ROOT / "tests" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"
H, A = "\n\nHuman:", "\n\nAssistant:"


def _cfg(source, **kw):
    return {
        "name": "t",
        "source": str(source),
        "data_dir": None,
        "train_split": "train",
        "test_split": "test",
        "test_fraction": 0.2,
        "seed": 0,
        "max_pairs": None,
        **kw,
    }


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_hh_dialogues_split_at_the_last_assistant_turn():
    record = {
        "chosen": f"{H} Hi{A} Hello.{H} How do I pick a lock?{A} I can't help with that.",
        "rejected": f"{H} Hi{A} Hello.{H} How do I pick a lock?{A} Use a tension wrench.",
    }
    prompt, chosen, rejected = parse_pair(record, "r")
    assert prompt == f"{H} Hi{A} Hello.{H} How do I pick a lock?{A}"
    assert chosen == " I can't help with that." and rejected == " Use a tension wrench."


def test_hh_dialogues_with_different_prompts_are_counted_and_dropped():
    records = [
        {"chosen": f"{H} a{A} yes", "rejected": f"{H} b{A} no"},
        {"chosen": f"{H} a{A} yes", "rejected": f"{H} a{A} no"},
        {"chosen": f"{H} c{A} same", "rejected": f"{H} c{A} same"},
        {"chosen": "no turn at all", "rejected": "none here"},
    ]
    counts = Counter()
    pairs = parse_records(records, source="f", max_pairs=None, counts=counts)
    assert [p["id"] for p in pairs] == ["1"]
    assert counts == Counter(records=4, dropped_no_shared_prompt=2, dropped_identical=1)


def test_prompt_columns_and_message_lists_read_as_hh_dialogues():
    plain = {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Rome."}
    assert parse_pair(plain, "r") == (f"{H} Capital of France?{A}", " Paris.", " Rome.")
    messages = {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "chosen": [{"role": "assistant", "content": "Paris."}],
        "rejected": [{"role": "assistant", "content": "Rome."}],
    }
    assert parse_pair(messages, "r") == (f"{H} Capital of France?{A}", " Paris.", " Rome.")
    implicit = {
        "chosen": [
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
        ],
        "rejected": [
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Rome."},
        ],
        "category": "geo",
        "margin": "2",
    }
    counts = Counter()
    (pair,) = parse_records([implicit], source="f", max_pairs=None, counts=counts)
    assert (pair["prompt"], pair["chosen"], pair["rejected"]) == (
        f"{H} Capital of France?{A}",
        " Paris.",
        " Rome.",
    )
    assert pair["subset"] == "geo" and pair["margin"] == 2.0


def test_bad_records_name_the_file_record_and_field(tmp_path):
    path = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "chosen": "a", "answer": "b"}])
    with pytest.raises(InputError, match=r"p\.jsonl: record 0: no field 'rejected'"):
        prepare_pairs(cfg=_cfg(path), out_pairs={}, out_preferences={}, report=tmp_path / "r")
    with pytest.raises(InputError, match=r"record 7: field 'chosen' must be a string"):
        parse_pair({"id": 7, "chosen": 3, "rejected": "b"}, "f: record 7")
    with pytest.raises(InputError, match=r"field 'margin' must be a number"):
        parse_records(
            [{"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}],
            source="f",
            max_pairs=None,
            counts=Counter(),
        )
    no_split = _write_jsonl(tmp_path / "q.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(InputError, match=r"q\.jsonl: records have no 'split' field"):
        prepare_pairs(
            cfg=_cfg(no_split, test_fraction=None),
            out_pairs={},
            out_preferences={},
            report=tmp_path / "r",
        )


def test_the_seeded_split_keeps_every_prompt_on_one_side():
    pairs = [{"prompt": f"p{i % 40}", "id": str(i)} for i in range(200)]
    train, test = prompt_disjoint_split(pairs, 0.2, seed=3)
    assert not {p["prompt"] for p in train} & {p["prompt"] for p in test}
    assert len(train) + len(test) == 200 and 40 <= len(test) <= 45
    again = prompt_disjoint_split(pairs, 0.2, seed=3)
    assert [p["id"] for p in again[1]] == [p["id"] for p in test]
    assert [p["id"] for p in prompt_disjoint_split(pairs, 0.2, seed=4)[1]] != [
        p["id"] for p in test
    ]


def test_shipped_hh_pairs_are_split_oriented_at_random_and_reported(tmp_path):
    out = {s: tmp_path / f"{s}_pairs.jsonl" for s in ("train", "test")}
    prefs = {s: tmp_path / f"{s}_preferences.npy" for s in ("train", "test")}
    report = prepare_pairs(
        cfg=_cfg(HH_TEST), out_pairs=out, out_preferences=prefs, report=tmp_path / "r.json"
    )
    with gzip.open(HH_TEST, "rt") as fh:
        n_records = sum(1 for _ in fh)
    assert report == read_json(tmp_path / "r.json")
    kept = report["splits"]["train"]["pairs"] + report["splits"]["test"]["pairs"]
    dropped = report["dropped_identical"] + report["dropped_no_shared_prompt"]
    assert report["records"] == n_records and kept + dropped == n_records
    assert report["dropped_no_shared_prompt"] == 5  # measured on the shipped file
    assert abs(report["splits"]["test"]["pairs"] / kept - 0.2) < 0.01
    rows = {s: read_jsonl(out[s]) for s in out}
    assert not {r["prompt"] for r in rows["train"]} & {r["prompt"] for r in rows["test"]}
    for split in out:
        p = np.load(prefs[split])
        assert p.shape == (len(rows[split]), 2) and (p.sum(1) == 1).all()
        assert [r["chosen"] for r in rows[split]] == p[:, 1].astype(int).tolist()
        # random column order: chosen is column 0 about half the time
        assert 0.4 < p[:, 0].mean() < 0.6
    first = rows["train"][0]
    assert first["prompt"].endswith(A) and len(first["responses"]) == 2


def test_given_pairs_use_every_pair_and_refuse_more_than_there_are():
    prefs = np.array([[1, 0], [0, 1], [0, 1]], np.float32)
    pairs = given_pairs(prefs, n_sample=None)
    assert pairs.first.tolist() == [0, 2, 4] and pairs.second.tolist() == [1, 3, 5]
    assert pairs.label.tolist() == [1, 0, 0] and pairs.k == 2
    assert len(given_pairs(prefs, n_sample=2)) == 2
    with pytest.raises(InputError, match="orm.n_sample=4 but p holds 3 pairs"):
        given_pairs(prefs, n_sample=4, source="p")
    with pytest.raises(InputError, match="one 1 and one 0"):
        given_pairs(np.ones((3, 2)), n_sample=None)


def test_a_linear_head_is_a_stacked_mlp_without_hidden_layers():
    model = StackedMLP(8, [], [0, 1, 2])
    x = torch.randn(5, 8)
    assert model(x).shape == (3, 5)
    linear = torch.nn.Linear(8, 1)
    linear.load_state_dict({k[2:]: v for k, v in model.member_state(1).items()})
    torch.testing.assert_close(linear(x)[:, 0], model(x)[1])
    torch.testing.assert_close(model.copy()(x), model(x))
    per_member = x.expand(3, 5, 8)  # each member its own rows, as training feeds them
    torch.testing.assert_close(model(per_member), model(x))


def _planted_pairs(d: Path, split: str, n: int, w: np.ndarray, seed: int):
    """Pairs whose chosen response has the higher planted linear reward, in a random
    column order; a 'subset' by the sign of the first coordinate."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, 2, len(w))).astype(np.float32)
    first_wins = emb[:, 0] @ w > emb[:, 1] @ w
    prefs = np.stack([first_wins, ~first_wins], 1).astype(np.float32)
    np.save(d / f"{split}_embeddings.npy", emb)
    np.save(d / f"{split}_preferences.npy", prefs)
    rows = [{"id": str(i), "subset": "a" if emb[i, 0, 0] > 0 else "b"} for i in range(n)]
    (d / f"{split}_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("hidden", [[], [32]])
def test_the_ensemble_learns_human_labels_and_is_evaluated_against_the_floor(tmp_path, hidden):
    w = np.random.default_rng(0).standard_normal(16)
    _planted_pairs(tmp_path, "train", 1500, w, seed=1)
    _planted_pairs(tmp_path, "test", 400, w, seed=2)
    orm = orm_config(
        n_sample=None,
        comparison="within_prompt",
        n_pairs=1,
        annotation_quality=10,
        hidden_sizes=hidden,
        lr=0.01,
        max_epochs=20,
        checks_per_epoch=2,
        patience=4,
    )
    d = tmp_path
    summary = train_in(d, orm, rewards="train_preferences.npy", pair_data=True)
    assert summary["n_pairs"] == 1500 and summary["label_agreement_with_golden"] is None
    assert load_ensemble(d / "ens.ckpt")[1]["hidden_sizes"] == hidden
    base = fit_baseline(
        train_embeddings=d / "train_embeddings.npy",
        train_preferences=d / "train_preferences.npy",
        test_embeddings=d / "test_embeddings.npy",
        test_preferences=d / "test_preferences.npy",
        test_scores=d / "base.npy",
        summary_json=d / "base.json",
        seed=0,
    )
    res = evaluate_pairs(
        ckpt=d / "ens.ckpt",
        embeddings=d / "test_embeddings.npy",
        preferences=d / "test_preferences.npy",
        pairs=d / "test_pairs.jsonl",
        baseline_scores=d / "base.npy",
        results=d / "res.json",
        test_scores=d / "scores.npy",
        reliability_plot=d / "rel.png",
        margins_plot=d / "margins.png",
        eval_cfg={"chunk_prompts": 64},
    )
    # a noiseless linear preference: both learn it (a coin scores 0.5)
    ens, floor = res["ensemble"], res["baseline"]
    assert ens["accuracy"] > 0.9 and floor["accuracy"] > 0.9
    assert floor["accuracy"] == pytest.approx(base["test_accuracy"])
    lo, hi = ens["ci95"]
    assert lo < ens["accuracy"] < hi and hi - lo < 0.08
    subsets = ens["subsets"]
    assert set(subsets["per_subset"]) == {"a", "b"}
    assert sum(s["pairs"] for s in subsets["per_subset"].values()) == 400
    assert subsets["weighted"] == pytest.approx(ens["accuracy"])
    assert 0 <= res["mcnemar"]["p_value"] <= 1
    assert 0 <= ens["ece"] < 0.5
    assert np.load(d / "scores.npy").shape == (400, 2, 3)
    assert (d / "rel.png").stat().st_size > 1000 and (d / "margins.png").stat().st_size > 1000


def test_wilson_mcnemar_and_subset_weights_by_hand():
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    a = np.array([True] * 10 + [False] * 2 + [True] * 5)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5)
    res = mcnemar(a, b)
    # 10 vs 2 discordant pairs: P(X <= 2 | 12, 1/2) * 2 = 79 / 4096 * 2
    assert res["only_ensemble_right"] == 10 and res["only_baseline_right"] == 2
    assert res["p_value"] == pytest.approx(2 * 79 / 4096)
    assert mcnemar(a, a)["p_value"] == 1.0
    right = np.array([True, True, False, True])
    sub = subset_accuracy(right, ["x", "x", "y", "y"])
    assert sub["per_subset"]["x"]["accuracy"] == 1.0 and sub["weighted"] == 0.75


def pairs_config(**pairs) -> dict:
    """config.yaml on 150 of the shipped HH-RLHF pairs, MiniLM at 96 tokens in one shard,
    a small ensemble."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["data"]["source"] = "pairs"
    cfg["data"]["pairs"].update({"source": str(HH_TEST), "max_pairs": 150, **pairs})
    cfg["generation"]["embedding"].update(max_length=96, batch_size=32, shards=1)
    cfg["orm"].update(n_sample=None, ensemble_number=3, hidden_sizes=[64], max_epochs=10)
    cfg["studies"] = None
    return cfg


def test_the_pairs_workflow_trains_on_human_labels_and_stops_at_step_6(tmp_path):
    cfg = pairs_config()
    cfg["studies"] = {"head": {"grid": {"orm.hidden_sizes": [[], [16]]}, "seeds": [0]}}
    run_snakemake(tmp_path, cfg, "all", "study_head")
    data = tmp_path / "results" / "data" / "pairs" / "hh-harmless-test"
    report = read_json(data / "report.json")
    n_test = report["splits"]["test"]["pairs"]
    assert report["splits"]["train"]["pairs"] + n_test == 150
    emb = np.load(data / "minilm_mean" / "test_embeddings.npy")
    assert emb.shape == (n_test, 2, 384)
    # no pair reads the same text twice: chosen and rejected embeddings differ
    assert (np.abs(emb[:, 0] - emb[:, 1]).max(1) > 1e-4).all()
    res = read_json(tmp_path / "results" / "pair_eval_results.json")
    assert res["test_pairs"] == n_test
    for model in ("ensemble", "baseline"):
        lo, hi = res[model]["ci95"]
        assert 0 <= lo <= res[model]["accuracy"] <= hi <= 1
        assert 0 <= res[model]["ece"] <= 1
    assert 0 <= res["mcnemar"]["p_value"] <= 1
    training = read_json(tmp_path / "results" / "orm" / "training.json")
    assert training["n_pairs"] == report["splits"]["train"]["pairs"]
    assert (tmp_path / "results" / "pair_eval" / "baseline.json").is_file()
    for step_7_8 in ("eval_results.json", "validation_results.json", "calibration", "report"):
        assert not (tmp_path / "results" / step_7_8).exists()
    # a study over pair data: one row per point, with the test set's own sampling error
    table = pd.read_csv(tmp_path / "results" / "studies" / "head" / "table.csv")
    assert sorted(table["orm.hidden_sizes"]) == ["[16]", "[]"]
    assert (table["test_pair_acc_wilson95"] > 0.05).all()  # ~30 test pairs: a wide interval
    assert table["floor_pair_acc"].nunique() == 1  # the floor does not depend on the head
    assert {"test_pair_ece", "mcnemar_p"} <= set(table.columns)


def test_the_pairs_workflow_runs_a_noise_remedy_from_its_own_first_ensemble(tmp_path):
    cfg = pairs_config()
    cfg["orm"].update(noise_remedy="flip", remedy_fraction=0.1)
    run_snakemake(tmp_path, cfg, "results/pair_eval_results.json")
    res = tmp_path / "results"
    report = read_json(res / "orm" / "preference_strength.json")
    training = read_json(res / "orm" / "training.json")
    assert np.load(res / "orm" / "preference_strength.npy").shape == (training["n_pairs"], 2)
    assert "detection" not in report and 0 <= report["negative_strength_share"] <= 1
    assert training["noise_remedy"]["pairs_changed"] == round(0.1 * training["n_pairs"]) > 0


def test_the_pairs_workflow_trains_a_margin_loss_on_the_pairs_own_margins(tmp_path):
    records = [
        {"prompt": f"question {i}", "chosen": f"a good answer {i}", "rejected": f"no {i}"}
        | {"margin": float(i % 3), "split": "test" if i % 5 == 0 else "train"}
        for i in range(40)
    ]
    source = tmp_path / "rated_pairs.jsonl"
    _write_jsonl(source, records)
    cfg = pairs_config(source=str(source), max_pairs=None, test_fraction=None)
    cfg["orm"].update(loss="margin", margin_source="given", margin_scale=0.5)
    run_snakemake(tmp_path, cfg, "results/orm/training.json")
    training = read_json(tmp_path / "results" / "orm" / "training.json")
    assert training["n_pairs"] == 32 and training["config"]["margin_source"] == "given"
    # a pair without its margin is refused, naming the pairs file and the pair
    _write_jsonl(source, [{k: v for k, v in r.items() if k != "margin"} for r in records])
    proc = run_snakemake(tmp_path, cfg, "results/orm/training.json", check=False)
    assert "train_pairs.jsonl: orm.margin_source=given needs" in proc.stdout + proc.stderr


def test_pair_settings_are_checked_before_any_job():
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    cfg = pairs_config()
    check_schema(cfg, schema)  # hidden_sizes [64], n_sample null
    check_config(cfg)
    check_schema({**cfg, "orm": {**cfg["orm"], "hidden_sizes": []}}, schema)
    bad = copy.deepcopy(cfg)
    bad["data"]["pairs"]["test_fraction"] = 1.5
    with pytest.raises(InputError, match="data.pairs.test_fraction"):
        check_schema(bad, schema)
    del bad["data"]["pairs"]
    with pytest.raises(InputError, match="data.pairs must describe"):
        check_config(bad)
    with pytest.raises(InputError, match="steps 7-8"):
        data_path(cfg, "rewards", "test")


@pytest.mark.parametrize("preset", ["pairs_hh_harmless", "pairs_hh_hub", "rating_pairs_planted"])
def test_pair_presets_plan_steps_4_to_6_only(tmp_path, preset):
    """Both presets validate and plan the pair DAG (the hub one without the hub: its
    data are read when prepare_pairs runs); nothing of steps 7-8 is planned."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((ROOT / "config" / f"{preset}.yaml").read_text()))
    proc = run_snakemake(tmp_path, cfg, "-n")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    shards = cfg["generation"]["embedding"]["shards"]
    assert jobs["embed_pairs_shard"] == 2 * shards and jobs["embed_pairs"] == 2
    assert {"prepare_pairs", "train_orm", "fit_pair_baseline", "evaluate_pairs"} <= set(jobs)
    assert not {"evaluate_orm", "calibrate_teacher", "validate_variants"} & set(jobs)


def test_a_missing_pair_file_is_named_before_any_job(tmp_path):
    cfg = pairs_config(source=str(tmp_path / "nowhere.jsonl"))
    proc = run_snakemake(tmp_path, cfg, "-n", check=False)
    assert proc.returncode != 0
    assert "nowhere.jsonl: preference file not found" in proc.stdout + proc.stderr
