"""Atomic artifact writes: a crash or a failed job never leaves a truncated file behind.

Every writer puts its bytes into a temporary file in the artifact's own folder (so the
rename stays on one file system), flushes it to disk, then renames it onto the
artifact; on failure the temporary file is removed. A failure on a full file system
becomes one :class:`NoSpaceError` naming the artifact, whatever the writer reported
(``torch.save`` says "unexpected pos", ``np.save`` an ``OSError``).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from embrm.io.errors import InputError, NoSpaceError

# free bytes below which a failed write is blamed on a full file system: writers that
# hide ENOSPC (torch.save) fail with the disk at, or within one buffer of, zero
NEARLY_FULL_BYTES = 1 << 20
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether ``exc``, raised while writing into ``folder``, came from a full disk."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return True
    if not isinstance(exc, Exception) or isinstance(exc, InputError):
        return False  # an interrupt, or a check that refused the data, is not the disk
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def no_space(path: Path, exc: BaseException) -> NoSpaceError:
    return NoSpaceError(
        errno.ENOSPC, f"no space left on device while writing {path} ({exc})", str(path)
    )


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
    except BaseException as exc:
        full = not isinstance(exc, NoSpaceError) and disk_full(exc, path.parent)
        tmp.unlink(missing_ok=True)
        if full:
            raise no_space(path, exc) from exc
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write a text artifact atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
