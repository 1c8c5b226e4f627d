"""JSON artifacts: written atomically, numpy scalars converted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from embrm.io.atomic import atomic_path, write_text


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2, default=_plain, allow_nan=True) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def write_jsonl(path: str | Path, rows) -> None:
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, default=_plain) + "\n")


def read_jsonl(path: str | Path) -> list:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]
