"""Stage 1: one ridge regression per attribute, closed form, its penalty chosen by K-fold CV.

ArmoRM (RLHFlow/RLHF-Reward-Modeling, ``armo-rm/stage-1_train.py``) fits one ridge per
attribute on precomputed embeddings and keeps the penalty of lowest validation MSE. Here
all attributes share one SVD per fold: with the centred train rows ``X = U S V^T``, the
penalty-``a`` weights are ``V diag(s / (s^2 + a)) U^T Y``, so a grid of penalties costs
one SVD per fold and one per final fit. The intercept is the unpenalised mean (ratings
are on a 1-5 or 0-4 scale, not centred). Folds hold whole groups (prompts), so no
prompt's responses sit on both sides of a fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embrm.io.errors import InputError

ALPHAS = tuple(10.0**e for e in range(-4, 5))


@dataclass
class RidgeFit:
    """Per-attribute linear heads: ``predict(X (n, D)) = X @ weight + bias`` ``(n, J)``."""

    weight: np.ndarray  # (D, J)
    bias: np.ndarray  # (J,)
    alpha: np.ndarray  # (J,) the chosen penalty of each attribute
    alphas: np.ndarray  # (A,) the grid
    cv_mse: np.ndarray  # (A, J) mean validation MSE over folds

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.weight + self.bias


def _svd_solver(x: np.ndarray, y: np.ndarray):
    """``(x mean, y mean, V, s, U^T y)`` of the centred rows, for any penalty."""
    mx, my = x.mean(0), y.mean(0)
    u, s, vt = np.linalg.svd(x - mx, full_matrices=False)
    return mx, my, vt.T, s, u.T @ (y - my)


def ridge_weights(solver, alpha: np.ndarray) -> np.ndarray:
    """``(D, J)`` weights, attribute ``j`` with penalty ``alpha[j]``."""
    _, _, v, s, uty = solver
    shrink = s[:, None] / (s[:, None] ** 2 + np.asarray(alpha, dtype=np.float64)[None, :])
    return v @ (shrink * uty)


def group_folds(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """``(n,)`` fold of each row: whole groups, in a seeded order, dealt round-robin."""
    unique, inverse = np.unique(groups, return_inverse=True)
    if len(unique) < folds:
        raise InputError(
            f"ridge CV: {folds} folds need at least {folds} prompts, got {len(unique)}"
        )
    order = np.random.default_rng([seed, 23]).permutation(len(unique))
    fold_of_group = np.empty(len(unique), dtype=np.int64)
    fold_of_group[order] = np.arange(len(unique)) % folds
    return fold_of_group[inverse]


def fit_ridge_cv(
    x: np.ndarray,
    y: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    alphas=ALPHAS,
    folds: int = 5,
    seed: int = 0,
) -> RidgeFit:
    """Ridge of each column of ``y`` ``(n, J)`` on ``x`` ``(n, D)``; each column keeps the
    penalty of ``alphas`` with the lowest mean validation MSE over ``folds`` folds of
    ``groups`` ``(n,)`` (None: each row its own group), then is refitted on all rows."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise InputError(f"ridge: x must be (n, D) and y (n, J), got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("ridge: embeddings and ratings must be finite")
    alphas = np.asarray(alphas, dtype=np.float64)
    fold = group_folds(np.arange(len(x)) if groups is None else np.asarray(groups), folds, seed)
    sse = np.zeros((len(alphas), y.shape[1]))
    for f in range(folds):
        train, val = fold != f, fold == f
        solver = _svd_solver(x[train], y[train])
        mx, my = solver[:2]
        for a, alpha in enumerate(alphas):
            pred = (x[val] - mx) @ ridge_weights(solver, np.full(y.shape[1], alpha)) + my
            sse[a] += ((pred - y[val]) ** 2).sum(0)
    cv_mse = sse / len(x)
    best = alphas[np.argmin(cv_mse, axis=0)]
    solver = _svd_solver(x, y)
    weight = ridge_weights(solver, best)
    bias = solver[1] - solver[0] @ weight
    return RidgeFit(weight=weight, bias=bias, alpha=best, alphas=alphas, cv_mse=cv_mse)
