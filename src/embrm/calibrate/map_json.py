"""An isotonic map applied from its JSON twin (see ``isotonic.save_map``).

Kept apart from the fitting code: applying a map needs numpy only, so step 8 does not
pay scikit-learn's import (about a second per job) to read breakpoints.

An isotonic map is a staircase: every score inside one flat step gets the same value,
so distinct responses tie (a GRPO group inside one step has zero reward spread). The
*strict* twin of a map (:func:`strict_breakpoints`) keeps its values at the centre of
each step and interpolates linearly between those centres, so it is strictly
increasing: distinct scores never tie. Beyond the centres it continues the end
segments' slopes up to the map's fitted range, and beyond that range it rises with
``TAIL_SLOPE`` times the map's mean slope (the plain map is constant there).
"""

from __future__ import annotations

import numpy as np

from embrm.io.errors import InputError
from embrm.io.jsonio import read_json

TAIL_SLOPE = 0.01  # outside the fitted range: this fraction of the map's mean slope


def read_breakpoints(map_json) -> tuple[np.ndarray, np.ndarray]:
    """The ``(x, y)`` breakpoints of a JSON twin, checked: 1-D, equal length, x sorted."""
    bp = read_json(map_json)
    xs, ys = np.asarray(bp["x"], dtype=np.float64), np.asarray(bp["y"], dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0 or (np.diff(xs) < 0).any():
        raise InputError(f"{map_json}: not an isotonic map (x, y breakpoints, x increasing)")
    return xs, ys


def apply_map(map_json, x: np.ndarray) -> np.ndarray:
    """Apply an isotonic map from its JSON twin: ``numpy.interp`` over the breakpoints,
    clipped outside them, equal to ``IsotonicRegression.predict``; ``x`` of any shape."""
    xs, ys = read_breakpoints(map_json)
    return np.interp(np.asarray(x, dtype=np.float64), xs, ys)


def strict_breakpoints(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The strict twin of breakpoints ``(x, y)``: knots ``(cx, cy)`` (the centre of every
    flat step and the ends of the fitted range) and the slope used beyond them.

    Knots are strictly increasing in both coordinates, so :func:`apply_strict` of
    distinct scores gives distinct values."""
    starts = np.flatnonzero(np.r_[True, np.diff(ys) > 0])
    stops = np.r_[starts[1:], xs.size] - 1
    cx, cy = (xs[starts] + xs[stops]) / 2, ys[starts]
    if cx.size == 1:  # a constant map: no slope to continue, only the tail's
        return cx, cy, TAIL_SLOPE
    slope = TAIL_SLOPE * (cy[-1] - cy[0]) / (cx[-1] - cx[0])
    head = (cy[1] - cy[0]) / (cx[1] - cx[0])
    tail = (cy[-1] - cy[-2]) / (cx[-1] - cx[-2])
    knots_x = np.r_[xs[0], cx, xs[-1]]
    knots_y = np.r_[cy[0] - head * (cx[0] - xs[0]), cy, cy[-1] + tail * (xs[-1] - cx[-1])]
    keep = np.r_[True, np.diff(knots_x) > 0]  # a step of one point is its own end
    return knots_x[keep], knots_y[keep], slope


def apply_strict(knots: tuple[np.ndarray, np.ndarray, float], x: np.ndarray) -> np.ndarray:
    """Knots from :func:`strict_breakpoints` applied to scores ``x`` of any shape."""
    kx, ky, slope = knots
    x = np.asarray(x, dtype=np.float64)
    inside = np.interp(x, kx, ky)
    return inside + slope * (np.minimum(x - kx[0], 0) + np.maximum(x - kx[-1], 0))
