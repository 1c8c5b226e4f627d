"""M independent MLPs trained and evaluated as one model with stacked weights.

An ensemble of M small MLPs spends its time in M matrix products per layer. Two input
forms run as few large products:

- shared rows ``(B, D)`` (scoring a test set): the members' first layers (the largest,
  D x H) run as ONE wide GEMM ``(B, D) @ (D, M * H)``;
- per-member rows ``(M, B, D)`` (training, validation: each member its own items): one
  batched product per layer over the stacked ``(M, in, out)`` weights.

The ORM ensemble and the student both use it.
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

    def _layers(self, dtype: torch.dtype | None = None):
        """The first layer as one wide ``(D, M * H1)`` matrix and bias ``(1, M * H1)``,
        then the stacked ``(w, b)`` of the remaining layers; cast to ``dtype`` if given."""
        m, d, h1 = self.weights[0].shape
        w1 = self.weights[0].permute(1, 0, 2).reshape(d, m * h1)
        tensors = [w1, self.biases[0].reshape(1, -1)]
        for w, b in zip(self.weights[1:], self.biases[1:]):
            tensors += [w, b]
        if dtype is not None:
            tensors = [t.to(dtype).contiguous() for t in tensors]
        return tensors[0], tensors[1], list(zip(tensors[2::2], tensors[3::2]))

    def _shared(self, x: torch.Tensor, w1, b1, rest) -> torch.Tensor:
        """Shared rows ``(B, D)`` -> scores ``(M, B)``: the wide GEMM, then the rest."""
        h = torch.addmm(b1, x, w1).view(x.shape[0], self.members, -1).transpose(0, 1)
        return _rest(h, rest)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shared inputs ``(B, D)`` or per-member inputs ``(M, B, D)`` -> scores ``(M, B)``."""
        if x.dim() == 3:
            h = torch.baddbmm(self.biases[0], x, self.weights[0])
            return _rest(h, list(zip(self.weights[1:], self.biases[1:])))
        return self._shared(x, *self._layers())

    @torch.no_grad()
    def shared_scorer(self, dtype: torch.dtype = torch.float32):
        """``forward`` for inference on shared rows, returning ``(B, M)``: every weight is
        cast to ``dtype`` and the wide first-layer matrix built once, not per call."""
        layers = self._layers(dtype)
        return lambda x: self._shared(x.to(dtype), *layers).T

    @torch.no_grad()
    def last_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's last hidden layer ``(M, B, H)`` (after ReLU; the inputs
        themselves for a linear head) and scores ``(M, B)`` of shared inputs ``(B, D)``:
        a score is linear in those features."""
        w1, b1, rest = self._layers()
        if not rest:
            return x.expand(self.members, *x.shape), self._shared(x, w1, b1, rest)
        h = torch.addmm(b1, x, w1).view(x.shape[0], self.members, -1).transpose(0, 1)
        feats = torch.relu(_through(h, rest[:-1]))
        w, b = rest[-1]
        return feats, torch.baddbmm(b, feats, w).squeeze(-1)

    def copy(self) -> StackedMLP:
        """A new StackedMLP with copies of every member's weights."""
        out = StackedMLP(self.input_dim, self.hidden_sizes, [])
        with torch.no_grad():
            for mine, theirs in ((self.weights, out.weights), (self.biases, out.biases)):
                for layer, p in enumerate(mine):
                    theirs[layer] = nn.Parameter(p.clone())
        return out

    def member_state(self, i: int) -> dict:
        """Member ``i`` as a plain ``nn.Sequential``-style state dict (``0.weight``, ...)."""
        out = {}
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"{2 * layer}.weight"] = w[i].T.detach().clone()
            out[f"{2 * layer}.bias"] = b[i, 0].detach().clone()
        return out


def _rest(h: torch.Tensor, layers) -> torch.Tensor:
    """First-layer outputs ``(M, B, H1)`` and the stacked ``(w, b)`` of the remaining
    layers -> scores ``(M, B)``."""
    return _through(h, layers).squeeze(-1)


def _through(h: torch.Tensor, layers) -> torch.Tensor:
    """Pre-activations ``(M, B, H)`` through ReLU and each stacked ``(w, b)`` layer."""
    for w, b in layers:
        h = torch.baddbmm(b, torch.relu(h), w)
    return h
