"""M independent MLPs trained and evaluated as one model with stacked weights.

An ensemble of M small MLPs spends its time in M matrix products per layer. Here all
members read the same input rows, so the members' first layers (the largest, D x H)
run as ONE wide GEMM ``(B, D) @ (D, M * H)``, and the remaining layers as one ``bmm``
over the stacked ``(M, in, out)`` weights. On a CPU the wide GEMM runs at about twice
the rate of M separate products. The ORM ensemble and the student both use it.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class StackedMLP(nn.Module):
    """``M`` MLPs ``D -> hidden... -> 1`` (ReLU); member ``i`` starts from ``seeds[i]``."""

    def __init__(self, input_dim: int, hidden_sizes, seeds):
        super().__init__()
        self.input_dim = int(input_dim)
        self.hidden_sizes = [int(h) for h in hidden_sizes]
        sizes = [self.input_dim, *self.hidden_sizes, 1]
        m = len(seeds)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            self.weights.append(nn.Parameter(torch.empty(m, fan_in, fan_out)))
            self.biases.append(nn.Parameter(torch.empty(m, 1, fan_out)))
        for i, seed in enumerate(seeds):
            gen = torch.Generator().manual_seed(int(seed))
            for w, b in zip(self.weights, self.biases):
                # nn.Linear's default: uniform(+-1/sqrt(fan_in)) for weights and biases
                bound = 1.0 / math.sqrt(w.shape[1])
                with torch.no_grad():
                    w[i].uniform_(-bound, bound, generator=gen)
                    b[i].uniform_(-bound, bound, generator=gen)

    @property
    def members(self) -> int:
        return self.weights[0].shape[0]

    def _wide_first_layer(self):
        m, d, h1 = self.weights[0].shape
        return self.weights[0].permute(1, 0, 2).reshape(d, m * h1), self.biases[0].reshape(1, -1)

    def _hidden(self, x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor) -> torch.Tensor:
        h = torch.addmm(b1, x, w1).view(x.shape[0], self.members, -1).transpose(0, 1)
        for w, b in zip(self.weights[1:-1], self.biases[1:-1]):
            h = torch.baddbmm(b, torch.relu(h), w)
        return torch.relu(h)

    def _score(self, x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor) -> torch.Tensor:
        h = self._hidden(x, w1, b1)
        return torch.baddbmm(self.biases[-1], h, self.weights[-1]).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shared inputs ``(B, D)`` -> scores ``(M, B)`` of every member."""
        return self._score(x, *self._wide_first_layer())

    @torch.no_grad()
    def shared_scorer(self):
        """``forward`` for inference, with the wide first-layer matrix built once."""
        w1, b1 = (t.contiguous() for t in self._wide_first_layer())
        return lambda x: self._score(x, w1, b1).T

    @torch.no_grad()
    def last_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's last hidden layer ``(M, B, H)`` (after ReLU) and scores
        ``(M, B)`` of shared inputs ``(B, D)``: a score is linear in those features."""
        h = self._hidden(x, *self._wide_first_layer())
        return h, torch.baddbmm(self.biases[-1], h, self.weights[-1]).squeeze(-1)

    def select(self, rows: torch.Tensor) -> StackedMLP:
        """A new StackedMLP holding copies of members ``rows`` (a 1-D index tensor)."""
        out = StackedMLP(self.input_dim, self.hidden_sizes, [])
        with torch.no_grad():
            for mine, theirs in ((self.weights, out.weights), (self.biases, out.biases)):
                for layer, p in enumerate(mine):
                    theirs[layer] = nn.Parameter(p[rows].clone())
        return out

    def member_state(self, i: int) -> dict:
        """Member ``i`` as a plain ``nn.Sequential``-style state dict (``0.weight``, ...)."""
        out = {}
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"{2 * layer}.weight"] = w[i].T.detach().clone()
            out[f"{2 * layer}.bias"] = b[i, 0].detach().clone()
        return out
