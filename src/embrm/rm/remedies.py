"""Label-noise remedies from a first ensemble's preference strength (Secrets of RLHF).

The preference strength of a training pair is the first ensemble's score gap of the
labelled winner over the labelled loser, ``(2y - 1)(r_a - r_b)``: its mean over members
``(P,)`` and std ``(P,)`` are stored as one ``(P, 2)`` float32 array. The pairs of lowest
mean strength are the likeliest mislabelled; the remedies flip or drop the lowest
``remedy_fraction`` of them, or train every pair with its mean strength as the margin.
A flipped pair's winner is its old loser, so its strength (and any adaptive margin drawn
from it) changes sign with the label.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from embrm.data.arrays import open_array
from embrm.io.errors import InputError
from embrm.rm.options import OrmSettings
from embrm.rm.pairs import Pairs


def load_strength(path, n_pairs: int) -> np.ndarray:
    """The ``(P, 2)`` strength array at ``path``; a count that differs from the pairs
    built now means it was measured on other pairs."""
    if path is None:
        raise InputError("orm.noise_remedy or an adaptive margin needs orm/preference_strength.npy")
    strength = np.asarray(open_array(path, 2), dtype=np.float32)
    if strength.shape != (n_pairs, 2):
        raise InputError(
            f"{path}: preference strength has shape {strength.shape}, the training pairs "
            f"need ({n_pairs}, 2); it was measured on other pairs"
        )
    return strength


def lowest(strength_mean: np.ndarray, fraction: float) -> np.ndarray:
    """``(P,)`` bool: the ``round(fraction * P)`` pairs of lowest mean strength (ties by
    position, so the choice is reproducible)."""
    n = int(round(fraction * len(strength_mean)))
    flagged = np.zeros(len(strength_mean), dtype=bool)
    flagged[np.argsort(strength_mean, kind="stable")[:n]] = True
    return flagged


def detection(flagged: np.ndarray, noisy: np.ndarray) -> dict:
    """Precision and recall of ``flagged`` pairs as a detector of the ``noisy`` ones."""
    hits = int((flagged & noisy).sum())
    return {
        "flagged": int(flagged.sum()),
        "mislabelled": int(noisy.sum()),
        "base_rate": float(noisy.mean()),
        "precision": hits / max(int(flagged.sum()), 1),
        "recall": hits / max(int(noisy.sum()), 1),
    }


def apply_remedy(pairs: Pairs, strength: np.ndarray, orm: OrmSettings):
    """``(pairs, margin or None, summary)`` after ``orm.noise_remedy``: ``flip`` or
    ``drop`` the lowest ``remedy_fraction``; ``adaptive_margin`` (or ``margin_source:
    adaptive``) keeps every pair with ``margin_scale * mean strength`` as its margin."""
    remedy = orm.noise_remedy
    fraction = orm.remedy_fraction
    flagged = lowest(strength[:, 0], fraction)
    margin = None
    if remedy == "flip":
        pairs = replace(pairs, label=np.where(flagged, 1 - pairs.label, pairs.label))
        strength = strength.copy()
        strength[flagged, 0] *= -1
    elif remedy == "drop":
        keep = ~flagged
        pairs = Pairs(pairs.first[keep], pairs.second[keep], pairs.label[keep], pairs.k)
    if orm.adaptive_margin:
        kept = strength if remedy != "drop" else strength[~flagged]
        margin = (orm.margin_scale * kept[:, 0]).astype(np.float32)
    changed = int(flagged.sum()) if remedy in ("flip", "drop") else 0
    return pairs, margin, {"remedy": remedy, "fraction": fraction, "pairs_changed": changed}
