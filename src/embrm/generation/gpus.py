"""The GPUs a GPU stage's job runs on: exactly as many as its rule asked for.

Under SLURM the job sees the GPUs it was granted. A local run (``snakemake -c8
--resources gpu=N``) starts several GPU jobs on one machine, and every job sees every
GPU: Snakemake counts GPUs, it does not hand out devices. So before anything touches
CUDA, :func:`claim` picks ``n`` of the visible GPUs that no other job of this user holds
(one lock file per GPU, ``flock``-ed for the life of the process, released by the kernel
when it ends, however it ends), waits while too few are free, and narrows
``CUDA_VISIBLE_DEVICES`` to them. A job with the GPUs it asked for never shares one:
vLLM engines, scoring workers and torchrun ranks each get their own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

from embrm.io.errors import InputError

log = logging.getLogger(__name__)

POLL_S = 5.0


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` names them (indices,
    ``GPU-``/``MIG-`` UUIDs): the variable's list where it is set (SLURM sets it to the
    job's GPUs), else every GPU NVML counts; none on a machine without a CUDA driver.
    CUDA itself stays uninitialised, so narrowing the variable afterwards still counts."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        names = [name.strip() for name in listed.split(",")]
        return [n for n in names if n.isdigit() or n.startswith(("GPU-", "MIG-"))]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def lock_dir() -> Path:
    """Node-local lock files, one set per user; inside a SLURM allocation, per job (a job
    owns the GPUs SLURM gave it, which other jobs may number the same way)."""
    job = os.environ.get("SLURM_JOB_ID")
    name = f"embrm-gpus-{os.getuid()}" + (f"-slurm{job}" if job else "")
    path = Path(tempfile.gettempdir()) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def try_locks(names: list[str], n: int, where: Path) -> list | None:
    """Open files of ``n`` GPUs of ``names`` whose locks were free (now held), else None."""
    held = []
    for name in names:
        fh = open(where / f"gpu-{name.replace('/', '_')}.lock", "a")  # noqa: SIM115
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        held.append((name, fh))
        if len(held) == n:
            return held
    for _, fh in held:
        fh.close()  # too few free: hold none, so two waiting jobs never block each other
    return None


_HELD: list = []  # the claimed GPUs' open lock files, held until the process exits


def claim(
    n: int,
    *,
    stage: str,
    visible: list[str] | None = None,
    where: Path | None = None,
    poll_s: float = POLL_S,
) -> list[str]:
    """Hold ``n`` free GPUs of ``visible`` (default :func:`visible_gpus`; locks in
    ``where``, default :func:`lock_dir`), waiting ``poll_s`` between tries, and narrow
    ``CUDA_VISIBLE_DEVICES`` to them; returns their names. Without GPUs, returns ``[]``
    and changes nothing (the stage runs on the CPU)."""
    visible = visible_gpus() if visible is None else visible
    if not visible:
        return []
    if n > len(visible):
        raise InputError(
            f"cluster.gpu.{stage}.gpus={n}, but this job sees {len(visible)} GPU(s) "
            f"({','.join(visible)}): ask for fewer, or give the job more"
        )
    where = lock_dir() if where is None else where
    tries = 0
    while (held := try_locks(visible, n, where)) is None:
        if tries % max(1, round(60 / poll_s)) == 0:
            log.info("waiting for %d free GPU(s) of %s", n, ",".join(visible))
        time.sleep(poll_s)
        tries += 1
    _HELD.extend(fh for _, fh in held)
    names = [name for name, _ in held]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(names)
    log.info("%s runs on GPU(s) %s", stage, ",".join(names))
    return names
