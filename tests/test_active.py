"""Active reward modeling: D-optimal selection with known answers, the annotator as the
only reader of golden rewards, no pair annotated twice, and the rounds through the real
workflow."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from embrm.active import dopt
from embrm.active.coreset import k_center, project, random_projection
from embrm.active.dopt import greedy_logdet, information
from embrm.active.features import fisher_rows, pair_features
from embrm.active.rounds import (
    draw_pool,
    initial_round,
    load_pairs,
    pair_keys,
    selection_round,
    train_round,
)
from embrm.active.selection import STRATEGIES, select
from embrm.io.errors import InputError
from embrm.rm.ensemble import load_ensemble
from embrm.rm.options import OrmSettings
from embrm.rm.stacked_mlp import StackedMLP
from embrm.workflow.config import (
    ACTIVE_STRATEGIES,
    check_active,
    check_active_training,
    round_sizes,
)
from embrm.workflow.studies import all_point_configs

from conftest import ROOT, run_snakemake, small_config, with_defaults


def brute_force_greedy(z, info, n_pick):
    """Greedy log det by recomputing every candidate's determinant at every step."""
    info = info.copy()
    picked = []
    for _ in range(n_pick):
        gains = [
            -np.inf
            if i in picked
            else sum(
                np.linalg.slogdet(info[m] + np.outer(z[m, i], z[m, i]))[1]
                - np.linalg.slogdet(info[m])[1]
                for m in range(z.shape[0])
            )
            for i in range(z.shape[1])
        ]
        best = int(np.argmax(gains))
        picked.append(best)
        info += np.einsum("mh,mk->mhk", z[:, best], z[:, best])
    return picked


# 80 and 150 > BLOCK: two and three blocks. FLOOR_FALLS 2: the default lead; 0: a lead
# the lazy search often leaves; -1: a floor above every gain, an empty lead
@pytest.mark.parametrize("n, n_pick", [(60, 12), (300, 80), (300, 150)])
@pytest.mark.parametrize("floor_falls", [2, 0, -1])
def test_greedy_logdet_matches_brute_force(n, n_pick, floor_falls, monkeypatch):
    # chunks of 50: the refreshes and the initial gains run in several products
    monkeypatch.setattr(dopt, "CHUNK_PAIRS", 50)
    monkeypatch.setattr(dopt, "FLOOR_FALLS", floor_falls)
    rng = np.random.default_rng(n)
    # anisotropic rows, two members: the lazy search must still find the plain greedy picks
    z = (rng.standard_normal((2, n, 6)) * np.array([3.0, 1.0, 1.0, 0.5, 0.2, 0.1])).astype(
        np.float32
    )
    info = information(z[:, :5], np.ones(2))
    picked, gains = greedy_logdet(z, info, n_pick)
    assert picked.tolist() == brute_force_greedy(z, info, n_pick)
    assert np.all(np.diff(gains) <= 1e-6)  # submodular: gains never grow


def linear_bt_candidates(seed, n=3000, d=8):
    """Candidate pairs of a linear BT model ``r = w . x``: response differences mostly
    along two directions, few along the other six; features are the inputs."""
    rng = np.random.default_rng(seed)
    scale = np.where(rng.random(n) < 0.97, 0.05, 1.0)[:, None] * np.ones((n, d))
    scale[:, :2] = 1.0
    diff = rng.standard_normal((n, d)) * scale
    w = rng.standard_normal(d)
    return fisher_rows(diff[None].astype(np.float32), (diff @ w)[None])


def log_det(z, picked, ridge):
    return np.linalg.slogdet(information(z[:, picked], ridge))[1].sum()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dopt_on_linear_bt_spans_the_space_and_beats_random(seed):
    z = linear_bt_candidates(seed)
    ridge = np.array([1e-3])
    picked, _ = greedy_logdet(z, information(z[:, :0], ridge), 16)
    assert np.linalg.matrix_rank(z[0, picked]) == 8  # every direction, the rare ones too
    rng = np.random.default_rng(seed)
    for n_pick in (8, 16):
        dopt = log_det(z, picked[:n_pick], ridge)
        random = [
            log_det(z, rng.choice(z.shape[1], n_pick, replace=False), ridge) for _ in range(50)
        ]
        assert dopt > max(random) + 1.0


def test_coreset_picks_the_uncovered_clusters_and_counts_mirrors_as_covered():
    """Three clusters of pair differences; the annotated pairs sit on cluster A's mirror
    image (the same comparisons, responses swapped), so A is covered: the first two
    picks are one each from B and C, the third the farthest point left, never a repeat."""
    rng = np.random.default_rng(0)
    centers = np.eye(8)[:3] * 10.0
    cluster = np.repeat(np.arange(3), 50)
    candidates = (centers[cluster] + rng.standard_normal((150, 8)) * 0.3).astype(np.float32)
    annotated = (-centers[[0, 0]] + rng.standard_normal((2, 8)) * 0.3).astype(np.float32)
    picked = k_center(candidates, annotated, 3)
    assert sorted(cluster[picked[:2]]) == [1, 2]
    assert len(set(picked)) == 3
    twins = np.repeat(candidates[:1], 4, axis=0)  # identical rows are still picked once each
    assert sorted(k_center(twins, annotated[:0], 4)) == [0, 1, 2, 3]


def test_coreset_projection_keeps_distances():
    rng = np.random.default_rng(1)
    diff = rng.standard_normal((3, 400, 64)).astype(np.float32)  # (M, P, H)
    r = random_projection(3, 64, rng)
    x, y = project(diff, r), diff.transpose(1, 0, 2).reshape(400, -1)
    ratio = np.linalg.norm(x[:200] - x[200:], axis=1) / np.linalg.norm(y[:200] - y[200:], axis=1)
    assert abs(ratio.mean() - 1.0) < 0.03 and ratio.min() > 0.75 and ratio.max() < 1.25


def test_pair_features_of_a_linear_head_are_the_input_differences():
    """A linear head's last hidden layer is its input: the features are embedding
    differences and the gaps are the scores' differences."""
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((30, 4, 6)).astype(np.float32)
    first, second = rng.integers(0, 120, 50), rng.integers(0, 120, 50)
    model = StackedMLP(6, [], [1, 2])
    diff, gap = pair_features(model, emb, first, second)
    flat = emb.reshape(-1, 6)
    assert np.allclose(diff, np.broadcast_to(flat[first] - flat[second], diff.shape), atol=1e-6)
    scores = model(torch.from_numpy(flat)).detach().numpy().astype(np.float64)
    assert np.allclose(gap, scores[:, first] - scores[:, second], atol=1e-5)


@pytest.fixture
def round_zero(linear_data, tmp_path):
    """Round 0 and its ensemble on the planted linear data (400 prompts x 10)."""
    orm = OrmSettings.of(small_config()["orm"] | {"max_epochs": 2, "reward_scale": 1.0})
    active = small_config()["active"] | {"enabled": True, "budget": 160, "rounds": 2, "initial": 60}
    active |= {"candidates": 300, "pool": "both"}
    files = {s: str(linear_data / f"train_{s}.npy") for s in ("embeddings", "rewards")}
    r0 = tmp_path / "r0"
    initial_round(
        rewards=files["rewards"], pairs_out=r0 / "pairs.npz", active_cfg=active, orm=orm, seed=3
    )
    train_round(
        **files,
        pairs=r0 / "pairs.npz",
        ckpt=r0 / "ensemble.ckpt",
        summary_json=r0 / "training.json",
        orm=orm,
        seed=3,
        task="t",
        precision="fp32",
    )
    return files, active, orm, r0


def chosen_pairs(files, active, orm, r0, out, strategy, rewards=None):
    selection_round(
        embeddings=files["embeddings"],
        rewards=rewards or files["rewards"],
        previous_pairs=r0 / "pairs.npz",
        previous_ckpt=r0 / "ensemble.ckpt",
        pairs_out=out,
        active_cfg=active,
        orm=orm,
        strategy=strategy,
        seed=3,
        round_index=1,
    )
    return load_pairs(out)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_selection_never_reads_rewards_of_unannotated_pairs(round_zero, tmp_path, strategy):
    """The selector has no argument for rewards; and a reward file whose every response
    outside the annotated pairs is NaN leads to exactly the same choice."""
    assert not any("reward" in name for name in inspect.signature(select).parameters)
    files, active, orm, r0 = round_zero
    annotated, _, _ = load_pairs(r0 / "pairs.npz")
    hidden = np.load(files["rewards"])
    known = np.zeros(hidden.size, dtype=bool)
    known[np.concatenate([annotated.first, annotated.second])] = True
    hidden.reshape(-1)[~known] = np.nan
    np.save(tmp_path / "hidden.npy", hidden)
    true, added_true, _ = chosen_pairs(files, active, orm, r0, tmp_path / "a.npz", strategy)
    masked, added_masked, _ = chosen_pairs(
        files, active, orm, r0, tmp_path / "b.npz", strategy, str(tmp_path / "hidden.npy")
    )
    assert np.array_equal(true.first, masked.first)
    assert np.array_equal(true.second, masked.second)
    assert np.array_equal(added_true, added_masked)
    new = added_true == 1
    assert new.sum() == round_sizes(active)[1]
    # the old labels are kept; the new ones came from the rewards the annotator read
    assert np.array_equal(true.label[~new], annotated.label)
    assert np.array_equal(true.first[~new], annotated.first)


def test_no_pair_is_annotated_twice(round_zero, tmp_path):
    files, active, orm, r0 = round_zero
    pairs, added, _ = chosen_pairs(files, active, orm, r0, tmp_path / "r1.npz", "dopt")
    keys = pair_keys(pairs.first, pairs.second, 400 * 10)
    assert len(np.unique(keys)) == len(keys) == sum(round_sizes(active)[:2])
    assert not np.any(pairs.first == pairs.second)
    # a pool drawn around an almost exhausted space never returns an excluded pair
    rng = np.random.default_rng(0)
    all_first, all_second = np.triu_indices(6, 1)  # one prompt of 6 responses: 15 pairs
    exclude = pair_keys(all_first[:12], all_second[:12], 6)
    first, second = draw_pool(1, 6, pool="within_prompt", size=3, exclude=exclude, rng=rng)
    assert set(pair_keys(first, second, 6)) == set(pair_keys(all_first[12:], all_second[12:], 6))
    with pytest.raises(InputError, match="active.candidates"):
        draw_pool(1, 6, pool="within_prompt", size=4, exclude=exclude, rng=rng)


def test_active_settings_defaults_and_checks():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["active"]["properties"]
    assert tuple(props["strategy"]["items"]["enum"]) == ACTIVE_STRATEGIES
    # an absent section is the schema's defaults; a partial one keeps what it names
    defaults = with_defaults({})["active"]
    assert defaults["enabled"] is False and defaults["strategy"] == [
        "random",
        "uncertainty",
        "dopt",
    ]
    assert with_defaults({"active": {"budget": 7}})["active"] == defaults | {"budget": 7}
    assert round_sizes({"budget": 11, "initial": 4, "rounds": 3}) == [4, 3, 2, 2]
    check_active(defaults | {"budget": 1})  # disabled: nothing to check
    with pytest.raises(InputError, match="active.budget"):
        check_active(defaults | {"enabled": True, "budget": 402})
    with pytest.raises(InputError, match="active.candidates"):
        check_active(defaults | {"enabled": True, "candidates": 100})


@pytest.mark.parametrize(
    "orm, data, key",
    [
        ({"n_sample": None}, {}, "orm.n_sample"),
        ({"loss": "hinge"}, {}, "orm.loss"),
        ({"noise_remedy": "flip"}, {}, "orm.noise_remedy"),
        (
            {"consider_first_n": 4, "comparison": "within_prompt", "n_pairs": 1, "listwise": True},
            {},
            "orm.listwise",
        ),
        ({}, {"source": "pairs"}, "data.source"),
    ],
)
def test_active_refuses_settings_its_rounds_would_drop(orm, data, key):
    cfg = small_config(orm=orm)
    cfg["data"] |= data
    cfg["active"]["enabled"] = True
    with pytest.raises(InputError, match=key):
        check_active_training(cfg)
    cfg["active"]["enabled"] = False
    check_active_training(cfg)  # fine without active learning


def test_study_points_with_other_losses_leave_the_main_rounds_alone(round_zero, tmp_path):
    """A study of margin losses next to active learning is fine; a round job asked for
    such a point refuses before training."""
    cfg = small_config()
    cfg["active"]["enabled"] = True
    cfg["studies"] = {"loss": {"grid": {"orm.loss": ["bt", "hinge"]}, "seeds": [0]}}
    check_active_training(cfg)
    assert len(all_point_configs(cfg)) == 2
    files, _, orm, r0 = round_zero
    with pytest.raises(InputError, match="orm.loss"):
        train_round(
            **files,
            pairs=r0 / "pairs.npz",
            ckpt=tmp_path / "e.ckpt",
            summary_json=tmp_path / "t.json",
            orm=dataclasses.replace(orm, loss="hinge"),
            seed=3,
            task="t",
            precision="fp32",
        )
    assert not (tmp_path / "e.ckpt").exists()


def test_active_rounds_and_learning_curve_through_snakemake(tmp_path):
    cfg = small_config(orm={"max_epochs": 3}, evaluation={"bon_n": [2, 5, 40]})
    cfg["studies"] = None
    cfg["active"] = {
        "enabled": True,
        "budget": 160,
        "rounds": 2,
        "initial": 60,
        "candidates": 400,
        "strategy": ["random", "dopt", "coreset"],
        "seeds": [0],
    }
    run_snakemake(tmp_path, cfg, "active_curve")
    curve = pd.read_csv(tmp_path / "results/active/learning_curve.csv")
    assert sorted(curve.strategy.unique()) == ["coreset", "dopt", "random"]
    for _, line in curve.groupby("strategy"):
        assert line.sort_values("round").annotated_pairs.tolist() == [60, 110, 160]
        assert line.test_spearman.between(-1, 1).all()
    assert (tmp_path / "results/active/learning_curve.png").stat().st_size > 0
    assert "| dopt" in (tmp_path / "results/active/learning_curve.md").read_text()
    # round 2 keeps round 1's pairs and adds its own; same checkpoint format as step 5
    folder = tmp_path / "results/active/dopt/seed0"
    r1, _, _ = load_pairs(folder / "round_1/pairs.npz")
    r2, added, _ = load_pairs(folder / "round_2/pairs.npz")
    assert np.array_equal(r2.first[: len(r1)], r1.first) and added.max() == 2
    model, payload = load_ensemble(folder / "round_2/ensemble.ckpt", input_dim=16)
    assert model.members == cfg["orm"]["ensemble_number"] and len(payload["members"]) == 3
    # disabled, the target refuses with the key to set
    cfg["active"]["enabled"] = False
    proc = run_snakemake(tmp_path / "off", cfg, "-n", "active_curve", check=False)
    assert proc.returncode != 0 and "active.enabled: true" in proc.stdout + proc.stderr
