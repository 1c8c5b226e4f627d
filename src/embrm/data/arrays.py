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


def iter_rows(arr: np.ndarray, rows: np.ndarray):
    """Yield ``(start, block)``: the responses ``rows`` (ascending flat ids
    ``prompt * K + response``) of ``arr`` ``(N, K, D)`` as float32 ``(n, D)`` blocks, in
    order, ``start`` being the position of the block's first row in ``rows``.

    Reads ``CHECK_BYTES`` of prompts at a time through ``iter_chunks`` and stops after
    the last prompt needed, so a sparse gather never maps the file into the resident set.
    """
    _, k, d = arr.shape
    chunk = max(1, CHECK_BYTES // (k * d * arr.itemsize))
    done = 0
    for start, block in iter_chunks(arr, chunk):
        end = int(np.searchsorted(rows, (start + len(block)) * k))
        if end > done:
            yield done, block.reshape(-1, d)[rows[done:end] - start * k]
            done = end
        if done == len(rows):
            return


def first_non_finite(block: np.ndarray) -> tuple[int, ...] | None:
    """The index of ``block``'s first NaN or infinite value, or None if all are finite."""
    bad = ~np.isfinite(block)
    return (
        tuple(map(int, np.unravel_index(int(np.argmax(bad)), block.shape))) if bad.any() else None
    )


def check_finite(arr: np.ndarray, path: str | Path) -> None:
    """Raise if any value is NaN or infinite, naming the first bad prompt row and response
    column (and dimension for ``(N, K, D)``); reads ``CHECK_BYTES`` at a time."""
    row_bytes = max(1, arr[:1].nbytes)
    for start, block in iter_chunks(arr, max(1, CHECK_BYTES // row_bytes), dtype=arr.dtype):
        where = first_non_finite(block)
        if where is not None:
            names = ("prompt row", "response column", "dimension")
            at = ", ".join(f"{n} {i}" for n, i in zip(names, (start + where[0], *where[1:])))
            raise InputError(f"{path}: non-finite value (NaN or inf) at {at}")


def check_written(path: str | Path, ndim: int, split: str) -> None:
    """The checks every writer of a canonical array runs on its output: rank, dtype,
    N > 0 prompts, K >= 2 responses (ranking metrics and pairs need two) and finite
    values, streamed in chunks."""
    arr = open_array(path, ndim)
    n, k = arr.shape[:2]
    if n == 0:
        raise InputError(f"{path}: the {split} split has no prompts (N = 0)")
    if k < 2:
        raise InputError(
            f"{path}: the {split} split has K = {k} response per prompt; rankings, pairs "
            "and best-of-N need K >= 2"
        )
    check_finite(arr, path)


def npy_header(path: str | Path) -> tuple[tuple, np.dtype]:
    """The shape and dtype in a ``.npy`` header, without reading (or mapping) the data;
    a missing, cut or foreign file is an InputError naming it."""
    fmt = np.lib.format
    readers = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
    if not Path(path).is_file():
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as fh:
        try:
            version = fmt.read_magic(fh)
            if version in readers:
                shape, _, dtype = readers[version](fh)
        except ValueError as exc:
            raise InputError(
                f"{path}: not a readable .npy file ({exc}); it is cut short or not a NumPy "
                "array: copy or write it again"
            ) from None
    if version not in readers:
        raise InputError(f"{path}: .npy format version {version} is not supported")
    return shape, dtype


def npy_shape(path: str | Path) -> tuple:
    """The shape in a ``.npy`` header (:func:`npy_header`)."""
    return npy_header(path)[0]


def checked_header(path: str | Path, ndim: int, layout: str) -> tuple:
    """The shape in a ``.npy`` header, checked for its rank (``layout`` names the axes,
    e.g. ``(K, N)``) and a float dtype as :func:`open_array` checks the file, without
    reading the data."""
    shape, dtype = npy_header(path)
    if len(shape) != ndim:
        raise InputError(f"{path}: expected {ndim} dimensions {layout}, found shape {shape}")
    if dtype.type not in FLOAT_DTYPES:
        raise InputError(f"{path}: expected a float array, found dtype {dtype}")
    return shape


def open_matching(embeddings, rewards, axes: str = "N, K") -> tuple[np.ndarray, np.ndarray]:
    """Open embeddings ``(a, b, D)`` and rewards ``(a, b)`` whose first two axes
    (named by ``axes``) must agree; a mismatch names both files and shapes."""
    emb = open_array(embeddings, 3)
    rew = open_array(rewards, 2)
    if emb.shape[:2] != rew.shape:
        raise InputError(
            f"{embeddings} has shape {emb.shape} ({axes}, D) but {rewards} has shape "
            f"{rew.shape}; expected rewards of shape {emb.shape[:2]} ({axes})"
        )
    return emb, rew


def load_split(embeddings: str | Path, rewards: str | Path, check_values: bool = True):
    """Open a split's embeddings and rewards, checking shapes agree and values are finite."""
    emb, rew = open_matching(embeddings, rewards)
    if check_values:
        check_finite(rew, rewards)
        check_finite(emb, embeddings)
    return emb, rew


def save_array(path: str | Path, arr: np.ndarray) -> None:
    """Write ``arr`` atomically so a crash never leaves a truncated artifact behind."""
    with atomic_path(path) as tmp:
        np.save(tmp, arr)
