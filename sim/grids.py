"""The one validator of time grids (population, Lindblad, time-dependent bias, trajectories)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["time_grid"]


def time_grid(t: ArrayLike, *, strict: bool = True, min_points: int = 1) -> NDArray[np.float64]:
    """``t`` as a 1-d float array, checked: finite, increasing and at least ``min_points`` long.

    Parameters
    ----------
    t
        Times in 1/energy (hbar = 1).
    strict
        Strictly increasing (True) or non-decreasing (False: repeated times allowed).
    min_points
        Smallest accepted number of points.

    Raises
    ------
    ValueError
        Naming the rule the grid breaks.
    """
    t = np.asarray(t, dtype=float).ravel()
    steps = np.diff(t)
    order = "strictly increasing" if strict else "non-decreasing"
    bad_order = np.any(steps <= 0) if strict else np.any(steps < 0)
    if t.size < min_points or not np.all(np.isfinite(t)) or bad_order:
        raise ValueError(f"t must be a finite, {order} time grid with at least {min_points} point"
                         f"{'s' if min_points > 1 else ''}, got {t.size} points"
                         + ("" if np.all(np.isfinite(t)) else " with non-finite values"))
    return t
