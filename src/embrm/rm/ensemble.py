"""Step 5: train the ORM ensemble on simulated preferences over embeddings.

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

from embrm.data.arrays import iter_rows, load_split
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.io.jsonio import write_json
from embrm.rm.losses import pair_loss, plackett_luce
from embrm.rm.options import OrmSettings
from embrm.rm.pairs import (
    Pairs,
    build_pairs,
    given_margin,
    given_pairs,
    golden_margin,
    margin_summary,
    mislabelled,
)
from embrm.rm.precision import resolve, storage_dtype
from embrm.rm.remedies import apply_remedy, load_strength
from embrm.rm.stacked_mlp import StackedMLP
from embrm.rm.stopping import val_score
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


def member_names(orm: OrmSettings, task: str, seeds) -> list[str]:
    prefix = "XPrompt" if orm.comparison == "cross_prompt" else "SamePrompt"
    tail = f"{task}_n{orm.n_sample or 'all'}_q{orm.annotation_quality}_first{orm.consider_first_n}"
    loss = orm.pair_loss
    return [f"{prefix}_mlp_{loss}_{i}_seed{s}_{tail}.ckpt" for i, s in enumerate(seeds)]


def gather_rows(embeddings: np.ndarray, rows: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """Responses ``rows`` (ascending flat ids) of ``embeddings`` ``(N, K, D)`` as
    ``(len(rows), D)`` in ``dtype``, read from disk in chunks (never through the map)."""
    out = torch.empty((len(rows), embeddings.shape[-1]), dtype=dtype)
    for start, block in iter_rows(embeddings, rows):
        out[start : start + len(block)] = torch.from_numpy(block)
    return out


class PairData:
    """The embeddings of every response some pair uses, gathered once from disk, and
    optionally a per-pair ``margin`` ``(P,)`` for the margin and hinge losses."""

    def __init__(self, embeddings: np.ndarray, pairs: Pairs, dtype: torch.dtype, margin=None):
        rows, inverse = np.unique(np.concatenate([pairs.first, pairs.second]), return_inverse=True)
        self.bank = gather_rows(embeddings, rows, dtype)
        self.a = torch.from_numpy(inverse[: len(pairs)])
        self.b = torch.from_numpy(inverse[len(pairs) :])
        self.label = torch.from_numpy(pairs.label)
        self.margin = None if margin is None else torch.from_numpy(margin.astype(np.float32))

    @staticmethod
    def pair_values(values: torch.Tensor, idx) -> torch.Tensor:
        """Per-pair values ``(P,)`` for pairs ``idx``, gathered like the labels."""
        return values[torch.as_tensor(idx)]

    def margins(self, model: StackedMLP, idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Scores ``(M, b)`` of both sides of pairs ``idx`` and the labels: ``idx`` ``(b,)``
        is scored by every member, ``idx`` ``(M, b)`` gives each member its own pairs."""
        idx = torch.as_tensor(idx)
        rows = torch.cat([self.a[idx], self.b[idx]], dim=-1)  # (..., 2b): one gather
        s = model(self.bank.index_select(0, rows.reshape(-1)).view(*rows.shape, -1))
        b = idx.shape[-1]
        return s[:, :b], s[:, b:], self.label[idx]


class ListData:
    """K-wise rankings ``(L, k)`` of flat response ids, best first: the items of the
    listwise (Plackett-Luce) loss, one per prompt."""

    def __init__(self, embeddings: np.ndarray, ranking: np.ndarray, dtype: torch.dtype):
        rows, inverse = np.unique(ranking, return_inverse=True)
        self.bank = gather_rows(embeddings, rows, dtype)
        self.lists = torch.from_numpy(inverse.reshape(ranking.shape))
        upper = np.triu_indices(ranking.shape[1], 1)
        self.upper = tuple(torch.from_numpy(u) for u in upper)

    def scores(self, model: StackedMLP, idx) -> torch.Tensor:
        """Scores ``(M, b, k)`` of lists ``idx``, in ranking order: ``idx`` ``(b,)`` is
        scored by every member, ``idx`` ``(M, b)`` gives each member its own lists."""
        rows = self.lists[torch.as_tensor(idx)]
        return model(self.bank[rows.flatten(-2)]).view(-1, *rows.shape[-2:])

    def margins(self, model: StackedMLP, idx):
        """Both sides ``(M, b, C(k, 2))`` of every pair inside lists ``idx``; the
        better-ranked side always won (labels ``(b, C(k, 2))`` of ones)."""
        s = self.scores(model, idx)
        sa, sb = s[..., self.upper[0]], s[..., self.upper[1]]
        return sa, sb, torch.ones(sa.shape[1:])


def member_pair_metrics(
    data: PairData | ListData, model, mask: np.ndarray, loss, precision: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-member mean loss and accuracy (sign of the score difference; a ranking counts
    the share of its pairs in order) on the items each row of ``mask`` ``(M, n)`` selects."""

    def correct(idx):
        sa, sb, y = data.margins(model, idx)
        right = (((sa - sb) > 0).float() == y).float()  # (M, b) or a list's (M, b, C(k, 2))
        return right.reshape(*right.shape[:2], -1).mean(-1)

    loss_mean, accuracy = member_means(
        [lambda idx: loss(data, model, idx), correct], mask, precision
    )
    return loss_mean, accuracy


def golden_pairs(rewards: np.ndarray, orm: OrmSettings, seed: int) -> tuple[Pairs, float]:
    """The simulated comparisons of ``orm`` over the train split's golden rewards."""
    return build_pairs(
        rewards,
        n_sample=orm.n_sample,
        consider_first_n=orm.consider_first_n,
        comparison=orm.comparison,
        n_pairs=orm.n_pairs,
        annotation_quality=orm.annotation_quality,
        reward_scale_setting=orm.reward_scale,
        seed=seed,
    )


def training_pairs(rew, orm: OrmSettings, seed: int, *, pair_data: bool, source):
    """``(pairs, scale)`` of step 5: the human pairs of preferences ``(N, 2)`` read from
    ``source`` (scale None: no golden reward), or the simulated comparisons of golden
    rewards ``(N, K)``."""
    if not pair_data:
        pairs, scale = golden_pairs(rew, orm, seed)
        log.info("%d pairs, reward scale %.3f", len(pairs), scale)
        return pairs, scale
    pairs = given_pairs(rew, n_sample=orm.n_sample, source=source)
    if len(pairs) < len(rew):
        log.warning("orm.n_sample=%d: %d of %d pairs", len(pairs), len(pairs), len(rew))
    return pairs, None


def train_members(
    emb, pairs: Pairs, *, orm: OrmSettings, seed: int, task: str, precision: str, margin=None
):
    """Train all members on ``pairs`` (``margin`` ``(P,)``: the margin and hinge losses'
    per-pair margin), or on their rankings with ``orm.listwise``; returns the model in
    eval mode, the fit result and each member's name, seed, epochs and validation
    metrics."""
    seeds = member_seeds(seed, orm.ensemble_number)
    data: ListData | PairData
    if orm.listwise:
        if pairs.ranking is None:
            raise InputError("orm.listwise needs K-wise rankings (orm.consider_first_n > 2)")
        data = ListData(emb, pairs.ranking, storage_dtype(precision))
        item_loss = plackett_luce
        n_items = len(data.lists)
    else:
        data = PairData(emb, pairs, storage_dtype(precision), margin)
        item_loss = pair_loss(orm.pair_loss, orm.label_smoothing)
        n_items = len(pairs)
    val_mask = member_splits(n_items, seeds, orm.val_fraction)
    log.info(
        "%d items (pairs or rankings), %d members, %d validation items each",
        n_items,
        len(seeds),
        val_mask[0].sum(),
    )
    torch.manual_seed(seed)
    model = StackedMLP(emb.shape[-1], orm.hidden_sizes, seeds)
    result = fit(
        model,
        train_mask=~val_mask,
        val_mask=val_mask,
        item_loss=lambda mdl, idx: item_loss(data, mdl, idx),
        val_score=val_score(orm.stopping, data, item_loss, precision),
        lr=orm.lr,
        batch_size=orm.batch_size,
        max_epochs=orm.max_epochs,
        checks_per_epoch=orm.checks_per_epoch,
        patience=orm.patience,
        seed=seed,
        precision=precision,
        ema=orm.weight_average,
        together=orm.stopping_scope == "ensemble",
        min_epochs=orm.min_epochs,
    )
    model.eval()
    val_loss, val_acc = member_pair_metrics(data, model, val_mask, item_loss, precision)
    names = member_names(orm, task, seeds)
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
    return model, result, members


def train_ensemble(
    *,
    embeddings,
    rewards,
    ckpt,
    summary_json,
    orm: OrmSettings,
    seed: int,
    task: str,
    precision: str = "fp32",
    strength=None,
    pair_data: bool = False,
    pairs_file=None,
) -> dict:
    """Build pairs, train all members at once, save the ensemble and a summary JSON.

    ``embeddings`` ``(N, K, D)`` and ``rewards`` ``(N, K)``: the train split. ``ckpt``:
    the M members in one file; ``summary_json``: pairs, per-member epochs and metrics.
    ``strength``: a first ensemble's preference strength ``(P, 2)``
    (:mod:`embrm.rm.strength`), read by the noise remedies and the adaptive margin.
    With ``pair_data``, ``rewards`` holds human preferences ``(N, 2)`` and the pairs
    are those rows (:func:`given_pairs`; no annotator, no golden reward): the remedies
    and the adaptive margin work on them (the first ensemble needs no golden reward),
    the golden margin does not; ``orm.margin_source: given`` reads each pair's own
    ``margin`` (a rating gap, Llama 2's margin) from ``pairs_file``
    (``{split}_pairs.jsonl``).
    """
    precision = resolve(precision)
    given = orm.given_margin_source
    golden = orm.uses_margin and not (given or orm.adaptive_margin)
    if pair_data and golden:
        raise InputError(
            "orm.margin_source=golden reads golden rewards, which pair data (data.source: "
            "pairs) have not; use orm.margin_source=adaptive or given (the pairs' margins)"
        )
    if given and (not pair_data or pairs_file is None):
        raise InputError("orm.margin_source=given reads the margin field of pair data")
    if given and orm.needs_strength:
        raise InputError("orm.margin_source=given keeps each pair's margin: no noise remedy")
    emb, rew = load_split(embeddings, rewards)
    pairs, scale = training_pairs(rew, orm, seed, pair_data=pair_data, source=rewards)
    remedy = None
    margin = None
    if orm.needs_strength:
        pairs, margin, remedy = apply_remedy(pairs, load_strength(strength, len(pairs)), orm)
    if given:
        margin = given_margin(pairs_file, pairs, orm.margin_scale)
    elif margin is None and orm.uses_margin:
        margin = golden_margin(rew, pairs, scale, orm.margin_scale)
    return train_on_pairs(
        emb=emb,
        rew=rew,
        pairs=pairs,
        scale=scale,
        ckpt=ckpt,
        summary_json=summary_json,
        orm=orm,
        seed=seed,
        task=task,
        precision=precision,
        margin=margin,
        remedy=remedy,
    )


def train_on_pairs(
    *,
    emb: np.ndarray,
    rew: np.ndarray,
    pairs: Pairs,
    scale: float,
    ckpt,
    summary_json,
    orm: OrmSettings,
    seed: int,
    task: str,
    precision: str,
    margin=None,
    remedy: dict | None = None,
) -> dict:
    """Train all members at once on given ``pairs``, save the ensemble and a summary.

    ``emb`` ``(N, K, D)`` and ``rew`` ``(N, K)``: the train split, the rewards only to
    report how often the labels agree with the golden order. Step 5 builds its pairs
    from the config; active learning (:mod:`embrm.active`) brings the pairs it chose.
    ``margin``, ``remedy``: see :func:`train_members` and :mod:`embrm.rm.remedies`.
    """
    precision = resolve(precision)
    model, result, members = train_members(
        emb, pairs, orm=orm, seed=seed, task=task, precision=precision, margin=margin
    )
    summary = {
        "config": orm.as_dict(),
        "seed": seed,
        "precision": precision,
        "n_pairs": len(pairs),
        "reward_scale": scale,
        # pair data have no golden reward (scale None): their labels are the data
        "label_agreement_with_golden": None if scale is None else _label_agreement(rew, pairs),
        **({"noise_remedy": remedy} if remedy else {}),
        **({"margin": margin_summary(margin)} if margin is not None else {}),
        "members": members,
        "steps_per_epoch": result.steps_per_epoch,
        "history": result.history,
    }
    save_ensemble(ckpt, model, orm.objective, members)
    write_json(summary_json, summary)
    return summary


def _label_agreement(rewards: np.ndarray, pairs: Pairs) -> float:
    """Fraction of simulated labels that agree with the golden order (label noise check)."""
    return float((~mislabelled(rewards, pairs)).mean())


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
