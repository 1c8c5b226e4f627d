"""Preference strength: a first ensemble's score gap on each of its own training pairs.

The first ensemble is the configured one trained with the plain objective (no margin,
smoothing or remedy). Its strength array ``(P, 2)`` (mean and std over members of
``r(win) - r(lose)``) feeds the noise remedies (:mod:`embrm.rm.remedies`); the report
JSON says how well the lowest-strength pairs find the labels the simulated annotator
got wrong, the one thing a simulation knows and real data cannot tell. On human pairs
(``data.source: pairs``) the strength and its remedies work the same; only that check
is left out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from embrm.data.arrays import load_split, save_array
from embrm.evaluate.plots import plot_strength
from embrm.io.jsonio import write_json
from embrm.rm.ensemble import PairData, train_members, training_pairs
from embrm.rm.options import OrmSettings
from embrm.rm.pairs import mislabelled
from embrm.rm.precision import autocast, resolve, storage_dtype
from embrm.rm.remedies import detection, lowest
from embrm.rm.training import MICRO_BATCH

FRACTIONS = (0.05, 0.1, 0.2, 0.3)


@torch.no_grad()
def pair_strength(data: PairData, model, precision: str) -> np.ndarray:
    """``(P, 2)``: mean and std over members of the labelled winner's score gap."""
    gaps = []
    for start in range(0, len(data.label), MICRO_BATCH):
        idx = np.arange(start, min(start + MICRO_BATCH, len(data.label)))
        with autocast(precision):
            sa, sb, y = data.margins(model, idx)
        gaps.append(((2 * y - 1) * (sa.float() - sb.float())).numpy())
    gap = np.concatenate(gaps, axis=1)
    return np.stack([gap.mean(0), gap.std(0)], axis=1).astype(np.float32)


def measure_strength(
    *,
    embeddings,
    rewards,
    strength,
    report_json,
    plot,
    orm: OrmSettings,
    seed: int,
    task: str,
    precision: str = "fp32",
    pair_data: bool = False,
) -> dict:
    """Train the first ensemble on the configured pairs, write their ``strength``
    ``(P, 2)``, the noisy-label detection ``report_json`` and the histogram ``plot``.
    With ``pair_data`` (``rewards``: human preferences ``(N, 2)``) the pairs are the
    human ones and, with no golden reward to check them against, the report gives the
    share of pairs the first ensemble contradicts instead of a detection rate."""
    precision = resolve(precision)
    emb, rew = load_split(embeddings, rewards)
    pairs, _ = training_pairs(rew, orm, seed, pair_data=pair_data, source=rewards)
    plain = dataclasses.replace(orm, loss=None, noise_remedy="none", label_smoothing=0.0)
    model, _, members = train_members(
        emb, pairs, orm=plain, seed=seed, task=task, precision=precision
    )
    data = PairData(emb, pairs, storage_dtype(precision))
    values = pair_strength(data, model, precision)
    save_array(strength, values)
    out = {
        "n_pairs": len(pairs),
        "first_ensemble_val_accuracy": [m["val_accuracy"] for m in members],
        "negative_strength_share": float((values[:, 0] < 0).mean()),
    }
    noisy = None if pair_data else mislabelled(rew, pairs)
    if noisy is not None:
        fraction = orm.remedy_fraction
        out |= {
            "annotation_quality": orm.annotation_quality,
            "detection": detection(lowest(values[:, 0], fraction), noisy),
            "detection_by_fraction": {
                str(f): detection(lowest(values[:, 0], f), noisy)
                for f in sorted({*FRACTIONS, fraction})
            },
        }
    write_json(report_json, out)
    plot_strength(values[:, 0], noisy, plot)
    return out
