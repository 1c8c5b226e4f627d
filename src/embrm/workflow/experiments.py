"""Experiment folders: the main run or a study point, and the config each one runs with."""

from __future__ import annotations

from embrm.io.errors import InputError
from embrm.paths import RESULTS
from embrm.workflow.studies import point_config


def exp_config(config: dict, exp: str, points: dict[str, dict] | None = None) -> dict:
    """The effective config of an experiment folder: the main run or a study point
    (``points``: every point's config, computed once per workflow parse)."""
    if exp == RESULTS:
        return config
    return point_config(config, exp, points)


def check_student_name(config: dict, task: str, objective: str) -> dict:
    """A student file name must match its experiment's task and objective."""
    want = (config["task"], config["orm"]["objective"])
    if (task, objective) != want:
        raise InputError(
            f"distilled_rm_{task}_{objective}.ckpt does not match this experiment's config "
            f"(task={want[0]}, orm.objective={want[1]})"
        )
    return config
