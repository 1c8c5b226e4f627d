import numpy as np
import pytest
import torch

from embrm.io.errors import InputError
from embrm.io.jsonio import read_json
from embrm.rm.ensemble import load_ensemble, member_state_dict
from embrm.rm.scoring import score_array
from embrm.rm.stacked_mlp import StackedMLP
from embrm.rm.training import fit

from conftest import evaluate_in, orm_config, train_in

EVAL = dict(bon_n=[2, 5, 10, 20], bon_subsets=20, chunk_prompts=7)


def _train(d, **kw):
    return train_in(d, orm_config(annotation_quality=-1, **kw))


@pytest.mark.parametrize("objective", ["bt", "clf"])
def test_ensemble_recovers_a_planted_linear_reward(linear_data, objective):
    d = linear_data
    summary = _train(d, objective=objective)
    res = evaluate_in(d, EVAL)
    # measured: pairwise accuracy 0.97 (bt) and 0.94 (clf); a random ranking gives 0.5
    mean = res["aggregations"]["mean"]
    assert mean["pairwise_accuracy"] > 0.88
    assert mean["per_prompt_spearman"] > 0.9
    assert all(m["val_accuracy"] > 0.85 for m in summary["members"])
    bon = mean["best_of_n"]
    assert bon["10"]["reward"] > bon["10"]["random_reward"] + 1.0
    assert bon["10"]["reward"] <= bon["10"]["oracle_reward"] + 1e-9
    assert "20" in bon and "30" not in bon  # N above K_test is left out
    assert np.load(d / "scores.npy").shape == (40, 20, 3)
    assert (d / "bon.png").stat().st_size > 1000


def test_same_config_and_seed_give_identical_results(linear_data):
    d = linear_data
    first = _train(d, max_epochs=3)
    weights = torch.load(d / "ens.ckpt", weights_only=True)["state_dict"]
    second = _train(d, max_epochs=3)
    again = torch.load(d / "ens.ckpt", weights_only=True)["state_dict"]
    assert first["members"] == second["members"]
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_checkpoint_loads_with_weights_only_and_names_members(linear_data):
    d = linear_data
    _train(d, max_epochs=2)
    payload = torch.load(d / "ens.ckpt", weights_only=True)
    names = [m["name"] for m in payload["members"]]
    assert names[1] == "XPrompt_mlp_bt_1_seed1_t_n400_q-1_first2.ckpt"
    model, _ = load_ensemble(d / "ens.ckpt", input_dim=16)
    x = torch.randn(5, 16)
    net = torch.nn.Sequential(
        torch.nn.Linear(16, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 1),
    )
    net.load_state_dict(member_state_dict(d / "ens.ckpt", 2))
    assert torch.allclose(net(x)[:, 0], model.shared_scorer()(x)[:, 2], atol=1e-5)


def test_per_member_inputs_score_like_shared_inputs():
    """``(M, B, D)`` inputs (training: each member its own rows) give each member the
    scores the shared ``(B, D)`` path gives it for the same rows."""
    model = StackedMLP(6, [5, 4], [0, 1, 2])
    x = torch.randn(3, 7, 6)
    per_member = model(x)
    for i in range(3):
        assert torch.allclose(per_member[i], model(x[i])[i], atol=1e-6)


def test_wrong_dimension_checkpoint_names_file_and_shapes(linear_data):
    d = linear_data
    _train(d, max_epochs=1)
    with pytest.raises(InputError, match=r"ens\.ckpt.*dimension 16.*dimension 32"):
        load_ensemble(d / "ens.ckpt", input_dim=32)


def test_a_member_trains_as_if_the_others_were_not_there():
    """Stacked training has no cross-talk: changing the other members' seeds and data
    leaves a member's trained weights unchanged (same batch order, its own items)."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((300, 8)).astype(np.float32))
    y = x @ torch.arange(8.0)
    mine = rng.random(300) < 0.7

    def run(seeds, masks):
        model = StackedMLP(8, [16], seeds)
        train = np.stack(masks)
        fit(
            model,
            train_mask=train,
            val_mask=~train,
            item_loss=lambda m, i: (m(x[torch.as_tensor(i)]) - y[torch.as_tensor(i)]) ** 2,
            lr=0.01,
            batch_size=64,
            max_epochs=3,
            checks_per_epoch=1,
            patience=5,
            seed=0,
        )
        return model

    every = np.ones(300, dtype=bool)
    a = run([5, 6, 7], [mine, every, rng.random(300) < 0.5])
    b = run([5, 8, 9], [mine, every, rng.random(300) < 0.2])
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa[0], pb[0], atol=1e-6)
        assert not torch.allclose(pa[2], pb[2])


def _drifting_task(n=256, d=4):
    """Items 0-63 have target -1, the rest +1. Member 0 trains on the +1 items and
    validates on the -1 items, so its validation loss rises from the start; member 1
    validates on held-out +1 items, so its validation loss keeps falling."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen)
    y = torch.ones(n)
    y[:64] = -1.0
    val = np.zeros((2, n), dtype=bool)
    val[0, :64] = True
    val[1, 64:128] = True
    train = np.zeros((2, n), dtype=bool)
    train[0, 64:] = True
    train[1, 128:] = True

    def item_loss(model, idx):
        idx = torch.as_tensor(idx)
        return (model(x[idx]) - y[idx]) ** 2

    return train, val, item_loss


def _fit_drifting(seeds, rows, item_loss=None, **options):
    train, val, loss = _drifting_task()
    model = StackedMLP(4, [8], seeds)
    res = fit(
        model,
        train_mask=train[rows],
        val_mask=val[rows],
        item_loss=item_loss or loss,
        lr=0.05,
        batch_size=16,
        max_epochs=4,
        checks_per_epoch=3,
        patience=2,
        seed=0,
        **options,
    )
    return model, res


def _final_val_loss(model, item_loss, val):
    model.eval()
    with torch.no_grad():
        return [float(item_loss(model, np.flatnonzero(val[m]))[m].mean()) for m in (0, 1)]


def test_early_stopping_checks_in_steps_and_restores_each_members_best():
    _, val, item_loss = _drifting_task()
    members_seen = []

    def counting_loss(model, idx):
        members_seen.append(model.members)
        return item_loss(model, idx)

    model, res = _fit_drifting([0, 1], [0, 1], counting_loss)
    assert res.steps_per_epoch == 12  # 192 training items in batches of 16
    check_every = 4  # ceil(12 / 3)
    # member 0 is best at its first check and stops two checks later
    assert res.best_step[0] == check_every and res.steps_run[0] == 3 * check_every
    assert res.steps_run[1] > res.steps_run[0] and res.best_step[1] > res.steps_run[0]
    # once member 0 stopped, the model held member 1 alone: member 0 cost no compute
    assert members_seen[-1] == 1
    # each member ends with its best weights: their validation loss is the best recorded
    final = _final_val_loss(model, item_loss, val)
    assert np.allclose(final, res.best_val_score, rtol=1e-5)
    later = [h["val_score"][h["members"].index(0)] for h in res.history[1:] if 0 in h["members"]]
    assert later and res.best_val_score[0] < min(later)


def test_without_restore_a_member_keeps_its_weights_at_its_last_check():
    """The published procedure: a member stops after ``patience`` checks without
    improvement and keeps the weights it has then, not its best ones."""
    _, val, item_loss = _drifting_task()
    model, res = _fit_drifting([0, 1], [0, 1], restore=False)
    last = {
        m: [h["val_score"][h["members"].index(m)] for h in res.history if m in h["members"]][-1]
        for m in (0, 1)
    }
    final = _final_val_loss(model, item_loss, val)
    assert np.allclose(final, [last[0], last[1]], rtol=1e-5)
    assert final[0] > res.best_val_score[0] * 1.01  # member 0 got worse after its best


def test_members_stopping_together_keep_the_check_best_on_their_mean():
    """With ``together``, the members stop at one step and keep the weights of the check
    whose mean score is lowest, though member 1's own score kept falling."""
    _, val, item_loss = _drifting_task()
    _, each = _fit_drifting([0, 1], [0, 1])
    model, res = _fit_drifting([0, 1], [0, 1], together=True)
    assert res.steps_run[0] == res.steps_run[1] and res.best_step[0] == res.best_step[1]
    means = [np.mean(h["val_score"]) for h in res.history]
    best = int(np.argmin(means))
    assert res.best_step[0] == res.history[best]["step"]
    assert len(res.history) - 1 - best == 2  # patience 2: stopped two checks later
    assert each.steps_run[1] > res.steps_run[1]  # alone, member 1 ran on: the mean ended it
    final = _final_val_loss(model, item_loss, val)
    assert np.allclose(final, res.history[best]["val_score"], rtol=1e-5)
    assert np.allclose(res.best_val_score, res.history[best]["val_score"], rtol=1e-5)


def test_checks_begin_after_min_epochs():
    """Member 0 is best at its first check (step 4); with ``min_epochs=1`` no check runs
    before the end of epoch 1 (12 steps), the earliest weights a member can keep."""
    _, each = _fit_drifting([0, 1], [0, 1])
    _, res = _fit_drifting([0, 1], [0, 1], min_epochs=1)
    assert each.best_step[0] == 4 and each.history[0]["step"] == 4
    assert res.history[0]["step"] == 12 == res.steps_per_epoch
    assert res.best_step.min() >= 12
    _, capped = _fit_drifting([0, 1], [0, 1], min_epochs=9)  # past max_epochs (4)
    assert [h["step"] for h in capped.history] == [48]


def test_weight_average_validates_and_keeps_the_averaged_weights():
    _, val, item_loss = _drifting_task()
    plain, _ = _fit_drifting([0, 1], [0, 1])
    averaged, res = _fit_drifting([0, 1], [0, 1], ema=0.8)
    assert np.allclose(_final_val_loss(averaged, item_loss, val), res.best_val_score, rtol=1e-5)
    assert not torch.allclose(plain.weights[0][1], averaged.weights[0][1])


def test_a_stopped_member_never_changes_again():
    """Member 0 trained beside member 1 ends exactly where it ends when trained alone,
    although member 1 keeps training after member 0 stopped."""
    both, res = _fit_drifting([0, 1], [0, 1])
    alone, _ = _fit_drifting([0], [0])
    assert res.steps_run[1] > res.steps_run[0]
    for pb, pa in zip(both.parameters(), alone.parameters()):
        assert torch.allclose(pb[0], pa[0], atol=1e-6)


def test_bf16_scores_track_fp32(linear_data):
    d = linear_data
    _train(d, max_epochs=3)
    model, _ = load_ensemble(d / "ens.ckpt")
    emb = np.load(d / "test_embeddings.npy", mmap_mode="r")
    fp32 = score_array(model, emb, 8, "fp32")
    bf16 = score_array(model, emb, 8, "bf16")
    assert np.corrcoef(fp32.ravel(), bf16.ravel())[0, 1] > 0.999
    summary = read_json(d / "train.json")
    assert summary["precision"] == "fp32"
