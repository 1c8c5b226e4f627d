import numpy as np
import pytest

from embrm.io.errors import InputError
from embrm.rm.ensemble import member_splits
from embrm.rm.pairs import annotate, build_pairs, candidate_columns


def _rewards(n=200, k=10, seed=0):
    return np.random.default_rng(seed).normal(0, 2, (n, k))


def _pairs(rew, **kw):
    args = dict(
        n_sample=len(rew),
        consider_first_n=2,
        comparison="cross_prompt",
        n_pairs=3,
        annotation_quality=-1,
        reward_scale_setting="auto",
        seed=0,
    )
    args.update(kw)
    return build_pairs(rew, **args)


def test_cross_prompt_never_pairs_a_prompt_with_itself():
    pairs, _ = _pairs(_rewards())
    pa, pb = pairs.first // pairs.k, pairs.second // pairs.k
    assert len(pairs) > 500
    assert (pa != pb).all()


def test_within_prompt_pairs_distinct_responses_of_one_prompt():
    pairs, _ = _pairs(_rewards(), comparison="within_prompt")
    pa, pb = pairs.first // pairs.k, pairs.second // pairs.k
    assert (pa == pb).all()
    assert (pairs.first != pairs.second).all()


def test_only_first_n_sample_prompts_are_used():
    pairs, _ = _pairs(_rewards(), n_sample=50)
    assert max(pairs.first.max(), pairs.second.max()) < 50 * 10


def test_pairs_are_stored_once_not_mirrored():
    pairs, _ = _pairs(_rewards(n=20), n_pairs=30)
    keys = {tuple(sorted(p)) for p in zip(pairs.first, pairs.second)}
    assert len(keys) == len(pairs)


@pytest.mark.parametrize(("mode", "ranks"), [(-1, (0, 9)), (-2, (4, 5))])
def test_rank_modes_pick_the_documented_ranks(mode, ranks):
    rew = _rewards()
    cols = candidate_columns(rew, mode, np.random.default_rng(0))
    rank_of = np.argsort(np.argsort(rew, axis=1), axis=1)
    got = np.sort(np.take_along_axis(rank_of, cols, 1), axis=1)
    assert (got == np.array(ranks)).all()


def test_random_ranks_use_two_distinct_columns_with_varied_ranks():
    rew = np.sort(_rewards(), axis=1)  # a file sorted by reward must not bias the pick
    cols = candidate_columns(rew, 2, np.random.default_rng(0))
    assert (cols[:, 0] != cols[:, 1]).all()
    assert len(np.unique(cols)) == 10


def test_perfect_annotator_follows_golden_order_and_noisy_one_errs():
    rew = _rewards()
    pairs, _ = _pairs(rew)
    flat = rew.reshape(-1)
    golden = (flat[pairs.first] > flat[pairs.second]).astype(np.float32)
    assert (pairs.label == golden).all()
    noisy, _ = _pairs(rew, annotation_quality=0.5)
    agree = (noisy.label == golden).mean()
    assert 0.5 < agree < 0.8  # quality 0.5 means many label errors


def test_annotation_probability_matches_sigmoid():
    rng = np.random.default_rng(0)
    diff = np.full(200_000, 0.3)
    assert annotate(diff, 2.0, rng).mean() == pytest.approx(1 / (1 + np.exp(-0.6)), abs=0.01)


def test_member_splits_never_leak_a_pair_into_validation():
    val = member_splits(1000, [1, 2, 3], 0.2)
    assert val.shape == (3, 1000) and (val.sum(1) == 200).all()
    # a member trains on ~val: a pair is on exactly one side of each member's split
    assert not np.array_equal(val[0], val[1])  # each member its own split


def test_bad_settings_name_the_key():
    with pytest.raises(InputError, match="n_sample"):
        _pairs(_rewards(n=10), n_sample=11)
    with pytest.raises(InputError, match="consider_first_n=11 exceeds the K = 10"):
        _pairs(_rewards(), consider_first_n=11)
    with pytest.raises(InputError, match="within_prompt"):
        _pairs(_rewards(), consider_first_n=4)


@pytest.mark.parametrize("quality", [-1, 1.0])
def test_kwise_pairs_are_every_pair_of_one_ranking_per_prompt(quality):
    rew = _rewards()
    pairs, scale = _pairs(
        rew, consider_first_n=5, comparison="within_prompt", n_pairs=1, annotation_quality=quality
    )
    assert len(pairs) == 200 * 10 and pairs.ranking.shape == (200, 5)
    assert (pairs.first // 10 == pairs.second // 10).all()
    assert (pairs.label == 1).all()  # stored better-ranked first
    flat = rew.ravel()
    agree = (flat[pairs.first] > flat[pairs.second]).mean()
    # a clean ranking is the golden order; a noisy one (a Plackett-Luce draw) mostly so
    assert agree == 1.0 if quality < 0 else 0.6 < agree < 0.95
    # the pairs follow the ranking: the first of a ranking wins all four of its pairs
    top = pairs.ranking[:, 0]
    assert np.isin(top, pairs.first).all() and not np.isin(top, pairs.second).any()
