"""Step 8: compare teacher, teacher+isotonic, student, student+isotonic on held-out prompts.

Beside the four variants, ``strict_heads`` compares each isotonic map with its strictly
increasing twin (the bundle's default head): calibration error (MSE against the golden
rewards) and how many within-prompt response pairs each one ties."""

from __future__ import annotations

import numpy as np

from embrm.calibrate.map_json import apply_map, apply_strict, read_breakpoints, strict_breakpoints
from embrm.data.arrays import load_split
from embrm.evaluate.metrics import global_spearman, pairwise_accuracy, per_prompt_spearman
from embrm.evaluate.plots import plot_calibration
from embrm.io.jsonio import write_json


def within_prompt_ties(pred: np.ndarray) -> float:
    """Fraction of within-prompt response pairs of ``pred`` ``(P, K)`` with equal values."""
    k = pred.shape[1]
    tied = sum(
        int((c * (c - 1) // 2).sum()) for c in (np.unique(r, return_counts=True)[1] for r in pred)
    )
    return tied / (pred.shape[0] * k * (k - 1) / 2)


def strict_heads(scores: dict, maps: dict, golden: np.ndarray) -> dict:
    """Per raw score ``(P, K)`` (``teacher``, ``student``) and its map's JSON twin: the
    isotonic map and its strict twin, side by side (MSE, ties, ranking metrics)."""
    out = {}
    for name, raw in scores.items():
        xs, ys = read_breakpoints(maps[name])
        heads = {
            f"{name}_isotonic": np.interp(raw, xs, ys),
            f"{name}_isotonic_strict": apply_strict(strict_breakpoints(xs, ys), raw),
        }
        for head, pred in heads.items():
            out[head] = {
                "mse": float(np.mean((pred - golden) ** 2)),
                "within_prompt_ties": within_prompt_ties(pred),
                "pairwise_accuracy": pairwise_accuracy(pred, golden),
                "per_prompt_spearman": per_prompt_spearman(pred, golden),
            }
    return out


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
    Writes ``results`` (JSON: Spearman, pairwise accuracy, MSE per variant; the
    ``strict_heads`` comparison) and the calibration ``plot``.
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
    out["strict_heads"] = strict_heads(
        {"teacher": teacher, "student": student},
        {"teacher": teacher_map_json, "student": student_map_json},
        golden,
    )
    write_json(results, out)
    plot_calibration({k: v[0] for k, v in variants.items()}, golden, plot)
    return out
