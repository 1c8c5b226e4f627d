"""Writable ``.npy`` memory maps whose disk blocks exist before the first write.

``np.lib.format.open_memmap`` makes a sparse file: a full disk then shows up as SIGBUS
in the middle of a write (the process dies, no cleanup runs) or as a file of zeros.
Allocating every block up front with ``posix_fallocate`` turns that into an ``ENOSPC``
error before any data is written (:func:`embrm.io.atomic.atomic_path` names the file).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def preallocated_memmap(path: str | Path, dtype, shape: tuple) -> np.memmap:
    """A new ``.npy`` file at ``path`` of ``shape``/``dtype``, fully allocated, mapped r+."""
    header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    size = header.offset + header.nbytes
    del header  # only the header is written; the data blocks are still holes
    fd = os.open(path, os.O_RDWR)
    try:
        if size:
            os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return np.load(path, mmap_mode="r+")
