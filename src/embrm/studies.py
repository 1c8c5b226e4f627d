"""Studies: grids of step-5..8 settings (with seed repeats) as cached experiment folders.

A study names lists of values for dotted config keys; the grid (their product, times
``seeds``) becomes points ``results/studies/<study>/<key=value__...__seed=s>``. Every
point's effective config is the main config with its overrides, so points that leave
the data-side keys alone share the same upstream arrays (built once), and adding a
point schedules only that point's jobs.
"""

from __future__ import annotations

import itertools
import re

from embrm.errors import InputError

STUDY_ROOT = "results/studies"
SAFE = re.compile(r"[^A-Za-z0-9.+-]")


def point_name(overrides: dict) -> str:
    """A readable, filesystem-safe folder name: ``n_sample=500__seed=1``."""
    parts = []
    for key, value in overrides.items():
        leaf = "seed" if key == "seed" else key.split(".")[-1]
        parts.append(f"{leaf}={SAFE.sub('_', str(value))}")
    return "__".join(parts)


def study_points(study: dict) -> list[dict]:
    """The overrides of every point of one study: grid values x seeds."""
    grid = study.get("grid", {})
    keys = list(grid)
    points = []
    for values in itertools.product(*(grid[k] for k in keys)):
        for seed in study.get("seeds", [None]):
            overrides = dict(zip(keys, values))
            if seed is not None:
                overrides["seed"] = seed
            points.append(overrides)
    return points


def expand(config: dict) -> dict[str, dict[str, dict]]:
    """``{study: {experiment folder: overrides}}`` for every configured study."""
    out = {}
    for name, study in (config.get("studies") or {}).items():
        out[name] = {f"{STUDY_ROOT}/{name}/{point_name(o)}": o for o in study_points(study)}
    return out


def point_config(config: dict, exp: str) -> dict:
    """The effective, checked config of one study point folder."""
    from embrm.workflow_config import check_config, with_overrides

    for name, points in expand(config).items():
        if exp in points:
            try:
                cfg = with_overrides(config, points[exp])
                check_config(cfg)
            except InputError as exc:
                raise InputError(f"study {name!r}, point {exp}: {exc}") from exc
            return cfg
    raise InputError(f"{exp} is not a point of any configured study")
