r"""What every trajectory engine shares: the run specification, the engine record and the plan's tables.

An engine is two functions behind one signature::

    plan = engine.prepare(model, spec)        # build operators, compile; not timed
    batch = engine.simulate(plan, start, n)   # trajectories start .. start+n-1

``model`` is the jump process of the system: a :class:`sim.model.JumpModel` (one mode, the
birth-death fast path: :class:`BirthDeathPlan`) or a :class:`sim.covariance.ModeSystem` (K >= 1
modes with labelled collapse operators: :class:`sim.trajectories.labelled.LabelledPlan`). Both
kinds of plan give the runner the same things: the tables of a batch (:meth:`BirthDeathPlan.frames`),
its running statistics (:meth:`BirthDeathPlan.stats`), the record that identifies the model, and
the stability margin. What each engine supports (K, cross terms, initial states) is declared once
in :data:`sim.registry.SUPPORT` (:meth:`Engine.refusal`).

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
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..cutoff import choose_cutoff
from ..fock import DEFAULT_TOL
from ..model import JumpModel as RateModel
from .table import Batch, grid_frame, initial_frame, jumps_frame, stops_frame

__all__ = ["RunSpec", "Engine", "NO_CAP", "bath_rates", "expected_jumps", "BirthDeathPlan"]

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
        One mode: an :class:`sim.trajectories.initial.InitialState`; several (a labelled run): a
        :class:`sim.trajectories.labelled.ModesInitial`.
    cutoff
        Fock states kept (``None``: engine default); trajectories stop at ``n = cutoff - 1``.
        A labelled run takes one number or one per mode.
    store_grid
        Keep every trajectory's N on the grid (the ``trajectories`` table). The one-mode ssa
        does not need it: its N(t) follows from ``n0`` and the jumps
        (:func:`sim.trajectories.table.grid_from_jumps`); mcsolve and labelled runs always keep it.
    tol, max_liouville
        Labelled runs: the tail tolerance of the per-mode cutoffs (mcsolve's truncation, ssa's cap of
        an unstable run; :func:`sim.lindblad.mode_cutoffs`) and mcsolve's budget on ``dim^2``
        (None: :data:`sim.lindblad.MAX_LIOUVILLE`).
    """

    t_end: float
    n_points: int
    seed: int
    initial: Any
    cutoff: int | tuple[int, ...] | None = None
    store_grid: bool = False
    tol: float = DEFAULT_TOL
    max_liouville: int | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.t_end) and self.t_end > 0):
            raise ValueError(f"t_end must be finite and > 0, got {self.t_end}")
        if int(self.n_points) < 2:
            raise ValueError(f"n_points must be >= 2, got {self.n_points}")
        if int(self.seed) < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.cutoff is not None and int(np.min(self.cutoff)) < 2:
            raise ValueError(f"cutoff must be >= 2 (Fock states kept), got {self.cutoff}")
        if not (np.isfinite(self.tol) and 0 < self.tol < 1):
            raise ValueError(f"tol must be in (0, 1), got {self.tol}")

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
    """A trajectory engine: ``prepare(model, spec) -> plan`` and ``simulate(plan, start, n) -> batch``.

    ``model`` is a :class:`sim.model.JumpModel` (one mode, the fast path) or a
    :class:`sim.covariance.ModeSystem` (any K); the plan says which tables a batch gives.
    ``diagonal_only`` engines accept only Fock-diagonal initial states. What the engine supports
    is declared in :data:`sim.registry.SUPPORT` under its name (:attr:`support`, :meth:`refusal`).
    """

    name: str
    prepare: Callable[[Any, RunSpec], Any]
    simulate: Callable[[Any, int, int], Any]
    diagonal_only: bool
    description: str = ""

    @property
    def support(self):
        """The engine's entry of :data:`sim.registry.SUPPORT` (modes, cross terms, initial states)."""
        from ..registry import SUPPORT

        return SUPPORT[self.name]

    def refusal(self, K: int, *, cross_terms: bool = False, initial: str | None = None,
                bias_table: bool = False, ladder: bool = False) -> str | None:
        """Why this engine cannot run K modes with these options (one line naming an engine that can), or None.

        ``ladder``: the mode is a ladder of levels (``[mode.potential]``, :data:`sim.registry.SUPPORT` ``ladder``)."""
        from ..registry import SUPPORT

        opts = {"cross_terms": cross_terms, "initial": initial, "bias_table": bias_table, "ladder": ladder}
        why = self.support.refusal(K, **opts)
        if why is None:
            return None
        others = [s.route for s in SUPPORT.values() if s.command.startswith("ehp trajectories") and s.route != self.name
                  and s.refusal(K, **opts) is None]
        return why + (f"; use --engine {others[0]}" if others else "")


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


@dataclass(frozen=True)
class BirthDeathPlan:
    """What a plan of one mode's birth-death fast path gives the runner (the base of the ssa and mcsolve plans).

    Tables of a batch: ``jumps`` (:func:`sim.trajectories.table.jumps_frame`), ``stops``, and the
    ``initial`` table (``traj, n0``; engines with :attr:`grid_from_jumps`) or ``trajectories``
    (``traj, t, N``; the others, and with ``RunSpec.store_grid``).
    """

    spec: RunSpec
    model: RateModel

    #: The engine returns each trajectory's ``n0``: its grid rows follow from it and the jumps.
    grid_from_jumps: ClassVar[bool] = False

    @property
    def K(self) -> int:
        return 1

    @property
    def omega(self) -> NDArray[np.float64]:
        return np.array([float(self.model.omega)])

    @property
    def margin(self) -> float:
        """``kappa`` (energy units; positive where stable)."""
        return float(self.model.kappa)

    @property
    def stable(self) -> bool:
        return bool(self.model.stable)

    @property
    def n_operators(self) -> int:
        """Jump labels (channel, direction): the operators of the one-mode chain."""
        from .table import N_LABELS

        return N_LABELS

    @property
    def jumps_per_traj(self) -> float:
        return expected_jumps(self.model, self.spec, self.spec.cap(self.model))

    @property
    def grid_cells(self) -> int:
        """Grid values a trajectory stores in the tables (0 where they follow from the jumps)."""
        return 0 if "trajectories" not in self.tables else int(self.spec.n_points)

    @property
    def tables(self) -> tuple[str, ...]:
        """Tables written per batch, one part each."""
        if not self.grid_from_jumps:
            return ("jumps", "trajectories", "stops")
        return ("jumps", "initial", "stops") + (("trajectories",) if self.spec.store_grid else ())

    def identity(self) -> dict[str, Any]:
        """What identifies the model of the run (``metadata.json``): ``{"model": JumpModel.record()}``."""
        return {"model": self.model.record()}

    def run_tables(self) -> dict[str, pd.DataFrame]:
        """Tables written once per run (none for one mode: the labels are the operators)."""
        return {}

    def frames(self, batch: Batch) -> dict[str, pd.DataFrame]:
        """The batch's tables (:attr:`tables`)."""
        tables = {"jumps": jumps_frame(batch.traj, batch.t, batch.label, float(self.model.omega)),
                  "stops": stops_frame(batch.stop_traj, batch.stop_t, batch.stop_n)}
        if "initial" in self.tables:
            tables["initial"] = initial_frame(batch.start, batch.n0)
        if "trajectories" in self.tables:
            tables["trajectories"] = grid_frame(batch.start, batch.t_grid, batch.N)
        return tables

    def stats(self, batch: Batch, sim_s: float) -> dict[str, Any]:
        """Running statistics of the batch (see :func:`sim.trajectories.runner.batch_stats`)."""
        s1, s2, cnt = batch.grid_sums()
        counts = batch.counts().tolist()
        return {"start": batch.start, "ntraj": batch.ntraj, "counts": counts, "op_counts": counts,
                "N_sum": s1.tolist(), "N_sumsq": s2.tolist(), "N_count": cnt.tolist(),
                "mode_sum": [s1.tolist()], "mode_sumsq": [s2.tolist()], "mode_count": [cnt.tolist()],
                "n_stopped": int(batch.stop_traj.size), "sim_s": sim_s}
