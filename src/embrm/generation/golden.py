"""Step 3: golden rewards from a one-logit sequence-classification reward model.

Each response is cut at its first "\\n\\nHuman" (the policy may continue the dialogue),
scored as prompt + response truncated to ``max_length`` tokens, right-padded with a pad
token distinct from EOS, in length-sorted batches. Output ``(N, K)`` float32.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from embrm.arrays import save_array
from embrm.errors import InputError
from embrm.generation.encode import batches_by_length
from embrm.generation.models import load_for_scoring
from embrm.jsonio import read_jsonl

log = logging.getLogger(__name__)

HUMAN = "\n\nHuman"


def cut_response(response: str) -> str:
    """The response up to its first "\\n\\nHuman" turn."""
    cut = response.find(HUMAN)
    return response if cut < 0 else response[:cut]


def texts_of(rows: list[dict]) -> tuple[list[str], int]:
    """Prompt + cut response for every (prompt, response), prompt-major; and K."""
    k = len(rows[0]["responses"])
    bad = [r["id"] for r in rows if len(r["responses"]) != k]
    if bad:
        raise InputError(f"samples: prompt {bad[0]} has a different number of responses than {k}")
    return [r["prompt"] + cut_response(x) for r in rows for x in r["responses"]], k


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
    samples_file, out_rewards, model_path: str, cfg: dict, trust_remote_code: bool = False
) -> tuple:
    rows = read_jsonl(samples_file)
    texts, k = texts_of(rows)
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
