"""Split sizes known before any job runs, and the checks that need them.

Each data source fixes some sizes in the config (synthetic: all; generate: K and an
upper bound on the test prompts) or in the release's ``.npy`` headers (import, read
and checked without loading the data: a cut or misshapen release file is named here).
Settings that cannot fit these sizes are refused at parse time, naming the knob to
change, instead of failing after hours of SFT and sampling.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from embrm.calibrate.prompt_split import check_split
from embrm.data.importer import release_files, release_shape
from embrm.io.errors import InputError


@dataclass(frozen=True)
class Size:
    """A known size and the config key (or file) that sets it."""

    value: int
    knob: str


@functools.lru_cache(maxsize=256)
def _release_shape(embeddings: str, rewards: str, mtimes: tuple) -> tuple[int, int, int]:
    """:func:`release_shape`, read once per file version: every study point of a release
    asks for the same few headers."""
    return release_shape(embeddings, rewards)


def _release_size(imp: dict, split: str) -> dict[str, Size]:
    """``n_<split>``, ``k_<split>`` and ``dim_<split>`` of a release split from its
    checked headers, rewards ``(K, N)`` and embeddings ``(K, N, D)``; nothing while a
    file is absent (the import rule then reports the missing input)."""
    embeddings, rewards = release_files(imp, split)
    if not (Path(embeddings).is_file() and Path(rewards).is_file()):
        return {}
    mtimes = (Path(embeddings).stat().st_mtime_ns, Path(rewards).stat().st_mtime_ns)
    k, n, d = _release_shape(embeddings, rewards, mtimes)
    if imp.get("max_prompts") is not None and imp["max_prompts"] < n:
        n_size = Size(imp["max_prompts"], "data.import.max_prompts")
    else:
        n_size = Size(n, rewards)
    return {
        f"n_{split}": n_size,
        f"k_{split}": Size(k, rewards),
        f"dim_{split}": Size(d, embeddings),
    }


def _release_sizes(imp: dict) -> dict[str, Size]:
    """Both splits' sizes (:func:`_release_size`) and ``dim``, which they must share: a
    model trained on D inputs cannot score the other split's embeddings."""
    out = {**_release_size(imp, "train"), **_release_size(imp, "test")}
    train, test = out.pop("dim_train", None), out.pop("dim_test", None)
    if train and test and train.value != test.value:
        raise InputError(
            f"{train.knob} has D = {train.value} but {test.knob} has D = {test.value}: the "
            "train and test embeddings must come from the same embedder (data.import.embed_model)"
        )
    if train or test:
        out["dim"] = train or test
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
    if source in ("pairs", "ratings"):
        return {}  # known once the pairs (ratings) are read
    return _release_sizes(config["data"]["import"])


def check_known_sizes(config: dict) -> dict[str, Size]:
    """Raise InputError for settings the known split sizes cannot satisfy; returns the
    sizes (:func:`known_sizes`)."""
    sizes = known_sizes(config)
    n_sample = config["orm"]["n_sample"]
    if "k_train" in sizes:
        s, first_n = sizes["k_train"], config["orm"]["consider_first_n"]
        if first_n > s.value:
            raise InputError(
                f"config key orm.consider_first_n={first_n} exceeds the K = {s.value} "
                f"responses per train prompt ({s.knob}); choose at most {s.value}"
            )
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
    return sizes
