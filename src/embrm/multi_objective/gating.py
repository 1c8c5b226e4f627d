"""Stage 2: a prompt-conditioned gating network mixes attribute scores into one reward.

As ArmoRM's stage 2 (RLHFlow/RLHF-Reward-Modeling, ``armo-rm/stage-2_train.py``): an MLP
of the prompt's embedding gives logits over the J attributes, ``softmax(logits /
temperature)`` times one learned scale are the mixing weights, and the reward of a
response is ``scale * sum_j g_j(prompt) s_j(response)`` over its (fixed, stage-1)
attribute scores ``s``. Only the gating learns, from pairs, with the Bradley-Terry loss
``-log sigmoid(r_win - r_lose)``; AdamW with a cosine-annealed rate over random batches,
as there. Unlike that script, the scores the gating mixes are the length-decorrelated
ones (:mod:`embrm.multi_objective.decorrelation`) when a transform is given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from embrm.io.errors import InputError
from embrm.rm.pairs import Pairs


class GatingNetwork(nn.Module):
    """Prompt context ``(b, C)`` -> mixing weights ``(b, J)``: ``scale * softmax``."""

    def __init__(self, in_dim: int, n_attributes: int, hidden_sizes=(), temperature=1.0):
        super().__init__()
        layers, width = [], in_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_attributes))
        self.mlp = nn.Sequential(*layers)
        self.temperature = float(temperature)
        self.scale = nn.Parameter(torch.ones(()))

    def weights(self, context: torch.Tensor) -> torch.Tensor:
        """The softmax part ``(b, J)``, rows summing to 1."""
        return F.softmax(self.mlp(context) / self.temperature, dim=-1)

    def forward(self, context: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Rewards ``(b,)`` of responses with attribute scores ``(b, J)``."""
        return self.scale * (self.weights(context) * scores).sum(-1)


@dataclass
class GatingOptions:
    """ArmoRM's stage-2 knobs, at sizes for frozen-embedding data."""

    hidden_sizes: tuple = ()
    temperature: float = 1.0
    steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-2
    weight_decay: float = 0.0
    seed: int = 0


def fit_gating(
    *,
    scores: np.ndarray,
    context: np.ndarray,
    pairs: Pairs,
    options: GatingOptions,
    transform: np.ndarray | None = None,
) -> tuple[GatingNetwork, list[float]]:
    """Train the gating on ``pairs`` over response rows: ``scores`` ``(R, J)`` (stage-1
    attribute scores), ``context`` ``(R, C)`` (each response's prompt embedding),
    ``transform`` ``(J, J)`` applied to the scores first. Returns the model and the mean
    loss of every 100 steps."""
    scores = np.asarray(scores, dtype=np.float32)
    if transform is not None:
        scores = scores @ np.asarray(transform, dtype=np.float32)
    context = np.asarray(context, dtype=np.float32)
    if len(scores) != len(context):
        raise InputError(f"gating: {len(scores)} score rows but {len(context)} context rows")
    if len(pairs) == 0:
        raise InputError("gating: no pairs to train on")
    torch.manual_seed(options.seed)
    model = GatingNetwork(
        context.shape[1], scores.shape[1], options.hidden_sizes, options.temperature
    )
    s, c = torch.from_numpy(scores), torch.from_numpy(context)
    first, second = torch.from_numpy(pairs.first), torch.from_numpy(pairs.second)
    label = torch.from_numpy(np.asarray(pairs.label, dtype=np.float32))
    opt = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=options.steps)
    gen = torch.Generator().manual_seed(options.seed)
    running, history = [], []
    for step in range(options.steps):
        idx = torch.randint(0, len(pairs), (options.batch_size,), generator=gen)
        a, b = first[idx], second[idx]
        diff = model(c[a], s[a]) - model(c[b], s[b])
        loss = F.binary_cross_entropy_with_logits(diff, label[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % 100 == 0:
            history.append(float(np.mean(running)))
            running = []
    return model.eval(), history


@torch.no_grad()
def gated_rewards(
    model: GatingNetwork, scores: np.ndarray, context: np.ndarray, transform=None
) -> tuple[np.ndarray, np.ndarray]:
    """``(rewards (R,), weights (R, J))``: the mixed reward of each response and the
    softmax weights its prompt gets."""
    scores = np.asarray(scores, dtype=np.float32)
    if transform is not None:
        scores = scores @ np.asarray(transform, dtype=np.float32)
    c = torch.from_numpy(np.asarray(context, dtype=np.float32))
    reward = model(c, torch.from_numpy(scores)).numpy()
    return reward, model.weights(c).numpy()
