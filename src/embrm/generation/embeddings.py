"""Step 4: one embedding per (prompt, response) from the embedding model's last layer.

``AutoModel``'s ``last_hidden_state`` only (never every layer's hidden states), read at
the last real token (``pooling: last``, for decoder LMs) or averaged over real tokens
(``pooling: mean``, for encoders such as MiniLM). The published code took position -1
after padding every text to 512 tokens: a pad token's state. Output ``(N, K, D)``,
written row block by row block to a memory map.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from embrm.generation.encode import batches_by_length, last_token, mean_pool
from embrm.generation.models import load_for_scoring
from embrm.generation.texts import texts_of
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl

log = logging.getLogger(__name__)

POOLING = {"last": last_token, "mean": mean_pool}


def load_embedder(path: str, trust_remote_code: bool):
    from transformers import AutoModel

    return load_for_scoring(AutoModel, path, trust_remote_code)


@torch.no_grad()
def embed_texts(tok, model, texts, cfg: dict, out: np.ndarray) -> None:
    """Fill ``out`` ``(len(texts), D)`` with pooled (optionally L2-normalised) states."""
    if cfg["pooling"] not in POOLING:
        raise InputError(f"generation.embedding.pooling must be last or mean: {cfg['pooling']}")
    pool = POOLING[cfg["pooling"]]
    for idx, enc in batches_by_length(tok, texts, cfg["batch_size"], cfg["max_length"]):
        enc = enc.to(model.device)
        vec = pool(model(**enc).last_hidden_state, enc["attention_mask"]).float()
        if cfg["normalize"]:
            vec = torch.nn.functional.normalize(vec, dim=-1)
        out[idx] = vec.cpu().numpy()


def embed(
    *, samples_file, out_embeddings, model_path: str, cfg: dict, trust_remote_code: bool = False
) -> tuple:
    """Embeddings ``(N, K, D)`` (``cfg["dtype"]``) of the ``samples_file`` (N prompts x K
    responses) under the model at ``model_path``; returns ``(N, K, D)``."""
    rows = read_jsonl(samples_file)
    texts, k = texts_of(rows, str(samples_file))
    tok, model = load_embedder(model_path, trust_remote_code)
    d = model.config.hidden_size
    Path(out_embeddings).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(out_embeddings).with_name(Path(out_embeddings).name + ".tmp.npy")
    dtype = np.float16 if cfg["dtype"] == "float16" else np.float32
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(rows), k, d))
    embed_texts(tok, model, texts, cfg, arr.reshape(-1, d))
    arr.flush()
    del arr
    tmp.replace(out_embeddings)
    log.info("embeddings: %d x %d x %d (%s pooling)", len(rows), k, d, cfg["pooling"])
    return (len(rows), k, d)
