"""Mini-batch training of a StackedMLP with per-member data and step-wise early stopping.

Each member trains and validates on its own items (``train_mask[m]``, ``val_mask[m]``)
and sees only those: a step gathers every member's own batch into one ``(M, b)`` index
and runs the members as one batched product (``StackedMLP`` on ``(M, b, D)`` inputs), so
no compute goes to items a member does not use. Each member walks its own reshuffled
order of its items (its own random stream, so the other members never change its
batches); an epoch is ``ceil(max items / batch_size)`` steps, and a member with fewer
items starts its next pass sooner. ``replacement=True`` draws every batch with
replacement instead (the published procedure). Batches are split into micro-batches
whose gradients accumulate, so memory is bounded by the micro-batch, not by
``batch_size``.

Validation runs ``checks_per_epoch`` times per epoch and scores each member with
``val_score`` (lower is better; the mean item loss unless the caller measures something
else, e.g. ranking). A member stops after ``patience`` checks without improvement and
gets its best weights back at once (``restore=False`` keeps its last weights instead);
it then leaves the model, so stopped members cost no compute and their weights never
change again. ``together=True`` stops the members as one instead: on the mean of their
validation scores (each still on its own items), so the decision rests on every
member's validation items and one member's noisy check cannot end it early; all
members run the same steps and keep the weights of the same check. Checks begin after
``min_epochs`` epochs: Adam's first steps overshoot (a member ranks worse after its
fourth step than after its second), so an earlier check is neither kept nor a reason
to stop.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from embrm.rm.precision import autocast
from embrm.rm.stacked_mlp import StackedMLP

log = logging.getLogger(__name__)

MICRO_BATCH = 1024


@dataclass
class FitResult:
    """Per member ``(M,)``: optimizer steps taken, the step of the best check and its
    validation score; ``history`` lists every check."""

    steps_run: np.ndarray
    best_step: np.ndarray
    best_val_score: np.ndarray
    steps_per_epoch: int
    history: list = field(default_factory=list)


def padded_rows(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-member item lists -> an index ``(M, n_max)`` (padding points at item 0) and
    float weights ``(M, n_max)``, 1 for a real item and 0 for padding."""
    width = max((len(r) for r in rows), default=0)
    idx = torch.zeros((len(rows), width), dtype=torch.int64)
    weight = torch.zeros((len(rows), width))
    for i, r in enumerate(rows):
        idx[i, : len(r)] = torch.from_numpy(np.asarray(r, dtype=np.int64))
        weight[i, : len(r)] = 1.0
    return idx, weight


def member_means(item_fns, mask: np.ndarray, precision: str) -> list[np.ndarray]:
    """Per member, the mean of each ``fn(idx) -> (M, b)`` in ``item_fns`` over the items
    its row of ``mask`` ``(M, n)`` selects; ``idx`` is a per-member ``(M, b)`` index, and
    micro-batches keep memory bounded."""
    idx, weight = padded_rows([np.flatnonzero(row) for row in mask])
    counts = weight.sum(1).clamp(min=1)
    totals = [torch.zeros(mask.shape[0]) for _ in item_fns]
    with torch.no_grad():
        for start in range(0, idx.shape[1], MICRO_BATCH):
            part = slice(start, start + MICRO_BATCH)
            w = weight[:, part]
            with autocast(precision):
                values = [fn(idx[:, part]).float() for fn in item_fns]
            for total, v in zip(totals, values):
                total += (v * w).sum(1)
    return [(total / counts).numpy() for total in totals]


class _ItemStreams:
    """Per member, batches from its own items in a fresh random order for every pass."""

    def __init__(self, train_mask: np.ndarray, seed: int, replacement: bool = False):
        self.replacement = replacement
        self.items = [np.flatnonzero(row) for row in train_mask]
        empty = [i for i, it in enumerate(self.items) if not len(it)]
        if empty:
            raise ValueError(f"members {empty} have no training items")
        self.rngs = [np.random.default_rng([seed, 1, i]) for i in range(len(self.items))]
        self.orders = [np.empty(0, dtype=np.int64) for _ in self.items]

    def next_batch(self, members: np.ndarray, size: int) -> list[np.ndarray]:
        """The next batch (at most ``size`` items) of each member in ``members``."""
        out = []
        for m in members:
            if self.replacement:
                out.append(self.rngs[m].choice(self.items[m], size))
                continue
            if not len(self.orders[m]):
                self.orders[m] = self.rngs[m].permutation(self.items[m])
            out.append(self.orders[m][:size])
            self.orders[m] = self.orders[m][size:]
        return out


class _Members:
    """The still-training members (a StackedMLP of just those, and its optimizer) and
    the best weights of every member, which the caller's full model holds.

    The full model's tensors store the best weights from the start (training runs on a
    copy), so restoring a member is a row copy. Dropping members compacts the training
    tensors and the Adam state in place: no allocation, so memory never rises above
    what the first step needed.
    """

    def __init__(self, model: StackedMLP, lr: float, ema: float = 0.0):
        self.full = model
        self.lr = lr
        self.ema = ema
        self.steps = 0
        self.active = np.arange(model.members)
        self.model = model.copy()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.best = [p.detach() for p in model.parameters()]
        # the weights that validation scores and the best copy saves
        self.scored = model.copy() if ema else self.model

    def step(self) -> None:
        """The optimizer step, then the running average ``scored`` follows the weights
        (decay ``min(ema, (1 + t) / (10 + t))``, so early steps are not drowned by the
        initial weights)."""
        self.opt.step()
        self.steps += 1
        if not self.ema:
            return
        decay = min(self.ema, (1 + self.steps) / (10 + self.steps))
        with torch.no_grad():
            for a, p in zip(self.scored.parameters(), self.model.parameters()):
                a.lerp_(p, 1 - decay)

    def keep_best(self, improved: np.ndarray) -> None:
        """Save the scored weights of the active members flagged in ``improved``."""
        rows = torch.from_numpy(np.flatnonzero(improved))
        dest = torch.from_numpy(self.active[improved])
        with torch.no_grad():
            for saved, p in zip(self.best, self.scored.parameters()):
                saved[dest] = p[rows]

    def drop(self, stop: np.ndarray) -> None:
        """Remove the active members flagged in ``stop``; the rest keep their Adam state."""
        keep = np.flatnonzero(~stop)
        self.active = self.active[~stop]
        if not len(self.active) or len(keep) == len(stop):
            return
        state = self.opt.state
        self.opt.zero_grad(set_to_none=True)
        kept_state: dict[torch.Tensor, dict] = {}
        for plist in (self.model.weights, self.model.biases):
            for layer, p in enumerate(plist):
                q = nn.Parameter(_compact(p.data, keep))
                kept_state[q] = {
                    k: (_compact(v, keep) if torch.is_tensor(v) and v.dim() else v)
                    for k, v in state.get(p, {}).items()
                }
                plist[layer] = q
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        self.opt.state.update(kept_state)
        if self.ema:  # without it, ``scored`` is ``model``, compacted above
            for plist in (self.scored.weights, self.scored.biases):
                for layer, p in enumerate(plist):
                    plist[layer] = nn.Parameter(_compact(p.data, keep))

    def finish(self) -> StackedMLP:
        """The full model, holding every member's best weights."""
        return self.full


def _compact(t: torch.Tensor, keep: np.ndarray) -> torch.Tensor:
    """Rows ``keep`` (ascending) of ``t`` moved to its front in place; a view of them."""
    for new, old in enumerate(keep):
        if new != old:
            t[new].copy_(t[old])
    return t[: len(keep)]


def fit(
    model: StackedMLP,
    *,
    train_mask: np.ndarray,
    val_mask: np.ndarray,
    item_loss,
    lr: float,
    batch_size: int,
    max_epochs: int,
    checks_per_epoch: int,
    patience: int,
    seed: int,
    precision: str = "fp32",
    val_score=None,
    restore: bool = True,
    replacement: bool = False,
    ema: float = 0.0,
    together: bool = False,
    min_epochs: int = 0,
) -> FitResult:
    """Train ``model`` in place; every member ends with its best-validation weights
    (its last weights with ``restore=False``).

    ``train_mask``, ``val_mask`` ``(M, n)``: which of the ``n`` items each member trains
    and validates on. ``item_loss(model, idx)`` takes a per-member index ``(A, b)`` for
    the ``A = model.members`` members it holds and returns their losses ``(A, b)``.
    ``val_score(model, mask)`` scores those members on the items of their rows of
    ``mask`` ``(A, n)``, lower is better ``(A,)``; default: the mean item loss.
    Validation runs every ``ceil(steps_per_epoch / checks_per_epoch)`` optimizer steps;
    ``patience`` counts checks. ``ema`` > 0 validates and keeps an exponential moving
    average of each member's weights (decay ``ema`` per step) instead of the weights.
    ``together``: one stop for all members, on the mean of their scores. No check runs
    before step ``min_epochs * steps_per_epoch`` (the last step always has one).
    """
    if val_score is None:

        def val_score(mdl, mask):
            return member_means([lambda idx: item_loss(mdl, idx)], mask, precision)[0]

    m = train_mask.shape[0]
    streams = _ItemStreams(train_mask, seed, replacement)
    steps_per_epoch = math.ceil(max(len(it) for it in streams.items) / batch_size)
    check_every = max(1, math.ceil(steps_per_epoch / checks_per_epoch))
    total_steps = max_epochs * steps_per_epoch
    first_check = min(min_epochs * steps_per_epoch, total_steps)
    members = _Members(model, lr, ema)
    best_score = np.full(m, np.inf)
    best_criterion = np.full(m, np.inf)  # what improves: the score, or the members' mean
    best_step = np.zeros(m, dtype=int)
    steps_run = np.full(m, total_steps)
    since_best = np.zeros(m, dtype=int)
    history = []
    for step in range(1, total_steps + 1):
        batch = streams.next_batch(members.active, batch_size)
        _train_step(members, item_loss, batch, precision)
        if (step % check_every or step < first_check) and step < total_steps:
            continue
        act = members.active
        val = val_score(members.scored.eval(), val_mask[act])
        members.model.train()
        criterion = np.full(len(act), val.mean()) if together else val
        improved = criterion < best_criterion[act]
        best_criterion[act[improved]] = criterion[improved]
        best_score[act[improved]] = val[improved]
        best_step[act[improved]] = step
        since_best[act] = np.where(improved, 0, since_best[act] + 1)
        history.append({"step": step, "members": act.tolist(), "val_score": val.tolist()})
        log.info(
            "step %d (epoch %.2f): val score %s",
            step,
            step / steps_per_epoch,
            np.round(val, 4).tolist(),
        )
        stop = since_best[act] >= patience
        if step == total_steps:
            stop[:] = True
        members.keep_best(stop if not restore else improved)
        steps_run[act[stop]] = step
        members.drop(stop)
        if not len(members.active):
            break
    members.finish()
    return FitResult(steps_run, best_step, best_score, steps_per_epoch, history)


def _train_step(members: _Members, item_loss, batch: list[np.ndarray], precision: str):
    """One optimizer step of the active members, each on its own ``batch`` row, in
    micro-batches; each member's loss is the mean over its own items."""
    idx, weight = padded_rows(batch)
    counts = weight.sum(1)
    members.opt.zero_grad(set_to_none=True)
    for start in range(0, idx.shape[1], MICRO_BATCH):
        part = slice(start, start + MICRO_BATCH)
        with autocast(precision):
            losses = item_loss(members.model, idx[:, part]).float()
        ((losses * weight[:, part]).sum(1) / counts).sum().backward()
    members.step()
