"""Step 3: golden rewards from a one-logit sequence-classification reward model.

Each response is cut at its first "\\n\\nHuman" (the policy may continue the dialogue)
and stripped, then shown to the RM in its golden model's ``format``: ``raw`` (default)
is the HH text prompt + response, exactly as the published scoring builds it;
``chat_template`` renders the dialogue with the RM tokenizer's chat template, as
RM-Gemma's model card does. Texts are truncated to ``max_length`` tokens (by default
from the left, so the prompt's start goes and the response stays: ``truncation``, see
:mod:`embrm.generation.encode`), right-padded
with a pad token distinct from EOS, in length-sorted batches, sharded across jobs and
GPUs by :mod:`embrm.generation.sharded`. Output ``(N, K)`` float32.
"""

from __future__ import annotations

import numpy as np
import torch

from embrm.data.texts import chat_renderer, raw_text, texts_of
from embrm.generation import sharded
from embrm.generation.encode import batches_by_length
from embrm.generation.models import load_for_scoring
from embrm.io.errors import InputError

FORMATS = {"raw": lambda tok: raw_text, "chat_template": chat_renderer}


def golden_texts(rows: list[dict], tok, cfg: dict, source: str):
    """The RM's input texts in the golden model's ``format``, and K."""
    if cfg["format"] not in FORMATS:
        raise InputError(f"generation.golden.models: unknown format {cfg['format']!r}")
    return texts_of(rows, source, FORMATS[cfg["format"]](tok))


def load_reward_model(path: str, trust_remote_code: bool, dev=None, dtype: str = "auto"):
    from transformers import AutoModelForSequenceClassification

    tok, model = load_for_scoring(
        AutoModelForSequenceClassification, path, trust_remote_code, dev, dtype
    )
    if model.config.num_labels != 1:
        raise InputError(
            f"{path}: a golden reward model needs one logit, has {model.config.num_labels}"
        )
    model.config.pad_token_id = tok.pad_token_id
    return tok, model


@torch.no_grad()
def score_texts(
    tok,
    model,
    texts: list[str],
    batch_size: int,
    max_length: int,
    truncation: str = "keep_response",
) -> np.ndarray:
    out = np.empty(len(texts), dtype=np.float32)
    for idx, enc in batches_by_length(tok, texts, batch_size, max_length, truncation):
        out[idx] = logits(model, enc.to(model.device)).float().cpu().numpy()
    return out


def scoring_settings(config: dict) -> dict:
    """The ``cfg`` of :func:`annotate_shard`: the golden section's batching with the
    task's golden-model ``format`` and ``dtype``."""
    gold = config["generation"]["golden"]
    spec = gold["models"][config["task"]]
    return {
        "max_length": gold["max_length"],
        "truncation": gold["truncation"],
        "batch_size": gold["batch_size"],
        "format": spec["format"],
        "dtype": spec["dtype"],
    }


def load_for_shard(path: str, cfg: dict, dev: str, trust_remote_code: bool):
    return load_reward_model(path, trust_remote_code, dev, cfg["dtype"])


def logits(model, enc, cfg: dict | None = None) -> torch.Tensor:
    """The one logit per text, ``(b,)``."""
    return model(**enc).logits[:, 0]


def reward_dtype(cfg: dict):
    return np.float32


GOLDEN = sharded.Scorer(load=load_for_shard, texts=golden_texts, forward=logits, dtype=reward_dtype)


def annotate_shard(**job) -> int:
    """One shard of a split's golden rewards (keywords of :func:`sharded.run_shard`;
    ``cfg``: ``max_length``, ``truncation``, ``batch_size``, ``format``, ``dtype``)."""
    return sharded.run_shard(GOLDEN, **job)
