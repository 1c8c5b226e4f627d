"""An isotonic map applied from its JSON twin (see ``isotonic.save_map``).

Kept apart from the fitting code: applying a map needs numpy only, so step 8 does not
pay scikit-learn's import (about a second per job) to read breakpoints.
"""

from __future__ import annotations

import numpy as np

from embrm.io.errors import InputError
from embrm.io.jsonio import read_json


def apply_map(map_json, x: np.ndarray) -> np.ndarray:
    """Apply an isotonic map from its JSON twin: ``numpy.interp`` over the breakpoints,
    clipped outside them, equal to ``IsotonicRegression.predict``; ``x`` of any shape."""
    bp = read_json(map_json)
    xs, ys = np.asarray(bp["x"], dtype=np.float64), np.asarray(bp["y"], dtype=np.float64)
    if xs.ndim != 1 or xs.shape != ys.shape or xs.size == 0 or (np.diff(xs) < 0).any():
        raise InputError(f"{map_json}: not an isotonic map (x, y breakpoints, x increasing)")
    return np.interp(np.asarray(x, dtype=np.float64), xs, ys)
