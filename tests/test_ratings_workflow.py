"""Rated responses in the workflow (data.source: ratings): the multi-objective steps on
planted data with known answers, a real Snakemake run on the shipped planted texts, and
the parts of the run that are refused for ratings before any job."""

import copy
import json
from collections import Counter

import httpx
import numpy as np
import pytest
import yaml
from snakemake.utils import update_config

from embrm import RewardModel
from embrm.data.layout import DataVariants, data_path
from embrm.data.planted_rating_texts import planted_rating_records
from embrm.data.planted_ratings import planted_ratings
from embrm.data.preferences import load_records, parse_records
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json, read_jsonl
from embrm.multi_objective.heads import load_heads
from embrm.multi_objective.pair_source import prepare_rating_pairs
from embrm.multi_objective.steps import evaluate_multi_objective, fit_multi_objective
from embrm.workflow.config import check_config
from embrm.workflow.schema import check_schema

from conftest import ROOT, embrm_serve, planned_jobs, run_snakemake

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
NAMES = ["a0", "a1", "a2", "length"]


def ratings_config(**multi_objective) -> dict:
    """config.yaml with the planted-ratings preset and a shorter gating fit."""
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((ROOT / "config" / "ratings_planted.yaml").read_text()))
    cfg["multi_objective"]["gating"].update(steps=400, batch_size=128)
    cfg["multi_objective"].update(multi_objective)
    cfg["generation"]["embedding"].update(shards=1, batch_size=64)
    return cfg


def write_planted_split(folder, split, n, stream):
    """A split of :mod:`embrm.data.planted_ratings` (D = 16, J = 4, K = 4) in the files of
    prepare_ratings and step 4: column 0 the prompt's context, column 1 the response."""
    data = planted_ratings(n=n, k=4, dim=16, n_attributes=4, seed=3, stream=stream)
    rows = [
        {"prompt": f"prompt {i}", "preference": float(data.rewards[i, k])}
        for i in range(n)
        for k in range(4)
    ]
    (folder / f"{split}_ratings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    np.save(folder / f"{split}_attributes.npy", data.ratings.reshape(n * 4, 4))
    context = np.repeat(data.prompt_embeddings, 4, axis=0)
    emb = np.stack([context, data.embeddings.reshape(n * 4, 16)], axis=1)
    np.save(folder / f"{split}_embeddings.npy", emb)
    return {kind: str(folder / f"{split}_{kind}.{ext}") for kind, ext in FILES}, data


FILES = (("ratings", "jsonl"), ("attributes", "npy"), ("embeddings", "npy"))


def test_the_steps_recover_the_planted_heads_and_gating(tmp_path):
    cfg = ratings_config()
    ratings_cfg = {**cfg["data"]["ratings"], "attributes": NAMES, "pair_recipe": "all_pairs"}
    mo_cfg = {**cfg["multi_objective"], "gating": {**cfg["multi_objective"]["gating"]}}
    mo_cfg["gating"].update(steps=1500, batch_size=512)
    train, planted = write_planted_split(tmp_path, "train", 600, stream=0)
    test, _ = write_planted_split(tmp_path, "test", 150, stream=1)
    tensors, settings = tmp_path / "mo" / "heads.safetensors", tmp_path / "mo" / "heads.json"
    run = dict(ratings_cfg=ratings_cfg, mo_cfg=mo_cfg, seed=0)
    report = fit_multi_objective(**train, tensors=str(tensors), settings=str(settings), **run)
    assert report["pairs"]["pairs"] == 600 * 6  # every pair of 4 distinct rewards
    heads = load_heads(tmp_path / "mo")
    rel = np.linalg.norm(heads.weight - planted.weight) / np.linalg.norm(planted.weight)
    assert rel < 0.1
    res = evaluate_multi_objective(
        **test, tensors=str(tensors), results=str(tmp_path / "eval.json"), **run
    )
    assert read_json(tmp_path / "eval.json") == json.loads(json.dumps(res))
    assert min(m["spearman"] for m in res["attributes"].values()) > 0.9
    assert res["pair_accuracy"] > 0.93 > res["uniform_pair_accuracy"]
    within = res["within_prompt"]
    assert (within["prompts"], within["k"]) == (150, 4)
    assert within["best_of_n"]["4"]["quantile"] > 0.9
    # a file that does not fit the others is named before any fitting
    np.save(tmp_path / "train_attributes.npy", np.zeros((10, 4), np.float32))
    with pytest.raises(InputError, match="train_attributes.npy: shape \\(10, 4\\), but"):
        fit_multi_objective(**train, tensors=str(tensors), settings=str(settings), **run)


def test_the_shipped_planted_texts_are_the_generators_output():
    shipped = read_jsonl(ROOT / "tests" / "data" / "planted-ratings.jsonl")
    assert shipped == planted_rating_records(k=4, seed=0)
    assert len({r["prompt"] for r in shipped}) == 60


@pytest.mark.workflow
def test_the_ratings_workflow_fits_and_evaluates_the_heads_on_planted_texts(tmp_path):
    cfg = ratings_config()
    run_snakemake(tmp_path, cfg, "all")
    data = tmp_path / "results" / "data" / "ratings" / "planted"
    rows = read_jsonl(data / "test_ratings.jsonl")
    emb = np.load(data / "minilm_mean" / "test_embeddings.npy")
    assert emb.shape == (len(rows), 2, 384)
    # column 0 embeds the prompt alone: one vector per prompt, whatever the response
    prompts = [r["prompt"] for r in rows]
    same = [i for i in range(1, len(rows)) if prompts[i] == prompts[i - 1]]
    assert same and np.allclose(emb[same, 0], emb[[i - 1 for i in same], 0], atol=1e-5)
    assert not np.allclose(emb[same, 1], emb[[i - 1 for i in same], 1], atol=1e-3)
    res = read_json(tmp_path / "results" / "multi_objective" / "eval.json")
    assert res["responses"] == len(rows)
    assert min(m["spearman"] for m in res["attributes"].values()) > 0.8
    assert res["pair_accuracy"] > 0.9 and res["pair_accuracy"] > res["uniform_pair_accuracy"]
    # the planted gating: personal prompts weigh politeness, technical ones detail
    heads = load_heads(tmp_path / "results" / "multi_objective")
    _, weights = heads.score(emb[:, 1], emb[:, 0])
    personal = np.array(["feeling" in p for p in prompts])
    assert personal.any() and (~personal).any()
    assert weights[personal, 0].mean() > 0.65 and weights[~personal, 1].mean() > 0.65
    check_served_bundle(tmp_path, rows, emb, weights)
    # the ORM's steps need pairs or golden rewards: asked for, they are refused by name
    proc = run_snakemake(tmp_path, cfg, "results/orm/training.json", "-n", check=False)
    assert proc.returncode != 0
    assert "data.source: ratings runs prepare_ratings" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_the_ratings_preset_plans_the_multi_objective_steps_only(tmp_path):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    update_config(cfg, yaml.safe_load((ROOT / "config" / "ratings_planted.yaml").read_text()))
    jobs = planned_jobs((p := run_snakemake(tmp_path, cfg, "-n")).stdout + p.stderr)
    shards = cfg["generation"]["embedding"]["shards"]
    assert jobs == {
        "prepare_ratings": 1,
        "embed_ratings_shard": 2 * shards,
        "embed_ratings": 2,
        "fit_multi_objective": 1,
        "evaluate_multi_objective": 1,
        "multi_objective_model": 1,
        "all": 1,
    }


def test_what_ratings_cannot_run_is_refused_saying_what_runs():
    cfg = ratings_config()
    check_schema(cfg, SCHEMA)
    check_config(cfg)
    assert data_path(cfg, "embeddings", "test").endswith(
        "data/ratings/planted/minilm_mean/test_embeddings.npy"
    )
    with pytest.raises(InputError, match="have no rewards: steps 5-8 .* runs prepare_ratings"):
        data_path(cfg, "rewards", "train")
    for change, message in (
        ({"studies": {"s": {"grid": {"orm.lr": [0.1]}}}}, "studies: studies vary"),
        ({"active": {"enabled": True}}, "active.enabled: active learning"),
    ):
        with pytest.raises(InputError, match=f"config key {message}.*runs prepare_ratings"):
            check_config({**cfg, **change})
    bad = copy.deepcopy(cfg)
    bad["multi_objective"]["length_attribute"] = "verbosity"
    with pytest.raises(InputError, match="length_attribute='verbosity' is not one of"):
        check_config(bad)
    bad = copy.deepcopy(cfg)
    bad["data"]["ratings"]["pair_recipe"] = "best_vs_worst"
    with pytest.raises(InputError, match="data.ratings.pair_recipe"):
        check_schema(bad, SCHEMA)
    del bad["multi_objective"]
    with pytest.raises(InputError, match="multi_objective is needed for data.source=ratings"):
        check_config(bad)


def check_served_bundle(workdir, rows, emb, weights):
    """The run's multi-objective bundle, loaded and over HTTP, gives the heads' gated
    reward and each attribute's rating and weight in extra_logs."""
    bundle = workdir / "results" / "multi_objective" / "reward_model"
    heads = load_heads(workdir / "results" / "multi_objective")
    with pytest.raises(InputError, match="no ensemble spread"):
        RewardModel.from_pretrained(bundle, device="cpu", conservative=1.0)
    rm = RewardModel.from_pretrained(bundle, device="cpu")
    texts = [r["prompt"] + r["responses"][1] for r in rows[:6]]
    reward, extras = rm.rewards_and_spread(texts)
    # the server embeds the prompt part of each text itself: the run's own embeddings
    expected, _ = heads.score(emb[:6, 1], emb[:6, 0])
    np.testing.assert_allclose(reward, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(extras[:, 2:], weights[:6], atol=1e-4)
    with embrm_serve(bundle, workdir / "serve.log") as (url, _):
        payload = {"query": texts, "prompts": [r["prompt"] for r in rows[:6]]}
        reply = httpx.post(f"{url}/get_reward", json=payload, timeout=60)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        np.testing.assert_allclose(body["rewards"], expected, rtol=1e-4, atol=1e-4)
        logs = body["extra_logs"]
        assert set(logs) == {
            "politeness",
            "detail",
            "politeness_weight",
            "detail_weight",
            "split_at_prompt",
            "unrecognised_format",
        }
        ratings = heads.attribute_scores(emb[:6, 1])
        np.testing.assert_allclose(logs["politeness"], ratings[:, 0], atol=1e-4)
        np.testing.assert_allclose(logs["detail_weight"], weights[:6, 1], atol=1e-4)
        assert logs["split_at_prompt"] == [1.0] * 6
        assert all(0 <= s <= 1 for s in body["scores"])
        health = httpx.get(f"{url}/health", timeout=10).json()
        assert health["head"] == "gated"


HH_PAIRS = ROOT / "tests" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"


def hh_ratings(path, n_pairs):
    """The first ``n_pairs`` shipped HH-RLHF harmless pairs as rated responses: chosen
    rated harmless 1, rejected 0, and each response's real length in words."""
    records = load_records(str(HH_PAIRS), "train")
    pairs = parse_records(records, source=str(HH_PAIRS), max_pairs=n_pairs, counts=Counter())
    rows = [
        {"prompt": p["prompt"], "response": p[side], "harmless": int(side == "chosen")}
        | {"words": len(p[side].split())}
        for p in pairs
        for side in ("chosen", "rejected")
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.workflow
def test_a_real_data_check_on_the_shipped_hh_pairs(tmp_path):
    """Real text, measured in docs/multi_objective.md: the responses' real length is
    recovered from MiniLM embeddings (Spearman 0.48 on 160 test responses); the binary
    harmless rating of 640 train responses is not (test pair accuracy 0.51)."""
    cfg = ratings_config()
    cfg["data"]["ratings"].update(
        name="hh",
        source=str(hh_ratings(tmp_path / "hh_ratings.jsonl", 400)),
        attributes=["harmless", "words"],
        preference="harmless",
        pair_recipe="best_vs_random",
    )
    cfg["generation"]["embedding"].update(max_length=96)
    run_snakemake(tmp_path, cfg, "results/multi_objective/eval.json")
    res = read_json(tmp_path / "results" / "multi_objective" / "eval.json")
    assert res["pairs"]["pairs"] == res["prompts"]  # one chosen/rejected pair per prompt
    assert res["attributes"]["words"]["spearman"] > 0.3
    assert 0 <= res["pair_accuracy"] <= 1 and res["mean_weights"].keys() == {"harmless", "words"}


def rated_rows(prompt, ratings, texts=None):
    """Rows of a prepared ``{split}_ratings.jsonl`` for one prompt: preference values
    ``ratings``, responses ``texts`` (default: distinct ones)."""
    texts = texts or [f"answer {i} to {prompt}" for i in range(len(ratings))]
    return [
        {"id": f"{prompt}-{i}", "prompt": prompt, "responses": ["", t], "preference": r}
        | {"ratings": {"overall": r}}
        for i, (r, t) in enumerate(zip(ratings, texts))
    ]


def test_rated_responses_become_pairs_whose_margin_is_the_rating_gap(tmp_path):
    train = rated_rows("p0", [3.0, 1.0, 1.0]) + rated_rows("p1", [2.0, 2.0])
    train += rated_rows("p2", [5.0, 0.5], texts=["same words", "same words"])
    test = rated_rows("q0", [0.0, 4.0])
    files = {split: tmp_path / f"{split}_ratings.jsonl" for split in ("train", "test")}
    for split, rows in (("train", train), ("test", test)):
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"seed": 0, "max_pairs": None, "from_ratings": True}
    cfg["ratings"] = {"name": "r", "source": "r.jsonl", "preference": None}
    cfg["ratings"]["pair_recipe"] = "all_pairs"
    out = {
        kind: {split: str(tmp_path / f"{split}_{kind}.{ext}") for split in files}
        for kind, ext in (("pairs", "jsonl"), ("preferences", "npy"))
    }
    run = dict(ratings=files, out_pairs=out["pairs"], out_preferences=out["preferences"])
    report = prepare_rating_pairs(cfg=cfg, report=tmp_path / "report.json", **run)
    # p0: 3 > 1 twice, the 1-1 tie dropped; p1 is one tie; p2 contradicts itself
    assert (report["ties_dropped"], report["dropped_identical"]) == (2, 1)
    assert report["splits"]["train"]["pairs"] == 2 and report["splits"]["test"]["pairs"] == 1
    assert report["splits"]["train"]["margin"] == {"mean": 2.0, "min": 2.0, "max": 2.0}
    for split, rows in (("train", train), ("test", test)):
        by_text = {r["responses"][1]: r["preference"] for r in rows}
        prefs = np.load(out["preferences"][split])
        for row, pref in zip(read_jsonl(out["pairs"][split]), prefs):
            chosen, rejected = row["responses"][row["chosen"]], row["responses"][1 - row["chosen"]]
            assert pref[row["chosen"]] == 1
            assert row["margin"] == by_text[chosen] - by_text[rejected] > 0
    # a split without any differently rated responses gives no pair: named by its file
    files["test"].write_text(json.dumps(rated_rows("q0", [1.0, 1.0])[0]) + "\n")
    with pytest.raises(InputError, match="test_ratings.jsonl: the test split gives no pair"):
        prepare_rating_pairs(cfg=cfg, report=tmp_path / "report.json", **run)


def rating_pairs_config() -> dict:
    """The planted-ratings preset as the pairs of a small ORM ensemble with a margin loss
    on the rating gaps."""
    cfg = ratings_config()
    cfg["data"]["source"] = "pairs"
    cfg["data"]["pairs"].update(name="planted-rated", from_ratings=True, max_pairs=None)
    cfg["orm"].update(n_sample=None, ensemble_number=3, hidden_sizes=[64], max_epochs=10)
    cfg["orm"].update(loss="margin", margin_source="given", margin_scale=0.5)
    return cfg


@pytest.mark.workflow
def test_rating_pairs_train_the_orm_ensemble_with_their_rating_gap_margins(tmp_path):
    cfg = rating_pairs_config()
    run_snakemake(tmp_path, cfg, "all")
    data = tmp_path / "results" / "data"
    report = read_json(data / "pairs" / "planted-rated" / "report.json")
    assert report["pair_recipe"] == "all_pairs" and report["source"].startswith("data.ratings")
    for split in ("train", "test"):
        rated = read_jsonl(data / "ratings" / "planted" / f"{split}_ratings.jsonl")
        pairs = read_jsonl(data / "pairs" / "planted-rated" / f"{split}_pairs.jsonl")
        assert {p["prompt"] for p in pairs} <= {r["prompt"] for r in rated}  # same split
        value = {(r["prompt"], r["responses"][1]): r["preference"] for r in rated}
        for p in pairs:
            chosen, rejected = (p["responses"][p["chosen"]], p["responses"][1 - p["chosen"]])
            assert p["margin"] == value[p["prompt"], chosen] - value[p["prompt"], rejected]
    # the margin loss read those gaps, times orm.margin_scale
    gaps = [p["margin"] for p in read_jsonl(data / "pairs" / "planted-rated" / "train_pairs.jsonl")]
    training = read_json(tmp_path / "results" / "orm" / "training.json")
    assert training["n_pairs"] == len(gaps)
    assert training["margin"]["mean"] == pytest.approx(0.5 * np.mean(gaps), rel=1e-6)
    assert training["margin"]["min"] == pytest.approx(0.5 * min(gaps), rel=1e-6)
    res = read_json(tmp_path / "results" / "pair_eval_results.json")
    assert res["test_pairs"] == report["splits"]["test"]["pairs"]
    assert res["ensemble"]["accuracy"] > 0.8
    # the pairs follow the ratings they come from: another recipe prepares them again
    cfg["data"]["ratings"]["pair_recipe"] = "best_vs_random"
    jobs = planned_jobs(run_snakemake(tmp_path, cfg, "all", "-n").stdout)
    assert jobs["prepare_pairs"] == 1 and "prepare_ratings" not in jobs


def test_rating_pairs_are_refused_without_ratings_or_with_two_ratings_for_one_folder():
    cfg = rating_pairs_config()
    check_schema(cfg, SCHEMA)
    check_config(cfg)
    bad = copy.deepcopy(cfg)
    del bad["data"]["ratings"]
    with pytest.raises(InputError, match="data.pairs.from_ratings derives the pairs from"):
        check_config(bad)
    other = copy.deepcopy(cfg)
    other["data"]["ratings"]["pair_recipe"] = "best_vs_random"
    with pytest.raises(InputError, match="data.pairs.name: .* would share the data folder"):
        DataVariants(cfg, [other])
    # under another pairs name, both recipes share the one folder of rated responses
    other["data"]["pairs"]["name"] = "planted-best"
    variants = DataVariants(cfg, [other])
    assert variants.ratings("planted") == {
        k: v for k, v in cfg["data"]["ratings"].items() if k != "pair_recipe"
    }
    assert variants.pairs("planted-best")["ratings"]["pair_recipe"] == "best_vs_random"
