"""Small benchmark files in the RewardBench v1 and v2 layouts, with per-completion
scores whose benchmark scores are worked out by hand in tests/test_benchmarks.py."""

from __future__ import annotations

import json

import numpy as np

# (id, subset, chosen score, rejected score)
V1_ROWS = [
    (1, "alpacaeval-easy", 2.0, 1.0),  # right
    (2, "alpacaeval-easy", 0.0, 1.0),  # wrong
    (3, "mt-bench-hard", 1.0, 1.0),  # a tie: wrong
    (4, "math-prm", 1.0, 0.0),  # right
    (5, "hep-python", 0.0, 1.0),  # wrong
    (6, "refusals-dangerous", 3.0, 1.0),  # right
    (7, "anthropic_helpful", 1.0, 0.0),  # right
    (8, "anthropic_helpful", 0.0, 1.0),  # wrong
    (9, "shp", 1.0, 0.0),  # right
]
# (id, subset, chosen scores, rejected scores)
V2_ROWS = [
    ("f1", "Factuality", [3.0], [1.0, 2.0, 0.0]),  # best: 1
    ("f2", "Factuality", [2.0], [2.0, 1.0, 0.0]),  # tied with one at the top: 1/2
    ("m1", "Math", [1.0], [2.0, 0.0, 0.0]),  # beaten: 0
    ("ref:1", "Ties", [5.0], [1.0, 2.0]),
    ("tied:1", "Ties", [4.0, 5.0, 6.0], [1.0, 3.0]),
    ("ref:2", "Ties", [1.0], [2.0]),
    ("tied:2", "Ties", [3.0, 3.0], [0.0]),
]


def v1_records() -> list[dict]:
    return [
        {
            "prompt": f"Question {i} about {subset}?",
            "chosen": f"A careful answer to question {i}.",
            "rejected": f"A sloppy reply to question {i}.",
            "subset": subset,
            "id": i,
        }
        for i, subset, _, _ in V1_ROWS
    ]


def v2_records() -> list[dict]:
    return [
        {
            "prompt": f"Prompt {i} of {subset}?",
            "chosen": [f"Good answer {j} to {i}." for j in range(len(c))],
            "rejected": [f"Bad answer {j} to {i}." for j in range(len(r))],
            "subset": subset,
            "id": i,
            "num_correct": len(c),
        }
        for i, subset, c, r in V2_ROWS
    ]


def scores(layout: str) -> np.ndarray:
    """Every completion's score ``(T,)`` in file order (chosen first, then rejected)."""
    if layout == "v1":
        return np.array([s for _, _, c, r in V1_ROWS for s in (c, r)])
    return np.array([s for _, _, c, r in V2_ROWS for s in [*c, *r]])


def write(path, layout: str, records: list[dict] | None = None):
    """``records`` (default: the layout's rows) as JSONL at ``path``."""
    records = records if records is not None else (v1_records() if layout == "v1" else v2_records())
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
