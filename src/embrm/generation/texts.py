"""The texts steps 3 and 4 score: prompt + response, each response cut at its next turn."""

from __future__ import annotations

from collections.abc import Sequence

from embrm.io.errors import InputError

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
