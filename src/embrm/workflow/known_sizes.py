"""Split sizes known before any job runs, and the checks that need them.

Each data source fixes some sizes in the config (synthetic: all; generate: K and an
upper bound on the test prompts) or in the release's ``.npy`` headers (import, read
without loading the data). Settings that cannot fit these sizes are refused at parse
time, naming the knob to change, instead of failing after hours of SFT and sampling.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from embrm.calibrate.prompt_split import check_split
from embrm.data.arrays import npy_shape
from embrm.data.importer import release_files
from embrm.io.errors import InputError


@dataclass(frozen=True)
class Size:
    """A known size and the config key (or file) that sets it."""

    value: int
    knob: str


@functools.lru_cache(maxsize=256)
def _header_shape(path: str, mtime_ns: int) -> tuple:
    """A ``.npy`` header's shape, read once per file version: every study point of a
    release asks for the same few headers."""
    return npy_shape(path)


def _shape(path: str) -> tuple | None:
    """The shape of an existing ``.npy`` file, or None while it is absent (the import
    rule then reports the missing input)."""
    file = Path(path)
    return _header_shape(path, file.stat().st_mtime_ns) if file.is_file() else None


def _release_size(imp: dict, split: str) -> dict[str, Size]:
    """``n_<split>`` and ``k_<split>`` of a release split from its rewards header
    ``(K, N)``, and ``dim`` from its embeddings header ``(K, N, D)``; only what the
    present files show."""
    embeddings, rewards = release_files(imp, split)
    out = {}
    shape = _shape(rewards)
    if shape is not None:
        k, n = shape[:2]
        if imp.get("max_prompts") is not None and imp["max_prompts"] < n:
            out[f"n_{split}"] = Size(imp["max_prompts"], "data.import.max_prompts")
        else:
            out[f"n_{split}"] = Size(n, rewards)
        out[f"k_{split}"] = Size(k, rewards)
    shape = _shape(embeddings)
    if shape is not None and len(shape) == 3:
        out["dim"] = Size(shape[2], embeddings)
    return out


def known_sizes(config: dict) -> dict[str, Size]:
    """The known ones of ``n_train``, ``n_test`` (prompts), ``k_train``, ``k_test``
    (responses per prompt) and ``dim`` (D). Generated data know K and upper bounds of
    the prompts (the prompt caps), never D (the embedder's width)."""
    source = config["data"]["source"]
    if source == "synthetic":
        syn = config["data"]["synthetic"]
        keys = ("n_train", "n_test", "k_train", "k_test", "dim")
        return {k: Size(syn[k], f"data.synthetic.{k}") for k in keys}
    if source == "generate":
        gen = config["generation"]
        out = {}
        for split in ("train", "test"):
            out[f"k_{split}"] = Size(
                gen["sampling"][f"k_{split}"], f"generation.sampling.k_{split}"
            )
            bound = gen["prompts"][f"max_{split}_prompts"]
            if bound is not None:
                out[f"n_{split}"] = Size(bound, f"generation.prompts.max_{split}_prompts")
        return out
    if source == "pairs":
        return {}  # known once the pairs are read (orm.n_sample is checked then)
    out = {}
    for split in ("train", "test"):
        out.update(_release_size(config["data"]["import"], split))
    return out


def check_known_sizes(config: dict) -> None:
    """Raise InputError for settings the known split sizes cannot satisfy."""
    sizes = known_sizes(config)
    n_sample = config["orm"]["n_sample"]
    if "n_train" in sizes and n_sample is not None and n_sample > sizes["n_train"].value:
        s = sizes["n_train"]
        raise InputError(
            f"config key orm.n_sample={n_sample} exceeds the {s.value} train prompts ({s.knob})"
        )
    if "k_test" in sizes:
        s, bon_n = sizes["k_test"], config["evaluation"]["bon_n"]
        if min(bon_n) > s.value:
            raise InputError(
                f"config key evaluation.bon_n={bon_n}: every size exceeds K = {s.value} "
                f"test responses per prompt ({s.knob}); choose sizes <= {s.value}"
            )
    if "n_test" in sizes:
        s = sizes["n_test"]
        check_split(s.value, config["distill"]["split"], config["distill"]["cv_folds"], s.knob)
