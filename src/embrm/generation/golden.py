"""Step 3: golden rewards from a one-logit sequence-classification reward model.

Each response is cut at its first "\\n\\nHuman" (the policy may continue the dialogue),
scored as prompt + response truncated to ``max_length`` tokens, right-padded with a pad
token distinct from EOS, in length-sorted batches. Output ``(N, K)`` float32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

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


class ResponseTexts(Sequence):
    """Prompt + cut response of every (prompt, response), prompt-major, built on demand.

    A list of N*K strings would copy every prompt K times (500 times for a test
    prompt); this holds only the samples themselves.
    """

    def __init__(self, rows: list[dict], source: str = "samples"):
        if not rows:
            raise InputError(f"{source}: no samples")
        missing = [f for f in ("prompt", "responses") if f not in rows[0]]
        if missing:
            raise InputError(f"{source}: rows lack the field(s) {missing}")
        self.k = len(rows[0]["responses"])
        bad = [r.get("id", i) for i, r in enumerate(rows) if len(r["responses"]) != self.k]
        if bad:
            raise InputError(
                f"{source}: prompt {bad[0]} has a different number of responses than {self.k}"
            )
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows) * self.k

    def __getitem__(self, i) -> str:
        if not 0 <= i < len(self):
            raise IndexError(i)
        row = self.rows[i // self.k]
        return row["prompt"] + cut_response(row["responses"][i % self.k])


def texts_of(rows: list[dict], source: str = "samples") -> tuple[ResponseTexts, int]:
    """Prompt + cut response for every (prompt, response), prompt-major; and K."""
    texts = ResponseTexts(rows, source)
    return texts, texts.k


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
