"""Initial states of trajectory runs (``run.initial``, docs/config.md).

The text is parsed by :class:`sim.population.InitialSpec` (one grammar for every
route): ``vacuum``, ``fock:n``, ``thermal:N`` (Bose-Einstein, mean N), ``steady``
(Bose-Einstein with ``N_ss``; stable mode only) and ``coherent:alpha`` (``alpha``
real or complex, ``coherent:1+0.5j``). This module reduces it to what the engines
need (:class:`InitialState`).

Fock-diagonal states (all but coherent) are mixtures of Fock states: each
trajectory starts in ``n0`` drawn from ``P(n0)``, a Fock state or the geometric law
``P(n) = (1 - x) x^n``, ``x = N/(N + 1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from ..initial import InitialSpec
from ..model import JumpModel as RateModel
from ._rng import child_states, entropy_words, next_uniform

__all__ = ["InitialState", "parse_initial", "initial_populations"]


@dataclass(frozen=True)
class InitialState:
    """A resolved ``run.initial``.

    Attributes
    ----------
    kind
        ``"fock"`` (population ``n``), ``"geometric"`` (Bose-Einstein, mean ``mean``)
        or ``"coherent"`` (amplitude ``alpha``).
    """

    kind: str
    n: int = 0
    mean: float = 0.0
    alpha: complex = 0j

    def __post_init__(self) -> None:
        if self.kind not in ("fock", "geometric", "coherent"):
            raise ValueError(f"initial state kind must be fock, geometric or coherent, got {self.kind!r}")
        if self.n < 0:
            raise ValueError(f"initial Fock population must be >= 0, got {self.n}")
        if not (np.isfinite(self.mean) and self.mean >= 0):
            raise ValueError(f"initial mean population must be finite and >= 0, got {self.mean}")

    @property
    def diagonal(self) -> bool:
        """True for a mixture of Fock states (then the jumps are a birth-death process)."""
        return self.kind != "coherent"

    @property
    def mean_population(self) -> float:
        """``<n>`` at t = 0."""
        if self.kind == "fock":
            return float(self.n)
        if self.kind == "geometric":
            return float(self.mean)
        return float(abs(self.alpha) ** 2)

    def to_spec(self) -> InitialSpec:
        """The equivalent :class:`sim.population.InitialSpec` (``steady`` becomes ``thermal:N_ss``)."""
        if self.kind == "fock":
            return InitialSpec("fock", int(self.n))
        if self.kind == "geometric":
            return InitialSpec("thermal", float(self.mean))
        return InitialSpec("coherent", complex(self.alpha))


def parse_initial(spec: str | InitialSpec, model: RateModel) -> InitialState:
    """Resolve ``run.initial`` for ``model``.

    Raises
    ------
    ValueError
        Unknown text, a negative population, ``steady`` for an unstable mode
        (``kappa <= 0``: no steady state), or an explicit distribution.
    """
    s = InitialSpec.parse(spec)
    if s.kind == "vacuum":
        return InitialState("fock", n=0)
    if s.kind == "fock":
        return InitialState("fock", n=int(s.value))
    if s.kind in ("thermal", "steady"):
        return InitialState("geometric", mean=float(s.mean(model)))
    if s.kind == "coherent":
        return InitialState("coherent", alpha=complex(s.value))
    raise ValueError("trajectories start from vacuum, steady, thermal:N, thermal:T=<temperature>, fock:n or "
                     "coherent:alpha, "
                     f"not from an explicit distribution ({s.kind})")


# --------------------------------------------------------------------------- initial draws
# Every engine draws a trajectory's n0 from its own SeedSequence child the same way, so a
# Fock-diagonal run starts from the same n0 whichever engine runs it.

_FOCK, _GEOMETRIC = 0, 1


@njit(cache=True, inline="always")
def _draw_initial(s0, s1, s2, s3, kind, n_fixed, log_x, u_zero):
    """``n0`` from one uniform ``u``: ``floor(ln(1 - u) / ln x)`` for the geometric law.

    ``u < u_zero`` (:func:`_initial_args`) gives ``n0 = 0`` without the logarithm: the same
    value the formula gives, since there ``ln(1 - u) / ln x < 1 - 1e-9``, far above round-off.
    """
    u, s0, s1, s2, s3 = next_uniform(s0, s1, s2, s3)
    if kind == _FOCK or log_x == -np.inf:
        n = n_fixed
    elif u < u_zero:
        n = np.int64(0)
    else:
        n = np.int64(math.floor(math.log1p(-u) / log_x))
    return n, s0, s1, s2, s3


@njit(cache=True)
def _initial_kernel(states, kind, n_fixed, log_x, u_zero):  # pragma: no cover - compiled
    out = np.empty(states.shape[0], np.int64)
    for i in range(states.shape[0]):
        out[i], _, _, _, _ = _draw_initial(states[i, 0], states[i, 1], states[i, 2], states[i, 3], kind, n_fixed, log_x,
                                           u_zero)
    return out


def _initial_args(initial: InitialState) -> tuple[int, int, float, float]:
    """``(kind, n_fixed, log_x, u_zero)`` for :func:`_draw_initial`.

    ``u_zero = (1 - x)(1 - 1e-9)``: below it ``ln(1 - u) > ln x + 1e-9 (1 - x)/x`` (to first
    order), so ``ln(1 - u)/ln x`` is below 1 by a relative margin of at least ``1e-9``, and
    the floor is 0 whatever the round-off of ``log1p`` (about 1e-16).
    """
    if not initial.diagonal:
        raise ValueError(
            f"the ssa engine needs a Fock-diagonal initial state (vacuum, fock:n, thermal:N, steady), got "
            f"coherent:{initial.alpha}; a coherent state has coherences between Fock states, use the mcsolve engine")
    if initial.kind == "fock":
        return _FOCK, int(initial.n), -np.inf, 0.0
    N = float(initial.mean)
    if not N > 0:
        return _GEOMETRIC, 0, -np.inf, 0.0
    log_x = math.log(N / (N + 1.0))
    return _GEOMETRIC, 0, log_x, -math.expm1(log_x) * (1.0 - 1e-9)


def initial_populations(initial: InitialState, seed: int, start: int, count: int) -> NDArray[np.int64]:
    """``n0`` of trajectories ``start .. start+count-1``: the same draws as the ssa engine makes."""
    states = child_states(entropy_words(seed), int(start), int(count))
    return _initial_kernel(states, *_initial_args(initial))
