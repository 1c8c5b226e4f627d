"""Step 3: golden rewards from a one-logit sequence-classification reward model.

Each response is cut at its first "\\n\\nHuman" (the policy may continue the dialogue),
scored as prompt + response truncated to ``max_length`` tokens, right-padded with a pad
token distinct from EOS, in length-sorted batches. Output ``(N, K)`` float32.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from embrm.data.arrays import save_array
from embrm.generation.encode import batches_by_length
from embrm.generation.models import load_for_scoring
from embrm.generation.texts import texts_of
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl

log = logging.getLogger(__name__)


def load_reward_model(path: str, trust_remote_code: bool):
    from transformers import AutoModelForSequenceClassification

    tok, model = load_for_scoring(AutoModelForSequenceClassification, path, trust_remote_code)
    if model.config.num_labels != 1:
        raise InputError(
            f"{path}: a golden reward model needs one logit, has {model.config.num_labels}"
        )
    model.config.pad_token_id = tok.pad_token_id
    return tok, model


@torch.no_grad()
def score_texts(tok, model, texts: list[str], batch_size: int, max_length: int) -> np.ndarray:
    out = np.empty(len(texts), dtype=np.float32)
    for idx, enc in batches_by_length(tok, texts, batch_size, max_length):
        logits = model(**enc.to(model.device)).logits
        out[idx] = logits[:, 0].float().cpu().numpy()
    return out


def annotate(
    *, samples_file, out_rewards, model_path: str, cfg: dict, trust_remote_code: bool = False
) -> tuple:
    """Golden rewards ``(N, K)`` float32 of the ``samples_file`` (N prompts x K responses)
    under the reward model at ``model_path``; returns ``(N, K)``."""
    rows = read_jsonl(samples_file)
    texts, k = texts_of(rows, str(samples_file))
    tok, model = load_reward_model(model_path, trust_remote_code)
    scores = score_texts(tok, model, texts, cfg["batch_size"], cfg["max_length"])
    save_array(out_rewards, scores.reshape(len(rows), k))
    log.info(
        "golden rewards for %d x %d responses: mean %.3f std %.3f",
        len(rows),
        k,
        scores.mean(),
        scores.std(),
    )
    return (len(rows), k)
