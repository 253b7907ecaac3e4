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
from ._rng import child_states, entropy_words, next_exponential, next_uniform
from .engine import Engine, RunSpec, bath_rates, expected_jumps
from .initial import _draw_initial, _initial_args, initial_populations
from .table import Batch

__all__ = ["SSA", "SSAPlan", "prepare", "simulate", "initial_populations"]

@njit(cache=True)
def _ssa_kernel(states, first, kind, n_fixed, log_x, grid, t_end, em, ab, cap, capacity):  # pragma: no cover
    ntraj = states.shape[0]
    npts = grid.shape[0]
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
    N = np.empty((ntraj, npts), np.float64)
    stop_traj = np.empty(ntraj, np.int32)
    stop_t = np.empty(ntraj, np.float64)
    stop_n = np.empty(ntraj, np.int64)
    n_stop = 0
    m = 0
    for i in range(ntraj):
        s0, s1, s2, s3 = states[i, 0], states[i, 1], states[i, 2], states[i, 3]
        n, s0, s1, s2, s3 = _draw_initial(s0, s1, s2, s3, kind, n_fixed, log_x)
        gi = np.int32(first + i)
        t = 0.0
        k = 0
        stopped = n >= cap
        if stopped:
            stop_traj[n_stop] = gi
            stop_t[n_stop] = 0.0
            stop_n[n_stop] = n
            n_stop += 1
        while not stopped:
            up = U * (n + 1)
            R = up + D * n
            if R <= 0.0:
                break
            e, s0, s1, s2, s3 = next_exponential(s0, s1, s2, s3)
            t_new = t + e / R
            while k < npts and grid[k] < t_new:
                N[i, k] = n
                k += 1
            if t_new > t_end:
                break
            u, s0, s1, s2, s3 = next_uniform(s0, s1, s2, s3)
            x = u * R
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
            if n >= cap:
                stopped = True
                stop_traj[n_stop] = gi
                stop_t[n_stop] = t
                stop_n[n_stop] = n
                n_stop += 1
        fill = np.nan if stopped else float(n)
        N[i, k:] = fill
    return traj, times, labels, m, N, stop_traj[:n_stop], stop_t[:n_stop], stop_n[:n_stop]


@dataclass(frozen=True)
class SSAPlan:
    """Everything the ssa kernel needs for one run (rates in energy units)."""

    spec: RunSpec
    em: NDArray[np.float64]
    ab: NDArray[np.float64]
    cap: int
    jumps_per_traj: float
    entropy: NDArray[np.uint32]
    initial_args: tuple[int, int, float]


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
    states = child_states(plan.entropy, int(start), int(count))
    capacity = int(1.1 * plan.jumps_per_traj * count + 5.0 * math.sqrt(plan.jumps_per_traj * count + 1.0)) + 256
    capacity = min(capacity, 2**27)
    kind, n_fixed, log_x = plan.initial_args
    return _ssa_kernel(states, int(start), kind, n_fixed, log_x, grid, t_end, plan.em, plan.ab, np.int64(plan.cap),
                       capacity)


def simulate(plan: SSAPlan, start: int, count: int) -> Batch:
    """Trajectories ``start .. start+count-1`` (global indices) as a :class:`Batch`."""
    t0 = time.perf_counter()
    traj, times, labels, m, N, st, stt, stn = _run(plan, start, count)
    sim_s = time.perf_counter() - t0
    if m < traj.shape[0] // 2:  # do not keep a mostly empty buffer alive
        traj, times, labels = traj[:m].copy(), times[:m].copy(), labels[:m].copy()
    else:
        traj, times, labels = traj[:m], times[:m], labels[:m]
    return Batch(int(start), int(count), traj, times, labels, plan.spec.t_grid, N, st, stt, stn, sim_s)


SSA = Engine("ssa", prepare, simulate, diagonal_only=True,
             description="exact Gillespie simulation of the birth-death process (numba)")
