"""Import the published release (``(K, N, D)`` / ``(K, N)``) into the canonical layout.

The release is response-major; everything downstream is prompt-major. Conversion
streams ``chunk`` prompts at a time through a memory map, so the full array is never
in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embrm.data.arrays import check_written, open_matching
from embrm.io.atomic import atomic_path
from embrm.io.npy import preallocated_memmap


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
    ``(N, K, D)`` / ``rewards`` ``(N, K)`` float32; returns ``(N, K, D)``."""
    src_emb, src_rew = release_embeddings, release_rewards
    emb, rew = open_matching(src_emb, src_rew, axes="K, N")
    k, n, d = emb.shape
    if max_prompts is not None:
        n = min(n, max_prompts)
    with atomic_path(embeddings) as dst_emb, atomic_path(rewards) as dst_rew:
        _transpose(emb, rew, dst_emb, dst_rew, n, chunk)
        check_written(dst_rew, 2, split)
        check_written(dst_emb, 3, split)
    return (n, k, d)


def _transpose(emb, rew, dst_emb, dst_rew, n: int, chunk: int) -> None:
    """Copy the first ``n`` prompts, ``chunk`` at a time, into new prompt-major files."""
    k, _, d = emb.shape
    out_e = preallocated_memmap(dst_emb, np.float32, (n, k, d))
    out_r = preallocated_memmap(dst_rew, np.float32, (n, k))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        out_r[start:stop] = np.asarray(rew[:, start:stop], dtype=np.float32).T
        out_e[start:stop] = np.asarray(emb[:, start:stop], dtype=np.float32).transpose(1, 0, 2)
    out_e.flush()
    out_r.flush()
    del out_e, out_r
