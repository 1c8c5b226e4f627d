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
TOKENISE_CHUNK = 4096  # texts whose token lists are held at once


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
    tok, texts, max_length: int, truncation: str = "keep_response", chunk: int = TOKENISE_CHUNK
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
    return plan_of_lengths(token_lengths(tok, texts, max_length, truncation), batch_size)


def plan_of_lengths(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches of ``batch_size`` text indices in stable order of ``lengths`` ``(n,)``."""
    order = np.argsort(lengths, kind="stable")
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
    """Yield ``(indices, encoded batch)`` in order of token length (the batches of
    :func:`batch_plan`). Texts that fit in one batch are encoded as one, in their order;
    up to ``TOKENISE_CHUNK`` texts are tokenised once and padded batch by batch (a
    server's batches); more are tokenised twice, for the lengths and then per batch, so
    only a chunk's token lists are ever held."""
    if len(texts) <= batch_size:
        idx = np.arange(len(texts))
        yield idx, encode_batch(tok, texts, idx, max_length, truncation)
        return
    if len(texts) > TOKENISE_CHUNK:
        for idx in batch_plan(tok, texts, batch_size, max_length, truncation):
            yield idx, encode_batch(tok, texts, idx, max_length, truncation)
        return
    with truncating(tok, truncation):
        enc = tok(list(texts), truncation=True, max_length=max_length)
    for idx in plan_of_lengths(np.array([len(x) for x in enc["input_ids"]]), batch_size):
        yield idx, padded(tok, {k: [v[i] for i in idx] for k, v in enc.items()})


def padded(tok, rows: dict[str, list[list[int]]]):
    """Token lists (``input_ids``, ``attention_mask``, ...) as ``(b, longest)`` tensors,
    padded on ``tok.padding_side`` with its pad token (0 in every other field): what
    ``tok(..., padding=True, return_tensors="pt")`` returns, without its Python loop
    over every token."""
    from transformers import BatchEncoding

    lengths = [len(x) for x in rows["input_ids"]]
    width, left = max(lengths), tok.padding_side == "left"
    out = {}
    for key, lists in rows.items():
        a = np.full((len(lists), width), tok.pad_token_id if key == "input_ids" else 0)
        for i, (row, n) in enumerate(zip(lists, lengths)):
            if left:
                a[i, width - n :] = row
            else:
                a[i, :n] = row
        out[key] = torch.from_numpy(a)
    return BatchEncoding(out)


def last_token(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hidden state at each row's last real token (right padding)."""
    last = mask.sum(1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
