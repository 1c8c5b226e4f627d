"""Step 5: train the ORM ensemble on preferences over embeddings: simulated from golden
rewards, or human pair labels (``pair_data``).

The ensemble is one StackedMLP (all members in one model); it is saved as ONE
checkpoint file whose ``members`` entry carries each member's reference-style name
(``XPrompt_mlp_bt_<i>_seed<s>_...ckpt``), seed, epochs and validation metrics.
``member_state_dict`` turns any member back into a plain ``nn.Sequential`` state dict.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embrm.data.arrays import iter_rows, load_split
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.io.jsonio import write_json
from embrm.rm.pairs import Pairs, build_pairs, given_pairs
from embrm.rm.precision import resolve, storage_dtype
from embrm.rm.stacked_mlp import StackedMLP
from embrm.rm.training import fit, member_means

log = logging.getLogger(__name__)

FORMAT = "embrm.orm_ensemble/1"


def member_seeds(seed: int, members: int) -> list[int]:
    return [seed + i for i in range(members)]


def member_splits(n_pairs: int, seeds, val_fraction: float) -> np.ndarray:
    """Per member, its own validation set of pairs: a boolean mask ``(M, n_pairs)``.

    A member trains on the complement, so no pair is ever on both of its sides.
    """
    n_val = max(1, int(round(n_pairs * val_fraction)))
    if n_val >= n_pairs:
        raise InputError(
            f"{n_pairs} pairs are too few for orm.val_fraction={val_fraction}: "
            "raise orm.n_sample or orm.n_pairs"
        )
    val = np.zeros((len(seeds), n_pairs), dtype=bool)
    for i, seed in enumerate(seeds):
        val[i, np.random.default_rng([int(seed), 0]).permutation(n_pairs)[:n_val]] = True
    return val


def member_names(orm_cfg: dict, task: str, seeds) -> list[str]:
    prefix = "XPrompt" if orm_cfg["comparison"] == "cross_prompt" else "SamePrompt"
    tail = (
        f"{task}_n{orm_cfg['n_sample'] or 'all'}_q{orm_cfg['annotation_quality']}"
        f"_first{orm_cfg['consider_first_n']}"
    )
    return [
        f"{prefix}_mlp_{orm_cfg['objective']}_{i}_seed{s}_{tail}.ckpt" for i, s in enumerate(seeds)
    ]


class PairData:
    """The embeddings of every response some pair uses, gathered once from disk in
    chunks (``bank`` ``(R, D)`` in ``dtype``) and indexed by pair."""

    def __init__(self, embeddings: np.ndarray, pairs: Pairs, dtype: torch.dtype):
        rows, inverse = np.unique(np.concatenate([pairs.first, pairs.second]), return_inverse=True)
        self.bank = torch.empty((len(rows), embeddings.shape[-1]), dtype=dtype)
        for start, block in iter_rows(embeddings, rows):
            self.bank[start : start + len(block)] = torch.from_numpy(block)
        self.a = torch.from_numpy(inverse[: len(pairs)])
        self.b = torch.from_numpy(inverse[len(pairs) :])
        self.label = torch.from_numpy(pairs.label)

    def margins(self, model: StackedMLP, idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores ``(M, b)`` of both sides of pairs ``idx`` and the labels: ``idx`` ``(b,)``
        is scored by every member, ``idx`` ``(M, b)`` gives each member its own pairs."""
        idx = torch.as_tensor(idx)
        s = model(torch.cat([self.bank[self.a[idx]], self.bank[self.b[idx]]], dim=-2))
        b = idx.shape[-1]
        return s[:, :b], s[:, b:], self.label[idx]


def pair_loss(objective: str):
    """Per-pair losses ``(M, b)``. ``bt``: -log sigmoid(r_win - r_lose); ``clf``: each
    response of a comparison is a sample labelled 1 if it won, BCE on sigmoid(r(x))."""

    def bt(data: PairData, model, idx):
        sa, sb, y = data.margins(model, idx)
        return F.binary_cross_entropy_with_logits(sa - sb, y.expand_as(sa), reduction="none")

    def clf(data: PairData, model, idx):
        sa, sb, y = data.margins(model, idx)
        y = y.expand_as(sa)
        la = F.binary_cross_entropy_with_logits(sa, y, reduction="none")
        lb = F.binary_cross_entropy_with_logits(sb, 1 - y, reduction="none")
        return (la + lb) / 2

    return {"bt": bt, "clf": clf}[objective]


def evaluate_pairs(
    data: PairData, model, mask: np.ndarray, loss, precision: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-member mean loss and accuracy (sign of the score difference) on the pairs
    each member's row of ``mask`` ``(M, n_pairs)`` selects."""

    def correct(idx):
        sa, sb, y = data.margins(model, idx)
        return (((sa - sb) > 0).float() == y).float()

    loss_mean, accuracy = member_means(
        [lambda idx: loss(data, model, idx), correct], mask, precision
    )
    return loss_mean, accuracy


def train_ensemble(
    *,
    embeddings,
    rewards,
    ckpt,
    summary_json,
    orm_cfg: dict,
    seed: int,
    task: str,
    precision: str = "fp32",
    pair_data: bool = False,
) -> dict:
    """Build pairs, train all members at once, save the ensemble and a summary JSON.

    ``embeddings`` ``(N, K, D)`` and ``rewards`` ``(N, K)``: the train split; with
    ``pair_data``, ``rewards`` holds human preferences ``(N, 2)`` and the pairs are
    those rows (:func:`given_pairs`; no annotator, no golden reward). ``ckpt``: the M
    members in one file; ``summary_json``: pairs, per-member epochs and metrics.
    """
    precision = resolve(precision)
    emb, rew = load_split(embeddings, rewards)
    if pair_data:
        pairs, scale = given_pairs(rew, n_sample=orm_cfg["n_sample"], source=rewards), None
        if len(pairs) < len(rew):
            log.warning("orm.n_sample=%d: %d of %d pairs", len(pairs), len(pairs), len(rew))
    else:
        pairs, scale = simulated_pairs(rew, orm_cfg, seed)
    seeds = member_seeds(seed, orm_cfg["ensemble_number"])
    val_mask = member_splits(len(pairs), seeds, orm_cfg["val_fraction"])
    log.info(
        "%d pairs (scale %s), %d members, %d validation pairs each",
        len(pairs),
        scale,
        len(seeds),
        val_mask[0].sum(),
    )
    data = PairData(emb, pairs, storage_dtype(precision))
    torch.manual_seed(seed)
    model = StackedMLP(emb.shape[-1], orm_cfg["hidden_sizes"], seeds)
    item_loss = pair_loss(orm_cfg["objective"])
    result = fit(
        model,
        train_mask=~val_mask,
        val_mask=val_mask,
        item_loss=lambda mdl, idx: item_loss(data, mdl, idx),
        lr=orm_cfg["lr"],
        batch_size=orm_cfg["batch_size"],
        max_epochs=orm_cfg["max_epochs"],
        checks_per_epoch=orm_cfg["checks_per_epoch"],
        patience=orm_cfg["patience"],
        seed=seed,
        precision=precision,
    )
    model.eval()
    val_loss, val_acc = evaluate_pairs(data, model, val_mask, item_loss, precision)
    names = member_names(orm_cfg, task, seeds)
    members = [
        {
            "name": names[i],
            "seed": seeds[i],
            "steps_run": int(result.steps_run[i]),
            "best_step": int(result.best_step[i]),
            "best_epoch": round(int(result.best_step[i]) / result.steps_per_epoch, 3),
            "val_loss": float(val_loss[i]),
            "val_accuracy": float(val_acc[i]),
        }
        for i in range(len(seeds))
    ]
    summary = {
        "config": orm_cfg,
        "seed": seed,
        "precision": precision,
        "n_pairs": len(pairs),
        "reward_scale": scale,
        "label_agreement_with_golden": None if pair_data else _label_agreement(rew, pairs),
        "members": members,
        "steps_per_epoch": result.steps_per_epoch,
        "history": result.history,
    }
    save_ensemble(ckpt, model, orm_cfg["objective"], members)
    write_json(summary_json, summary)
    return summary


def simulated_pairs(rewards: np.ndarray, orm_cfg: dict, seed: int) -> tuple[Pairs, float]:
    """Pairs drawn and labelled from golden rewards by the ``orm`` settings."""
    return build_pairs(
        rewards,
        n_sample=orm_cfg["n_sample"],
        consider_first_n=orm_cfg["consider_first_n"],
        comparison=orm_cfg["comparison"],
        n_pairs=orm_cfg["n_pairs"],
        annotation_quality=orm_cfg["annotation_quality"],
        reward_scale_setting=orm_cfg["reward_scale"],
        seed=seed,
    )


def _label_agreement(rewards: np.ndarray, pairs: Pairs) -> float:
    """Fraction of simulated labels that agree with the golden order (label noise check)."""
    flat = np.asarray(rewards, dtype=np.float64).reshape(-1)
    golden = (flat[pairs.first] > flat[pairs.second]).astype(np.float32)
    return float((golden == pairs.label).mean())


def save_ensemble(path, model: StackedMLP, objective: str, members: list[dict]) -> None:
    path = Path(path)
    payload = {
        "format": FORMAT,
        "input_dim": model.input_dim,
        "hidden_sizes": model.hidden_sizes,
        "objective": objective,
        "members": members,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }
    # torch.save names the zip's folder after the file: this temp name keeps it "ensemble.ckpt"
    with atomic_path(path, temp_name=path.name + ".tmp") as tmp:
        torch.save(payload, tmp)


def load_ensemble(path, input_dim: int | None = None) -> tuple[StackedMLP, dict]:
    """Load with ``weights_only=True``; a wrong input dimension names file and shapes."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not an {FORMAT} checkpoint")
    if input_dim is not None and payload["input_dim"] != input_dim:
        raise InputError(
            f"{path}: checkpoint expects embeddings of dimension {payload['input_dim']}, "
            f"data has dimension {input_dim}"
        )
    members = payload["members"]
    model = StackedMLP(payload["input_dim"], payload["hidden_sizes"], [0] * len(members))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload


def member_state_dict(path, i: int) -> dict:
    """Member ``i`` of an ensemble file as a standalone ``nn.Sequential`` state dict."""
    model, _ = load_ensemble(path)
    return model.member_state(i)
