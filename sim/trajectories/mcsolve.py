r"""Quantum-jump trajectories with QuTiP 5's ``mcsolve`` (labelled collapse operators).

Solves the Lindblad equation of docs/theory.md on the truncated Fock space
``0 .. cutoff-1`` (default :func:`sim.population.choose_cutoff`) with
``H = Omega a^dagger a`` and the collapse operators of
:func:`sim.lindblad.collapse_operators`, each labelled ``(channel, direction)``.
QuTiP's per-trajectory ``col_times`` / ``col_which`` become the jump table of
:mod:`.table`; ``dn``, ``dQ``, ``dE`` follow from the label.

Initial states: a Fock-diagonal state is sampled trajectory by trajectory exactly
as the ssa engine does (same ``n0`` for the same seed), trajectories with equal
``n0`` run in one ``mcsolve`` call; a coherent state (a ket) runs as it is. For a
diagonal start the population on the grid is counted from the jumps (exact
integers) and a trajectory that reaches the top state ``cutoff - 1`` stops there,
as in the ssa engine. For a coherent start ``N`` is the per-trajectory
expectation ``<psi(t)|a^dagger a|psi(t)>`` and no stop is applied (the
truncation error is then a tail weight, not an event).

Seeds: trajectory ``i`` gets ``SeedSequence(seed, spawn_key=(i,))`` (``seeds=`` of
``mcsolve``), the child that ``SeedSequence(seed).spawn`` would give it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..model import JumpModel as RateModel
from ._rng import child_seed_sequences
from .engine import BirthDeathPlan, Engine, RunSpec
from .initial import initial_populations
from .table import DIRECTIONS, JUMP_CHANNELS, Batch, label_of

__all__ = ["MCSOLVE", "MCPlan", "prepare", "simulate"]

_OPTIONS = {"progress_bar": False, "map": "serial", "store_states": False, "store_final_state": False}


@dataclass(frozen=True)
class MCPlan(BirthDeathPlan):
    """QuTiP operators and label map for one run of one mode."""

    dim: int = 0
    cap: int = 0
    H: Any = None
    c_ops: list = None  # type: ignore[assignment]
    labels: NDArray[np.uint8] = None  # type: ignore[assignment]
    number: Any = None


def prepare(model, spec: RunSpec):
    """Operators on ``cutoff`` Fock states (default :meth:`RunSpec.resolved_cutoff`), labels; untimed.

    ``model``: a :class:`sim.model.JumpModel` (one mode, :class:`MCPlan`) or a
    :class:`sim.covariance.ModeSystem` (K modes on the tensor space:
    :func:`sim.trajectories.labelled.prepare_mcsolve`).
    """
    import qutip

    from ..level_chain import LevelChain
    from ..lindblad import collapse_operators, hamiltonian

    if isinstance(model, LevelChain):  # a ladder of levels: collapse operators sqrt(k)|j><i| per label
        from .ladder_mcsolve import prepare_ladder_mcsolve

        return prepare_ladder_mcsolve(model, spec)
    if not isinstance(model, RateModel):
        from .labelled import prepare_mcsolve

        return prepare_mcsolve(model, spec)

    if np.ndim(model.kappa) != 0:
        raise ValueError(f"trajectories need a model at one bias point, got rates of shape {np.shape(model.kappa)}")
    dim = spec.resolved_cutoff(model)
    ops = collapse_operators(model, dim)
    labels = []
    c_ops = []
    for channel, direction, op in ops:
        if channel not in JUMP_CHANNELS or direction not in DIRECTIONS:
            raise ValueError(f"collapse operator label must be (channel in {JUMP_CHANNELS}, direction in {DIRECTIONS}), "
                             f"got ({channel!r}, {direction!r})")
        labels.append(label_of(channel, direction))
        c_ops.append(op)
    return MCPlan(spec, model, dim=dim, cap=dim - 1, H=hamiltonian(model, dim), c_ops=c_ops,
                  labels=np.array(labels, dtype=np.uint8), number=qutip.num(dim))


def _mcsolve(plan: MCPlan, psi0, seeds: list, expect: bool):
    import qutip

    opts = dict(_OPTIONS, keep_runs_results=expect)
    return qutip.mcsolve(plan.H, psi0, plan.spec.t_grid, plan.c_ops, e_ops=[plan.number] if expect else None,
                         ntraj=len(seeds), seeds=seeds, options=opts)


def _stopped(times: NDArray[np.float64], labels: NDArray[np.uint8], n0: int, cap: int):
    """Cut a diagonal trajectory at its first arrival at the cap: (times, labels, stop or None)."""
    if n0 >= cap:
        return times[:0], labels[:0], (0.0, n0)
    n = n0 + np.cumsum(1 - 2 * (labels.astype(np.int64) & 1))
    hit = np.flatnonzero(n >= cap)
    if hit.size == 0:
        return times, labels, None
    j = int(hit[0])
    return times[: j + 1], labels[: j + 1], (float(times[j]), int(n[j]))


def simulate(plan, start: int, count: int):
    """Trajectories ``start .. start+count-1`` (global indices) as a :class:`Batch` (one mode), or a
    :class:`sim.trajectories.labelled.LabelledBatch` for a labelled plan
    (:func:`sim.trajectories.labelled.simulate_mcsolve`)."""
    import qutip

    from .ladder_mcsolve import LadderMCPlan

    if isinstance(plan, LadderMCPlan):
        from .ladder_mcsolve import simulate_ladder_mcsolve

        return simulate_ladder_mcsolve(plan, start, count)
    if not isinstance(plan, MCPlan):
        from .labelled import simulate_mcsolve

        return simulate_mcsolve(plan, start, count)

    spec = plan.spec
    grid = spec.t_grid
    t0 = time.perf_counter()
    children = child_seed_sequences(spec.seed, start, count)
    per_traj: list[tuple[NDArray[np.float64], NDArray[np.uint8]]] = [(np.zeros(0), np.zeros(0, np.uint8))] * count
    N = np.empty((count, grid.size))
    stops: list[tuple[int, float, int]] = []
    if spec.initial.diagonal:
        n0 = initial_populations(spec.initial, spec.seed, start, count)
        for value in np.unique(n0):
            idx = np.flatnonzero(n0 == value)
            if value >= plan.cap or not plan.c_ops:  # stopped at once, or no bath: no jumps
                res = None
            else:
                res = _mcsolve(plan, qutip.fock(plan.dim, int(value)), [children[i] for i in idx], expect=False)
            for j, i in enumerate(idx):
                if res is None:
                    times, labs = np.zeros(0), np.zeros(0, np.uint8)
                else:
                    times = np.asarray(res.col_times[j], dtype=float)
                    labs = plan.labels[np.asarray(res.col_which[j], dtype=np.intp)]
                times, labs, stop = _stopped(times, labs, int(value), plan.cap)
                per_traj[i] = (times, labs)
                n_grid = int(value) + np.concatenate(([0], np.cumsum(1 - 2 * (labs.astype(np.int64) & 1))))
                N[i] = n_grid[np.searchsorted(times, grid, side="right")]
                if stop is not None:
                    N[i, grid >= stop[0]] = np.nan
                    stops.append((start + int(i), stop[0], stop[1]))
    else:
        psi0 = qutip.coherent(plan.dim, spec.initial.alpha)
        if not plan.c_ops:  # no bath: H = Omega a^dagger a conserves the populations, no jumps
            N[:] = float(np.real(qutip.expect(plan.number, psi0)))
            count_jumps = 0
        else:
            res = _mcsolve(plan, psi0, children, expect=True)
            N[:] = np.real(np.asarray(res.runs_expect[0], dtype=complex))
            count_jumps = count
        for i in range(count_jumps):
            per_traj[i] = (np.asarray(res.col_times[i], dtype=float),
                           plan.labels[np.asarray(res.col_which[i], dtype=np.intp)])
    lengths = np.array([p[0].size for p in per_traj], dtype=np.int64)
    traj = np.repeat(np.arange(start, start + count, dtype=np.int32), lengths)
    times = np.concatenate([p[0] for p in per_traj]) if count else np.zeros(0)
    labels = np.concatenate([p[1] for p in per_traj]).astype(np.uint8) if count else np.zeros(0, np.uint8)
    stops.sort()
    st = np.array([s[0] for s in stops], dtype=np.int32)
    stt = np.array([s[1] for s in stops], dtype=float)
    stn = np.array([s[2] for s in stops], dtype=np.int64)
    sim_s = time.perf_counter() - t0
    return Batch(int(start), int(count), traj, times.astype(float), labels, grid, N, st, stt, stn, sim_s)


MCSOLVE = Engine("mcsolve", prepare, simulate, diagonal_only=False,
                 description="QuTiP 5 mcsolve with labelled collapse operators")
