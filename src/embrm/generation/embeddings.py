"""Step 4: one embedding per (prompt, response) from the embedding model's last layer.

``AutoModel``'s ``last_hidden_state`` only (never every layer's hidden states), read at
the last real token (``pooling: last``, for decoder LMs) or averaged over real tokens
(``pooling: mean``, for encoders such as MiniLM). The published code took position -1
after padding every text to 512 tokens: a pad token's state. Sharded across jobs and
GPUs by :mod:`embrm.generation.sharded`; the gathered output ``(N, K, D)`` is written
shard by shard to a memory map. A text over ``max_length`` tokens loses the start of
its prompt, not its response (``truncation: keep_response``, see
:mod:`embrm.generation.encode`).
"""

from __future__ import annotations

import numpy as np
import torch

from embrm.data.texts import texts_of
from embrm.generation import sharded
from embrm.generation.encode import batches_by_length, last_token, mean_pool
from embrm.generation.models import load_for_scoring
from embrm.io.errors import InputError

POOLING = {"last": last_token, "mean": mean_pool}


def load_embedder(path: str, trust_remote_code: bool, dev=None, dtype: str = "auto"):
    from transformers import AutoModel

    return load_for_scoring(AutoModel, path, trust_remote_code, dev, dtype)


def pooled(model, enc, cfg: dict) -> torch.Tensor:
    """Pooled (optionally L2-normalised) last-layer states, ``(b, D)`` float32."""
    if cfg["pooling"] not in POOLING:
        raise InputError(f"generation.embedding.pooling must be last or mean: {cfg['pooling']}")
    vec = POOLING[cfg["pooling"]](model(**enc).last_hidden_state, enc["attention_mask"]).float()
    return torch.nn.functional.normalize(vec, dim=-1) if cfg["normalize"] else vec


@torch.no_grad()
def embed_texts(tok, model, texts, cfg: dict, out: np.ndarray) -> None:
    """Fill ``out`` ``(len(texts), D)`` with pooled (optionally L2-normalised) states."""
    batches = batches_by_length(tok, texts, cfg["batch_size"], cfg["max_length"], cfg["truncation"])
    for idx, enc in batches:
        out[idx] = pooled(model, enc.to(model.device), cfg).cpu().numpy()


def load_for_shard(path: str, cfg: dict, dev: str, trust_remote_code: bool):
    return load_embedder(path, trust_remote_code, dev)


def response_texts(rows: list[dict], tok, cfg: dict, source: str):
    """Prompt + cut response, as the policy wrote it; and K."""
    return texts_of(rows, source)


def storage_dtype(cfg: dict):
    return np.float16 if cfg["dtype"] == "float16" else np.float32


EMBEDDER = sharded.Scorer(
    load=load_for_shard, texts=response_texts, forward=pooled, dtype=storage_dtype
)


def embed_shard(**job) -> int:
    """One shard of a split's embeddings (keywords of :func:`sharded.run_shard`; ``cfg``:
    the ``generation.embedding`` section)."""
    return sharded.run_shard(EMBEDDER, **job)
