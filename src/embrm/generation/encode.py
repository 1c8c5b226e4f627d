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


def batch_plan(tok, texts, batch_size: int, max_length: int) -> list[np.ndarray]:
    """Text indices of every batch, in order of token length: a function of the texts
    alone, so shards and GPUs that split the list compute exactly the same batches."""
    order = np.argsort(token_lengths(tok, texts, max_length), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def encode_batch(tok, texts, idx, max_length: int):
    """The texts ``idx`` as one right-padded, truncated batch of tensors."""
    return tok(
        [texts[i] for i in idx],
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )


def batches_by_length(tok, texts, batch_size: int, max_length: int):
    """Yield ``(indices, encoded batch)`` in order of token length."""
    for idx in batch_plan(tok, texts, batch_size, max_length):
        yield idx, encode_batch(tok, texts, idx, max_length)


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hidden state at each row's last real token (right padding)."""
    last = mask.sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
