r"""The one cutoff rule of the Fock space (population, Lindblad, mcsolve, ssa caps, exact counting).

With ``x = N/(N+1)`` a geometric (Bose-Einstein) distribution of mean ``N`` puts
``P(n >= K - 1) = x^(K-1)`` on the top level ``K - 1`` of a ``K``-level space and
beyond; a geometric is the widest distribution of a given mean. :func:`choose_cutoff`
takes ``N`` as the largest of ``N_ss``, the initial mean and (given a time grid) the
rate-equation ``N(t)``, and also requires the initial distribution's own
``P(n >= K - 1)`` to be below ``tol``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from .fock import DEFAULT_TOL, MAX_CUTOFF, geometric_cutoff, geometric_tail
from .initial import InitialSpec

if TYPE_CHECKING:
    from .model import JumpModel as RateModel

__all__ = ["DEFAULT_TOL", "MAX_CUTOFF", "COUNTING_MIN_CUTOFF", "geometric_cutoff", "choose_cutoff", "predicted_tail",
           "counting_cutoff", "cutoff_for"]

COUNTING_MIN_CUTOFF = 20
"""Exact counting statistics keep at least this many levels (and 4 above the tail rule)."""


def _predicted_mean(model: RateModel, spec: InitialSpec, t: ArrayLike | None) -> float:
    """``max(N0, N_ss, max_t N_rate(t))`` (inf when it overflows)."""
    N0 = spec.mean(model)
    Ns = [N0]
    stable = bool(model.stable)
    if stable:
        Ns.append(float(model.N_ss()))
    if t is not None and not stable:  # a stable N_rate(t) lies between N0 and N_ss
        with np.errstate(over="ignore"):
            Nt = float(model.N_t(float(np.max(t)) - float(np.min(t)), N0))
        Ns.append(Nt if math.isfinite(Nt) else math.inf)
    elif not stable:
        raise ValueError(f"unstable mode (kappa = {float(model.kappa):.6g} <= 0): give a time grid or an explicit cutoff")
    return max(Ns)


def cutoff_for(N: float, spec: InitialSpec, model: RateModel | None = None, *, tol: float = DEFAULT_TOL,
               max_cutoff: int = MAX_CUTOFF, cutoff: int | None = None) -> tuple[int, float]:
    """The rule: smallest ``K`` with ``max(x^(K-1), P_init(n >= K-1)) <= tol`` for the predicted mean ``N``.

    ``x = N/(N+1)``; capped at ``max_cutoff``; a given ``cutoff`` is kept. Returns
    ``(K, predicted P(n >= K - 1))``.
    """
    finite = math.isfinite(N)
    if cutoff is None:
        K_geo = geometric_cutoff(N, tol) if finite else max_cutoff
        cutoff = min(max(K_geo, spec.min_cutoff(tol, model), 2), max_cutoff)
    return cutoff, max(geometric_tail(N, cutoff) if finite else 1.0, spec.tail(cutoff, model))


def predicted_tail(model: RateModel, initial: str | InitialSpec | ArrayLike, cutoff: int,
                   t: ArrayLike | None = None) -> float:
    """Predicted ``P(n >= cutoff - 1)``: ``max(x^(cutoff-1), P_init(n >= cutoff-1))``, ``x = N/(N+1)``,
    ``N = max(N_ss, N0, max_t N_rate(t))`` (see :func:`choose_cutoff`)."""
    spec = InitialSpec.parse(initial)
    return cutoff_for(_predicted_mean(model, spec, t), spec, model, cutoff=cutoff)[1]


def choose_cutoff(
    model: RateModel,
    initial: str | InitialSpec | ArrayLike = "vacuum",
    t: ArrayLike | None = None,
    *,
    tol: float = DEFAULT_TOL,
    max_cutoff: int = MAX_CUTOFF,
) -> tuple[int, float]:
    """Smallest cutoff whose predicted probability at and above the top level is ``<= tol``.

    The prediction is ``max(x^(K-1), P_init(n >= K-1))`` with ``x = N/(N+1)`` and
    ``N = max(N_ss, N0, max_t N_rate(t))``: a geometric distribution is the widest of a
    given mean. ``N_rate(t)`` (docs/theory.md) is used when a time grid ``t`` is given
    and is what sizes an unstable (growing) run. Capped at ``max_cutoff``; the guard of
    the evolution catches what the prediction misses.

    Returns
    -------
    (cutoff, tail_probability)
        The number of Fock levels and the predicted ``P(n >= cutoff - 1)``.
    """
    spec = InitialSpec.parse(initial)
    return cutoff_for(_predicted_mean(model, spec, t), spec, model, tol=tol, max_cutoff=max_cutoff)




def counting_cutoff(N: float, tol: float = 1e-14) -> int:
    """Levels for exact counting statistics of a stationary chain of mean ``N``:
    ``max(20, geometric_cutoff(N, tol) + 4)`` (tail ``x^K`` far below ``tol``)."""
    return max(COUNTING_MIN_CUTOFF, geometric_cutoff(N, tol) + 4)
