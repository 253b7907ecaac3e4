"""Estimators of counting statistics from trajectory tables (per-trajectory totals, k-statistics, jackknife).

The exact values they are compared with live in :mod:`sim.counting`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from sim.counting import quantity_weights

__all__ = ["estimate_cumulant_rates", "totals_per_trajectory"]


def estimate_cumulant_rates(counts: NDArray[np.float64], duration: float, order: int = 4, groups: int = 20,
                            half: NDArray[np.float64] | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Cumulant rates from per-trajectory totals ``counts`` over ``duration``, with standard errors.

    Estimates are the unbiased k-statistics ``k_1 .. k_4`` of the totals divided by the
    duration. Every cumulant of a counted quantity grows as ``k_n(T) = c_n T + C_n`` up to
    exponentially small terms (``C_n`` from the initial state and the window's edges), so
    when ``half`` (the totals over the first half of the window) is given the estimate is
    ``(k_n(T) - k_n(T/2)) / (T/2)``, free of ``C_n``. Errors by the delete-a-group
    jackknife over ``groups`` contiguous groups of trajectories (deterministic).
    """
    x = np.asarray(counts, dtype=float)
    h = None if half is None else np.asarray(half, dtype=float)

    def est_of(idx):
        if h is None:
            return _kstats(x[idx], order) / duration
        return (_kstats(x[idx], order) - _kstats(h[idx], order)) / (duration / 2)

    everything = np.arange(len(x))
    est = est_of(everything)
    g = min(groups, len(x))
    parts = np.array_split(everything, g)
    loo = np.array([est_of(np.delete(everything, p)) for p in parts])
    err = np.sqrt((g - 1) / g * ((loo - loo.mean(axis=0)) ** 2).sum(axis=0))
    return est, err


def _kstats(x: NDArray[np.float64], order: int) -> NDArray[np.float64]:
    n = len(x)
    d = x - x.mean()
    m2, m3, m4 = (np.mean(d**k) for k in (2, 3, 4))
    k1 = x.mean()
    k2 = n / (n - 1) * m2
    k3 = n**2 / ((n - 1) * (n - 2)) * m3
    k4 = n**2 * ((n + 1) * m4 - 3 * (n - 1) * m2**2) / ((n - 1) * (n - 2) * (n - 3))
    return np.array([k1, k2, k3, k4][:order])


def totals_per_trajectory(jumps: pd.DataFrame, quantity: str, omega: float, ntraj: int, t_min: float = 0.0
                          ) -> NDArray[np.float64]:
    """Per-trajectory total of ``quantity`` over jumps with ``t >= t_min`` (trajectories without jumps count 0)."""
    nu = quantity_weights(quantity, omega)
    sel = jumps[jumps["t"] >= t_min]
    codes = 2 * sel["channel"].cat.codes.to_numpy() + sel["direction"].cat.codes.to_numpy()
    w = nu[codes]
    return np.bincount(sel["traj"].to_numpy(), weights=w, minlength=ntraj)[:ntraj]
