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

``model: rough`` is the hard setting the benchmark uses: the golden reward is a random
tanh network of many response latents, which an MLP recovers only partly from ~10^4
noisy pairs (test Spearman about 0.77 at the published step-5 settings, against 0.95
for the default ``smooth`` model):

    p_i in R^16, z_ik in R^128, x_ik = p_i A + z_ik B + e_ik   (unit embedding noise)
    g(z)  = v . tanh(z W)        W (128 x 256) Gaussian, std 6/sqrt(128); v std 1/sqrt(256)
    r_ik  = 1.25 * (1.5 g(z_ik) / std(g) + 0.5 p_i . u + 0.3 n_ik)

with std(g) estimated once from 4,096 draws of the model's own stream.

``model: prompt_heavy`` puts most of the reward variance between prompts, as real
golden rewards do (a prompt that invites a good answer lifts all its responses), so
cross-prompt labels say little about the within-prompt order that best-of-N needs; the
within-prompt part is a smooth, saturating function of a few response directions:

    p_i in R^16, z_ik in R^32, x_ik = p_i A + z_ik B + 0.5 e_ik
    h(z)  = sum_j c_j tanh(a_j z . w_j), j = 1..4, unit w_j, a = (1.5, 1, 2, 0.7),
            c = (1, 0.7, 0.5, 0.4)
    r_ik  = 2 * (sqrt(0.6) p_i . u + sqrt(0.36) h(z_ik) / std(h) + sqrt(0.04) n_ik)

so 60 % of the variance is the prompt's, 36 % the response's and 4 % noise (std 2);
in ``smooth`` and ``rough`` the prompt's share is about 7 % and 10 %.
"""

from __future__ import annotations

import numpy as np

from embrm.data.arrays import check_written
from embrm.io.atomic import atomic_path
from embrm.io.npy import preallocated_memmap

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


def _smooth_chunks(n: int, k: int, dim: int, seed: int, rng):
    """``(start, x, r)`` chunks of the default model."""
    a, b, w, u = _model(dim, seed)
    for start in range(0, n, CHUNK_PROMPTS):
        m = min(CHUNK_PROMPTS, n - start)
        p = rng.standard_normal((m, a.shape[0]))
        z = rng.standard_normal((m, k, b.shape[0]))
        x = (p @ a)[:, None, :] + z @ b + 0.1 * rng.standard_normal((m, k, dim))
        yield start, x, _golden(z, p @ u, rng.standard_normal((m, k)), w)


ROUGH_LATENTS, ROUGH_UNITS, ROUGH_ROWS = 128, 256, 8192


def _rough_chunks(n: int, k: int, dim: int, seed: int, rng):
    """``(start, x, r)`` chunks of the ``rough`` model, ~8k responses at a time."""
    model = np.random.default_rng([seed, 7])
    a = model.standard_normal((16, dim)) / 4.0
    b = model.standard_normal((ROUGH_LATENTS, dim)) / np.sqrt(ROUGH_LATENTS)
    w = model.standard_normal((ROUGH_LATENTS, ROUGH_UNITS)) * 6 / np.sqrt(ROUGH_LATENTS)
    v = model.standard_normal(ROUGH_UNITS) / np.sqrt(ROUGH_UNITS)
    u = model.standard_normal(16)
    u /= np.linalg.norm(u)
    g_std = (np.tanh(model.standard_normal((4096, ROUGH_LATENTS)) @ w) @ v).std()
    chunk = max(1, ROUGH_ROWS // k)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        p = rng.standard_normal((m, 16))
        z = rng.standard_normal((m, k, ROUGH_LATENTS))
        x = (p @ a)[:, None, :] + z @ b + rng.standard_normal((m, k, dim))
        g = np.tanh(z @ w) @ v / g_std
        noise = rng.standard_normal((m, k))
        yield start, x, 1.25 * (1.5 * g + 0.5 * (p @ u)[:, None] + 0.3 * noise)


HEAVY_LATENTS = 32
HEAVY_GAIN = np.array([1.5, 1.0, 2.0, 0.7])
HEAVY_WEIGHT = np.array([1.0, 0.7, 0.5, 0.4])


def _prompt_heavy_chunks(n: int, k: int, dim: int, seed: int, rng):
    """``(start, x, r)`` chunks of the ``prompt_heavy`` model, ~8k responses at a time."""
    model = np.random.default_rng([seed, 11])
    a = model.standard_normal((16, dim)) / 4.0
    b = model.standard_normal((HEAVY_LATENTS, dim)) / np.sqrt(HEAVY_LATENTS)
    w = model.standard_normal((HEAVY_LATENTS, len(HEAVY_GAIN)))
    w /= np.linalg.norm(w, axis=0, keepdims=True)
    u = model.standard_normal(16)
    u /= np.linalg.norm(u)

    def h(z):
        return np.tanh(HEAVY_GAIN * (z @ w)) @ HEAVY_WEIGHT

    h_std = h(model.standard_normal((4096, HEAVY_LATENTS))).std()
    chunk = max(1, ROUGH_ROWS // k)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        p = rng.standard_normal((m, 16))
        z = rng.standard_normal((m, k, HEAVY_LATENTS))
        x = (p @ a)[:, None, :] + z @ b + 0.5 * rng.standard_normal((m, k, dim))
        within = np.sqrt(0.36) * h(z) / h_std + np.sqrt(0.04) * rng.standard_normal((m, k))
        yield start, x, 2.0 * (np.sqrt(0.6) * (p @ u)[:, None] + within)


MODELS = {"smooth": _smooth_chunks, "rough": _rough_chunks, "prompt_heavy": _prompt_heavy_chunks}


def write_split(
    emb_path, rew_path, n: int, k: int, dim: int, seed: int, stream: int, split: str, model: str
) -> None:
    """Write one split chunk by chunk (``stream`` separates train from test draws), and
    check it (N > 0, K >= 2, finite) before it takes its final name."""
    rng = np.random.default_rng([seed, stream])
    with atomic_path(emb_path) as emb_tmp, atomic_path(rew_path) as rew_tmp:
        emb = preallocated_memmap(emb_tmp, np.float32, (n, k, dim))
        rew = preallocated_memmap(rew_tmp, np.float32, (n, k))
        for start, x, r in MODELS[model](n, k, dim, seed, rng):
            emb[start : start + len(x)] = x
            rew[start : start + len(x)] = r
        emb.flush()
        rew.flush()
        del emb, rew
        check_written(rew_tmp, 2, split)
        check_written(emb_tmp, 3, split)


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
    model: str = "smooth",
) -> None:
    """Write the train split ``(n_train, k_train, dim)`` / ``(n_train, k_train)`` and the
    test split ``(n_test, k_test, dim)`` / ``(n_test, k_test)``, float32, drawn from the
    ``smooth`` (default), ``rough`` or ``prompt_heavy`` planted model."""
    write_split(train_embeddings, train_rewards, n_train, k_train, dim, seed, 0, "train", model)
    write_split(test_embeddings, test_rewards, n_test, k_test, dim, seed, 1, "test", model)
