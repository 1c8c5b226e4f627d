"""Planted rated responses as text: two attributes and a prompt-dependent preference.

The text counterpart of :mod:`embrm.data.planted_ratings`, for runs that embed text
(``data.source: ratings``). Each prompt is of one of two kinds, and each of its ``k``
responses is an opening of ``politeness`` p in {0, 1, 2} (rude, curt, warm) followed by
``detail`` d in {0, .., 3} advice sentences. The record's ``overall`` score, what orders
a prompt's responses, is ``p`` for a personal prompt (someone upset asks for help) and
``d`` for a technical one, so a gating of the prompt's embedding has a known answer:
most weight on politeness for personal prompts and on detail for technical ones.
"""

from __future__ import annotations

import itertools

import numpy as np

FEELINGS = ("sad", "nervous", "lonely", "upset", "worried", "anxious")
EVENTS = ("my exam", "my new job", "moving to a new city", "my friend's wedding", "my health")
THINGS = ("a hash table", "garbage collection", "a compiler", "caching", "encryption", "an index")
PLACES = ("Python", "a web server", "an operating system", "a phone app", "a database")
OPENINGS = (
    ("Figure it out yourself.", "That is a silly question.", "Stop bothering me with this."),
    ("Okay.", "Here it is.", "Fine."),
    (
        "Thank you for asking, I am glad to help!",
        "What a kind question, happy to help you!",
        "I am so sorry you are dealing with this, I am glad to help.",
    ),
)
ADVICE = (
    "First, write down the main points.",
    "Then take them one at a time.",
    "Check each step with a small example.",
    "Finally, ask someone you trust for feedback.",
)


def prompts() -> list[tuple[str, str]]:
    """Every ``(kind, prompt)``: 30 personal ones, then 30 technical ones."""
    personal = [
        ("personal", f"I am feeling {f} about {e}. Can you help me?")
        for f, e in itertools.product(FEELINGS, EVENTS)
    ]
    technical = [
        ("technical", f"Explain how {t} works in {where}.")
        for t, where in itertools.product(THINGS, PLACES)
    ]
    return personal + technical


def planted_rating_records(*, k: int, seed: int) -> list[dict]:
    """``k`` rated responses for each prompt of :func:`prompts`, prompt-major: records with
    ``prompt``, ``response``, ``kind``, ``politeness``, ``detail`` and ``overall``."""
    rng = np.random.default_rng([seed, 25])
    out = []
    for kind, prompt in prompts():
        for _ in range(k):
            p, d = int(rng.integers(3)), int(rng.integers(len(ADVICE)))
            opening = OPENINGS[p][rng.integers(len(OPENINGS[p]))]
            advice = [ADVICE[i] for i in sorted(rng.permutation(len(ADVICE))[:d])]
            out.append(
                {
                    "prompt": prompt,
                    "response": " ".join([opening, *advice]),
                    "kind": kind,
                    "politeness": p,
                    "detail": d,
                    "overall": p if kind == "personal" else d,
                }
            )
    return out
