r"""What every trajectory engine shares: the run specification and the engine record.

An engine is two functions behind one signature::

    plan = engine.prepare(model, spec)        # build operators, compile; not timed
    batch = engine.simulate(plan, start, n)   # trajectories start .. start+n-1 -> Batch

Population cap. ``cutoff`` is the number of Fock states kept by the Lindblad
engines (QuTiP dimension, states ``0 .. cutoff-1``). Both engines simulate the
same *stopped* process: a trajectory that reaches the top state
``n = cutoff - 1``, where truncation would start to act (no emission out of it),
stops there; the stop (trajectory, time, n) is recorded, its later grid values are
NaN. Where ``cutoff`` is not given, the exact engine has no cap for a stable mode
(``kappa > 0``); above threshold, where every trajectory runs away, and for the
QuTiP engine, it takes the cutoff rule shared with the population and Lindblad
routes, :func:`sim.population.choose_cutoff` (top-level tail below 1e-10 for the
rate-equation ``N(t)`` on the run's grid, at most ``MAX_CUTOFF = 1000`` states).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..cutoff import choose_cutoff
from ..model import JumpModel as RateModel
from .initial import InitialState
from .table import Batch

__all__ = ["RunSpec", "Engine", "NO_CAP", "bath_rates", "expected_jumps"]

#: Population cap meaning "none".
NO_CAP = 2**62


@dataclass(frozen=True)
class RunSpec:
    """A resolved trajectory run (times in 1/energy).

    Attributes
    ----------
    t_end, n_points
        The grid ``t = linspace(0, t_end, n_points)`` on which N(t) is recorded.
    seed
        Seed of the ``numpy.random.SeedSequence`` whose child ``i`` drives trajectory ``i``.
    initial
        The parsed initial state.
    cutoff
        Fock states kept (``None``: engine default); trajectories stop at ``n = cutoff - 1``.
    store_grid
        Keep every trajectory's N on the grid (the ``trajectories`` table). The ssa engine
        does not need it: its N(t) follows from ``n0`` and the jumps
        (:func:`sim.trajectories.table.grid_from_jumps`); mcsolve always keeps it.
    """

    t_end: float
    n_points: int
    seed: int
    initial: InitialState
    cutoff: int | None = None
    store_grid: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.t_end) and self.t_end > 0):
            raise ValueError(f"t_end must be finite and > 0, got {self.t_end}")
        if int(self.n_points) < 2:
            raise ValueError(f"n_points must be >= 2, got {self.n_points}")
        if int(self.seed) < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.cutoff is not None and int(self.cutoff) < 2:
            raise ValueError(f"cutoff must be >= 2 (Fock states kept), got {self.cutoff}")

    @property
    def t_grid(self) -> NDArray[np.float64]:
        return np.linspace(0.0, float(self.t_end), int(self.n_points))

    def resolved_cutoff(self, model: RateModel) -> int:
        """``cutoff``, or :func:`sim.population.choose_cutoff` for this model, initial state and grid."""
        if self.cutoff is not None:
            return int(self.cutoff)
        return int(choose_cutoff(model, self.initial.to_spec(), self.t_grid)[0])

    def cap(self, model: RateModel) -> int:
        """Population at which an ssa trajectory stops: ``cutoff - 1``; none for a stable mode without cutoff."""
        if self.cutoff is None and bool(model.stable):
            return NO_CAP
        return self.resolved_cutoff(model) - 1


@dataclass(frozen=True)
class Engine:
    """A trajectory engine: ``prepare(model, spec) -> plan`` and ``simulate(plan, start, n) -> Batch``.

    ``diagonal_only`` engines accept only Fock-diagonal initial states. ``grid_from_jumps``
    engines return each trajectory's ``n0``, from which (with the jumps) its N(t) rows follow
    exactly; they write the ``initial`` table and the ``trajectories`` table only when asked
    (``RunSpec.store_grid``).
    """

    name: str
    prepare: Callable[[RateModel, RunSpec], Any]
    simulate: Callable[[Any, int, int], Batch]
    diagonal_only: bool
    description: str = ""
    grid_from_jumps: bool = False

    def tables(self, spec: RunSpec) -> tuple[str, ...]:
        """Tables of a run directory written by this engine, one part per batch each."""
        if not self.grid_from_jumps:
            return ("jumps", "trajectories", "stops")
        return ("jumps", "initial", "stops") + (("trajectories",) if spec.store_grid else ())


def bath_rates(model: RateModel) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Jump-rate coefficients per bath in the order LL, RR, LR, RL, ph.

    Returns ``(em, ab)``: the rate of ``(c, emission)`` out of Fock state ``n`` is
    ``em[c] (n + 1)``, of ``(c, absorption)`` ``ab[c] n``; for the ph-bath
    ``em = gamma_ph n_ph``, ``ab = gamma_ph (n_ph + 1)`` (energy units).
    """
    return model.coefficients()


def expected_jumps(model: RateModel, spec: RunSpec, cap: int | None = None) -> float:
    """Mean number of jumps of one trajectory up to ``t_end``.

    ``int_0^T [U (N(t) + 1) + D N(t)] dt`` with ``U = sum em``, ``D = sum ab`` and the
    rate-equation ``N(t)`` (clipped at the cap); used to size buffers and batches.
    """
    em, ab = bath_rates(model)
    t = np.linspace(0.0, spec.t_end, 257)
    N = model.N_t(t, spec.initial.mean_population)
    if cap is not None:
        N = np.minimum(N, cap)
    rate = em.sum() * (N + 1.0) + ab.sum() * N
    return float(np.sum(0.5 * (rate[1:] + rate[:-1]) * np.diff(t)))
