"""Embeddings -> rewards: the validated variants, their strict twins, the ensemble's spread.

The maths is step 7-8's: the teacher is the mean of the ensemble members' scores
(float64), the ``*_isotonic`` heads apply the JSON breakpoints with ``numpy.interp``
(which reproduces sklearn's ``predict`` with clipping), and every MLP runs under the
precision the student was scored with, so the bundle reproduces the workflow's numbers.
The ``*_isotonic_strict`` heads apply the strictly increasing twin of the same map
(:func:`embrm.calibrate.map_json.strict_breakpoints`) to scores computed in float32 (a
bf16 output ties scores closer than about 1/256 of their size): distinct responses
never tie.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from embrm.calibrate.map_json import apply_strict, strict_breakpoints
from embrm.io.errors import InputError
from embrm.rm.precision import autocast
from embrm.rm.stacked_mlp import StackedMLP

# head -> (scorer, map): the scorer's raw score, then no map, the isotonic map or its
# strict twin; the first head is the default of new bundles
HEAD_PARTS = {
    "student_isotonic_strict": ("student", "strict"),
    "student_isotonic": ("student", "isotonic"),
    "student": ("student", None),
    "teacher_isotonic_strict": ("teacher", "strict"),
    "teacher_isotonic": ("teacher", "isotonic"),
    "teacher": ("teacher", None),
}
TYING_HEADS = tuple(h for h, (_, kind) in HEAD_PARTS.items() if kind == "isotonic")


@dataclass(frozen=True)
class IsotonicMap:
    """Monotone breakpoints ``x -> y``, constant beyond both ends, and its strict twin."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def from_json(cls, data: dict) -> IsotonicMap:
        return cls(np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64))

    def __call__(self, s: np.ndarray) -> np.ndarray:
        return np.interp(s, self.x, self.y)

    @cached_property
    def knots(self):
        return strict_breakpoints(self.x, self.y)

    def strict(self, s: np.ndarray) -> np.ndarray:
        return apply_strict(self.knots, s)

    def apply(self, kind: str | None, s: np.ndarray) -> np.ndarray:
        """``s`` through no map (``None``), this map (``"isotonic"``) or its twin."""
        return s if kind is None else self(s) if kind == "isotonic" else self.strict(s)


@dataclass(frozen=True)
class Heads:
    student: StackedMLP
    ensemble: StackedMLP
    teacher_map: IsotonicMap
    student_map: IsotonicMap
    precision: str

    @cached_property
    def _scorers(self) -> dict:
        """Each MLP's inference function, its wide first layer built once, not per call."""
        return {"student": self.student.shared_scorer(), "ensemble": self.ensemble.shared_scorer()}

    @torch.no_grad()
    def _run(self, mlp: str, emb: np.ndarray, precision: str) -> np.ndarray:
        """Scores ``(B, M)`` of ``mlp`` (``"student"`` or ``"ensemble"``) in ``precision``."""
        with autocast(precision):
            s = self._scorers[mlp](torch.from_numpy(emb))
        return s.float().numpy().astype(np.float64)

    def rewards(self, emb: np.ndarray, head: str, conservative: float = 0.0):
        """Rewards ``(B,)`` of ``head`` minus ``conservative`` x the ensemble's spread, and
        that spread ``(B,)``, for float32 embeddings ``(B, D)``.

        The spread is the std over members on the head's scale: raw for ``teacher``,
        each member mapped through the teacher map (its strict twin for the strict
        heads) for the golden-scale heads.
        """
        if head not in HEAD_PARTS:
            raise InputError(f"head must be one of {', '.join(HEAD_PARTS)}: {head!r}")
        scorer, kind = HEAD_PARTS[head]
        # bf16 keeps 8 bits: scores closer than ~1/256 of their size would tie (on the
        # default run 1000 held-out responses got 138 distinct student scores)
        precision = "fp32" if kind == "strict" else self.precision
        members = self._run("ensemble", emb, precision)  # (B, M)
        if head == "teacher":
            return members.mean(1) - conservative * members.std(1), members.std(1)
        spread = self.teacher_map.apply("strict" if kind == "strict" else "isotonic", members)
        spread = spread.std(1)
        if scorer == "teacher":
            reward = self.teacher_map.apply(kind, members.mean(1))
        else:
            reward = self.student_map.apply(kind, self._run("student", emb, precision)[:, 0])
        return reward - conservative * spread, spread

    def preference(self, emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
        """P(a preferred to b) ``(B,)``: the ensemble's mean Bradley-Terry probability,
        sigmoid of the mean member margin (the model the teacher was trained as)."""
        a, b = (self._run("ensemble", e, self.precision) for e in (emb_a, emb_b))
        margin = (a - b).mean(1)
        return 1.0 / (1.0 + np.exp(-margin))

    @property
    def golden_range(self) -> tuple[float, float]:
        """The golden scores both maps reach: the 0-1 ``scores`` of the server use it."""
        lo = min(self.teacher_map.y.min(), self.student_map.y.min())
        hi = max(self.teacher_map.y.max(), self.student_map.y.max())
        return float(lo), float(hi)
