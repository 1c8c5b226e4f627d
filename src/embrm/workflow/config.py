"""Pure config operations: cross-field checks and dotted-key overrides.

The JSON schema catches unknown keys, wrong types and out-of-range values; the checks
here catch what a schema cannot (values that contradict each other, or the split sizes
of :mod:`embrm.workflow.known_sizes`), before any job runs, and name the offending key.
Nothing here knows about folders: experiment lookup is in
:mod:`embrm.workflow.experiments`, data locations in :mod:`embrm.data.layout`.
"""

from __future__ import annotations

import copy

from embrm.io.errors import InputError
from embrm.workflow.known_sizes import check_known_sizes


def check_config(config: dict) -> None:
    """Raise InputError naming the key whose value contradicts another."""
    orm = config["orm"]
    source = config["data"]["source"]
    if source == "generate":
        gen = config["generation"]
        train = gen["prompts"]["max_train_prompts"]
        if train is not None and orm["n_sample"] is not None and orm["n_sample"] > train:
            raise InputError(
                f"config key orm.n_sample={orm['n_sample']} exceeds "
                f"generation.prompts.max_train_prompts={train}"
            )
        if config["task"] not in gen["golden"]["models"]:
            raise InputError(
                f"config key generation.golden.models has no golden RM for task {config['task']!r}"
            )
    if source == "pairs" and "pairs" not in config["data"]:
        raise InputError("config key data.pairs must describe the preference data for source=pairs")
    if source == "pairs" and "generation" not in config:
        raise InputError(
            "config key generation.embedding must name the embedder for source=pairs "
            "(step 4 embeds the pairs)"
        )
    if source == "import" and not config["data"].get("import", {}).get("dir"):
        raise InputError(
            "config key data.import.dir must name the release folder for source=import"
        )
    if abs(sum(config["distill"]["split"]) - 1.0) > 1e-6:
        raise InputError(
            f"config key distill.split must sum to 1, got {config['distill']['split']}"
        )
    check_known_sizes(config)


def with_overrides(config: dict, overrides: dict) -> dict:
    """A deep copy of ``config`` with dotted-key overrides (``orm.n_sample: 500``)."""
    out = copy.deepcopy(config)
    for dotted, value in overrides.items():
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            if key not in node or not isinstance(node[key], dict):
                raise InputError(f"override {dotted!r}: config has no section {key!r}")
            node = node[key]
        if leaf not in node:
            raise InputError(f"override {dotted!r}: config has no key {leaf!r}")
        node[leaf] = value
    return out
