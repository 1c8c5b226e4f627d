"""Planted-reward data: embeddings and golden rewards with a known generating model.

The model, per prompt i and response k (all draws standard normal unless said):

    p_i   in R^P     prompt latent          (P = min(16, D // 4))
    z_ik  in R^R     response latent        (R = min(16, D // 4))
    x_ik  = p_i A + z_ik B + 0.1 e_ik       embedding in R^D, A (P x D) and B (R x D)
                                            Gaussian with variance 1/P and 1/R
    s_j   = z_ik . w_j  for unit vectors w_1, w_2, w_3 in R^R
    r_ik  = 1.15 * (1.5 s_1 + 0.8 tanh(2 s_2) + 0.4 s_1 s_3 + 0.5 p_i . u + 0.3 n_ik)

so the golden reward is a nonlinear function of a few projections of the embedding,
with a prompt effect (shared by all responses of a prompt, so within-prompt rankings
only depend on the response part) and irreducible noise; its std is about 2, the scale
of real reward models. Everything is drawn from ``seed``: same seed, same arrays.
"""

from __future__ import annotations

import numpy as np

from embrm.io.atomic import atomic_path

CHUNK_PROMPTS = 512


def _model(dim: int, seed: int):
    rng = np.random.default_rng(seed)
    p = r = min(16, max(2, dim // 4))
    a = rng.standard_normal((p, dim)) / np.sqrt(p)
    b = rng.standard_normal((r, dim)) / np.sqrt(r)
    w = rng.standard_normal((3, r))
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    u = rng.standard_normal(p)
    u /= np.linalg.norm(u)
    return a, b, w, u


def _golden(z: np.ndarray, prompt_term: np.ndarray, noise: np.ndarray, w: np.ndarray):
    s = z @ w.T
    raw = 1.5 * s[..., 0] + 0.8 * np.tanh(2 * s[..., 1]) + 0.4 * s[..., 0] * s[..., 2]
    return 1.15 * (raw + 0.5 * prompt_term[:, None] + 0.3 * noise)


def write_split(emb_path, rew_path, n: int, k: int, dim: int, seed: int, stream: int) -> None:
    """Write one split chunk by chunk (``stream`` separates train from test draws)."""
    a, b, w, u = _model(dim, seed)
    rng = np.random.default_rng([seed, stream])
    with atomic_path(emb_path) as emb_tmp, atomic_path(rew_path) as rew_tmp:
        emb = np.lib.format.open_memmap(emb_tmp, mode="w+", dtype=np.float32, shape=(n, k, dim))
        rew = np.lib.format.open_memmap(rew_tmp, mode="w+", dtype=np.float32, shape=(n, k))
        for start in range(0, n, CHUNK_PROMPTS):
            m = min(CHUNK_PROMPTS, n - start)
            p = rng.standard_normal((m, a.shape[0]))
            z = rng.standard_normal((m, k, b.shape[0]))
            x = (p @ a)[:, None, :] + z @ b + 0.1 * rng.standard_normal((m, k, dim))
            emb[start : start + m] = x
            rew[start : start + m] = _golden(z, p @ u, rng.standard_normal((m, k)), w)
        emb.flush()
        rew.flush()
        del emb, rew


def generate(
    *,
    train_embeddings,
    train_rewards,
    test_embeddings,
    test_rewards,
    n_train: int,
    n_test: int,
    k_train: int,
    k_test: int,
    dim: int,
    seed: int,
) -> None:
    """Write the train split ``(n_train, k_train, dim)`` / ``(n_train, k_train)`` and the
    test split ``(n_test, k_test, dim)`` / ``(n_test, k_test)``, float32."""
    write_split(train_embeddings, train_rewards, n_train, k_train, dim, seed, 0)
    write_split(test_embeddings, test_rewards, n_test, k_test, dim, seed, 1)
