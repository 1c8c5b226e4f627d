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
import os
import re
from collections.abc import Iterable
from pathlib import Path

from embrm.io.errors import InputError
from embrm.paths import RESULTS, STUDY_ROOT
from embrm.workflow.config import check_config, with_overrides

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


def study_folders(config: dict) -> dict[str, dict[str, dict]]:
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
    """``{point folder: effective, checked config}`` for every point of every study; two
    points of one study that run the same config are refused (:func:`check_distinct`)."""
    out = {}
    for name, points in study_folders(config).items():
        configs = {exp: _checked(config, name, exp, overrides) for exp, overrides in points.items()}
        check_distinct(name, configs, points)
        out.update(configs)
    return out


def same_value(value):
    """A hashable form of a config under which values the steps treat alike are equal:
    ``1`` and ``1.0`` (and ``[1]`` and ``[1.0]``), but not ``True`` and ``1``."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, same_value(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(map(same_value, value)))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ("number", value)
    return (type(value).__name__, value)


def check_distinct(study: str, configs: dict[str, dict], points: dict[str, dict]) -> None:
    """Two folders of one study computing one config (grid values ``1`` and ``1.0``, or
    experiments whose settings are the main config's) would count one result twice."""
    seen: dict = {}
    for exp, cfg in configs.items():
        first = seen.setdefault(same_value(cfg), exp)
        if first != exp:
            raise InputError(
                f"study {study!r}: points {first} ({points[first]}) and {exp} ({points[exp]}) "
                "run the same config; list each grid value once (1 and 1.0 are one value) "
                "and give each experiment settings of its own"
            )


def _checked(config: dict, study: str, exp: str, overrides: dict) -> dict:
    try:
        cfg = with_overrides(config, {k: v for k, v in overrides.items() if k != EXPERIMENT})
        check_config(cfg)
    except InputError as exc:
        raise InputError(f"study {study!r}, point {exp}: {exc}") from exc
    return cfg


def check_point_links(folders: Iterable[str], results: str = RESULTS) -> None:
    """Refuse a symbolic link that leads a study point's folder, or anything in it,
    outside ``results``: Snakemake would take the file it points to as a finished step
    that no job of this workflow made (and that may change under it). Links within
    ``results`` (or a ``results`` that is itself a link) are this workflow's own files."""
    root = Path(results).resolve()
    for folder in map(Path, folders):
        links = [folder] if folder.is_symlink() else []
        if folder.is_dir():
            for parent, dirs, files in os.walk(folder):  # does not descend into links
                links += [Path(parent, n) for n in dirs + files if Path(parent, n).is_symlink()]
        for link in links:
            target = link.resolve()
            if not target.is_relative_to(root):
                raise InputError(
                    f"{link} is a symbolic link to {target}, outside {results}/: a study "
                    "point's artifacts must be made by this workflow, else its steps count "
                    "as done; delete the link, and the point's jobs rebuild it"
                )
