r"""Exact stochastic simulation (Gillespie) of the mode's quantum-jump trajectories.

From a Fock-diagonal state the unravelling of the Lindblad equation of
docs/theory.md is a classical birth-death process on the Fock number ``n``
with ten labelled transitions (rates in energy units, hbar = 1)::

    (c, emission)    n -> n + 1   at   tau_em_c (n + 1)           c = LL, RR, LR, RL
    (c, absorption)  n -> n - 1   at   tau_abs_c n
    (ph, emission)   n -> n + 1   at   gamma_ph n_ph (n + 1)
    (ph, absorption) n -> n - 1   at   gamma_ph (n_ph + 1) n

Algorithm (direct method): in state ``n`` the total rate is
``R(n) = U (n + 1) + D n`` (``U = sum_c em_c``, ``D = sum_c ab_c``); the waiting time
is ``e/R`` with ``e`` a standard exponential variate (ziggurat method) and a uniform
``u`` picks the transition through ``u R``. This is exact: no time
step, no truncation (apart from the population cap, see :mod:`.engine`).

Random numbers: trajectory ``i`` draws from xoshiro256** seeded by child ``i`` of
``SeedSequence(seed)`` (:mod:`._rng`); its first uniform samples ``n0`` (the
geometric law by inversion, ``n0 = floor(ln(1 - u)/ln x)``, ``x = N/(N + 1)``), so
results do not depend on the batch size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from ..model import JumpModel as RateModel
from ._rng import base_pool, child_state, entropy_words, next_exponential, next_uniform
from .engine import Engine, RunSpec, bath_rates, expected_jumps
from .initial import _draw_initial, _initial_args, initial_populations
from .table import Batch

__all__ = ["SSA", "SSAPlan", "prepare", "simulate", "initial_populations"]

@njit(cache=True, inline="always")
def _grid_index(t, grid, inv_dt):  # pragma: no cover - compiled
    """The first ``k`` with ``grid[k] >= t`` (``len(grid)`` if none): O(1) for a linspace grid."""
    npts = grid.shape[0]
    k = min(max(int(math.ceil(t * inv_dt)), 0), npts)
    while k < npts and grid[k] < t:
        k += 1
    while k > 0 and grid[k - 1] >= t:
        k -= 1
    return k


@njit(cache=True, nogil=True)
def _ssa_kernel(pool0, hc0, key0, first, ntraj, kind, n_fixed, log_x, u_zero, grid, t_end, em, ab, cap, capacity,
                record):  # pragma: no cover
    """Trajectories ``first .. first + ntraj - 1``: jumps, N(t) sums, n0, stops (and N rows if ``record``).

    The sums of ``n``, ``n^2`` and the count of running trajectories on the grid are built from
    difference arrays (``O(jumps)`` per trajectory, not ``O(grid)``): a trajectory adds ``n0`` at
    grid index 0, at the first grid point at or after a group of jumps the net change of ``n``
    over the group (jumps between the same two grid points), and removes itself at the first
    grid point at or after its stop. Integers, so the sums equal those of the rows.
    Row ``i`` (trajectory ``first + i``) seeds its generator with child ``key0 + i`` of the
    run's SeedSequence (``pool0, hc0``: :func:`._rng.base_pool`; ``key0 = first`` for one mode).
    """
    npts = grid.shape[0]
    inv_dt = (npts - 1) / t_end
    n_lab = em.shape[0]
    U = 0.0
    D = 0.0
    cem = np.empty(n_lab)
    cab = np.empty(n_lab)
    last_em = 0
    last_ab = 0
    for c in range(n_lab):
        U += em[c]
        D += ab[c]
        cem[c] = U
        cab[c] = D
        if em[c] > 0:
            last_em = c
        if ab[c] > 0:
            last_ab = c
    traj = np.empty(capacity, np.int32)
    times = np.empty(capacity, np.float64)
    labels = np.empty(capacity, np.uint8)
    N = np.empty((ntraj if record else 0, npts), np.float64)
    d1 = np.zeros(npts + 1, np.int64)
    d2 = np.zeros(npts + 1, np.int64)
    dc = np.zeros(npts + 1, np.int64)
    n0s = np.empty(ntraj, np.int64)
    stop_traj = np.empty(ntraj, np.int32)
    stop_t = np.empty(ntraj, np.float64)
    stop_n = np.empty(ntraj, np.int64)
    n_stop = 0
    m = 0
    for i in range(ntraj):
        s0, s1, s2, s3 = child_state(pool0, hc0, key0 + i)
        n, s0, s1, s2, s3 = _draw_initial(s0, s1, s2, s3, kind, n_fixed, log_x, u_zero)
        n0s[i] = n
        d1[0] += n
        d2[0] += n * n
        dc[0] += 1
        gi = np.int32(first + i)
        t = 0.0
        k = 0
        kp = -1  # grid index of the jumps not yet added to d1, d2 (-1: none)
        t_kp = 0.0  # grid[kp]: a later jump at t <= t_kp falls on the same grid index
        n_fl = n  # population already added to d1, d2 (n0 at index 0)
        stopped = n >= cap
        while not stopped:
            up = U * (n + 1)
            R = up + D * n
            if R <= 0.0:
                break
            e, s0, s1, s2, s3 = next_exponential(s0, s1, s2, s3)
            t_new = t + e / R
            if record:
                while k < npts and grid[k] < t_new:
                    N[i, k] = n
                    k += 1
            if t_new > t_end:
                break
            u, s0, s1, s2, s3 = next_uniform(s0, s1, s2, s3)
            x = u * R
            n_old = n
            if x < up or n == 0:
                x /= n + 1
                c = 0
                while c < last_em and x >= cem[c]:
                    c += 1
                lab = 2 * c
                n += 1
            else:
                x = (x - up) / n
                c = 0
                while c < last_ab and x >= cab[c]:
                    c += 1
                lab = 2 * c + 1
                n -= 1
            if m == traj.shape[0]:
                new = 2 * m + 1024
                traj2 = np.empty(new, np.int32)
                times2 = np.empty(new, np.float64)
                labels2 = np.empty(new, np.uint8)
                traj2[:m] = traj
                times2[:m] = times
                labels2[:m] = labels
                traj, times, labels = traj2, times2, labels2
            traj[m] = gi
            times[m] = t_new
            labels[m] = lab
            m += 1
            t = t_new
            if kp < 0 or t > t_kp:  # a new grid interval: add the previous one's net change
                if kp >= 0:
                    d1[kp] += n_old - n_fl
                    d2[kp] += n_old * n_old - n_fl * n_fl
                    n_fl = n_old
                kp = _grid_index(t, grid, inv_dt)
                t_kp = grid[kp]
            if n >= cap:
                stopped = True
        if kp >= 0:
            d1[kp] += n - n_fl
            d2[kp] += n * n - n_fl * n_fl
        if stopped:
            ks = _grid_index(t, grid, inv_dt)
            d1[ks] -= n
            d2[ks] -= n * n
            dc[ks] -= 1
            stop_traj[n_stop] = gi
            stop_t[n_stop] = t
            stop_n[n_stop] = n
            n_stop += 1
        if record:
            N[i, k:] = np.nan if stopped else float(n)
    acc = np.empty((3, npts), np.int64)
    acc[0] = np.cumsum(d1[:npts])
    acc[1] = np.cumsum(d2[:npts])
    acc[2] = np.cumsum(dc[:npts])
    return traj, times, labels, m, N, n0s, acc, stop_traj[:n_stop], stop_t[:n_stop], stop_n[:n_stop]


@dataclass(frozen=True)
class SSAPlan:
    """Everything the ssa kernel needs for one run (rates in energy units)."""

    spec: RunSpec
    em: NDArray[np.float64]
    ab: NDArray[np.float64]
    cap: int
    jumps_per_traj: float
    entropy: NDArray[np.uint32]
    initial_args: tuple[int, int, float, float]


def prepare(model: RateModel, spec: RunSpec) -> SSAPlan:
    """Rates, population cap and a compiled kernel (JIT compilation happens here, untimed)."""
    args = _initial_args(spec.initial)
    em, ab = bath_rates(model)
    cap = spec.cap(model)
    plan = SSAPlan(spec, em, ab, cap, expected_jumps(model, spec, cap), entropy_words(spec.seed), args)
    _run(plan, 0, 1, tiny=True)  # compile (or load the cache) outside the timed region
    return plan


def _run(plan: SSAPlan, start: int, count: int, tiny: bool = False):
    spec = plan.spec
    grid = spec.t_grid
    t_end = float(spec.t_end)
    if tiny:
        grid, t_end = grid[:2] * 1e-12, 1e-12
    pool0, hc0 = base_pool(plan.entropy)
    hc0 = np.uint64(hc0)  # numba hands a uint64 scalar back as a Python int
    capacity = int(1.1 * plan.jumps_per_traj * count + 5.0 * math.sqrt(plan.jumps_per_traj * count + 1.0)) + 256
    capacity = min(capacity, 2**27)
    kind, n_fixed, log_x, u_zero = plan.initial_args
    return _ssa_kernel(pool0, hc0, int(start), int(start), int(count), kind, n_fixed, log_x, u_zero, grid, t_end,
                       plan.em, plan.ab, np.int64(plan.cap), capacity, bool(spec.store_grid))


#: Fewest trajectories per thread: below this a batch runs on one thread.
MIN_PER_THREAD = 4096


def threads_for(count: int) -> int:
    """Threads for a batch of ``count`` trajectories: the idle cores, one per :data:`MIN_PER_THREAD`.

    One inside a worker (a ``processes`` pool or any Dask worker, local or remote: the scheduler
    already spreads batches over the cores), and at most ``NUMBA_NUM_THREADS`` (set it to 1 to
    keep the engine on one core).
    """
    import multiprocessing
    import sys

    import numba

    from ..parallel import idle_workers

    if multiprocessing.parent_process() is not None:
        return 1
    if "distributed" in sys.modules:  # only a process that imported Dask can be one of its workers
        try:
            sys.modules["distributed"].get_worker()
            return 1
        except (ValueError, AttributeError):
            pass
    return max(1, min(idle_workers(), int(numba.config.NUMBA_NUM_THREADS), count // MIN_PER_THREAD))


def simulate(plan: SSAPlan, start: int, count: int, threads: int | None = None) -> Batch:
    """Trajectories ``start .. start+count-1`` (global indices) as a :class:`Batch`.

    ``threads`` (default :func:`threads_for`) splits the batch into that many consecutive
    chunks run at once (the kernel releases the GIL); trajectory ``i`` draws from its own
    stream whichever chunk runs it, so the batch is the same for any number of threads.
    """
    threads = threads_for(count) if threads is None else max(1, min(int(threads), count))
    t0 = time.perf_counter()
    if threads == 1:
        parts = [_run(plan, start, count)]
    else:
        from concurrent.futures import ThreadPoolExecutor

        cuts = [start + (count * k) // threads for k in range(threads + 1)]
        with ThreadPoolExecutor(threads) as ex:
            parts = list(ex.map(lambda k: _run(plan, cuts[k], cuts[k + 1] - cuts[k]), range(threads)))
    sim_s = time.perf_counter() - t0
    return _merge(plan, start, count, parts, sim_s)


def _merge(plan: SSAPlan, start: int, count: int, parts: list[tuple], sim_s: float) -> Batch:
    """One :class:`Batch` from the kernel outputs of consecutive chunks (in order)."""
    if len(parts) == 1:
        traj, times, labels, m, N, n0, acc, st, stt, stn = parts[0]
        if m < traj.shape[0] // 2:  # do not keep a mostly empty buffer alive
            traj, times, labels = traj[:m].copy(), times[:m].copy(), labels[:m].copy()
        else:
            traj, times, labels = traj[:m], times[:m], labels[:m]
    else:
        traj, times, labels = (np.concatenate([p[j][:p[3]] for p in parts]) for j in range(3))
        N = np.concatenate([p[4] for p in parts])
        n0 = np.concatenate([p[5] for p in parts])
        acc = np.sum([p[6] for p in parts], axis=0)
        st, stt, stn = (np.concatenate([p[j] for p in parts]) for j in (7, 8, 9))
    return Batch(int(start), int(count), traj, times, labels, plan.spec.t_grid, N if plan.spec.store_grid else None,
                 st, stt, stn, sim_s, n0=n0, N_acc=acc)


SSA = Engine("ssa", prepare, simulate, diagonal_only=True, grid_from_jumps=True,
             description="exact Gillespie simulation of the birth-death process (numba)")
