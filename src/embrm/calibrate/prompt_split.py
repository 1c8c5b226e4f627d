"""How many test prompts each part of the 60/20/20 distillation split gets.

Kept free of heavy imports: the workflow checks the counts at parse time, and step 7a
draws the split from them (:func:`embrm.calibrate.isotonic.split_prompts`).
"""

from __future__ import annotations

import numpy as np

from embrm.io.errors import InputError

PARTS = ("calibration", "student_train", "held_out")
# the student holds a tenth (at least one) of its train prompts back for early stopping
MIN_STUDENT_TRAIN = 2


def split_counts(n: int, fractions) -> np.ndarray:
    """Prompts per part ``(3,)`` for ``n`` prompts; the remainder of flooring goes to
    calibration."""
    fractions = np.asarray(fractions, dtype=float)
    if not np.isclose(fractions.sum(), 1.0):
        raise InputError(f"distill.split must sum to 1, got {fractions.tolist()}")
    counts = np.floor(fractions * n).astype(int)
    counts[0] += n - counts.sum()
    return counts


def check_split(n: int, fractions, cv_folds: int, knob: str) -> None:
    """Refuse ``n`` test prompts (set by config key ``knob``) that leave a part of the
    split empty, too few student-train prompts, or fewer CV prompts than folds."""
    counts = split_counts(n, fractions)
    if (counts < 1).any() or counts[1] < MIN_STUDENT_TRAIN:
        raise InputError(
            f"{knob}={n} test prompts split by distill.split={list(fractions)} into "
            f"{dict(zip(PARTS, counts.tolist()))}; every part needs a prompt and "
            f"student_train needs {MIN_STUDENT_TRAIN}: raise {knob} or change distill.split"
        )
    pool = int(counts[0] + counts[1])
    if cv_folds > pool:
        raise InputError(
            f"distill.cv_folds={cv_folds} exceeds the {pool} calibration + student_train "
            f"prompts of {knob}={n}: lower distill.cv_folds or raise {knob}"
        )
