"""Import the published release (``(K, N, D)`` / ``(K, N)``) into the canonical layout.

The release is response-major; everything downstream is prompt-major. Conversion
streams ``chunk`` prompts at a time through a memory map, so the full array is never
in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embrm.data.arrays import open_array
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError


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


def convert(
    *, release_embeddings, release_rewards, embeddings, rewards, max_prompts=None, chunk=2048
) -> tuple:
    """Transpose one split's release ``(K, N, D)`` / ``(K, N)`` to ``embeddings``
    ``(N, K, D)`` / ``rewards`` ``(N, K)`` float32; returns ``(N, K, D)``."""
    src_emb, src_rew = release_embeddings, release_rewards
    emb = open_array(src_emb, 3)
    rew = open_array(src_rew, 2)
    if emb.shape[:2] != rew.shape:
        raise InputError(
            f"{src_emb} has shape {emb.shape} (K, N, D) but {src_rew} has shape {rew.shape}; "
            f"expected rewards of shape {emb.shape[:2]} (K, N)"
        )
    k, n, d = emb.shape
    if max_prompts is not None:
        n = min(n, max_prompts)
    with atomic_path(embeddings) as dst_emb, atomic_path(rewards) as dst_rew:
        _transpose(emb, rew, dst_emb, dst_rew, n, chunk, src_rew)
    return (n, k, d)


def _transpose(emb, rew, dst_emb, dst_rew, n: int, chunk: int, src_rew) -> None:
    """Copy the first ``n`` prompts, ``chunk`` at a time, into new prompt-major files."""
    k, _, d = emb.shape
    out_e = np.lib.format.open_memmap(dst_emb, mode="w+", dtype=np.float32, shape=(n, k, d))
    out_r = np.lib.format.open_memmap(dst_rew, mode="w+", dtype=np.float32, shape=(n, k))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block_r = np.asarray(rew[:, start:stop], dtype=np.float32).T
        if not np.isfinite(block_r).all():
            raise InputError(f"{src_rew}: non-finite reward in prompts {start}..{stop - 1}")
        out_r[start:stop] = block_r
        out_e[start:stop] = np.asarray(emb[:, start:stop], dtype=np.float32).transpose(1, 0, 2)
    out_e.flush()
    out_r.flush()
    del out_e, out_r
