"""Planted ratings: several attributes and a prompt-conditioned gating with known answers.

The model, per prompt i, response k and attribute j = 1..J (all draws standard normal
unless said; the last attribute is the response's length, as HelpSteer's verbosity):

    c_i   in R^D    the prompt's own embedding
    x_ik  = 0.5 c_i + z_ik                    response embedding, z_ik in R^D
    u_j   = unit vectors in R^D               one direction per attribute
    W_j   = sqrt(1 - rho^2) u_j + rho u_J     for j < J (rho = 0.5: every quality
            W_J = u_J                         attribute correlates with length)
    a*_ikj = x_ik . W_j + b_j                 true attribute score, b_j = 2 + j / 2
    a_ikj  = a*_ikj + 0.3 e_ikj               the observed rating
    g_i   = softmax(c_i G)                    gating over attributes, G (D x J)
                                              Gaussian with std 1.5 / sqrt(D)
    r_ik  = 2 * sum_j g_ij a*_ikj             the reward the pairs are labelled by

so ridge regression of ``a_j`` on ``x`` has the answer ``W_j`` with intercept ``b_j``
(x has mean zero), and a gating network fed ``c_i`` has the answer ``g_i`` and the
scale 2. Everything is drawn from ``seed``; ``stream`` separates
splits drawn from the same model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RHO = 0.5
NOISE = 0.3
REWARD_SCALE = 2.0
GATING_STD = 1.5


@dataclass
class PlantedRatings:
    """One split of the planted model and its known answers."""

    embeddings: np.ndarray  # (N, K, D) float32, x
    prompt_embeddings: np.ndarray  # (N, D) float32, c
    ratings: np.ndarray  # (N, K, J) float32, the observed a
    true_attributes: np.ndarray  # (N, K, J) float64, a*
    gating: np.ndarray  # (N, J) float64, g (rows sum to 1)
    rewards: np.ndarray  # (N, K) float64, r
    weight: np.ndarray  # (D, J) float64, W
    bias: np.ndarray  # (J,) float64, b


def planted_model(dim: int, n_attributes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(W (D, J), G (D, J))`` of the model drawn from ``seed``."""
    if n_attributes < 2 or dim < n_attributes:
        raise ValueError(f"need 2 <= n_attributes <= dim, got {n_attributes} and {dim}")
    rng = np.random.default_rng([seed, 21])
    u = rng.standard_normal((dim, n_attributes))
    u /= np.linalg.norm(u, axis=0, keepdims=True)
    weight = np.sqrt(1 - RHO**2) * u + RHO * u[:, -1:]
    weight[:, -1] = u[:, -1]
    gating = rng.standard_normal((dim, n_attributes)) * GATING_STD / np.sqrt(dim)
    return weight, gating


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def planted_ratings(
    *, n: int, k: int, dim: int, n_attributes: int, seed: int, stream: int = 0
) -> PlantedRatings:
    """Draw ``n`` prompts of ``k`` responses from the model of ``seed`` (module doc)."""
    weight, gating_matrix = planted_model(dim, n_attributes, seed)
    bias = 2.0 + np.arange(n_attributes) / 2
    rng = np.random.default_rng([seed, stream, 22])
    c = rng.standard_normal((n, dim))
    x = 0.5 * c[:, None, :] + rng.standard_normal((n, k, dim))
    true = x @ weight + bias
    ratings = true + NOISE * rng.standard_normal(true.shape)
    g = softmax(c @ gating_matrix)
    rewards = REWARD_SCALE * np.einsum("nkj,nj->nk", true, g)
    return PlantedRatings(
        embeddings=x.astype(np.float32),
        prompt_embeddings=c.astype(np.float32),
        ratings=ratings.astype(np.float32),
        true_attributes=true,
        gating=g,
        rewards=rewards,
        weight=weight,
        bias=bias,
    )
