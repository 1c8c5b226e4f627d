"""Step-5 training objectives over pairs, and the optional ``orm`` keys that pick them.

Every loss returns per-pair values ``(M, b)`` for pairs ``idx`` of a :class:`PairData`
(``y`` = 1 if the first response won; ``d = r_first - r_second``; the winner's gap is
``(2y - 1) d``):

- ``bt``: -log sigmoid(r_win - r_lose), the Bradley-Terry likelihood;
- ``clf``: each response of a comparison is a sample labelled 1 if it won, BCE on
  sigmoid(r(x));
- ``margin``: -log sigmoid(r_win - r_lose - m) with a per-pair margin ``m`` (Llama 2);
- ``hinge``: max(0, m - (r_win - r_lose)).

:func:`plackett_luce` is the listwise loss of K-wise rankings (``orm.listwise``).

``label_smoothing`` ``a`` turns each BCE target ``t`` into ``(1 - a) t + a (1 - t)``, i.e.
-(1 - a) log p - a log(1 - p).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from embrm.io.errors import InputError


def _bce(logit: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    target = y.expand_as(logit)
    if smoothing:
        target = target * (1 - 2 * smoothing) + smoothing
    return F.binary_cross_entropy_with_logits(logit, target, reduction="none")


def pair_loss(loss: str, label_smoothing: float = 0.0):
    """``loss(data, model, idx)`` -> per-pair losses ``(M, b)``; ``margin`` and ``hinge``
    read the per-pair margin ``data.margin`` gathered like the labels."""

    def bt(data, model, idx):
        sa, sb, y = data.margins(model, idx)
        return _bce(sa - sb, y, label_smoothing)

    def clf(data, model, idx):
        sa, sb, y = data.margins(model, idx)
        return (_bce(sa, y, label_smoothing) + _bce(sb, 1 - y, label_smoothing)) / 2

    def margin(data, model, idx):
        sa, sb, y = data.margins(model, idx)
        return _bce(sa - sb - data.pair_values(data.margin, idx) * (2 * y - 1), y, label_smoothing)

    def hinge(data, model, idx):
        sa, sb, y = data.margins(model, idx)
        return torch.relu(data.pair_values(data.margin, idx) - (2 * y - 1) * (sa - sb))

    losses = {"bt": bt, "clf": clf, "margin": margin, "hinge": hinge}
    if loss not in losses:
        raise InputError(f"orm.loss must be one of {sorted(losses)}, got {loss!r}")
    return losses[loss]


def plackett_luce(data, model, idx) -> torch.Tensor:
    """Listwise loss ``(M, b)`` of rankings ``idx`` of a ``ListData``: the negative
    Plackett-Luce log-likelihood of the observed order, -sum_i [s_i - log sum_{j >= i}
    exp(s_j)], averaged over the k - 1 choices so it is on the pairwise losses' scale."""
    s = data.scores(model, idx)
    tail = torch.logcumsumexp(s.flip(-1), -1).flip(-1)
    return (tail - s)[..., :-1].mean(-1)
