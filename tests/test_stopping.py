"""Early-stopping criteria (embrm.rm.stopping) and the trainer's published-procedure
switches: no restore, batches drawn with replacement, weight averaging."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from embrm.rm.ensemble import PairData
from embrm.rm.losses import pair_loss
from embrm.rm.pairs import Pairs
from embrm.rm.stacked_mlp import StackedMLP
from embrm.rm.stopping import temperature_loss, val_score
from embrm.rm.training import _ItemStreams


def _bce(t, d, y):
    return np.logaddexp(0, -t * d * (2 * y - 1)).mean()


def test_temperature_loss_is_the_best_temperature_and_ignores_the_scale():
    rng = np.random.default_rng(0)
    d = rng.standard_normal((3, 200))
    y = (rng.random((3, 200)) < 1 / (1 + np.exp(-2 * d))).astype(float)
    w = np.ones_like(d)
    got = temperature_loss(torch.from_numpy(d), torch.from_numpy(y), torch.from_numpy(w))
    for i in range(3):
        best = minimize_scalar(lambda t, i=i: _bce(t, d[i], y[i]), bounds=(0, 50), method="bounded")
        assert got[i].item() == pytest.approx(best.fun, abs=1e-6)
    scaled = temperature_loss(torch.from_numpy(7 * d), torch.from_numpy(y), torch.from_numpy(w))
    assert torch.allclose(got, scaled, atol=1e-8)
    # padding (weight 0) does not count
    pad = torch.cat([torch.from_numpy(d), torch.full((3, 5), 9.0, dtype=torch.float64)], 1)
    y_pad = torch.cat([torch.from_numpy(y), torch.zeros(3, 5, dtype=torch.float64)], 1)
    w_pad = torch.cat([torch.from_numpy(w), torch.zeros(3, 5, dtype=torch.float64)], 1)
    assert torch.allclose(temperature_loss(pad, y_pad, w_pad), got, atol=1e-8)


def _pair_task():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((30, 2, 6)).astype(np.float32)
    first = np.arange(0, 60, 2)
    pairs = Pairs(
        first=first, second=first + 1, label=(rng.random(30) < 0.5).astype(np.float32), k=2
    )
    data = PairData(emb, pairs, torch.float32)
    model = StackedMLP(6, [5], [0, 1]).eval()
    mask = np.zeros((2, 30), dtype=bool)
    mask[0, :12] = True
    mask[1, 10:] = True
    return emb, pairs, data, model, mask


def test_accuracy_and_loss_criteria_count_each_members_own_pairs():
    emb, pairs, data, model, mask = _pair_task()
    with torch.no_grad():
        s = model(torch.from_numpy(emb.reshape(-1, 6)).unsqueeze(0).expand(2, -1, -1)).numpy()
    d = s[:, pairs.first] - s[:, pairs.second]
    right = (d > 0) == (pairs.label == 1)
    want = [1 - right[m, mask[m]].mean() for m in (0, 1)]
    got = val_score("accuracy", data, pair_loss("bt"), "fp32")(model, mask)
    assert np.allclose(got, want)
    loss = np.logaddexp(0, -d * (2 * pairs.label - 1))
    got = val_score("loss", data, pair_loss("bt"), "fp32")(model, mask)
    assert np.allclose(got, [loss[m, mask[m]].mean() for m in (0, 1)], atol=1e-5)
    calibrated = val_score("calibrated_loss", data, pair_loss("bt"), "fp32")(model, mask)
    assert (calibrated <= got + 1e-9).all()  # t = 1 is one of the temperatures tried


def test_an_unknown_criterion_names_the_key():
    _, _, data, _, _ = _pair_task()
    with pytest.raises(ValueError, match="orm.stopping must be one of"):
        val_score("auc", data, pair_loss("bt"), "fp32")


def test_batches_with_replacement_stay_in_each_members_items():
    mask = np.zeros((2, 50), dtype=bool)
    mask[0, :10] = True
    mask[1, 30:] = True
    streams = _ItemStreams(mask, seed=0, replacement=True)
    batches = [streams.next_batch(np.array([0, 1]), 40) for _ in range(3)]
    for b0, b1 in batches:
        assert len(b0) == 40 and set(b0) <= set(range(10))  # more than its 10 items
        assert len(b1) == 40 and set(b1) <= set(range(30, 50))
    assert len(set(batches[0][0])) < 40
