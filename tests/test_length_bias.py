"""Length bias (step 6, generated data): known answers on planted rewards."""

import json

import numpy as np
import pytest

from embrm.evaluate.length_bias import length_bias, response_lengths
from embrm.io.errors import InputError


def _samples(path, lengths):
    with path.open("w") as fh:
        for row in lengths:
            fh.write(json.dumps({"prompt": "p", "responses": [" ".join(["w"] * n) for n in row]}))
            fh.write("\n")
    return path


def test_a_reward_that_counts_words_is_fully_length_biased_and_golden_is_not(tmp_path):
    rng = np.random.default_rng(0)
    words = rng.integers(1, 60, (30, 8))
    path = _samples(tmp_path / "s.jsonl", words)
    lengths = response_lengths(path, (30, 8))
    assert np.array_equal(lengths, words)
    golden = rng.standard_normal((30, 8))  # independent of length
    out = length_bias(lengths, golden, {"mean": 0.1 * lengths + 1.0, "first": -lengths})
    assert out["mean"]["within_prompt_spearman"] == pytest.approx(1.0)
    assert out["mean"]["pooled_spearman"] == pytest.approx(1.0)
    assert out["first"]["within_prompt_spearman"] == pytest.approx(-1.0)
    assert abs(out["golden"]["within_prompt_spearman"]) < 0.2


def test_samples_that_do_not_match_the_rewards_are_named(tmp_path):
    path = _samples(tmp_path / "s.jsonl", [[1, 2], [3, 4]])
    with pytest.raises(InputError, match=r"s\.jsonl.*\(2, 2\).*\(2, 3\)"):
        response_lengths(path, (2, 3))
