"""Step 7a: isotonic calibration of the teacher (ensemble mean) onto the golden scale.

Prompts, never single responses, are split 60/20/20 into calibration / student-train /
held-out, so no prompt's responses sit on two sides. The teacher map is fit on the
calibration prompts. The student's training targets must not come from a map fitted
on the same response: they are out-of-fold predictions of a 5-fold CV grouped by prompt
over the calibration and student-train prompts (each response is mapped by a map that
never saw its prompt). In-sample and out-of-fold MSE of the map are reported, so the
optimism of an in-sample fit is visible.

Each map is written twice: as ``.joblib`` (the published format, for users) and as a
JSON twin of its breakpoints. The workflow only ever reads the JSON twin
(``map_json.apply_map``): unpickling a ``.joblib`` runs whatever code the file names, so
loading one is left to a user who trusts the file.
"""

from __future__ import annotations

import joblib
import numpy as np
from sklearn.isotonic import IsotonicRegression

from embrm.calibrate.prompt_split import PARTS as SPLITS
from embrm.calibrate.prompt_split import split_counts
from embrm.data.arrays import load_split, open_array
from embrm.io.atomic import atomic_path
from embrm.io.errors import InputError
from embrm.io.jsonio import read_json, write_json


def split_prompts(n: int, fractions, seed: int) -> np.ndarray:
    """A label in {0, 1, 2} per prompt (calibration, student-train, held-out)."""
    counts = split_counts(n, fractions)
    if (counts < 1).any():
        raise InputError(f"distill.split {list(fractions)} leaves an empty part of {n} prompts")
    labels = np.repeat(np.arange(3), counts)
    return np.random.default_rng([seed, 7]).permutation(labels)


def fit_isotonic(x: np.ndarray, y: np.ndarray) -> IsotonicRegression:
    """Monotone increasing map, clipped outside the fitted range."""
    return IsotonicRegression(increasing=True, out_of_bounds="clip").fit(
        np.ravel(x).astype(np.float64), np.ravel(y).astype(np.float64)
    )


def grouped_oof(x: np.ndarray, y: np.ndarray, folds: int, seed: int):
    """Out-of-fold isotonic predictions for ``(P, K)`` arrays and each prompt's fold.

    Folds are over prompts (rows): a response is mapped by a map fitted on other prompts.
    """
    p = x.shape[0]
    if p < folds:
        raise InputError(f"distill.cv_folds={folds} but only {p} prompts are available")
    fold = np.random.default_rng([seed, 8]).permutation(np.arange(p) % folds)
    out = np.empty_like(x, dtype=np.float64)
    for f in range(folds):
        out[fold == f] = (
            fit_isotonic(x[fold != f], y[fold != f])
            .predict(x[fold == f].ravel())
            .reshape(x[fold == f].shape)
        )
    return out, fold


def save_map(iso: IsotonicRegression, joblib_paths, json_path) -> None:
    """The map as joblib (the published format) and as a JSON twin of its breakpoints."""
    for path in joblib_paths:
        with atomic_path(path) as tmp:
            joblib.dump(iso, tmp)
    write_json(
        json_path,
        {
            "kind": "isotonic, increasing, clip out of bounds",
            "x": iso.X_thresholds_.tolist(),
            "y": iso.y_thresholds_.tolist(),
            "usage": "numpy.interp(score, x, y) reproduces predict()",
        },
    )


def mse(a, b) -> float:
    return float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))


def calibrate_teacher(
    *,
    test_scores,
    embeddings,
    rewards,
    teacher_map,
    legacy_map,
    map_json,
    split,
    report,
    split_fractions,
    cv_folds: int,
    seed: int,
) -> dict:
    """Split prompts, fit the teacher map, write the student's out-of-fold targets.

    ``test_scores`` ``(N, K, M)``, ``rewards`` ``(N, K)`` (``embeddings`` only checks the
    shape). Writes the map to ``teacher_map`` and ``legacy_map`` (joblib) and ``map_json``;
    ``split`` (npz): ``split`` ``(N,)`` labels 0/1/2, ``targets`` ``(N, K)`` (NaN on
    held-out prompts), ``teacher`` ``(N, K)``; ``report`` (JSON).
    """
    _, golden = load_split(embeddings, rewards, check_values=False)
    scores = open_array(test_scores, 3)
    if scores.shape[:2] != golden.shape:
        raise InputError(
            f"{test_scores} has shape {scores.shape} but {rewards} has {golden.shape}: "
            "scores are stale, rerun evaluation"
        )
    teacher = np.asarray(scores, dtype=np.float64).mean(-1)
    golden = np.asarray(golden, dtype=np.float64)
    labels = split_prompts(golden.shape[0], split_fractions, seed)
    cal = labels == 0
    iso = fit_isotonic(teacher[cal], golden[cal])
    pool = labels < 2
    oof_pool, _ = grouped_oof(teacher[pool], golden[pool], cv_folds, seed)
    targets = np.full(golden.shape, np.nan)
    targets[pool] = oof_pool
    save_map(iso, [teacher_map, legacy_map], map_json)
    with atomic_path(split) as tmp:
        np.savez(tmp, split=labels, targets=targets, teacher=teacher)
    summary = {
        "split_prompts": {name: int((labels == i).sum()) for i, name in enumerate(SPLITS)},
        "responses_per_prompt": golden.shape[1],
        "teacher_map_breakpoints": int(iso.X_thresholds_.size),
        "calibration_mse_in_sample": mse(iso.predict(teacher[cal].ravel()), golden[cal].ravel()),
        "calibration_mse_out_of_fold": mse(targets[cal], golden[cal]),
        "student_target_mse_vs_golden": mse(targets[labels == 1], golden[labels == 1]),
        "cv_folds": cv_folds,
    }
    write_json(report, summary)
    return summary


def calibrate_student(
    *,
    student_scores,
    student_stats,
    embeddings,
    rewards,
    split,
    teacher_report,
    student_map,
    map_json,
    distillation_config,
    distill_cfg: dict,
    seed: int,
) -> dict:
    """Fit the student map on calibration prompts; write distillation_config.json.

    ``student_scores`` ``(N, K)``, ``rewards`` ``(N, K)`` (``embeddings`` only checks the
    shape), prompt labels from ``split``. Writes ``student_map`` (joblib), ``map_json`` and
    ``distillation_config`` (JSON: hyperparameters, split sizes, both maps' fit).
    """
    _, golden = load_split(embeddings, rewards, check_values=False)
    golden = np.asarray(golden, dtype=np.float64)
    labels = np.load(split)["split"]
    scores = np.load(student_scores)
    cal = labels == 0
    iso = fit_isotonic(scores[cal], golden[cal])
    save_map(iso, [student_map], map_json)
    student = read_json(student_stats)
    config = {
        "hyperparameters": {
            **distill_cfg,
            "seed": seed,
            "precision": student["precision"],
            "student_patience": student["patience"],
        },
        "split_sizes": {name: int((labels == i).sum()) for i, name in enumerate(SPLITS)},
        "teacher_map": read_json(teacher_report),
        "student": student,
        "student_map_mse_in_sample": mse(iso.predict(scores[cal].ravel()), golden[cal].ravel()),
    }
    write_json(distillation_config, config)
    return config
