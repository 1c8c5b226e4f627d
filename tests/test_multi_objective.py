"""Multi-objective heads (ArmoRM's two stages) on planted ratings, where every answer is
known: the attribute weights, the gating of each prompt, its scale, the length penalty."""

from dataclasses import replace

import numpy as np
import pytest

from embrm.data.planted_ratings import planted_ratings
from embrm.evaluate.metrics import global_spearman, pairwise_accuracy
from embrm.io.errors import InputError
from embrm.multi_objective.decorrelation import length_decorrelation
from embrm.multi_objective.evaluation import attribute_metrics, pair_accuracy, reward_metrics
from embrm.multi_objective.gating import GatingOptions, fit_gating, gated_rewards
from embrm.multi_objective.heads import fit_heads, load_heads, save_heads
from embrm.multi_objective.rating_pairs import rating_pairs
from embrm.multi_objective.ridge import fit_ridge_cv, group_folds
from embrm.rm.pairs import Pairs, annotate

N_ATTR = 4


def _flat(split):
    """Rows ``(N K, D)``, ratings ``(N K, J)``, prompt of each row, prompt context."""
    n, k, d = split.embeddings.shape
    x = split.embeddings.reshape(n * k, d)
    prompt = np.repeat(np.arange(n), k)
    return x, split.ratings.reshape(n * k, -1), prompt, split.prompt_embeddings[prompt]


@pytest.fixture(scope="module")
def planted():
    train = planted_ratings(n=2000, k=4, dim=16, n_attributes=N_ATTR, seed=0)
    test = planted_ratings(n=300, k=4, dim=16, n_attributes=N_ATTR, seed=0, stream=1)
    x, y, prompt, _ = _flat(train)
    return train, test, fit_ridge_cv(x, y, groups=prompt, seed=0)


def test_ridge_matches_the_hand_computed_solution():
    # centred x = (-1, 0, 1), centred y = (-2, -1, 3): w = x.y / (x.x + a) = 5 / (2 + 1)
    fit = fit_ridge_cv(
        np.array([[-1.0], [0.0], [1.0]]), np.array([[0.0], [1.0], [5.0]]), alphas=[1.0], folds=3
    )
    np.testing.assert_allclose(fit.weight, [[5 / 3]])
    np.testing.assert_allclose(fit.bias, [2.0])
    np.testing.assert_allclose(fit.predict([[2.0]]), [[2 + 10 / 3]])


def test_ridge_recovers_the_planted_attribute_weights(planted):
    train, _, fit = planted
    # measured: relative error 0.017, intercepts within 0.008 of b = 2, 2.5, 3, 3.5
    rel = np.linalg.norm(fit.weight - train.weight) / np.linalg.norm(train.weight)
    assert rel < 0.05
    np.testing.assert_allclose(fit.bias, train.bias, atol=0.03)
    assert fit.cv_mse.shape == (len(fit.alphas), N_ATTR)
    # the CV error of the chosen penalty is the rating noise variance 0.3^2, about
    np.testing.assert_allclose(fit.cv_mse.min(0), 0.09, rtol=0.1)


def test_cv_picks_the_largest_penalty_for_pure_noise_and_a_small_one_for_signal():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 8))
    y = np.stack([x @ rng.standard_normal(8), rng.standard_normal(400)], axis=1)
    fit = fit_ridge_cv(x, y, alphas=[0.01, 1.0, 100.0, 1e4], folds=4)
    assert fit.alpha[0] <= 1.0
    assert fit.alpha[1] == 1e4


def test_folds_keep_a_prompt_whole_and_errors_name_the_problem():
    groups = np.repeat(np.arange(10), 3)
    fold = group_folds(groups, 5, seed=1)
    assert all(len(set(fold[groups == g])) == 1 for g in range(10))
    assert np.bincount(fold).tolist() == [6] * 5
    with pytest.raises(InputError, match="5 folds need at least 5 prompts"):
        group_folds(np.arange(3), 5, seed=1)
    with pytest.raises(InputError, match="finite"):
        fit_ridge_cv(np.ones((4, 2)), np.array([[1.0], [np.nan], [0.0], [2.0]]), folds=2)


def test_rating_pairs_recipes_on_a_hand_written_example():
    scores = np.array([3, 1, 3, 2, 4, 2, 2, 5, 0], dtype=float)
    group = np.array([0, 0, 0, 0, 1, 2, 2, 3, 3])
    pairs, margin, counts = rating_pairs(scores, group, recipe="all_pairs", seed=0)
    # prompt 0: (3,1) (3,2) (1 < 3) (1 < 2) (3,2), one tie; prompt 2: a tie; prompt 1: alone
    assert list(zip(pairs.first.tolist(), pairs.second.tolist())) == [
        (0, 1),
        (0, 3),
        (2, 1),
        (3, 1),
        (2, 3),
        (7, 8),
    ]
    assert margin.tolist() == [2, 1, 2, 1, 1, 5]
    assert pairs.label.tolist() == [1] * 6
    assert counts == {"prompts": 4, "ties_dropped": 2, "pairs": 6}
    seen = set()
    for seed in range(20):
        pairs, margin, counts = rating_pairs(
            scores, group, recipe="best_vs_random", seed=seed, margin_scale=0.5
        )
        assert counts == {"prompts": 4, "prompts_without_pair": 2, "pairs": 2}
        a, b = pairs.first.tolist(), pairs.second.tolist()
        assert a[0] in (0, 2) and b[0] in (1, 3) and (a[1], b[1]) == (7, 8)
        assert margin.tolist() == [0.5 * (scores[a[0]] - scores[b[0]]), 2.5]
        seen.add((a[0], b[0]))
    assert seen == {(0, 1), (0, 3), (2, 1), (2, 3)}  # both ties for best, both losers
    with pytest.raises(InputError, match="best_vs_random"):
        rating_pairs(scores, group, recipe="best", seed=0)


def test_gating_recovers_the_planted_gating_and_its_scale(planted):
    train, test, fit = planted
    x, _, prompt, context = _flat(train)
    flat = train.rewards.reshape(-1)
    pairs, _, _ = rating_pairs(flat, prompt, recipe="all_pairs", seed=0, k=4)
    # labels drawn with P(a wins) = sigmoid(r_a - r_b): BT's optimum is the planted scale
    label = annotate(flat[pairs.first] - flat[pairs.second], 1.0, np.random.default_rng(0))
    model, history = fit_gating(
        scores=fit.predict(x),
        context=context,
        pairs=replace(pairs, label=label),
        options=GatingOptions(steps=500, lr=0.05),
    )
    assert len(history) == 5 and history[-1] < history[0]
    tx, _, _, tcontext = _flat(test)
    scores = fit.predict(tx)
    reward, weights = gated_rewards(model, scores, tcontext)
    weights = weights.reshape(300, 4, N_ATTR)[:, 0]
    tv = 0.5 * np.abs(weights - test.gating).sum(1).mean()
    uniform_tv = 0.5 * np.abs(1 / N_ATTR - test.gating).sum(1).mean()
    accuracy = pairwise_accuracy(reward.reshape(300, 4), test.rewards)
    uniform = pairwise_accuracy(scores.reshape(300, 4, N_ATTR).mean(-1), test.rewards)
    # measured: scale 1.96 (planted 2), total variation 0.078 from the planted weights
    # (uniform weights: 0.38), test pair accuracy 0.978 (uniform mixing: 0.854)
    assert 1.8 < model.scale.item() < 2.2
    assert tv < 0.12 and uniform_tv > 0.3
    assert accuracy > 0.95 and uniform < 0.9
    gated = reward_metrics(reward.reshape(300, 4), test.rewards, ns=(4,))
    assert gated["pairwise_accuracy"] == accuracy
    bon = gated["best_of_n"]["4"]
    # measured: best-of-4 picks a response of golden quantile 0.98 (oracle 1, random 0.5)
    assert bon["quantile"] > 0.95 and bon["random_quantile"] == pytest.approx(0.5, abs=0.02)
    per_attribute = attribute_metrics(scores, test.ratings.reshape(1200, -1), "abcd")
    # measured: Spearman 0.95-0.96 and MSE 0.09 (the rating noise 0.3^2) per attribute
    assert all(m["spearman"] > 0.9 and m["mse"] < 0.11 for m in per_attribute.values())


def test_length_decorrelation_finds_the_planted_length_share(planted):
    train, _, fit = planted
    x, *_ = _flat(train)
    scores = fit.predict(x)
    out = length_decorrelation(scores, length=N_ATTR - 1, threshold=0.03)
    # x has isotropic covariance, so s_j - lam s_len is uncorrelated with s_len at
    # lam = W_j . W_len / |W_len|^2 = W_j . u_len (about rho = 0.5); Spearman reaches
    # 0.03 one grid step (0.025) before or at it
    exact = train.weight[:, :-1].T @ train.weight[:, -1]
    assert np.all(out["penalty"][:-1] <= exact + 0.01)
    assert np.all(out["penalty"][:-1] >= exact - 0.05)
    assert np.all(out["spearman"][:-1] <= 0.03)
    adjusted = scores @ out["transform"]
    np.testing.assert_allclose(adjusted[:, -1], 0.0)
    np.testing.assert_allclose(
        adjusted[:, 0], scores[:, 0] - out["penalty"][0] * scores[:, -1], atol=1e-9
    )


def test_length_decorrelation_leaves_an_uncorrelated_attribute_alone():
    rng = np.random.default_rng(3)
    length = rng.standard_normal(500)
    scores = np.stack([-length + 0.1 * rng.standard_normal(500), length], axis=1)
    out = length_decorrelation(scores, length=1)
    assert out["penalty"].tolist() == [0.0, 1.0]
    np.testing.assert_array_equal(out["transform"], [[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(InputError, match="attribute 2 of 2"):
        length_decorrelation(scores, length=2)


def test_evaluation_metrics_by_hand():
    # ranks (1, 2, 3) vs (1, 3, 2): Spearman 1 - 6 * 2 / (3 * 8) = 0.5; MSE (0 + 1 + 1) / 3
    out = attribute_metrics(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [3.0], [2.0]]), ["h"])
    assert out == {"h": {"spearman": pytest.approx(0.5), "mse": pytest.approx(2 / 3)}}
    pairs = Pairs(np.array([0, 1, 2, 0]), np.array([1, 2, 0, 2]), np.array([1, 1, 1, 0]), 1)
    # rewards 3, 1, 1: 0 > 1 right, 1 vs 2 tied (half), "2 beat 0" wrong, "2 beat 0"
    # (label 0 of the pair (0, 2)) wrong
    assert pair_accuracy(np.array([3.0, 1.0, 1.0]), pairs) == pytest.approx(1.5 / 4)
    with pytest.raises(InputError, match="2 names"):
        attribute_metrics(np.ones((3, 1)), np.ones((3, 1)), ["a", "b"])


def test_heads_fit_save_and_load_to_the_same_scores(planted, tmp_path):
    train, test, _ = planted
    x, y, prompt, context = _flat(train)
    flat = train.rewards.reshape(-1)
    pairs, _, _ = rating_pairs(flat, prompt, recipe="best_vs_random", seed=0, k=4)
    names = ["a", "b", "c", "length"]
    options = GatingOptions(steps=300, lr=0.05)
    heads = fit_heads(
        x=x,
        ratings=y,
        group=prompt,
        context=context,
        pairs=pairs,
        names=names,
        length="length",
        gating=options,
    )
    plain = fit_heads(
        x=x, ratings=y, group=prompt, context=context, pairs=pairs, names=names, gating=options
    )
    assert heads.report["length_penalty"]["length"] == 1.0
    assert (
        heads.report["alpha"].keys() == set(names) and len(heads.report["gating"]["history"]) == 3
    )
    save_heads(tmp_path / "mo", heads)
    loaded = load_heads(tmp_path / "mo")
    tx, _, _, tcontext = _flat(test)
    reward, weights = heads.score(tx, tcontext)
    again, weights_again = loaded.score(tx, tcontext)
    np.testing.assert_allclose(again, reward, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(weights_again, weights, atol=1e-5)
    np.testing.assert_allclose(loaded.attribute_scores(tx), heads.attribute_scores(tx), atol=1e-4)
    assert loaded.names == names and loaded.report == heads.report
    # the decorrelated reward cannot follow length: the planted reward does (every
    # quality attribute shares the length direction). measured: Spearman with the
    # length score -0.02 with decorrelation, 0.71 without
    length_score = heads.attribute_scores(tx)[:, -1]
    with_dec = global_spearman(reward, length_score)
    without = global_spearman(plain.score(tx, tcontext)[0], length_score)
    assert abs(with_dec) < 0.1 and without > 0.5
    with pytest.raises(InputError, match="'size' is not one of the attributes"):
        fit_heads(
            x=x, ratings=y, group=prompt, context=context, pairs=pairs, names=names, length="size"
        )
    (tmp_path / "mo" / "heads.json").write_text('{"format": "other"}')
    with pytest.raises(InputError, match="heads.json: not a multi-objective model"):
        load_heads(tmp_path / "mo")
