"""Studies: grids of settings (with seed repeats) as cached experiment folders.

A study names lists of values for dotted config keys (step 5-8 knobs, the policy, the
embedding model and pooling, the imported release's data set and models and its task)
and/or named experiments
(a set of such keys each); experiments x grid x ``seeds`` become points
``results/studies/<study>/<[experiment__]key=value__...__seed=s>``.
Every point's effective config is the main config with its overrides. Data folders are
named by the data-side settings (:mod:`embrm.data.layout`), so points share every
upstream array they can (built once), and adding a point schedules only its own jobs.
"""

from __future__ import annotations

import itertools
import re

from embrm.io.errors import InputError
from embrm.workflow.config import check_config, with_overrides
from embrm.workflow.paths import STUDY_ROOT

EXPERIMENT = "experiment"
SAFE = re.compile(r"[^A-Za-z0-9.+-]")


def knob_label(key: str) -> str:
    """The short name of a dotted key: its last part, or the section for ``*.model``
    (``generation.embedding.model`` -> ``embedding``)."""
    parts = key.split(".")
    return parts[-2] if parts[-1] == "model" and len(parts) > 1 else parts[-1]


def point_name(label: str | None, varied: dict) -> str:
    """A readable, filesystem-safe folder name: ``n_sample=500__seed=1``, or for a named
    experiment ``minilm__objective=bt__seed=1``."""
    parts = [f"{knob_label(k)}={SAFE.sub('_', str(v))}" for k, v in varied.items()]
    return "__".join(([label] if label else []) + parts)


def study_points(study: dict) -> list[tuple[str, dict]]:
    """``(folder name, overrides)`` of every point of one study: its named experiments
    (or the main config alone) x grid values x seeds. A named experiment's overrides
    carry its name under ``EXPERIMENT`` for the tables; it is not a config key."""
    experiments = study.get("experiments") or {None: {}}
    grid = study.get("grid", {})
    points = []
    for (label, settings), values, seed in itertools.product(
        experiments.items(), itertools.product(*grid.values()), study.get("seeds", [None])
    ):
        varied = dict(zip(grid, values))
        if seed is not None:
            varied["seed"] = seed
        named = {EXPERIMENT: label, **settings} if label else {}
        points.append((point_name(label, varied), {**named, **varied}))
    return points


def expand(config: dict) -> dict[str, dict[str, dict]]:
    """``{study: {experiment folder: overrides}}`` for every configured study."""
    out = {}
    for name, study in (config.get("studies") or {}).items():
        check_study_keys(name, study)
        out[name] = {}
        for point, overrides in study_points(study):
            folder = f"{STUDY_ROOT}/{name}/{point}"
            if folder in out[name]:
                raise InputError(
                    f"study {name!r}: points {out[name][folder]} and {overrides} share the "
                    f"folder {point!r} (values differ only in characters a folder name "
                    "cannot hold); rename one of them"
                )
            out[name][folder] = overrides
    return out


def check_study_keys(name: str, study: dict) -> None:
    """A key set by a named experiment and by the grid would be silently overwritten."""
    for label, settings in (study.get("experiments") or {}).items():
        both = sorted(set(settings) & set(study.get("grid", {})))
        if both:
            raise InputError(
                f"study {name!r}: experiment {label!r} and the grid both set {both[0]}"
            )


def point_config(config: dict, exp: str, points: dict[str, dict] | None = None) -> dict:
    """The effective, checked config of one study point folder; ``points`` is
    :func:`all_point_configs` of ``config`` where the caller already has it."""
    points = all_point_configs(config) if points is None else points
    if exp not in points:
        raise InputError(f"{exp} is not a point of any configured study")
    check_data_keys(config, exp.split("/")[-2])  # results/studies/<study>/<point>
    return points[exp]


# a data-side key changes the data only under its own data.source; the task, too: it
# picks the golden RM of generated data, whose folder is named by the policy alone, so
# only a release (data.import.dataset names its folder) can vary it
DATA_KEY_SOURCES = {"generation.": "generate", "data.import.": "import", "task": "import"}


def check_data_keys(config: dict, study: str) -> None:
    """A study varying a data-side key its data source ignores would compare identical
    data under different labels; refuse it when the study is built."""
    source = config["data"]["source"]
    spec = config["studies"][study]
    keys = set(spec.get("grid", {})).union(*(spec.get("experiments") or {}).values())
    for key in sorted(keys):
        for prefix, needed in DATA_KEY_SOURCES.items():
            if key.startswith(prefix) and source != needed:
                raise InputError(
                    f"study {study!r}: {key} applies to data.source {needed}, "
                    f"but data.source is {source}"
                )


def all_point_configs(config: dict) -> dict[str, dict]:
    """``{point folder: effective, checked config}`` for every point of every study."""
    return {
        exp: _checked(config, name, exp, overrides)
        for name, points in expand(config).items()
        for exp, overrides in points.items()
    }


def _checked(config: dict, study: str, exp: str, overrides: dict) -> dict:
    try:
        cfg = with_overrides(config, {k: v for k, v in overrides.items() if k != EXPERIMENT})
        check_config(cfg)
    except InputError as exc:
        raise InputError(f"study {study!r}, point {exp}: {exc}") from exc
    return cfg
