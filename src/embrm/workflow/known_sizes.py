"""Split sizes known before any job runs, and the checks that need them.

Each data source fixes some sizes in the config (synthetic: all; generate: K and an
upper bound on the test prompts) or in the release's ``.npy`` headers (import, read
without loading the data). Settings that cannot fit these sizes are refused at parse
time, naming the knob to change, instead of failing after hours of SFT and sampling.
"""

from __future__ import annotations

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


def _release_size(imp: dict, split: str) -> tuple[Size, Size] | None:
    """``(N, K)`` of a release split from its rewards header ``(K, N)``, or None while
    the file is absent (the import rule then reports the missing input)."""
    rewards = release_files(imp, split)[1]
    if not Path(rewards).is_file():
        return None
    k, n = npy_shape(rewards)[:2]
    if imp.get("max_prompts") is not None and imp["max_prompts"] < n:
        return Size(imp["max_prompts"], "data.import.max_prompts"), Size(k, rewards)
    return Size(n, rewards), Size(k, rewards)


def known_sizes(config: dict) -> dict[str, Size]:
    """The known ones of ``n_train``, ``n_test`` (prompts) and ``k_test`` (responses)."""
    source = config["data"]["source"]
    if source == "synthetic":
        syn = config["data"]["synthetic"]
        return {k: Size(syn[k], f"data.synthetic.{k}") for k in ("n_train", "n_test", "k_test")}
    if source == "generate":
        gen = config["generation"]
        out = {"k_test": Size(gen["sampling"]["k_test"], "generation.sampling.k_test")}
        if gen["prompts"]["max_test_prompts"] is not None:
            bound = gen["prompts"]["max_test_prompts"]
            out["n_test"] = Size(bound, "generation.prompts.max_test_prompts")
        return out
    if source == "pairs":
        return {}  # known once the pairs are read (orm.n_sample is checked then)
    out = {}
    for split in ("train", "test"):
        sizes = _release_size(config["data"]["import"], split)
        if sizes is not None:
            out[f"n_{split}"] = sizes[0]
            if split == "test":
                out["k_test"] = sizes[1]
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
