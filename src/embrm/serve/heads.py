"""Embeddings -> rewards: the four validated variants and the ensemble's spread.

The maths is step 7-8's: the teacher is the mean of the ensemble members' scores
(float64), the ``*_isotonic`` heads apply the JSON breakpoints with ``numpy.interp``
(which reproduces sklearn's ``predict`` with clipping), and every MLP runs under the
precision the student was scored with, so the bundle reproduces the workflow's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from embrm.io.errors import InputError
from embrm.rm.precision import autocast
from embrm.rm.stacked_mlp import StackedMLP


@dataclass(frozen=True)
class IsotonicMap:
    """Monotone breakpoints ``x -> y``, constant beyond both ends."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def from_json(cls, data: dict) -> IsotonicMap:
        return cls(np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.float64))

    def __call__(self, s: np.ndarray) -> np.ndarray:
        return np.interp(s, self.x, self.y)


@dataclass(frozen=True)
class Heads:
    student: StackedMLP
    ensemble: StackedMLP
    teacher_map: IsotonicMap
    student_map: IsotonicMap
    precision: str

    @torch.no_grad()
    def _run(self, mlp: StackedMLP, emb: np.ndarray) -> np.ndarray:
        with autocast(self.precision):
            s = mlp.shared_scorer()(torch.from_numpy(emb))
        return s.float().numpy().astype(np.float64)

    def rewards(self, emb: np.ndarray, head: str, conservative: float = 0.0):
        """Rewards ``(B,)`` of ``head`` minus ``conservative`` x the ensemble's spread, and
        that spread ``(B,)``, for float32 embeddings ``(B, D)``.

        The spread is the std over members on the head's scale: raw for ``teacher``,
        each member mapped through the teacher map for the golden-scale heads.
        """
        members = self._run(self.ensemble, emb)  # (B, M)
        if head == "teacher":
            reward, spread = members.mean(1), members.std(1)
        else:
            spread = self.teacher_map(members).std(1)
            if head == "teacher_isotonic":
                reward = self.teacher_map(members.mean(1))
            elif head in ("student", "student_isotonic"):
                reward = self._run(self.student, emb)[:, 0]
                if head == "student_isotonic":
                    reward = self.student_map(reward)
            else:
                raise InputError(
                    f"head must be one of student_isotonic, student, "
                    f"teacher_isotonic, teacher: {head!r}"
                )
        return reward - conservative * spread, spread

    def preference(self, emb_a: np.ndarray, emb_b: np.ndarray) -> np.ndarray:
        """P(a preferred to b) ``(B,)``: the ensemble's mean Bradley-Terry probability,
        sigmoid of the mean member margin (the model the teacher was trained as)."""
        margin = (self._run(self.ensemble, emb_a) - self._run(self.ensemble, emb_b)).mean(1)
        return 1.0 / (1.0 + np.exp(-margin))

    @property
    def golden_range(self) -> tuple[float, float]:
        """The golden scores both maps reach: the 0-1 ``scores`` of the server use it."""
        lo = min(self.teacher_map.y.min(), self.student_map.y.min())
        hi = max(self.teacher_map.y.max(), self.student_map.y.max())
        return float(lo), float(hi)
