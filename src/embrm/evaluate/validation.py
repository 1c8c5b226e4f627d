"""Step 8: compare teacher, teacher+isotonic, student, student+isotonic on held-out prompts."""

from __future__ import annotations

import numpy as np

from embrm.calibrate.map_json import apply_map
from embrm.data.arrays import load_split
from embrm.evaluate.metrics import global_spearman, pairwise_accuracy, per_prompt_spearman
from embrm.evaluate.plots import plot_calibration
from embrm.io.jsonio import write_json


def validate(
    *,
    split,
    student_scores,
    embeddings,
    rewards,
    teacher_map_json,
    student_map_json,
    results,
    plot,
) -> dict:
    """Score the held-out prompts (label 2 in ``split``) with the four variants.

    ``rewards`` ``(N, K)``: the test split's golden rewards (``embeddings`` only checks
    the shape); ``student_scores`` ``(N, K)``; the teacher's ``(N, K)`` scores come from
    ``split``; the maps are applied from their JSON twins (nothing is unpickled).
    Writes ``results`` (JSON: Spearman, pairwise accuracy, MSE per variant)
    and the calibration ``plot``.
    """
    _, golden = load_split(embeddings, rewards, check_values=False)
    data = np.load(split)
    held = data["split"] == 2
    golden = np.asarray(golden, dtype=np.float64)[held]
    teacher = data["teacher"][held]
    student = np.load(student_scores)[held].astype(np.float64)
    variants = {
        "teacher": (teacher, False),
        "teacher_isotonic": (apply_map(teacher_map_json, teacher), True),
        "student": (student, False),
        "student_isotonic": (apply_map(student_map_json, student), True),
    }
    out = {"held_out_prompts": int(held.sum()), "variants": {}}
    for name, (pred, calibrated) in variants.items():
        out["variants"][name] = {
            "global_spearman": global_spearman(pred, golden),
            "per_prompt_spearman": per_prompt_spearman(pred, golden),
            "pairwise_accuracy": pairwise_accuracy(pred, golden),
            "mse": float(np.mean((pred - golden) ** 2)),
            "mse_meaningful": calibrated,
        }
    write_json(results, out)
    plot_calibration({k: v[0] for k, v in variants.items()}, golden, plot)
    return out
