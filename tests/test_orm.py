import numpy as np
import pytest
import torch

from embrm.evaluate.evaluation import evaluate
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json
from embrm.rm.ensemble import load_ensemble, member_state_dict, train_ensemble
from embrm.rm.scoring import score_array
from embrm.rm.stacked_mlp import StackedMLP
from embrm.rm.training import fit

ORM = dict(
    n_sample=400,
    consider_first_n=2,
    comparison="cross_prompt",
    n_pairs=4,
    annotation_quality=-1,
    reward_scale="auto",
    objective="bt",
    ensemble_number=3,
    hidden_sizes=[64, 32],
    lr=0.003,
    batch_size=256,
    max_epochs=25,
    patience=3,
    val_fraction=0.2,
)
EVAL = dict(bon_n=[2, 5, 10, 20], bon_subsets=20, chunk_prompts=7)


def _train(d, **kw):
    cfg = {**ORM, **kw}
    summary = train_ensemble(
        embeddings=d / "train_embeddings.npy",
        rewards=d / "train_rewards.npy",
        ckpt=d / "ens.ckpt",
        summary_json=d / "train.json",
        orm_cfg=cfg,
        seed=0,
        task="t",
    )
    return summary


@pytest.mark.parametrize("objective", ["bt", "clf"])
def test_ensemble_recovers_a_planted_linear_reward(linear_data, objective):
    d = linear_data
    summary = _train(d, objective=objective)
    res = evaluate(
        ckpt=d / "ens.ckpt",
        embeddings=d / "test_embeddings.npy",
        rewards=d / "test_rewards.npy",
        results=d / "eval.json",
        test_scores=d / "scores.npy",
        plot=d / "bon.png",
        eval_cfg=EVAL,
        seed=0,
    )
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
        fit(
            model,
            np.stack(masks),
            lambda m, i: (m(x[torch.as_tensor(i)]) - y[torch.as_tensor(i)]) ** 2,
            lambda m: [0.0] * m.members,
            lr=0.01,
            batch_size=64,
            max_epochs=3,
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


def test_early_stopping_restores_the_best_epoch():
    x = torch.randn(64, 4)
    losses = iter([3.0, 1.0, 2.0, 2.5, 2.6, 9.0])
    snapshots = []

    def val(model):
        snapshots.append([p.detach().clone() for p in model.parameters()])
        return [next(losses)]

    model = StackedMLP(4, [8], [0])
    res = fit(
        model,
        np.ones((1, 64), dtype=bool),
        lambda m, i: m(x[torch.as_tensor(i)]).pow(2),
        val,
        lr=0.05,
        batch_size=16,
        max_epochs=6,
        patience=3,
        seed=0,
    )
    assert res.best_epoch[0] == 2 and res.epochs_run[0] == 5
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), snapshots[1]))


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
