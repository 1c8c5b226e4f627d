"""Pure config operations: cross-field checks and dotted-key overrides.

The JSON schema catches unknown keys, wrong types and out-of-range values; the checks
here catch what a schema cannot (values that contradict each other, or the split sizes
of :mod:`embrm.resources.known_sizes`), before any job runs, and name the offending key.
Nothing here knows about folders: experiment lookup is in
:mod:`embrm.workflow.experiments`, data locations in :mod:`embrm.data.layout`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping

from embrm.data.layout import RATINGS_RUN
from embrm.io.errors import InputError
from embrm.resources.known_sizes import Size, check_known_sizes
from embrm.rm.options import OrmSettings


def check_config(config: dict) -> None:
    """Raise InputError naming the key whose value contradicts another (``config``: as
    :func:`embrm.workflow.schema.check_schema` completed it, defaults filled in)."""
    orm = config["orm"]
    settings = OrmSettings.of(orm)
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
    if source == "pairs" and config["data"]["pairs"]["from_ratings"]:
        if "ratings" not in config["data"]:
            raise InputError(
                "config key data.pairs.from_ratings derives the pairs from data.ratings, "
                "which this config has not: describe the rated responses there"
            )
    if settings.given_margin_source and source != "pairs":
        raise InputError(
            "config key orm.margin_source=given reads the margin field of human pairs: it "
            f"needs data.source=pairs, got {source}"
        )
    if source == "pairs" and "generation" not in config:
        raise InputError(
            "config key generation.embedding must name the embedder for source=pairs "
            "(step 4 embeds the pairs)"
        )
    if source == "ratings":
        check_ratings_run(config)
    if config["evaluation"]["benchmarks"] and source not in ("generate", "pairs"):
        raise InputError(
            "config key evaluation.benchmarks: a benchmark is text, embedded by the run's "
            f"embedder, so data.source must be generate or pairs (is {source})"
        )
    if source == "import" and not config["data"].get("import", {}).get("dir"):
        raise InputError(
            "config key data.import.dir must name the release folder for source=import"
        )
    if abs(sum(config["distill"]["split"]) - 1.0) > 1e-6:
        raise InputError(
            f"config key distill.split must sum to 1, got {config['distill']['split']}"
        )
    check_orm_options(settings)
    sizes = check_known_sizes(config)
    check_active(config["active"])
    if "k_train" in sizes and orm["n_sample"] is not None:
        check_active_pool(config["active"], orm["n_sample"], sizes["k_train"])


# the selection strategies of `active.strategy` (embrm.active.selection)
ACTIVE_STRATEGIES = ("random", "uncertainty", "dopt", "coreset")


def round_sizes(active: dict) -> list[int]:
    """Pairs annotated in each round: ``initial`` in round 0, then the rest of the
    ``budget`` spread over ``rounds`` rounds (the first rounds take the remainder)."""
    rest = active["budget"] - active["initial"]
    share, extra = divmod(rest, active["rounds"])
    return [active["initial"]] + [share + (r < extra) for r in range(active["rounds"])]


def check_active(active: dict) -> None:
    """Budget, rounds and pool sizes must leave every round something to choose."""
    if not active["enabled"]:
        return
    if active["budget"] - active["initial"] < active["rounds"]:
        raise InputError(
            f"config key active.budget={active['budget']} leaves fewer than one pair per "
            f"round after active.initial={active['initial']} ({active['rounds']} rounds)"
        )
    largest = max(round_sizes(active)[1:])
    if active["candidates"] < largest:
        raise InputError(
            f"config key active.candidates={active['candidates']} is smaller than the "
            f"{largest} pairs a round selects; raise it or active.rounds"
        )


def pool_room(n_prompts: int, k: int, pool: str) -> int:
    """How many distinct pairs ``active.pool`` can draw from ``n_prompts x k`` responses:
    two responses of one prompt (``within_prompt``), or of two prompts (``cross_prompt``;
    ``both`` mixes the two, bounded by the cross-prompt count)."""
    if pool == "within_prompt":
        return n_prompts * k * (k - 1) // 2
    n_ids = n_prompts * k
    return n_ids * (n_ids - k) // 2


def check_active_pool(active: dict, n_sample: int, k: Size) -> None:
    """Every round's candidates must fit the pairs not annotated yet: round ``r`` draws
    ``active.candidates`` new pairs beside the ones annotated before it, so the last
    round needs ``candidates + budget - (its own share)`` distinct pairs of the first
    ``orm.n_sample`` prompts."""
    if not active["enabled"]:
        return
    room = pool_room(n_sample, k.value, active["pool"])
    where = (
        f"the {room} {active['pool']} pairs of orm.n_sample={n_sample} prompts x K = "
        f"{k.value} responses ({k.knob})"
    )
    fix = "lower it, or raise orm.n_sample"
    if active["budget"] > room:
        raise InputError(f"config key active.budget={active['budget']} exceeds {where}; {fix}")
    before_last = active["budget"] - round_sizes(active)[-1]
    if active["candidates"] + before_last > room:
        raise InputError(
            f"config key active.candidates={active['candidates']}: with the {before_last} "
            f"pairs annotated before the last round they exceed {where}; {fix}"
        )


def check_ratings_run(config: dict) -> None:
    """Rated responses train the multi-objective heads only: their sections must exist,
    and the parts of the run that need pairs or golden rewards are refused, saying what
    runs instead."""
    if "ratings" not in config["data"]:
        raise InputError("config key data.ratings is needed for data.source=ratings")
    if "multi_objective" not in config:
        raise InputError("config key multi_objective is needed for data.source=ratings")
    names = config["data"]["ratings"]["attributes"]
    length = config["multi_objective"]["length_attribute"]
    if length is not None and length not in names:
        raise InputError(
            f"config key multi_objective.length_attribute={length!r} is not one of "
            f"data.ratings.attributes {names}"
        )
    if config.get("studies"):
        raise InputError(
            f"config key studies: studies vary the ORM ensemble's steps 5-8, which "
            f"data.source=ratings does not run; {RATINGS_RUN}"
        )
    if config["active"]["enabled"]:
        raise InputError(
            "config key active.enabled: active learning simulates the annotator from "
            f"golden rewards, which data.source=ratings does not have; {RATINGS_RUN}"
        )


def check_active_training(config: dict) -> None:
    """The main run's active rounds (``active_curve``) need golden rewards for the
    simulated annotator, and ORM settings they can honour (:func:`check_active_orm`).
    Study points are checked by their own round jobs, if any are asked for."""
    if not config["active"]["enabled"]:
        return
    if config["data"]["source"] == "pairs":
        raise InputError(
            "config key active.enabled: active learning simulates the annotator from golden "
            "rewards, which data.source: pairs does not have"
        )
    check_active_orm(OrmSettings.of(config["orm"]))


def check_active_orm(orm: OrmSettings) -> int:
    """Active rounds draw pairs from the first ``orm.n_sample`` prompts and train the
    plain bt or clf loss on them: no settings they would silently drop. Returns
    ``orm.n_sample``, the prompts the rounds draw from."""
    if orm.n_sample is None:
        raise InputError("config key orm.n_sample must be a number for active learning (is null)")
    dropped = {
        "loss": (orm.pair_loss, orm.uses_margin),
        "noise_remedy": (orm.noise_remedy, orm.noise_remedy != "none"),
        "listwise": (orm.listwise, orm.listwise),
    }
    for key, (value, used) in dropped.items():
        if used:
            raise InputError(
                f"config key orm.{key}={value!r} is not supported with "
                "active.enabled: rounds train the plain bt or clf loss on the chosen pairs"
            )
    return orm.n_sample


def check_orm_options(orm: OrmSettings) -> None:
    """The loss variants build on one score family: ``orm.objective`` names it, and the
    margin losses and remedies compare reward differences, which only ``bt`` has; K-wise
    rankings are one per prompt, and the listwise loss replaces the pairwise ones."""
    if orm.loss in ("bt", "clf") and orm.loss != orm.objective:
        raise InputError(
            f"config key orm.loss={orm.loss} contradicts orm.objective={orm.objective}; "
            "set orm.objective (or leave orm.loss null)"
        )
    adaptive = orm.noise_remedy == "adaptive_margin"
    if (adaptive or orm.uses_margin) and orm.objective != "bt":
        raise InputError(
            f"config key orm.loss={orm.pair_loss} (or orm.noise_remedy=adaptive_margin) "
            f"needs orm.objective=bt, got {orm.objective}"
        )
    if orm.given_margin_source and orm.noise_remedy != "none":
        raise InputError(
            "config key orm.margin_source=given keeps each pair's own margin, which a "
            "noise remedy (flip, drop) would contradict: set orm.noise_remedy=none"
        )
    if orm.pair_loss == "hinge" and orm.label_smoothing:
        raise InputError("config key orm.label_smoothing applies to the BCE losses, not hinge")
    k = orm.consider_first_n
    if k > 2 and (orm.comparison != "within_prompt" or orm.n_pairs != 1):
        raise InputError(
            f"config key orm.consider_first_n={k} ranks k responses of one prompt: it needs "
            "orm.comparison=within_prompt and orm.n_pairs=1 (one ranking per prompt)"
        )
    plain = orm.pair_loss == "bt" and not orm.label_smoothing and orm.noise_remedy == "none"
    if orm.listwise and (k <= 2 or not plain):
        raise InputError(
            "config key orm.listwise needs K-wise rankings (orm.consider_first_n > 2) and "
            "the plain bt objective (no loss variant, smoothing or noise remedy)"
        )


NUMBER = re.compile(r"[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?")
WORDS = {"true": True, "false": False, "null": None, "~": None, "": None}


def cli_scalar(text: str):
    """A number as ``--config key=value`` reads one at the top level (int, then float),
    true/false/null/~/empty (any case) as YAML reads them; anything else stays text."""
    if NUMBER.fullmatch(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    return WORDS.get(text.lower(), text)


def retype_cli_config(config: dict, cli: Mapping) -> None:
    """Give nested ``--config`` values their types, in ``config`` (in place).

    Snakemake reads ``--config distill='{distill_epochs: 5}'`` with YAML's base loader,
    which keeps every nested scalar a string (``"5"``), and the schema then refuses the
    example in docs/usage.md. ``cli`` is what Snakemake parsed from ``--config``
    (``workflow.config_settings.config``), already merged into ``config``; each string
    below its top level is read as :func:`cli_scalar` reads it. A text value that looks
    like a number or true/false/null needs a ``--configfile``."""

    def retype(node, value):
        if isinstance(value, str):
            return cli_scalar(value)
        if isinstance(value, list):
            return [retype(None, v) for v in value]
        if isinstance(value, Mapping):
            node = node if isinstance(node, dict) else {}
            for key, sub in value.items():
                node[key] = retype(node.get(key), sub)
            return node
        return value

    for key, value in cli.items():
        if isinstance(value, (Mapping, list)):
            config[key] = retype(config.get(key), value)


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
