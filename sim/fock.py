r"""Geometric (Bose-Einstein) populations of the mode and the tail rule behind every Fock cutoff.

A Bose-Einstein distribution of mean ``N`` is ``P_n = (1 - x) x^n``, ``x = N/(N+1)``;
it puts ``P(n >= K - 1) = x^(K-1)`` on the top level ``K - 1`` of a ``K``-level space and
beyond, and it is the widest distribution of a given mean.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_TOL", "MAX_CUTOFF", "geometric", "geometric_tail", "geometric_cutoff"]

DEFAULT_TOL = 1e-10
"""Default tolerance on the probability of the top Fock level (and on the predicted tail)."""

MAX_CUTOFF = 1000
"""Largest automatic cutoff of the population route (an unstable run stops at the guard)."""


def geometric(N: float, cutoff: int) -> NDArray[np.float64]:
    """``P_n = (1 - x) x^n``, ``x = N/(N+1)``, on ``0 .. cutoff - 1`` (not renormalised)."""
    n = np.arange(cutoff)
    if N <= 0:
        return (n == 0).astype(float)
    logx = -math.log1p(1.0 / N)
    return -math.expm1(logx) * np.exp(n * logx)


def geometric_tail(N: float, cutoff: int) -> float:
    """``P(n >= cutoff - 1) = x^(cutoff - 1)`` of a geometric distribution of mean ``N``."""
    if N <= 0:
        return 0.0 if cutoff >= 2 else 1.0
    return math.exp(-(cutoff - 1) * math.log1p(1.0 / N))


def geometric_cutoff(N: float, tol: float = DEFAULT_TOL) -> int:
    """Smallest ``K >= 2`` with ``x^(K-1) <= tol`` for a geometric distribution of mean ``N``."""
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    if N <= 0:
        return 2
    m = math.ceil(math.log(tol) / -math.log1p(1.0 / N) - 1e-9)
    return max(2, m + 1)
