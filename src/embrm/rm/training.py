"""Mini-batch training of a StackedMLP with per-member data and step-wise early stopping.

All members walk the same shuffled order of items, so each batch is one set of input
rows for the wide first-layer GEMM; ``train_mask[m]`` says which items member ``m``
trains on (its own split), and an item outside it weighs zero in that member's loss.
An epoch visits each of a member's training items exactly once (no sampling with
replacement). Large batches are split into micro-batches whose gradients accumulate,
so memory is bounded by the micro-batch, not by ``batch_size``.

Validation runs ``checks_per_epoch`` times per epoch: on noisy pairs a 2048-wide MLP
overfits within one epoch, so per-epoch checks find the best point too late and waste
the epochs after it. A member stops after ``patience`` checks without improvement and
gets its best weights back at once; it then leaves the model, so stopped members cost
no compute and their weights never change again.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from embrm.rm.precision import autocast
from embrm.rm.stacked_mlp import StackedMLP

log = logging.getLogger(__name__)

MICRO_BATCH = 1024


@dataclass
class FitResult:
    """Per member ``(M,)``: optimizer steps taken, the step of the best check and its
    validation loss; ``history`` lists every check."""

    steps_run: np.ndarray
    best_step: np.ndarray
    best_val_loss: np.ndarray
    steps_per_epoch: int
    history: list = field(default_factory=list)


def masked_means(values: torch.Tensor, weights: torch.Tensor, counts: torch.Tensor):
    """Per-member mean of ``values`` ``(M, b)`` over the items each member counts."""
    return (values * weights).sum(1) / counts.clamp(min=1)


@torch.no_grad()
def masked_loss(model: StackedMLP, item_loss, mask: np.ndarray, precision: str) -> np.ndarray:
    """Per-member mean of ``item_loss`` over the items each row of ``mask`` ``(M, n)``
    selects, in micro-batches."""
    weights = torch.from_numpy(mask.astype(np.float32))
    counts = weights.sum(1)
    items = np.flatnonzero(mask.any(0))
    total = torch.zeros(mask.shape[0])
    for start in range(0, len(items), MICRO_BATCH):
        part = items[start : start + MICRO_BATCH]
        with autocast(precision):
            losses = item_loss(model, part).float()
        total += masked_means(losses, weights[:, part], counts)
    return total.numpy()


class _Members:
    """The still-training members: a StackedMLP of just those, its optimizer, and the
    best weights of every member (active or stopped), kept in full ``(M, ...)`` form."""

    def __init__(self, model: StackedMLP, lr: float):
        self.full = model
        self.lr = lr
        self.active = np.arange(model.members)
        self.model = model
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.best = [p.detach().clone() for p in model.parameters()]

    def keep_best(self, improved: np.ndarray) -> None:
        """Save the current weights of the active members flagged in ``improved``."""
        rows = torch.from_numpy(np.flatnonzero(improved))
        dest = torch.from_numpy(self.active[improved])
        with torch.no_grad():
            for saved, p in zip(self.best, self.model.parameters()):
                saved[dest] = p[rows]

    def drop(self, stop: np.ndarray) -> None:
        """Remove the active members flagged in ``stop``; the rest keep their Adam state."""
        keep = torch.from_numpy(np.flatnonzero(~stop))
        self.active = self.active[~stop]
        if not len(self.active):
            return
        old = list(self.model.parameters())
        state = [self.opt.state.get(p, {}) for p in old]
        self.model = self.model.select(keep)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        for p, st in zip(self.model.parameters(), state):
            if st:
                self.opt.state[p] = {
                    k: (v[keep].clone() if torch.is_tensor(v) and v.dim() else v)
                    for k, v in st.items()
                }

    def finish(self) -> StackedMLP:
        """The full model with every member's best weights."""
        with torch.no_grad():
            for saved, p in zip(self.best, self.full.parameters()):
                p.copy_(saved)
        return self.full


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
) -> FitResult:
    """Train ``model`` in place; every member ends with its best-validation weights.

    ``train_mask``, ``val_mask`` ``(M, n)``: which of the ``n`` items each member trains
    and validates on. ``item_loss(model, idx)`` returns per-item losses
    ``(model.members, len(idx))``. Validation runs every ``ceil(steps_per_epoch /
    checks_per_epoch)`` optimizer steps; ``patience`` counts checks.
    """
    m = train_mask.shape[0]
    items = np.flatnonzero(train_mask.any(0))
    steps_per_epoch = math.ceil(len(items) / batch_size)
    check_every = max(1, math.ceil(steps_per_epoch / checks_per_epoch))
    total_steps = max_epochs * steps_per_epoch
    rng = np.random.default_rng([seed, 1])
    members = _Members(model, lr)
    best_loss = np.full(m, np.inf)
    best_step = np.zeros(m, dtype=int)
    steps_run = np.full(m, total_steps)
    since_best = np.zeros(m, dtype=int)
    history = []
    step = 0
    while step < total_steps and len(members.active):
        order = rng.permutation(items)
        for start in range(0, len(order), batch_size):
            step += 1
            batch = order[start : start + batch_size]
            _train_step(members, train_mask, item_loss, batch, precision)
            if step % check_every and step < total_steps:
                continue
            act = members.active
            members.model.eval()
            val = masked_loss(members.model, item_loss, val_mask[act], precision)
            members.model.train()
            improved = val < best_loss[act]
            members.keep_best(improved)
            best_loss[act[improved]] = val[improved]
            best_step[act[improved]] = step
            since_best[act] = np.where(improved, 0, since_best[act] + 1)
            history.append({"step": step, "members": act.tolist(), "val_loss": val.tolist()})
            log.info(
                "step %d (epoch %.2f): val loss %s",
                step,
                step / steps_per_epoch,
                np.round(val, 4).tolist(),
            )
            stop = since_best[act] >= patience
            steps_run[act[stop]] = step
            members.drop(stop)
            if not len(members.active) or step >= total_steps:
                break
    members.finish()
    return FitResult(steps_run, best_step, best_loss, steps_per_epoch, history)


def _train_step(members: _Members, train_mask, item_loss, batch: np.ndarray, precision: str):
    """One optimizer step of the active members on ``batch``, in micro-batches."""
    mask = torch.from_numpy(train_mask[members.active][:, batch].astype(np.float32))
    counts = mask.sum(1)
    members.opt.zero_grad(set_to_none=True)
    for mstart in range(0, len(batch), MICRO_BATCH):
        sl = slice(mstart, mstart + MICRO_BATCH)
        with autocast(precision):
            losses = item_loss(members.model, batch[sl]).float()
        masked_means(losses, mask[:, sl], counts).sum().backward()
    members.opt.step()
