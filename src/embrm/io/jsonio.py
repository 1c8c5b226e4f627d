"""JSON artifacts: written atomically, numpy scalars converted, always valid JSON.

A metric that is undefined (NaN, for example a Spearman correlation of constant scores)
or infinite is written as ``null``, and ``null_reasons`` at the top level says why for
each such key: bare ``NaN`` tokens are not JSON, and strict readers reject the file.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np

from embrm.io.atomic import atomic_path, write_text
from embrm.io.errors import InputError


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite_tree(obj, where: str, reasons: dict):
    """``obj`` as plain JSON values, non-finite floats replaced by None (noted in ``reasons``)."""
    if isinstance(obj, (np.generic, np.ndarray, Path)):
        obj = _plain(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        reasons[where] = f"{obj} is not a JSON number: undefined (e.g. constant or too few values)"
        return None
    if isinstance(obj, dict):
        return {
            k: _finite_tree(v, f"{where}.{k}" if where else str(k), reasons) for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [_finite_tree(v, f"{where}[{i}]", reasons) for i, v in enumerate(obj)]
    return obj


def write_json(path: str | Path, data) -> None:
    """Write ``data`` as strict JSON; see the module docstring for non-finite numbers."""
    reasons: dict = {}
    tree = _finite_tree(data, "", reasons)
    if reasons and isinstance(tree, dict):
        tree["null_reasons"] = reasons
    write_text(path, json.dumps(tree, indent=2, allow_nan=False) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def write_jsonl(path: str | Path, rows) -> None:
    with atomic_path(path) as tmp, tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, default=_plain) + "\n")


def text_lines(path: str | Path):
    """Yield ``(line number, text)`` of each line of a UTF-8 file (gzip compressed if it
    ends in ``.gz``); bytes that are not UTF-8 are an InputError naming the file, the
    1-based line and the column, where Python's decode error names neither."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}: line {lineno}: not UTF-8 text (byte {raw[exc.start]:#04x} at "
                    f"column {exc.start + 1}); save the file as UTF-8"
                ) from None


def check_utf8(path: str | Path) -> None:
    """Read ``path`` through :func:`text_lines`: for a file another library parses, whose
    decode error names neither file nor line."""
    for _ in text_lines(path):
        pass


def iter_jsonl(path: str | Path):
    """Yield ``(line number, value)`` of each non-blank line of a ``.jsonl`` file
    (:func:`text_lines`); a line that is not JSON names the file, line and column."""
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path}: line {lineno}: malformed JSON ({exc.msg}, column {exc.colno})"
            ) from None
        yield lineno, value


def read_jsonl(path: str | Path) -> list:
    """Every value of a ``.jsonl`` file (:func:`iter_jsonl`)."""
    return [value for _, value in iter_jsonl(path)]
