"""Step 8: compare teacher, teacher+isotonic, student, student+isotonic on held-out prompts."""

from __future__ import annotations

import numpy as np

from embrm.arrays import load_split
from embrm.calibration import apply_map
from embrm.jsonio import write_json
from embrm.metrics import global_spearman, pairwise_accuracy, per_prompt_spearman
from embrm.plots import plot_calibration


def validate(
    split_file,
    student_scores,
    test_embeddings,
    test_rewards,
    teacher_map,
    student_map,
    out_json,
    out_plot,
) -> dict:
    _, golden = load_split(test_embeddings, test_rewards, check_values=False)
    data = np.load(split_file)
    held = data["split"] == 2
    golden = np.asarray(golden, dtype=np.float64)[held]
    teacher = data["teacher"][held]
    student = np.load(student_scores)[held].astype(np.float64)
    variants = {
        "teacher": (teacher, False),
        "teacher_isotonic": (apply_map(teacher_map, teacher), True),
        "student": (student, False),
        "student_isotonic": (apply_map(student_map, student), True),
    }
    results = {"held_out_prompts": int(held.sum()), "variants": {}}
    for name, (pred, calibrated) in variants.items():
        results["variants"][name] = {
            "global_spearman": global_spearman(pred, golden),
            "per_prompt_spearman": per_prompt_spearman(pred, golden),
            "pairwise_accuracy": pairwise_accuracy(pred, golden),
            "mse": float(np.mean((pred - golden) ** 2)),
            "mse_meaningful": calibrated,
        }
    write_json(out_json, results)
    plot_calibration({k: v[0] for k, v in variants.items()}, golden, out_plot)
    return results
