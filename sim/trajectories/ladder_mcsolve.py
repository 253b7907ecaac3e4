r"""QuTiP quantum-jump trajectories over the levels of a ladder (a :class:`sim.level_chain.LevelChain`).

The Lindblad equation of the ladder (:func:`sim.ladder_time.evolve_ladder_lindblad`: ``H = diag(E)``, one
collapse operator ``L = sqrt(k_b(i -> j)) |j><i|`` per label) unravelled by ``qutip.mcsolve`` (in the frame
rotating with every level, where ``H = 0``: :func:`prepare_ladder_mcsolve`): from a level
``|i>`` the no-jump evolution only damps the norm at ``sum L^+ L = Gamma_i |i><i|``, so the jump times and
labels have exactly the law of the Gillespie engine (:mod:`.ladder_ssa`); this engine is an independent
check of it through QuTiP's integrator (its tolerances set the accuracy of the waiting times). A
trajectory is cut at its first jump into an absorbing level (the rupture).

Tables, plan interface and ``metadata.json`` as :mod:`.ladder_ssa` (the ``jumps``, ``initial``, ``stops``
and ``operators`` tables). Seeds: trajectory ``i`` draws its initial level with
``default_rng(SeedSequence(seed, spawn_key=(i, 0)))`` and gives QuTiP ``SeedSequence(seed, spawn_key=(i,))``;
trajectories starting in the same level run in one ``mcsolve`` call. Units: times 1/energy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..level_chain import LevelChain
from ._rng import child_seed_sequences
from .engine import RunSpec
from .ladder_ssa import LadderBatch, LadderSSAPlan, prepare_ladder_ssa
from .table import grid_from_jumps

__all__ = ["LadderMCPlan", "prepare_ladder_mcsolve", "simulate_ladder_mcsolve"]

_OPTIONS = {"progress_bar": False, "map": "serial", "store_states": False, "store_final_state": False,
            "nsteps": 10**6}


@dataclass(frozen=True, eq=False)
class LadderMCPlan(LadderSSAPlan):
    """The ladder plan (operator table, initial distribution) with QuTiP's Hamiltonian and collapse operators."""

    H: Any = None
    c_ops: list = None  # type: ignore[assignment]


def prepare_ladder_mcsolve(chain: LevelChain, spec: RunSpec) -> LadderMCPlan:
    """Operators on the ``n`` levels: ``sqrt(rate) |to><from|`` per row of the operator table, and ``H = 0``.

    A trajectory is always in one level (it starts in one and every jump lands in one), where ``H = diag(E)`` only
    adds a phase: dropping it (the frame rotating with every level) leaves the jump statistics unchanged and
    spares the integrator the rotation (ten times faster).
    """
    import qutip

    base = prepare_ladder_ssa(chain, spec)
    n = chain.n_levels
    ops = base.operators
    c_ops = [math.sqrt(r) * qutip.basis(n, int(j)) * qutip.basis(n, int(i)).dag()
             for r, i, j in zip(ops["rate"], ops["from"], ops["to"], strict=True)]
    H = qutip.qzero(n)
    fields = {f: getattr(base, f) for f in base.__dataclass_fields__}
    return LadderMCPlan(**fields, H=H, c_ops=c_ops)


def simulate_ladder_mcsolve(plan: LadderMCPlan, start: int, count: int) -> LadderBatch:
    """Trajectories ``start .. start+count-1`` (global indices) as a :class:`.ladder_ssa.LadderBatch`."""
    import qutip

    t0 = time.perf_counter()
    spec = plan.spec
    grid = spec.t_grid
    lad = plan.chain.ladder
    n = lad.n_levels
    p0 = np.asarray(spec.initial, dtype=float)
    levels = np.empty(count, dtype=np.int64)
    for r in range(count):
        rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(start + r, 0)))
        levels[r] = int(rng.choice(n, p=p0))
    children = child_seed_sequences(spec.seed, start, count)
    absorbing_op = plan.operators["absorbing"].to_numpy(bool)
    per: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0, np.int32))] * count
    stops: list[tuple[int, float, int]] = []
    for lev in np.unique(levels):
        idx = np.flatnonzero(levels == lev)
        res = qutip.mcsolve(plan.H, qutip.basis(n, int(lev)), grid, plan.c_ops, ntraj=idx.size,
                            seeds=[children[i] for i in idx], options=_OPTIONS)
        for r, i in enumerate(idx):
            times = np.asarray(res.col_times[r], dtype=float)
            ops = np.asarray(res.col_which[r], dtype=np.int32)
            hit = np.flatnonzero(absorbing_op[ops])
            if hit.size:
                k = int(hit[0])
                times, ops = times[: k + 1], ops[: k + 1]
                stops.append((start + int(i), float(times[k]), int(plan.operators["to"].iloc[int(ops[k])])))
            per[i] = (times, ops)
    lengths = np.array([p[0].size for p in per], dtype=np.int64)
    traj = np.repeat(np.arange(start, start + count, dtype=np.int32), lengths)
    t = np.concatenate([p[0] for p in per]) if count else np.zeros(0)
    op = np.concatenate([p[1] for p in per]).astype(np.int32) if count else np.zeros(0, np.int32)
    stops.sort()
    st = np.array([s[0] for s in stops], dtype=np.int32)
    stt = np.array([s[1] for s in stops], dtype=float)
    stn = np.array([s[2] for s in stops], dtype=np.int64)
    dn = plan.operators["dn"].to_numpy(np.int64)[op.astype(np.intp)]
    N = grid_from_jumps(start, grid, levels, traj, t, dn, st, stt)
    ok = np.isfinite(N)
    N0 = np.where(ok, N, 0.0).astype(np.int64)
    acc = np.stack([N0.sum(axis=0), (N0**2).sum(axis=0), ok.sum(axis=0)]).astype(np.int64)
    return LadderBatch(int(start), int(count), traj, t, op, grid, levels, acc, st, stt, stn, time.perf_counter() - t0)
