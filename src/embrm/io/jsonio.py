"""JSON artifacts: written atomically, numpy scalars converted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_plain, allow_nan=True) + "\n")
    tmp.replace(path)


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def write_jsonl(path: str | Path, rows) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, default=_plain) + "\n")
    tmp.replace(path)


def read_jsonl(path: str | Path) -> list:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]
