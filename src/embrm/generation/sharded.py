"""Steps 3-4 at scale: a split's texts dealt out to shard jobs, and inside a job to one
worker process per GPU; gathered back in prompt-major order.

The batch plan (length-sorted batches, see :func:`encode.batch_plan`) depends on the
texts alone, and batch ``b`` goes to shard ``b % shards``, then to that shard's GPU
``(b // shards) % gpus``. Every text is computed in the same batch whatever the
sharding, so a sharded run is bit-identical to an unsharded one on the same hardware.

A shard writes one ``.npz``: ``index`` ``(n,)`` (flat text index ``prompt * K +
response``), ``values`` ``(n,)`` or ``(n, D)`` and ``shape`` ``(N, K)`` of the split.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from embrm.data.arrays import save_array
from embrm.generation.encode import batch_plan, encode_batch
from embrm.generation.models import job_devices, load_scoring_tokenizer
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.io.jsonio import read_jsonl
from embrm.io.npy import preallocated_memmap

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scorer:
    """One stage's model side; module-level functions only, so a worker can unpickle it.

    ``load(path, cfg, dev, trust_remote_code) -> (tok, model)``;
    ``texts(rows, tok, cfg, source) -> (texts, K)``, prompt-major;
    ``forward(model, enc, cfg) -> Tensor`` ``(b,)`` or ``(b, D)``;
    ``dtype(cfg) -> numpy dtype`` of the stored values.
    """

    load: Callable
    texts: Callable
    forward: Callable
    dtype: Callable


def split_texts(scorer: Scorer, samples_file, model_path: str, cfg: dict, trc: bool):
    """The tokenizer, the split's texts and ``(N, K)``."""
    rows = read_jsonl(samples_file)
    tok = load_scoring_tokenizer(model_path, trc)
    texts, k = scorer.texts(rows, tok, cfg, str(samples_file))
    return tok, texts, (len(rows), k)


@torch.no_grad()
def run_batches(scorer: Scorer, model_path, cfg, samples_file, batches, dev, trc):
    """Values of the texts of ``batches`` on one device: ``(index (n,), values)``."""
    tok, model = scorer.load(model_path, cfg, dev, trc)
    texts, _ = scorer.texts(read_jsonl(samples_file), tok, cfg, str(samples_file))
    out = []
    for idx in batches:
        enc = encode_batch(tok, texts, idx, cfg["max_length"], cfg["truncation"])
        enc = enc.to(model.device)
        out.append(scorer.forward(model, enc, cfg).float().cpu().numpy().astype(scorer.dtype(cfg)))
    index = np.concatenate(batches) if batches else np.empty(0, np.int64)
    return index, (np.concatenate(out) if out else np.empty(0, scorer.dtype(cfg)))


def run_on_devices(scorer: Scorer, model_path, cfg, samples_file, batches, devices, trc):
    """:func:`run_batches` over ``devices``, one spawned process each when several (the
    job's GPUs work in parallel); ``(index, values)`` of all of them."""
    parts = [batches[i :: len(devices)] for i in range(len(devices))]
    jobs = [(scorer, model_path, cfg, str(samples_file), p, d, trc) for p, d in zip(parts, devices)]
    if len(devices) == 1:
        results = [run_batches(*jobs[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(len(devices)) as pool:
            results = pool.starmap(run_batches, jobs)
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def run_shard(
    scorer: Scorer,
    *,
    samples_file,
    out_file,
    model_path: str,
    cfg: dict,
    shard: int,
    shards: int,
    trust_remote_code: bool = False,
    devices: Sequence[str] | None = None,
    gpus: int | None = None,
) -> int:
    """Compute shard ``shard`` of ``shards`` of a split on ``devices`` (default: the
    job's GPUs, at most ``gpus`` of them, else the CPU) and write it as ``.npz``;
    returns its text count."""
    if not 0 <= shard < shards:
        raise InputError(f"shard {shard} is outside 0..{shards - 1}")
    tok, texts, shape = split_texts(scorer, samples_file, model_path, cfg, trust_remote_code)
    plan = batch_plan(tok, texts, cfg["batch_size"], cfg["max_length"], cfg["truncation"])
    mine = plan[shard::shards]
    devices = list(devices or job_devices()[:gpus])
    index, values = run_on_devices(
        scorer, model_path, cfg, samples_file, mine, devices, trust_remote_code
    )
    with atomic_path(out_file) as tmp:
        np.savez(tmp, index=index, values=values, shape=np.array(shape))
    log.info("shard %d/%d: %d texts on %s", shard, shards, len(index), ", ".join(devices))
    return len(index)


def gather(*, shard_files, out_file) -> tuple:
    """Join shard files into ``(N, K)`` or ``(N, K, D)`` in prompt-major order, checking
    that every text is there exactly once. Embeddings stream through a memory map."""
    shards = [np.load(f) for f in shard_files]
    n, k = (int(x) for x in shards[0]["shape"])
    if any(tuple(s["shape"]) != (n, k) for s in shards):
        raise InputError(f"{list(map(str, shard_files))}: shards of different splits")
    seen = np.zeros(n * k, dtype=np.int64)
    for s in shards:
        np.add.at(seen, s["index"], 1)
    if not (seen == 1).all():
        bad = int(np.flatnonzero(seen != 1)[0])
        raise InputError(f"text {bad} is covered {seen[bad]} times by the shards, not once")
    # a shard dealt no batch (more shards than batches) holds no values, and its empty
    # array has no feature axis: the layout comes from the shards with values
    shards = [s for s in shards if len(s["index"])]
    first = shards[0]["values"]
    if first.ndim == 1:
        flat = np.empty(n * k, dtype=first.dtype)
        for s in shards:
            flat[s["index"]] = s["values"]
        save_array(out_file, flat.reshape(n, k))
        log.info("%d shards gathered: %d x %d", len(shards), n, k)
        return (n, k)
    d = first.shape[1]
    with atomic_path(out_file) as tmp:
        arr = preallocated_memmap(tmp, first.dtype, (n, k, d))
        flat = arr.reshape(n * k, d)
        for s in shards:
            flat[s["index"]] = s["values"]
        arr.flush()
        del arr, flat
    log.info("%d shards gathered: %d x %d x %d", len(shards), n, k, d)
    return (n, k, d)
