"""Batched forward passes over many texts: length-sorted, dynamically padded, right-padded.

Sorting by length keeps padding (wasted compute) small; right padding keeps absolute
position embeddings (GPT-2) identical to a one-text-at-a-time run, so a text's result
does not depend on what else is in its batch.

A text is prompt + response, and a text over ``max_length`` tokens is truncated by the
``truncation`` setting: ``keep_response`` (default) drops tokens from the LEFT, so the
start of the prompt goes first and the response is kept; the tokenizer's special
prefix and suffix (BOS, [CLS]/[SEP]) are added after truncation and always kept. A
response that alone exceeds ``max_length`` keeps its end. ``right`` drops tokens from
the right (the behaviour before the setting existed): a prompt that fills
``max_length`` leaves nothing of the response, and two responses to it read the same.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from embrm.io.errors import InputError

SIDES = {"keep_response": "left", "right": "right"}


@contextmanager
def truncating(tok, truncation: str):
    """``tok`` truncating on the side ``truncation`` names, restored afterwards."""
    if truncation not in SIDES:
        raise InputError(f"truncation must be one of {sorted(SIDES)}, got {truncation!r}")
    before = tok.truncation_side
    tok.truncation_side = SIDES[truncation]
    try:
        yield tok
    finally:
        tok.truncation_side = before


def token_lengths(
    tok, texts, max_length: int, truncation: str = "keep_response", chunk: int = 4096
) -> np.ndarray:
    """Truncated token count of every text, tokenised a chunk at a time: only the counts
    are kept, so a million texts cost a million integers, not a million token lists."""
    out = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), chunk):
        part = [texts[i] for i in range(start, min(start + chunk, len(texts)))]
        with truncating(tok, truncation):
            ids = tok(part, truncation=True, max_length=max_length)["input_ids"]
        out[start : start + len(part)] = [len(x) for x in ids]
    return out


def batch_plan(
    tok, texts, batch_size: int, max_length: int, truncation: str = "keep_response"
) -> list[np.ndarray]:
    """Text indices of every batch, in order of token length: a function of the texts
    alone, so shards and GPUs that split the list compute exactly the same batches."""
    order = np.argsort(token_lengths(tok, texts, max_length, truncation), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def encode_batch(tok, texts, idx, max_length: int, truncation: str = "keep_response"):
    """The texts ``idx`` as one right-padded batch of tensors, truncated by ``truncation``."""
    with truncating(tok, truncation):
        return tok(
            [texts[i] for i in idx],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )


def batches_by_length(
    tok, texts, batch_size: int, max_length: int, truncation: str = "keep_response"
):
    """Yield ``(indices, encoded batch)`` in order of token length; texts that fit in one
    batch are encoded as one, in their order (tokenised once: nothing to sort)."""
    if len(texts) <= batch_size:
        idx = np.arange(len(texts))
        yield idx, encode_batch(tok, texts, idx, max_length, truncation)
        return
    for idx in batch_plan(tok, texts, batch_size, max_length, truncation):
        yield idx, encode_batch(tok, texts, idx, max_length, truncation)


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hidden state at each row's last real token (right padding)."""
    last = mask.sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
