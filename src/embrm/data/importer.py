"""Import the published release (``(K, N, D)`` / ``(K, N)``) into the canonical layout.

The release is response-major; everything downstream is prompt-major. Conversion
streams ``chunk`` prompts at a time through a memory map, so the full array is never
in memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from embrm.data.arrays import checked_header, first_non_finite, open_matching
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.io.npy import preallocated_memmap

log = logging.getLogger(__name__)


def release_paths(directory, dataset, gen_model, embed_model, reward_model, split):
    """File names of the published release for one split."""
    d = Path(directory)
    return (
        d / f"EMBD_{dataset}_{gen_model}_{embed_model}_{split}.npy",
        d / f"REWARD_{dataset}_{reward_model}_{gen_model}_{split}.npy",
    )


def release_files(imp: dict, split: str) -> list[str]:
    """The release files (embeddings, rewards) one split imports from, given a
    ``data.import`` config section."""
    keys = ("dir", "dataset", "gen_model", "embed_model", "reward_model")
    return [str(p) for p in release_paths(*(imp[k] for k in keys), split)]


def release_shape(embeddings, rewards) -> tuple[int, int, int]:
    """``(K, N, D)`` of one release split, from the ``.npy`` headers alone: float
    embeddings ``(K, N, D)`` and rewards ``(K, N)`` with K >= 2 responses and N >= 1
    prompts; anything else is an InputError naming the file and what it holds."""
    emb = checked_header(embeddings, 3, "(K, N, D)")
    rew = checked_header(rewards, 2, "(K, N)")
    if emb[:2] != rew:
        raise InputError(
            f"{embeddings} has shape {emb} (K, N, D) but {rewards} has shape {rew}; "
            f"expected rewards of shape {emb[:2]} (K, N)"
        )
    k, n, d = emb
    if k < 2:
        raise InputError(
            f"{rewards}: the release has K = {k} response per prompt (shape {rew}, (K, N)); "
            "rankings, pairs and best-of-N need K >= 2"
        )
    if n == 0:
        raise InputError(f"{rewards}: the release has no prompts (N = 0, shape {rew})")
    return k, n, d


def convert(
    *,
    release_embeddings,
    release_rewards,
    embeddings,
    rewards,
    split: str,
    max_prompts=None,
    chunk=2048,
) -> tuple:
    """Transpose one split's release ``(K, N, D)`` / ``(K, N)`` to ``embeddings``
    ``(N, K, D)`` / ``rewards`` ``(N, K)`` float32; returns ``(N, K, D)``.

    The headers are checked before anything is written (:func:`release_shape`), and
    every chunk for NaN or inf as it is copied, naming the release file and its
    response, prompt and dimension. ``split`` names the split in log lines."""
    k, n, d = release_shape(release_embeddings, release_rewards)
    emb, rew = open_matching(release_embeddings, release_rewards, axes="K, N")
    if max_prompts is not None:
        n = min(n, max_prompts)
    with atomic_path(embeddings) as dst_emb, atomic_path(rewards) as dst_rew:
        _transpose(emb, rew, dst_emb, dst_rew, n, chunk, (release_embeddings, release_rewards))
    log.info("%s: imported %d prompts x %d responses x %d dimensions", split, n, k, d)
    return (n, k, d)


def _check_block(block: np.ndarray, start: int, path) -> None:
    """Refuse a non-finite value of a release block ``(K, n[, D])`` whose first prompt is
    ``start``, naming the file and the value's response, prompt and dimension."""
    where = first_non_finite(block)
    if where is None:
        return
    prompt = start + where[1]
    at = [f"response {where[0]}", f"prompt {prompt}", *(f"dimension {i}" for i in where[2:])]
    cut = f", or set data.import.max_prompts to {prompt} or fewer" if prompt else ""
    raise InputError(
        f"{path}: non-finite value (NaN or inf as float32) at {', '.join(at)}; repair the "
        f"release{cut}"
    )


def _transpose(emb, rew, dst_emb, dst_rew, n: int, chunk: int, sources: tuple) -> None:
    """Copy the first ``n`` prompts, ``chunk`` at a time, into new prompt-major files;
    ``sources``: the release files of ``emb`` and ``rew``, for error messages."""
    k, _, d = emb.shape
    out_e = preallocated_memmap(dst_emb, np.float32, (n, k, d))
    out_r = preallocated_memmap(dst_rew, np.float32, (n, k))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block_r = np.asarray(rew[:, start:stop], dtype=np.float32)
        block_e = np.asarray(emb[:, start:stop], dtype=np.float32)
        _check_block(block_r, start, sources[1])
        _check_block(block_e, start, sources[0])
        out_r[start:stop] = block_r.T
        out_e[start:stop] = block_e.transpose(1, 0, 2)
    out_e.flush()
    out_r.flush()
    del out_e, out_r
