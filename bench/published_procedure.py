"""The published step-5 procedure, emulated on this project's data and pairs.

What the published runner does with the comparisons of one configuration (the same
simulated pairs this project builds, so the two differ only in how they train):

- every comparison is stored twice, as ``(a, b, y)`` and ``(b, a, 1 - y)``;
- each member (its own seed) splits the mirrored rows 80/20 at random, so a pair can
  train a member while its mirror validates it;
- MLP ``D -> 1024 -> 512 -> 1`` (ReLU), Adam lr 1e-3, BT loss;
- every step draws 10,240 rows with replacement; an epoch is ``ceil(rows / 10,240)``
  steps; up to 30 epochs;
- the validation loss is checked once per epoch; a member stops after 3 epochs without
  improvement and keeps its LAST weights (no restore);
- member 0 is the teacher that steps 7-8 calibrate and distil.
"""

from __future__ import annotations

import numpy as np
import torch

from embrm.rm.ensemble import PairData, member_seeds, member_splits
from embrm.rm.losses import pair_loss
from embrm.rm.pairs import Pairs
from embrm.rm.precision import storage_dtype
from embrm.rm.stacked_mlp import StackedMLP
from embrm.rm.training import fit

HIDDEN = [1024, 512]
BATCH = 10_240
MAX_EPOCHS = 30
PATIENCE = 3


def mirrored(pairs: Pairs) -> Pairs:
    """Both orders of every comparison: ``2P`` rows, the mirror's label flipped."""
    return Pairs(
        first=np.concatenate([pairs.first, pairs.second]),
        second=np.concatenate([pairs.second, pairs.first]),
        label=np.concatenate([pairs.label, 1 - pairs.label]).astype(np.float32),
        k=pairs.k,
    )


def train_published(emb: np.ndarray, pairs: Pairs, *, members: int, seed: int, precision: str):
    """The published members trained on ``pairs`` over ``emb`` ``(N, K, D)``: a
    StackedMLP of ``members`` members, in eval mode, and the fit result."""
    rows = mirrored(pairs)
    data = PairData(emb, rows, storage_dtype(precision))
    loss = pair_loss("bt")
    seeds = member_seeds(seed, members)
    val = member_splits(len(rows), seeds, 0.2)
    torch.manual_seed(seed)
    model = StackedMLP(emb.shape[-1], HIDDEN, seeds)
    result = fit(
        model,
        train_mask=~val,
        val_mask=val,
        item_loss=lambda mdl, idx: loss(data, mdl, idx),
        lr=1e-3,
        batch_size=BATCH,
        max_epochs=MAX_EPOCHS,
        checks_per_epoch=1,
        patience=PATIENCE,
        seed=seed,
        precision=precision,
        restore=False,
        replacement=True,
    )
    model.eval()
    return model, result
