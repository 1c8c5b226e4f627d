"""Mini-batch training of a StackedMLP with per-member data and early stopping.

All members walk the same shuffled order of items, so each batch is one set of input
rows for the wide first-layer GEMM; ``train_mask[m]`` says which items member ``m``
trains on (its own split), and an item outside it weighs zero in that member's loss.
An epoch visits each of a member's training items exactly once (no sampling with
replacement). Large batches are split into micro-batches whose gradients accumulate,
so memory is bounded by the micro-batch, not by ``batch_size``. Each member keeps the
weights of its best validation epoch and gets them back at the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from embrm.rm.precision import autocast
from embrm.rm.stacked_mlp import StackedMLP

log = logging.getLogger(__name__)

MICRO_BATCH = 1024


@dataclass
class FitResult:
    epochs_run: np.ndarray
    best_epoch: np.ndarray
    best_val_loss: np.ndarray
    history: list = field(default_factory=list)


def masked_means(values: torch.Tensor, weights: torch.Tensor, counts: torch.Tensor):
    """Per-member mean of ``values`` ``(M, b)`` over the items each member counts."""
    return (values * weights).sum(1) / counts.clamp(min=1)


def fit(
    model: StackedMLP,
    train_mask: np.ndarray,
    item_loss,
    val_fn,
    *,
    lr: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    seed: int,
    precision: str = "fp32",
) -> FitResult:
    """Train ``model`` in place.

    ``train_mask`` ``(M, n)``: which of the ``n`` items each member trains on.
    ``item_loss(model, idx)`` returns per-item losses ``(M, len(idx))``;
    ``val_fn(model)`` returns per-member validation losses ``(M,)``.
    """
    m = train_mask.shape[0]
    items = np.flatnonzero(train_mask.any(0))
    mask = torch.from_numpy(train_mask.astype(np.float32))
    rng = np.random.default_rng([seed, 1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best_loss = np.full(m, np.inf)
    best_epoch = np.zeros(m, dtype=int)
    stopped_at = np.zeros(m, dtype=int)
    best_params = [p.detach().clone() for p in model.parameters()]
    history = []
    for epoch in range(1, max_epochs + 1):
        order = rng.permutation(items)
        model.train()
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            counts = mask[:, batch].sum(1)
            opt.zero_grad(set_to_none=True)
            for mstart in range(0, len(batch), MICRO_BATCH):
                micro = batch[mstart : mstart + MICRO_BATCH]
                with autocast(precision):
                    losses = item_loss(model, micro).float()
                masked_means(losses, mask[:, micro], counts).sum().backward()
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
