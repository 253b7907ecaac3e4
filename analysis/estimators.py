r"""Estimators of counting statistics from trajectory tables (per-trajectory totals, k-statistics, jackknife).

All estimators are vectorised over quantities and over the jackknife's left-out groups:
the k-statistics of a sample are functions of its power sums ``S_p = sum_i x_i^p``, so the
leave-one-group-out values come from ``S_p(all) - S_p(group)`` without copying the data.

The exact values they are compared with live in :mod:`sim.counting`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from sim.counting import quantity_weights

__all__ = ["estimate_cumulant_rates", "totals_per_trajectory", "kstats_from_power_sums", "group_sums",
           "jackknife_error"]


def group_sums(x: NDArray[np.float64], groups: int) -> NDArray[np.float64]:
    """Sums of ``x`` (last axis: trajectories) over ``groups`` contiguous groups (``numpy.array_split``)."""
    n = x.shape[-1]
    g = max(1, min(groups, n))
    sizes = np.full(g, n // g)
    sizes[: n % g] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return np.add.reduceat(x, starts, axis=-1)


def jackknife_error(loo: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""Delete-a-group jackknife error from leave-one-out estimates on the last axis.

    ``sigma = sqrt((g - 1)/g * sum_k (theta_{-k} - mean(theta_{-.}))^2)``.
    """
    g = loo.shape[-1]
    return np.sqrt((g - 1) / g * ((loo - loo.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1))


def kstats_from_power_sums(S: NDArray[np.float64], n: ArrayLike, order: int = 4) -> NDArray[np.float64]:
    r"""Unbiased k-statistics ``k_1 .. k_order`` from power sums ``S[p-1] = sum x^p`` (``p = 1..4``).

    .. math::

        k_1 &= S_1/n, \qquad k_2 = \frac{n S_2 - S_1^2}{n(n-1)}, \qquad
        k_3 = \frac{2 S_1^3 - 3 n S_1 S_2 + n^2 S_3}{n(n-1)(n-2)},\\
        k_4 &= \frac{-6 S_1^4 + 12 n S_1^2 S_2 - 3 n(n-1) S_2^2 - 4 n(n+1) S_1 S_3 + n^2(n+1) S_4}
              {n(n-1)(n-2)(n-3)}

    (the same as :func:`scipy.stats.kstat`). ``S`` has shape ``(4, ...)``; the result
    ``(order, ...)``. Shift ``x`` by its mean first for accuracy (``k_2 .. k_4`` do not change).
    """
    n = np.asarray(n, dtype=float)
    S1, S2, S3, S4 = S[0], S[1], S[2], S[3]
    with np.errstate(invalid="ignore", divide="ignore"):
        k1 = S1 / n
        k2 = (n * S2 - S1**2) / (n * (n - 1))
        k3 = (2 * S1**3 - 3 * n * S1 * S2 + n**2 * S3) / (n * (n - 1) * (n - 2))
        k4 = (-6 * S1**4 + 12 * n * S1**2 * S2 - 3 * n * (n - 1) * S2**2 - 4 * n * (n + 1) * S1 * S3
              + n**2 * (n + 1) * S4) / (n * (n - 1) * (n - 2) * (n - 3))
    return np.stack([k1, k2, k3, k4][:order])


def _kstats_with_jackknife(x: NDArray[np.float64], order: int, groups: int
                           ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """k-statistics of ``x`` (shape ``(nq, n)``) and their leave-one-group-out values ``(order, nq[, g])``."""
    n = x.shape[-1]
    shift = x.mean(axis=-1, keepdims=True)
    d = x - shift
    powers = np.stack([d, d * d, d**3, d**4])  # (4, nq, n)
    G = group_sums(powers, groups)  # (4, nq, g)
    total = G.sum(axis=-1)
    sizes = group_sums(np.ones(n), groups)  # (g,)
    full = kstats_from_power_sums(total, n, order)
    loo = kstats_from_power_sums(total[..., None] - G, n - sizes, order)
    full[0] += shift[:, 0]
    loo[0] += shift
    return full, loo


def estimate_cumulant_rates(counts: NDArray[np.float64], duration: float, order: int = 4, groups: int = 20,
                            half: NDArray[np.float64] | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Cumulant rates from per-trajectory totals ``counts`` over ``duration``, with standard errors.

    Estimates are the unbiased k-statistics ``k_1 .. k_4`` of the totals divided by the
    duration (rates per unit time, energy units). Every cumulant of a counted quantity
    grows as ``k_n(T) = c_n T + C_n`` up to exponentially small terms (``C_n`` from the
    initial state and the window's edges), so when ``half`` (the totals over the first
    half of the window) is given the estimate is ``(k_n(T) - k_n(T/2)) / (T/2)``, free of
    ``C_n``. Errors by the delete-a-group jackknife over ``groups`` contiguous groups of
    trajectories (deterministic).

    ``counts`` (and ``half``) may be 1-D (one quantity: results of shape ``(order,)``) or
    2-D ``(quantities, trajectories)`` (results ``(quantities, order)``).
    """
    x = np.asarray(counts, dtype=float)
    one = x.ndim == 1
    x = np.atleast_2d(x)
    if x.shape[-1] < 2:
        nan = np.full((x.shape[0], order), np.nan)
        return (nan[0], nan[0]) if one else (nan, nan)
    full, loo = _kstats_with_jackknife(x, order, groups)
    if half is None:
        est, loo_est = full / duration, loo / duration
    else:
        hf, hloo = _kstats_with_jackknife(np.atleast_2d(np.asarray(half, dtype=float)), order, groups)
        est, loo_est = (full - hf) / (duration / 2), (loo - hloo) / (duration / 2)
    est, err = est.T, jackknife_error(loo_est).T  # (nq, order)
    return (est[0], err[0]) if one else (est, err)


def totals_per_trajectory(jumps: pd.DataFrame, quantity: str, omega: float, ntraj: int, t_min: float = 0.0
                          ) -> NDArray[np.float64]:
    """Per-trajectory total of ``quantity`` over jumps with ``t >= t_min`` (trajectories without jumps count 0)."""
    nu = quantity_weights(quantity, omega)
    sel = jumps[jumps["t"] >= t_min]
    codes = 2 * sel["channel"].cat.codes.to_numpy() + sel["direction"].cat.codes.to_numpy()
    w = nu[codes]
    return np.bincount(sel["traj"].to_numpy(), weights=w, minlength=ntraj)[:ntraj]
