"""Atomic artifact writes: a crash or a failed job never leaves a truncated file behind.

Every writer puts its bytes into a temporary file in the artifact's own folder (so the
rename stays on one file system), flushes it to disk, then renames it onto the
artifact; on failure the temporary file is removed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, temp_name: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds it is fsynced and
    renamed onto ``path``.

    The default temporary name ``<name>.tmp<suffix>`` keeps the suffix, so writers that
    read the format from it (``np.save``, ``savefig``) write what they would write to
    ``path``. ``temp_name`` is for writers that record the file name in the file
    (``torch.save`` names its zip folder after it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(temp_name or f"{path.name}.tmp{path.suffix}")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write a text artifact atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
