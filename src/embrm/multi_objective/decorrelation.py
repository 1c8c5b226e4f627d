"""ArmoRM's length decorrelation of the attribute scores, before the gating mixes them.

Read from ArmoRM's stage 2 (RLHFlow/RLHF-Reward-Modeling, ``armo-rm/stage-2_train.py``,
``find_proper_verbosity_penalties``): each attribute score ``s_j`` becomes
``s_j - lambda_j s_len``, with ``lambda_j`` the smallest penalty of a grid whose Spearman
correlation with the length attribute ``s_len`` is at most ``threshold``; the length
attribute itself is zeroed, so the gating cannot reward length. As a matrix,
``adjusted = scores @ T`` with ``T = I - e_len lambda^T`` (``lambda_len = 1``).

Two choices differ from that code: an attribute that never reaches the threshold keeps
the grid's penalty of lowest correlation (there it keeps the penalty 1, i.e. becomes
``s_j - s_len``), and the reported correlation is the one of the chosen penalty.
"""

from __future__ import annotations

import numpy as np

from embrm.evaluate.metrics import global_spearman
from embrm.io.errors import InputError

PENALTIES = tuple(np.round(np.arange(0, 1.0001, 0.025), 3))


def length_decorrelation(
    scores: np.ndarray, *, length: int, threshold: float = 0.03, penalties=PENALTIES
) -> dict:
    """``{"transform": T (J, J), "penalty": (J,), "spearman": (J,)}`` for attribute
    scores ``(R, J)`` whose column ``length`` measures length; ``spearman[j]`` is the
    adjusted column's rank correlation with length (0 for the zeroed length column)."""
    scores = np.asarray(scores, dtype=np.float64)
    n_attr = scores.shape[1]
    if not 0 <= length < n_attr:
        raise InputError(f"length decorrelation: attribute {length} of {n_attr} does not exist")
    s_len = scores[:, length]
    penalty = np.ones(n_attr)
    spearman = np.zeros(n_attr)
    for j in range(n_attr):
        if j == length:
            continue
        corr = [global_spearman(scores[:, j] - lam * s_len, s_len) for lam in penalties]
        below = [i for i, c in enumerate(corr) if c <= threshold]
        pick = below[0] if below else int(np.argmin(corr))
        penalty[j], spearman[j] = penalties[pick], corr[pick]
    transform = np.eye(n_attr)
    transform[length] -= penalty
    return {"transform": transform, "penalty": penalty, "spearman": spearman}
