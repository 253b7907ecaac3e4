"""Overflow-safe distribution functions and the complex polygamma functions.

Units: energies and temperatures in the config's unit, k_B = 1.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = ["fermi", "bose", "x_bose", "digamma", "trigamma"]


def fermi(x: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """Fermi function ``f = 1/(exp(x/T) + 1)``, with ``x = e - mu``.

    ``T = 0`` gives the step ``theta(-x)`` (1/2 at ``x = 0``).
    """
    x = np.asarray(x, dtype=float)
    T = np.asarray(T, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(T > 0, x / np.where(T > 0, T, 1.0), np.sign(x) * np.inf)
    y = np.where(np.isnan(y), 0.0, y)
    return special.expit(-y)


def bose(x: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """Bose function ``nB = 1/(exp(x/T) - 1)``.

    ``T = 0`` gives 0 for ``x > 0`` and -1 for ``x < 0``; ``x = 0`` gives ``inf``
    (use :func:`x_bose` where the product with ``x`` is needed).
    """
    x = np.asarray(x, dtype=float)
    T = np.asarray(T, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = np.where(T > 0, x / np.where(T > 0, T, 1.0), np.sign(x) * np.inf)
        out = 1.0 / np.expm1(y)
    return np.where(x == 0, np.inf, out)


def x_bose(x: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """``x nB(x, T)``, finite everywhere: ``T`` at ``x = 0``; at ``T = 0``, ``max(-x, 0)``."""
    x, T = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(T, dtype=float))
    out = np.where(x < 0, -x, 0.0)
    hot = T > 0
    y = x[hot] / T[hot]
    small = np.abs(y) < 1e-8
    with np.errstate(over="ignore"):
        val = np.where(small, 1.0 - 0.5 * y, y / np.expm1(np.where(small, 1.0, y)))
    out[hot] = val * T[hot]
    return out


@numba.vectorize(["complex128(complex128)"], cache=True)
def _digamma(z: complex) -> complex:  # pragma: no cover - compiled
    # psi(z) = psi(z + n) - sum_{k<n} 1/(z + k), the sum as P'/P with P = prod (z + k)
    P = 1.0 + 0.0j
    dP = 0.0j
    while z.real * z.real + z.imag * z.imag < 100.0:
        dP = dP * z + P
        P = P * z
        z += 1.0
    acc = -dP / P
    inv2 = 1.0 / (z * z)
    # log z - 1/(2z) - sum_k B_2k / (2k z^2k), k = 1..7
    series = 0.0j
    for c in (1.0 / 12, -1.0 / 120, 1.0 / 252, -1.0 / 240, 1.0 / 132, -691.0 / 32760, 1.0 / 12)[::-1]:
        series = (series + c) * inv2
    return acc + np.log(z) - 0.5 / z - series


def digamma(z: ArrayLike) -> NDArray[np.complex128]:
    """Complex digamma ``psi(z)`` for ``Re z >= 1/2`` (the half plane the Fermi integrals use).

    Recurrence ``psi(z) = psi(z + 1) - 1/z`` to ``|z| >= 10``, then the asymptotic
    series to ``z^-14``: relative error about 1e-16 (checked against mpmath in the
    tests); about 20 times faster than ``scipy.special.psi`` on complex input.
    """
    z = np.asarray(z, dtype=complex)
    if np.any(z.real < 0.5):
        return special.psi(z)
    return _digamma(z)


# Bernoulli numbers B_2k for the asymptotic series of the trigamma function
_B2K = np.array([1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6])
_SHIFT = 12


def trigamma(z: ArrayLike) -> NDArray[np.complex128]:
    """Complex trigamma ``psi_1(z) = sum_k 1/(z + k)^2`` for ``Re z > 0``.

    Recurrence to ``Re z >= 12`` then the asymptotic series
    ``1/z + 1/(2 z^2) + sum_k B_2k / z^(2k+1)``; relative error below 1e-15.
    """
    z = np.asarray(z, dtype=complex)
    acc = np.zeros_like(z)
    for k in range(_SHIFT):
        acc += 1.0 / (z + k) ** 2
    w = z + _SHIFT
    inv = 1.0 / w
    inv2 = inv * inv
    series = np.zeros_like(z)
    for b in _B2K[::-1]:
        series = series * inv2 + b
    series = series * inv2 * inv
    return acc + inv + 0.5 * inv2 + series
