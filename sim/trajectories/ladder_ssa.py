r"""Exact Gillespie trajectories over the level graph of a ladder (a :class:`sim.level_chain.LevelChain`).

The jump process of a ladder config is its labelled Pauli chain: from a level ``i`` that does not
absorb, every label ``(bath, direction, from = i, to = j)`` fires at rate ``k_b(i -> j)``. The
direct method: in level ``i`` the waiting time is ``e / Gamma_i`` (``e`` a standard exponential,
ziggurat; ``Gamma_i = sum`` of the rates out of ``i``) and a uniform ``u`` picks the label through
``u Gamma_i`` in the cumulative rates of the row, its labels sorted by decreasing rate (a linear
search that ends after a few steps on average). Exact in law: no time step, no truncation; a label
whose rate is below ``2^-53`` of its row's total is drawn with probability 0 instead (round-off of
the uniform). A trajectory stops at its first jump into an absorbing level (the rupture: recorded
in the ``stops`` table with the time and the level reached) or at ``t_end``.

Tables (one part per batch; the runner :func:`sim.trajectories.run_trajectories` streams them):

- ``jumps``: ``traj, t, channel, direction, dn, dQ, dE, mode, op, from, to`` (``op`` the row of the
  operator table, ``dn = to - from`` levels climbed, ``dE = E_to - E_from``, ``dQ`` electrons L -> R);
- ``initial``: ``traj, n0`` (the level each trajectory starts in); with the jumps it gives every
  trajectory's level on the grid exactly (:func:`sim.trajectories.table.grid_from_jumps`, NaN from
  the rupture on), so the grid is not stored;
- ``stops``: ``traj, t_stop, n`` (the absorbing level reached): the rupture times;
- ``operators`` (once per run): :func:`sim.ladder_time.chain_operators`.

Random numbers as the birth-death engine (:mod:`.ssa`): trajectory ``i`` draws from xoshiro256**
seeded by child ``i`` of ``SeedSequence(seed)``; its first uniform picks the initial level from the
initial distribution (inversion), so results do not depend on the batch size or the scheduler.
Units: times 1/energy, rates energy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numba import njit
from numpy.typing import NDArray

from ..level_chain import LevelChain
from ..model import N_LABELS, label_index
from ._rng import base_pool, child_state, entropy_words, next_exponential, next_uniform
from .engine import RunSpec
from .table import CHANNEL_DTYPE, DIRECTION_DTYPE, initial_frame, stops_frame

__all__ = ["LadderBatch", "LadderSSAPlan", "prepare_ladder_ssa", "simulate_ladder_ssa", "ladder_jumps_frame",
           "expected_ladder_jumps", "LADDER_JUMP_COLUMNS"]

#: Columns of the jump table of a ladder run.
LADDER_JUMP_COLUMNS: tuple[str, ...] = ("traj", "t", "channel", "direction", "dn", "dQ", "dE", "mode", "op", "from",
                                        "to")


@njit(cache=True, nogil=True)
def _ladder_kernel(pool0, hc0, first, ntraj, p0cum, p0lev, row_of, row_ptr, cum, dest, ops, absorbing, grid, t_end,
                   capacity):  # pragma: no cover - compiled
    """Trajectories ``first .. first + ntraj - 1`` over the level graph.

    ``row_of[level]``: the row of a level that does not absorb (-1 otherwise); row ``r``'s labels are
    ``row_ptr[r] .. row_ptr[r+1]-1`` with cumulative rates ``cum``, target levels ``dest`` and operator
    indices ``ops``. Returns the jumps ``(traj, t, op)`` and their count, the initial levels, the grid
    sums ``(sum level, sum level^2, count)`` over trajectories not yet ruptured, and the stops.
    """
    npts = grid.shape[0]
    traj = np.empty(capacity, np.int32)
    times = np.empty(capacity, np.float64)
    opv = np.empty(capacity, np.int32)
    acc = np.zeros((3, npts), np.int64)
    n0s = np.empty(ntraj, np.int64)
    stop_traj = np.empty(ntraj, np.int32)
    stop_t = np.empty(ntraj, np.float64)
    stop_n = np.empty(ntraj, np.int64)
    n_stop = 0
    m = 0
    n_init = p0cum.shape[0]
    for i in range(ntraj):
        s0, s1, s2, s3 = child_state(pool0, hc0, first + i)
        u, s0, s1, s2, s3 = next_uniform(s0, s1, s2, s3)
        x = u * p0cum[n_init - 1]
        c = 0
        while c < n_init - 1 and x >= p0cum[c]:
            c += 1
        lev = p0lev[c]
        n0s[i] = lev
        gi = np.int32(first + i)
        t = 0.0
        k = 0
        stopped = False
        while True:
            r = row_of[lev]
            a = row_ptr[r]
            b = row_ptr[r + 1]
            if b == a:
                break
            R = cum[b - 1]
            e, s0, s1, s2, s3 = next_exponential(s0, s1, s2, s3)
            t_new = t + e / R
            while k < npts and grid[k] < t_new:
                acc[0, k] += lev
                acc[1, k] += lev * lev
                acc[2, k] += 1
                k += 1
            if t_new > t_end:
                break
            u, s0, s1, s2, s3 = next_uniform(s0, s1, s2, s3)
            x = u * R
            j = a
            while j < b - 1 and x >= cum[j]:
                j += 1
            if m == traj.shape[0]:
                new = 2 * m + 1024
                traj2 = np.empty(new, np.int32)
                times2 = np.empty(new, np.float64)
                op2 = np.empty(new, np.int32)
                traj2[:m] = traj
                times2[:m] = times
                op2[:m] = opv
                traj, times, opv = traj2, times2, op2
            traj[m] = gi
            times[m] = t_new
            opv[m] = ops[j]
            m += 1
            t = t_new
            lev = dest[j]
            if absorbing[lev]:
                stopped = True
                break
        if stopped:
            stop_traj[n_stop] = gi
            stop_t[n_stop] = t
            stop_n[n_stop] = lev
            n_stop += 1
        else:
            while k < npts:
                acc[0, k] += lev
                acc[1, k] += lev * lev
                acc[2, k] += 1
                k += 1
    return traj, times, opv, m, n0s, acc, stop_traj[:n_stop], stop_t[:n_stop], stop_n[:n_stop]


@dataclass(frozen=True, eq=False)
class LadderBatch:
    """Raw output of one call for trajectories ``start .. start + ntraj - 1`` (jumps sorted by trajectory, time)."""

    start: int
    ntraj: int
    traj: NDArray[np.int32]
    t: NDArray[np.float64]
    op: NDArray[np.int32]
    t_grid: NDArray[np.float64]
    n0: NDArray[np.int64]
    N_acc: NDArray[np.int64]
    stop_traj: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    stop_t: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    stop_n: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    sim_s: float = 0.0

    @property
    def n_jumps(self) -> int:
        return int(self.t.shape[0])


def ladder_jumps_frame(traj: NDArray[np.int32], t: NDArray[np.float64], op: NDArray[np.int32],
                       operators: pd.DataFrame) -> pd.DataFrame:
    """The jump table of a ladder run (:data:`LADDER_JUMP_COLUMNS`), every column but ``traj, t, op`` looked up
    in the operator table (vectorised)."""
    idx = np.asarray(op, dtype=np.intp)
    if idx.size and (idx.min() < 0 or idx.max() >= len(operators)):
        raise ValueError(f"jump operator index out of range 0..{len(operators) - 1}")
    return pd.DataFrame({
        "traj": np.asarray(traj, dtype=np.int32),
        "t": np.asarray(t, dtype=np.float64),
        "channel": pd.Categorical.from_codes(operators["channel"].cat.codes.to_numpy()[idx], dtype=CHANNEL_DTYPE,
                                             validate=False),
        "direction": pd.Categorical.from_codes(operators["direction"].cat.codes.to_numpy()[idx],
                                               dtype=DIRECTION_DTYPE, validate=False),
        "dn": operators["dn"].to_numpy(dtype=np.int32)[idx],
        "dQ": operators["dQ"].to_numpy(dtype=np.float64)[idx],
        "dE": operators["dE"].to_numpy(dtype=np.float64)[idx],
        "mode": np.zeros(idx.size, np.int16),
        "op": np.asarray(op, dtype=np.int32),
        "from": operators["from"].to_numpy(dtype=np.int32)[idx],
        "to": operators["to"].to_numpy(dtype=np.int32)[idx],
    }, copy=False)


def expected_ladder_jumps(chain: LevelChain, p0: NDArray[np.float64], t_end: float) -> float:
    r"""Mean jumps of one trajectory up to ``t_end``: ``Gamma^T int_0^T P_T(t) dt`` (exact, by the augmented
    matrix exponential ``exp([[G_TT, p0], [0, 0]] T)``, Van Loan)."""
    from scipy import linalg

    from ..ladder_time import _transient_block

    A = _transient_block(chain)
    n = A.shape[0]
    M = np.zeros((n + 1, n + 1))
    M[:n, :n] = A * t_end
    M[:n, n] = p0[chain.ladder.transient] * t_end
    integral = linalg.expm(M)[:n, n]
    return float(np.maximum(integral, 0.0) @ chain.out_rate)


@dataclass(frozen=True, eq=False)
class LadderSSAPlan:
    """What the ladder engine gives the runner (the interface of :class:`sim.trajectories.engine.BirthDeathPlan`).

    Attributes
    ----------
    spec
        The run; ``spec.initial`` is the initial distribution over all levels (:func:`sim.ladder_time.ladder_initial`).
    chain
        The labelled rates.
    operators
        :func:`sim.ladder_time.chain_operators` (the rows ``op`` indexes).
    """

    spec: RunSpec
    chain: LevelChain
    operators: pd.DataFrame
    row_of: NDArray[np.int64]
    row_ptr: NDArray[np.int64]
    cum: NDArray[np.float64]
    dest: NDArray[np.int64]
    ops: NDArray[np.int32]
    p0cum: NDArray[np.float64]
    p0lev: NDArray[np.int64]
    labels: NDArray[np.int64]
    per_traj: float
    entropy: NDArray[np.uint32]

    grid_from_jumps = True
    tables = ("jumps", "initial", "stops")

    @property
    def model(self) -> LevelChain:
        return self.chain

    @property
    def K(self) -> int:
        return 1

    @property
    def omega(self) -> NDArray[np.float64]:
        return np.array([float(self.chain.ladder.omega)])

    @property
    def margin(self) -> float:
        """No stability margin: a ladder's populations stay bounded (NaN)."""
        return math.nan

    @property
    def stable(self) -> bool:
        return True

    @property
    def n_operators(self) -> int:
        return len(self.operators)

    @property
    def jumps_per_traj(self) -> float:
        return self.per_traj

    @property
    def grid_cells(self) -> int:
        return 0

    def identity(self) -> dict[str, Any]:
        """``{"ladder": chain_record, "initial_distribution": p0}`` (``metadata.json``)."""
        from ..ladder_time import chain_record

        return {"ladder": chain_record(self.chain),
                "initial_distribution": [float(x) for x in np.asarray(self.spec.initial, dtype=float)]}

    def run_tables(self) -> dict[str, pd.DataFrame]:
        return {"operators": self.operators}

    def frames(self, batch: LadderBatch) -> dict[str, pd.DataFrame]:
        return {"jumps": ladder_jumps_frame(batch.traj, batch.t, batch.op, self.operators),
                "initial": initial_frame(batch.start, batch.n0),
                "stops": stops_frame(batch.stop_traj, batch.stop_t, batch.stop_n)}

    def stats(self, batch: LadderBatch, sim_s: float) -> dict[str, Any]:
        op = batch.op.astype(np.intp)
        s1, s2, cnt = batch.N_acc
        return {"start": batch.start, "ntraj": batch.ntraj,
                "counts": np.bincount(self.labels[op], minlength=N_LABELS).tolist(),
                "op_counts": np.bincount(op, minlength=self.n_operators).tolist(),
                "N_sum": s1.astype(float).tolist(), "N_sumsq": s2.astype(float).tolist(), "N_count": cnt.tolist(),
                "mode_sum": [s1.astype(float).tolist()], "mode_sumsq": [s2.astype(float).tolist()],
                "mode_count": [cnt.tolist()], "n_stopped": int(batch.stop_traj.size), "sim_s": sim_s,
                "rupture": [float(batch.stop_t.size), float(batch.stop_t.sum()), float((batch.stop_t**2).sum())]}


def prepare_ladder_ssa(chain: LevelChain, spec: RunSpec) -> LadderSSAPlan:
    """The ladder plan: rows of labels sorted by decreasing rate, cumulative rates, the compiled kernel (untimed).

    Raises
    ------
    ValueError
        An initial distribution that does not match the chain's levels or puts weight on an absorbing level.
    """
    from ..ladder_time import chain_operators

    lad = chain.ladder
    if spec.cutoff is not None:
        raise ValueError(f"cutoff = {spec.cutoff} is the Fock cutoff of the harmonic mode; a ladder of levels "
                         "(mode.potential) has its own levels, so it would do nothing; leave it out")
    if spec.store_grid:
        raise ValueError("store_grid: a ladder run always rebuilds every trajectory's level on the grid from "
                         "initial.parquet and the jumps (sim.read_run); leave run.store_grid out")
    p0 = np.asarray(spec.initial, dtype=float)
    if p0.shape != (lad.n_levels,) or np.any(p0 < 0) or not math.isclose(p0.sum(), 1.0, abs_tol=1e-9) \
            or np.any(p0[lad.absorbing] > 0):
        raise ValueError("a ladder run starts from a distribution over the levels that do not absorb "
                         "(sim.ladder_time.ladder_initial)")
    ops = chain_operators(chain)
    frm, to, rate = ops["from"].to_numpy(np.int64), ops["to"].to_numpy(np.int64), ops["rate"].to_numpy(float)
    row_of = np.full(lad.n_levels, -1, dtype=np.int64)
    row_of[lad.transient] = np.arange(lad.n_bound)
    row_of[lad.absorbing] = lad.n_bound  # an empty row (never read: the kernel stops on arrival)
    rows = row_of[frm]
    order = np.lexsort((-rate, rows))
    row_ptr = np.zeros(lad.n_bound + 2, dtype=np.int64)
    np.add.at(row_ptr, rows + 1, 1)
    row_ptr = np.cumsum(row_ptr)
    r_sorted = rate[order]
    cum = np.empty_like(r_sorted)
    for r in range(lad.n_bound):
        a, b = row_ptr[r], row_ptr[r + 1]
        cum[a:b] = np.cumsum(r_sorted[a:b])
    nz = np.flatnonzero(p0 > 0)
    labels = np.array([label_index(c, d) for c, d in zip(ops["channel"].astype(str), ops["direction"].astype(str),
                                                            strict=True)], dtype=np.int64)
    plan = LadderSSAPlan(spec, chain, ops, row_of, row_ptr, cum, to[order], order.astype(np.int32),
                         np.cumsum(p0[nz]), nz.astype(np.int64), labels,
                         expected_ladder_jumps(chain, p0, float(spec.t_end)), entropy_words(spec.seed))
    _run(plan, 0, 1, tiny=True)  # compile (or load the cache) outside the timed region
    return plan


def _run(plan: LadderSSAPlan, start: int, count: int, tiny: bool = False):
    spec = plan.spec
    grid, t_end = spec.t_grid, float(spec.t_end)
    if tiny:
        grid, t_end = grid[:2] * 1e-12, 1e-12
    pool0, hc0 = base_pool(plan.entropy)
    hc0 = np.uint64(hc0)  # numba hands a uint64 scalar back as a Python int
    per = plan.per_traj * count
    capacity = min(int(1.1 * per + 5.0 * math.sqrt(per + 1.0)) + 256, 2**27)
    return _ladder_kernel(pool0, hc0, int(start), int(count), plan.p0cum, plan.p0lev, plan.row_of, plan.row_ptr,
                          plan.cum, plan.dest, plan.ops, plan.chain.ladder.absorbing, grid, t_end, capacity)


def simulate_ladder_ssa(plan: LadderSSAPlan, start: int, count: int, threads: int = 1) -> LadderBatch:
    """Trajectories ``start .. start+count-1`` (global indices) as a :class:`LadderBatch`.

    ``threads`` (:func:`sim.trajectories.ssa.simulate` passes :func:`sim.trajectories.ssa.threads_for`) runs
    consecutive chunks at once (the kernel releases the GIL); trajectory ``i`` draws from its own stream
    whichever chunk runs it, so the batch is the same for any number of threads.
    """
    threads = max(1, min(int(threads), count))
    t0 = time.perf_counter()
    if threads == 1:
        parts = [_run(plan, start, count)]
    else:
        from concurrent.futures import ThreadPoolExecutor

        cuts = [start + (count * k) // threads for k in range(threads + 1)]
        with ThreadPoolExecutor(threads) as ex:
            parts = list(ex.map(lambda k: _run(plan, cuts[k], cuts[k + 1] - cuts[k]), range(threads)))
    sim_s = time.perf_counter() - t0
    traj, times, op = (np.concatenate([p[j][:p[3]] for p in parts]) for j in range(3))
    n0 = np.concatenate([p[4] for p in parts])
    acc = np.sum([p[5] for p in parts], axis=0)
    st, stt, stn = (np.concatenate([p[j] for p in parts]) for j in (6, 7, 8))
    return LadderBatch(int(start), int(count), traj, times, op, plan.spec.t_grid, n0, acc, st, stt, stn, sim_s)
