"""Batched forward passes over many texts: length-sorted, dynamically padded, right-padded.

Sorting by length keeps padding (wasted compute) small; right padding keeps absolute
position embeddings (GPT-2) identical to a one-text-at-a-time run, so a text's result
does not depend on what else is in its batch.
"""

from __future__ import annotations

import numpy as np
import torch


def token_lengths(tok, texts, max_length: int, chunk: int = 4096) -> np.ndarray:
    """Truncated token count of every text, tokenised a chunk at a time: only the counts
    are kept, so a million texts cost a million integers, not a million token lists."""
    out = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), chunk):
        part = [texts[i] for i in range(start, min(start + chunk, len(texts)))]
        ids = tok(part, truncation=True, max_length=max_length)["input_ids"]
        out[start : start + len(part)] = [len(x) for x in ids]
    return out


def batches_by_length(tok, texts, batch_size: int, max_length: int):
    """Yield ``(indices, encoded batch)`` in order of token length."""
    order = np.argsort(token_lengths(tok, texts, max_length), kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tok(
            [texts[i] for i in idx],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        yield idx, enc


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hidden state at each row's last real token (right padding)."""
    last = mask.sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
