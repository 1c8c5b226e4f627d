"""Mini-batch training of a StackedMLP with per-member early stopping.

Every member has its own shuffled order of its own training indices; an epoch visits
each index exactly once (no sampling with replacement). Large batches are split into
micro-batches whose gradients are accumulated, so memory is bounded by the micro-batch,
not by ``batch_size``. Each member keeps the weights of its best validation epoch and
gets them back at the end (early stopping that restores the best weights).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from embrm.precision import autocast
from embrm.stacked_mlp import StackedMLP

log = logging.getLogger(__name__)

MICRO_BATCH = 1024


@dataclass
class FitResult:
    epochs_run: np.ndarray
    best_epoch: np.ndarray
    best_val_loss: np.ndarray
    history: list = field(default_factory=list)


def fit(
    model: StackedMLP,
    train_index: np.ndarray,
    loss_fn,
    val_fn,
    *,
    lr: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seeds,
    precision: str = "fp32",
) -> FitResult:
    """Train ``model`` in place.

    ``train_index`` is ``(M, T)``: member ``m`` trains on items ``train_index[m]``.
    ``loss_fn(model, idx)`` with ``idx`` of shape ``(M, b)`` returns per-member mean
    losses ``(M,)``; ``val_fn(model)`` returns per-member validation losses ``(M,)``.
    """
    m, t = train_index.shape
    rngs = [np.random.default_rng([int(s), 1]) for s in seeds]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best_loss = np.full(m, np.inf)
    best_epoch = np.zeros(m, dtype=int)
    stopped_at = np.zeros(m, dtype=int)
    best_params = [p.detach().clone() for p in model.parameters()]
    history = []
    for epoch in range(1, max_epochs + 1):
        order = np.stack([train_index[i, rngs[i].permutation(t)] for i in range(m)])
        model.train()
        for start in range(0, t, batch_size):
            batch = order[:, start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            for mstart in range(0, batch.shape[1], MICRO_BATCH):
                micro = batch[:, mstart : mstart + MICRO_BATCH]
                with autocast(precision):
                    loss = loss_fn(model, micro).float()
                (loss.sum() * (micro.shape[1] / batch.shape[1])).backward()
            opt.step()
        model.eval()
        with torch.no_grad(), autocast(precision):
            val = np.asarray(val_fn(model), dtype=float)
        active = stopped_at == 0
        improved = active & (val < best_loss)
        best_loss[improved] = val[improved]
        best_epoch[improved] = epoch
        with torch.no_grad():
            for saved, p in zip(best_params, model.parameters()):
                saved[improved] = p[improved]
        history.append({"epoch": epoch, "val_loss": val.tolist()})
        log.info("epoch %d: val loss %s", epoch, np.round(val, 4).tolist())
        stopped_at[active & (epoch - best_epoch >= patience)] = epoch
        if (stopped_at > 0).all():
            break
    stopped_at[stopped_at == 0] = epoch
    with torch.no_grad():
        for saved, p in zip(best_params, model.parameters()):
            p.copy_(saved)
    return FitResult(stopped_at, best_epoch, best_loss, history)
