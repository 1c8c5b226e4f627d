"""The texts steps 3 and 4 score: prompt + response, each response cut at its next turn.

The embedding model reads :func:`plain_text` (the response as the policy wrote it); the
golden reward model reads its format's rendering (:func:`raw_text`, the published
scoring's, or :func:`chat_renderer`, a model card's chat template).
"""

from __future__ import annotations

from collections.abc import Sequence

from embrm.data.prompts import dialogue_messages
from embrm.io.errors import InputError

HUMAN = "\n\nHuman"


def cut_response(response: str) -> str:
    """The response up to its first "\\n\\nHuman" turn."""
    cut = response.find(HUMAN)
    return response if cut < 0 else response[:cut]


def plain_text(prompt: str, response: str) -> str:
    """Prompt + cut response: what the embedding model reads."""
    return prompt + cut_response(response)


def raw_text(prompt: str, response: str) -> str:
    """Prompt + cut, stripped response, as the published scoring builds it."""
    return prompt + cut_response(response).strip()


def chat_renderer(tok):
    """``(prompt, response) -> text`` through ``tok``'s chat template, without the BOS
    the template writes (tokenisation adds it again), as RM-Gemma's model card does."""

    def render(prompt: str, response: str) -> str:
        messages = dialogue_messages(prompt)
        messages[-1]["content"] = cut_response(response).strip()
        text = tok.apply_chat_template(messages, tokenize=False)
        bos = tok.bos_token
        return text[len(bos) :] if bos and text.startswith(bos) else text

    return render


class ResponseTexts(Sequence):
    """``render(prompt, response)`` of every (prompt, response), prompt-major, on demand.

    A list of N*K strings would copy every prompt K times (500 times for a test
    prompt); this holds only the samples themselves.
    """

    def __init__(self, rows: list[dict], source: str = "samples", render=plain_text):
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
        self.render = render

    def __len__(self) -> int:
        return len(self.rows) * self.k

    def __getitem__(self, i) -> str:
        if not 0 <= i < len(self):
            raise IndexError(i)
        row = self.rows[i // self.k]
        return self.render(row["prompt"], row["responses"][i % self.k])


def texts_of(
    rows: list[dict], source: str = "samples", render=plain_text
) -> tuple[ResponseTexts, int]:
    """``(texts, K)``: ``render(prompt, response)`` of every pair, prompt-major."""
    texts = ResponseTexts(rows, source, render)
    return texts, texts.k
