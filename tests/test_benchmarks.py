"""Standard benchmarks (RewardBench v1 and 2): known-answer scores worked out by hand
from small files in each layout, bad inputs, and the heads' intervals."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
from benchmark_files import scores, v1_records, v2_records, write
from test_preference_pairs import pairs_config

from embrm.data.layout import DataVariants
from embrm.evaluate.benchmarks.layouts import read_benchmark
from embrm.evaluate.benchmarks.rewardbench import item_outcomes, summarize
from embrm.evaluate.benchmarks.scores import score_heads
from embrm.evaluate.benchmarks.steps import packed_rows, unpacked
from embrm.generation import sharded
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json
from embrm.serve.cli import main as cli_main
from embrm.workflow.config import check_config

from conftest import run_snakemake

MEMBERS = [f"member_{m}" for m in range(3)]  # pairs_config's ensemble


def summary(tmp_path, layout):
    items = read_benchmark(str(write(tmp_path / f"{layout}.jsonl", layout)), layout)
    return summarize(item_outcomes(items, scores(layout), layout), layout)


def test_v1_known_answer(tmp_path):
    s = summary(tmp_path, "v1")
    assert s["subsets"] == {
        "alpacaeval-easy": 0.5,
        "mt-bench-hard": 0.0,  # a tie counts as wrong
        "math-prm": 1.0,
        "hep-python": 0.0,
        "refusals-dangerous": 1.0,
        "anthropic_helpful": 0.5,
        "shp": 1.0,
    }
    # Reasoning: math-prm weighs 984, hep-python 164: 984 / 1148 = 6/7
    assert s["sections"] == pytest.approx(
        {"Chat": 0.5, "Chat Hard": 0.0, "Safety": 1.0, "Reasoning": 6 / 7, "Prior Sets": 0.75}
    )
    # sections weigh 2, the prior sets 1: (2 (0.5 + 0 + 1 + 6/7) + 0.75) / 9 = 17/28
    assert s["overall"] == pytest.approx(17 / 28)
    assert s["unmapped_subsets"] == []


def test_v2_known_answer(tmp_path):
    s = summary(tmp_path, "v2")
    # Ties: ref accuracy 1/2, tied accuracy 1, correctness preferred 1/2 (gap 1 < spread
    # 2; gap 3 > spread 0), hard 0 (min gaps 1 and -1), margin mean(tanh(1/2 - 1), -1)
    ties = 0.3 * 1 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0 + 0.01 * (math.tanh(-0.5) - 1) / 2
    assert s["subsets"] == pytest.approx({"Factuality": 0.75, "Math": 0.0, "Ties": ties})
    assert s["overall"] == pytest.approx((0.75 + 0.0 + ties) / 3)
    assert "sections" not in s


def test_heads_members_and_conservative(tmp_path):
    """Members score on their own; mean - 1 std turns the item whose chosen response the
    members disagree on into a loss."""
    items = read_benchmark(str(write(tmp_path / "b.jsonl", "v1", v1_records()[:1])), "v1")
    member_scores = np.array([[3.0, 1.0], [1.5, 1.5]])  # (chosen, rejected) x 2 members
    out = score_heads(items, member_scores, layout="v1", lambdas=(1.0,), bootstrap=20, seed=0)
    assert out["member_0"]["overall"] == 1.0
    assert out["member_1"]["overall"] == 0.0
    assert out["mean"]["overall"] == 1.0  # 2 > 1.5
    assert out["conservative_1"]["overall"] == 0.0  # 2 - 1 < 1.5
    assert out["mean"]["ci95"]["overall"] == [1.0, 1.0]


def test_interval_brackets_the_score(tmp_path):
    items = read_benchmark(str(write(tmp_path / "v1.jsonl", "v1")), "v1")
    out = score_heads(items, scores("v1")[:, None], layout="v1", bootstrap=200, seed=1)["mean"]
    lo, hi = out["ci95"]["overall"]
    assert lo < out["overall"] < hi
    assert out["ci95"]["subset:math-prm"] == [1.0, 1.0]  # one right item resamples to itself
    assert out["ci95"]["subset:alpacaeval-easy"] == [0.0, 1.0]


@pytest.mark.parametrize(
    ("layout", "change", "message"),
    [
        ("v1", lambda r: r.pop("subset"), "no field 'subset'"),
        ("v2", lambda r: r.update(chosen="one string"), "non-empty list of strings"),
        ("v2", lambda r: r.update(num_correct=3), "num_correct is 3"),
    ],
)
def test_bad_record_named(tmp_path, layout, change, message):
    records = v1_records() if layout == "v1" else v2_records()
    change(records[1])
    path = write(tmp_path / "bad.jsonl", layout, records)
    with pytest.raises(InputError, match=f"record 1: .*{message}"):
        read_benchmark(str(path), layout)


def test_completions_packed_two_to_a_row_unpack_to_the_items(tmp_path):
    items = read_benchmark(str(write(tmp_path / "v2.jsonl", "v2")), "v2")
    rows = packed_rows(items)
    assert [len(r["responses"]) for r in rows] == [2] * 14  # 4,4,4,3,5,2,3 completions
    back, take = unpacked(rows)
    assert back == items
    flat = np.array([x for r in rows for x in r["responses"]], dtype=object)
    assert list(flat[take]) == [c for it in items for c in it.completions]


def test_gather_skips_a_shard_dealt_no_batch(tmp_path):
    """A tiny benchmark is one batch: the other shards are empty, and their values have
    no feature axis (as ``sharded.run_batches`` writes them)."""
    values = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    full, empty = tmp_path / "s0.npz", tmp_path / "s1.npz"
    np.savez(full, index=np.array([3, 0, 2, 1]), values=values.reshape(4, 3)[[3, 0, 2, 1]],
             shape=np.array([2, 2]))  # fmt: skip
    np.savez(empty, index=np.empty(0, np.int64), values=np.empty(0, np.float32),
             shape=np.array([2, 2]))  # fmt: skip
    sharded.gather(shard_files=[empty, full], out_file=tmp_path / "out.npy")
    assert np.array_equal(np.load(tmp_path / "out.npy"), values)


def test_bad_ties_id(tmp_path):
    records = v2_records()
    records[3]["id"] = "reference-1"
    with pytest.raises(InputError, match="'reference-1'.*'ref:<prompt id>'"):
        read_benchmark(str(write(tmp_path / "b.jsonl", "v2", records)), "v2")


def test_scores_must_match_completions(tmp_path):
    items = read_benchmark(str(write(tmp_path / "v1.jsonl", "v1")), "v1")
    with pytest.raises(InputError, match=r"shape \(17,\); the 9 items hold 18 completions"):
        item_outcomes(items, scores("v1")[:-1], "v1")


def test_cli_benchmark_checks_its_input_before_loading_a_bundle(tmp_path):
    bad = v2_records()
    bad[0]["rejected"] = []
    path = write(tmp_path / "bad.jsonl", "v2", bad)
    for args, message in (
        (["--benchmark", str(path)], "--benchmark needs --layout"),
        (["--benchmark", str(path), "--layout", "v2"], "record 0: field 'rejected'"),
    ):
        with pytest.raises(SystemExit, match=message):
            cli_main(["score", str(tmp_path / "no-bundle"), *args])


def test_hub_id_offline_names_id_and_local_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError, match="embrm-tests/no-such-benchmark.*local file"):
        read_benchmark("embrm-tests/no-such-benchmark", "v2")


@pytest.mark.workflow
def test_train_on_hh_rlhf_score_on_both_layouts_and_a_loss_study(tmp_path):
    """One real run: an ensemble trained on HH-RLHF pairs scores a v1 and a v2 file
    (embedded by MiniLM in 3 shards, two of them empty), and a study over losses reports
    the benchmark beside its pair accuracy."""
    cfg = pairs_config()
    cfg["generation"]["embedding"]["shards"] = 3
    cfg["evaluation"]["conservative_lambdas"] = [1.0]
    cfg["evaluation"]["benchmarks"] = {
        "rb1": {"source": str(write(tmp_path / "v1.jsonl", "v1")), "layout": "v1"},
        "rb2": {"source": str(write(tmp_path / "v2.jsonl", "v2")), "layout": "v2"},
    }
    cfg["studies"] = {"loss": {"grid": {"orm.objective": ["bt", "clf"]}, "seeds": [0]}}
    run_snakemake(tmp_path, cfg, "all", "study_loss")
    data = tmp_path / "results" / "data" / "benchmark_sets"
    # 9 v1 items: 9 rows; 7 v2 items of 4, 4, 4, 3, 5, 2, 3 completions: 2+2+2+2+3+1+2 rows
    assert np.load(data / "rb1" / "minilm_mean" / "test_embeddings.npy").shape == (9, 2, 384)
    assert np.load(data / "rb2" / "minilm_mean" / "test_embeddings.npy").shape == (14, 2, 384)
    out = tmp_path / "results" / "benchmark_eval"
    v1, v2 = read_json(out / "rb1.json"), read_json(out / "rb2.json")
    assert list(v1["heads"]) == ["mean", "min", "first", "conservative_1", *MEMBERS]
    assert set(v1["heads"]["mean"]["sections"]) == {
        "Chat",
        "Chat Hard",
        "Safety",
        "Reasoning",
        "Prior Sets",
    }
    assert set(v2["heads"]["mean"]["subsets"]) == {"Factuality", "Math", "Ties"}
    for head in (*v1["heads"].values(), *v2["heads"].values()):
        lo, hi = head["ci95"]["overall"]
        assert 0 <= lo <= head["overall"] <= hi <= 1.01  # Ties' margin term adds up to 0.01
    assert "| conservative_1 |" in (out / "rb1.md").read_text()
    assert (out / "rb2.png").stat().st_size > 1000
    table = pd.read_csv(tmp_path / "results" / "studies" / "loss" / "table.csv")
    assert sorted(table["orm.objective"]) == ["bt", "clf"]
    assert {"benchmark_rb1", "benchmark_rb2", "test_pair_acc"} <= set(table.columns)
    assert table["benchmark_rb1"].between(0, 1).all()


def test_benchmarks_need_embedded_text_and_one_setting_per_name():
    cfg = pairs_config()
    cfg["data"]["source"] = "synthetic"
    cfg["evaluation"]["benchmarks"] = {"rb": {"source": "x.jsonl", "layout": "v1"}}
    with pytest.raises(InputError, match="evaluation.benchmarks.*must be generate or pairs"):
        check_config(cfg)
    main = pairs_config()
    main["evaluation"]["benchmarks"] = {"rb": {"source": "a.jsonl", "layout": "v1"}}
    point = copy.deepcopy(main)
    point["evaluation"]["benchmarks"]["rb"]["layout"] = "v2"
    with pytest.raises(InputError, match="evaluation.benchmarks.rb: .* rename one"):
        DataVariants(main, [point])
