"""What early stopping measures on each member's validation pairs.

On noisy labels the validation BT loss bottoms out long before the ranking does: the
loss also pays for the scale of the scores (an over- or under-confident member), which
keeps moving while the order still improves. The criteria, lower is better:

- ``loss``: the mean training loss on the validation items;
- ``accuracy``: 1 - the share of validation pairs the member orders as labelled;
- ``calibrated_loss``: the BT loss after a per-member temperature ``t`` (the best
  ``sigmoid(t * (r_first - r_second))`` fit): scale-free, so it measures only the order,
  and smooth, unlike a count of right pairs on a few thousand noisy labels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from embrm.io.errors import InputError
from embrm.rm.precision import autocast
from embrm.rm.training import MICRO_BATCH, member_means, padded_rows

CRITERIA = ("loss", "accuracy", "calibrated_loss")
NEWTON_STEPS = 25


@torch.no_grad()
def validation_margins(data, model, mask: np.ndarray, precision: str):
    """Score differences ``d`` and labels ``y`` ``(A, n_max)`` of the pairs each row of
    ``mask`` ``(A, n)`` selects, with weights ``(A, n_max)`` (0 for padding); a ranking's
    ``C(k, 2)`` pairs count as ``C(k, 2)`` columns."""
    idx, weight = padded_rows([np.flatnonzero(row) for row in mask])
    diffs, labels, weights = [], [], []
    for start in range(0, idx.shape[1], MICRO_BATCH):
        part = slice(start, start + MICRO_BATCH)
        with autocast(precision):
            sa, sb, y = data.margins(model, idx[:, part])
        d = (sa - sb).double()
        w = weight[:, part].double().reshape(*d.shape[:2], *[1] * (d.dim() - 2))
        diffs.append(d.reshape(d.shape[0], -1))
        labels.append(y.double().expand_as(d).reshape(d.shape[0], -1))
        weights.append(w.expand_as(d).reshape(d.shape[0], -1))
    return torch.cat(diffs, 1), torch.cat(labels, 1), torch.cat(weights, 1)


def temperature_loss(d: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per row, ``min_t mean_w BCE(sigmoid(t d), y)`` over ``t >= 0`` (Newton steps on a
    convex function of one variable): ``(A,)``."""
    n = w.sum(1).clamp(min=1)
    t = torch.ones(d.shape[0], 1, dtype=d.dtype)
    for _ in range(NEWTON_STEPS):
        p = torch.sigmoid(t * d)
        grad = (w * (p - y) * d).sum(1, keepdim=True)
        hess = (w * p * (1 - p) * d * d).sum(1, keepdim=True).clamp(min=1e-12)
        t = (t - grad / hess).clamp(min=0.0)
    return (w * F.binary_cross_entropy_with_logits(t * d, y, reduction="none")).sum(1) / n


def val_score(criterion: str, data, item_loss, precision: str):
    """``score(model, mask) -> (A,)`` of ``criterion`` for :func:`embrm.rm.training.fit`.

    ``data``: a PairData or ListData (``margins(model, idx)``); ``item_loss(data, model,
    idx)``: the training loss, which ``loss`` averages.
    """
    if criterion not in CRITERIA:
        raise InputError(f"orm.stopping must be one of {list(CRITERIA)}, got {criterion!r}")

    def loss(model, mask):
        return member_means([lambda idx: item_loss(data, model, idx)], mask, precision)[0]

    def accuracy(model, mask):
        d, y, w = validation_margins(data, model, mask, precision)
        right = ((d > 0).double() == y).double()
        return (1 - (w * right).sum(1) / w.sum(1).clamp(min=1)).numpy()

    def calibrated_loss(model, mask):
        return temperature_loss(*validation_margins(data, model, mask, precision)).numpy()

    return {"loss": loss, "accuracy": accuracy, "calibrated_loss": calibrated_loss}[criterion]
