"""Canonical arrays between stages: checks at every boundary and chunked reads.

Canonical layout, per split: embeddings ``(N, K, D)`` and golden rewards ``(N, K)``,
prompt-major and row-aligned. Checks run on the ``.npy`` header and a streamed pass, so
a bad file fails before any training starts, naming the file and both shapes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError

FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def open_array(path: str | Path, ndim: int) -> np.ndarray:
    """Memory-map a ``.npy`` file read-only and check its rank and dtype."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        arr = np.load(path, mmap_mode="r")
    except ValueError as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from exc
    if arr.ndim != ndim:
        raise InputError(f"{path}: expected {ndim} dimensions, found shape {arr.shape}")
    if arr.dtype.type not in FLOAT_DTYPES:
        raise InputError(f"{path}: expected a float array, found dtype {arr.dtype}")
    return arr


def iter_chunks(arr: np.ndarray, chunk: int, dtype=np.float32):
    """Yield ``(start, block)`` copies of ``chunk`` prompts at a time.

    Reads with explicit file I/O instead of touching the memory map, so pages of
    earlier chunks do not accumulate in the resident set (peak memory stays at one
    chunk, whatever N is).
    """
    filename = getattr(arr, "filename", None)
    if filename is None:
        for start in range(0, arr.shape[0], chunk):
            yield start, np.asarray(arr[start : start + chunk], dtype=dtype)
        return
    row = int(np.prod(arr.shape[1:], dtype=np.int64))
    with open(filename, "rb") as fh:
        for start in range(0, arr.shape[0], chunk):
            n = min(chunk, arr.shape[0] - start)
            fh.seek(arr.offset + start * row * arr.itemsize)
            block = np.fromfile(fh, dtype=arr.dtype, count=n * row)
            yield start, block.reshape((n,) + arr.shape[1:]).astype(dtype, copy=False)


CHECK_BYTES = 64 * 2**20


def check_finite(arr: np.ndarray, path: str | Path) -> None:
    """Raise if any value is NaN or infinite, naming the first bad prompt row."""
    row_bytes = max(1, arr[:1].nbytes)
    for start, block in iter_chunks(arr, max(1, CHECK_BYTES // row_bytes), dtype=arr.dtype):
        bad = ~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1)
        if bad.any():
            row = start + int(np.argmax(bad))
            raise InputError(f"{path}: non-finite value (NaN or inf) in prompt row {row}")


def load_split(embeddings: str | Path, rewards: str | Path, check_values: bool = True):
    """Open a split's embeddings and rewards, checking shapes agree and values are finite."""
    emb = open_array(embeddings, 3)
    rew = open_array(rewards, 2)
    if emb.shape[:2] != rew.shape:
        raise InputError(
            f"{embeddings} has shape {emb.shape} (N, K, D) but {rewards} has shape "
            f"{rew.shape}; expected rewards of shape {emb.shape[:2]}"
        )
    if check_values:
        check_finite(rew, rewards)
        check_finite(emb, embeddings)
    return emb, rew


def save_array(path: str | Path, arr: np.ndarray) -> None:
    """Write ``arr`` atomically so a crash never leaves a truncated artifact behind."""
    with atomic_path(path) as tmp:
        np.save(tmp, arr)
