"""Step 6: conservative aggregations and the ensemble std as an error predictor."""

import numpy as np
import pytest

from embrm.evaluate.metrics import aggregate, aggregations, auc, uncertainty_auc

from conftest import evaluate_in, orm_config, train_in


def test_conservative_aggregation_is_mean_minus_lambda_std():
    assert aggregations([0.5, 2]) == ("mean", "min", "first", "conservative_0.5", "conservative_2")
    # response 0: members agree on 1.0; response 1: mean 1.2 but members disagree
    scores = np.array([[[1.0, 1.0, 1.0, 1.0], [0.2, 2.2, 0.2, 2.2]]])
    np.testing.assert_allclose(aggregate(scores, "conservative_0.5"), [[1.0, 0.7]])
    assert aggregate(scores, "mean").argmax() == 1
    assert aggregate(scores, "conservative_0.5").argmax() == 0


def test_auc_counts_ties_half():
    positive = np.array([True, False, True, False])
    assert auc(np.array([4.0, 1.0, 3.0, 2.0]), positive) == 1.0
    assert auc(np.array([1.0, 4.0, 2.0, 3.0]), positive) == 0.0
    assert auc(np.ones(4), positive) == 0.5


def test_std_flags_exactly_the_pairs_the_members_disagree_on():
    rng = np.random.default_rng(0)
    golden = rng.normal(size=(30, 8))
    members = np.repeat(golden[..., None], 4, axis=-1)  # every member ranks right
    shaky = rng.random((30, 8)) < 0.2
    # on shaky responses the members split: mean pushed far down, std large
    members[shaky] = golden[shaky][:, None] + np.array([-9.0, -9.0, -9.0, 3.0])
    out = uncertainty_auc(members, golden)
    assert out["pairs"] == 30 * 28
    assert 0.1 < out["error_rate"] < 0.5
    # every wrongly ordered pair touches a shaky response, every calm pair has std 0
    assert out["auc"] > 0.9
    assert out["auc"] > out["auc_small_gap"]
    calm = np.repeat(golden[..., None], 4, axis=-1) + rng.normal(0, 1, (30, 8, 4))
    assert uncertainty_auc(calm, golden)["auc"] == pytest.approx(0.5, abs=0.06)


def test_evaluation_reports_conservative_aggregations_and_uncertainty(linear_data):
    d = linear_data
    small = dict(n_pairs=2, ensemble_number=4, hidden_sizes=[32, 16], max_epochs=10, patience=2)
    train_in(d, orm_config(**small))
    res = evaluate_in(
        d,
        dict(
            bon_n=[2, 20],
            bon_subsets=20,
            chunk_prompts=7,
            conservative_lambdas=[1, 4],
            uncertainty=True,
        ),
    )
    aggs = res["aggregations"]
    assert set(aggs) == {"mean", "min", "first", "conservative_1", "conservative_4"}
    scores = np.load(d / "scores.npy")
    assert (
        aggs["conservative_1"]["best_of_n"]["20"]["reward"]
        > aggs["mean"]["best_of_n"]["20"]["random_reward"]
    )
    assert res["uncertainty"]["pairs"] == 40 * 190
    # measured on this linear reward: std AUC 0.48 (no signal: the errors are near-ties,
    # where members agree as much as anywhere), small-gap AUC 0.9
    unc = res["uncertainty"]
    assert 0.3 < unc["auc"] < 0.7
    assert unc["auc_small_gap"] > 0.8
    assert scores.shape == (40, 20, 4)
    assert "proxy_gain" in aggs["conservative_4"]["best_of_n"]["20"]


def test_conservative_pick_bends_later_when_the_proxy_errs_where_members_disagree():
    from embrm.evaluate.metrics import best_of_n

    rng = np.random.default_rng(0)
    golden = rng.normal(size=(200, 64))
    members = golden[..., None] + rng.normal(0, 0.3, (200, 64, 5))
    # 5 % of responses: a reward hack the proxy loves (mean +4) but is golden-bad, and
    # on which the members disagree (std about 3)
    hack = rng.random((200, 64)) < 0.05
    golden[hack] = -2.0
    members[hack] = 4.0 + rng.normal(0, 3.0, (int(hack.sum()), 5))
    scores = {how: aggregate(members, how) for how in ("mean", "conservative_2")}
    bon = best_of_n(scores, golden, [2, 4, 8, 16, 64], subsets=20, seed=0, proxy=True)
    mean = [bon["mean"][n]["reward"] for n in ("2", "4", "8", "16", "64")]
    cons = [bon["conservative_2"][n]["reward"] for n in ("2", "4", "8", "16", "64")]
    gains = [bon["mean"][n]["proxy_gain"] for n in ("2", "4", "8", "16", "64")]
    assert gains == sorted(gains)  # the proxy keeps improving with N
    assert mean[-1] < max(mean) - 0.5  # ... while the mean's golden reward bends down
    assert cons[-1] > mean[-1] + 1.0  # the conservative pick avoids the hacks
    # measured: the mean peaks at N = 4 (0.43) and ends at -1.82; conservative_2 peaks
    # at N = 16 (1.25)
    assert np.argmax(cons) > np.argmax(mean)  # ... and bends later
