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
from numpy.typing import NDArray

from ..model import JumpModel as RateModel
from ._rng import base_pool, entropy_words
from .engine import BirthDeathPlan, Engine, RunSpec, bath_rates, expected_jumps
from .initial import _initial_args, initial_populations
from .kernel import _ssa_kernel
from .table import Batch

__all__ = ["SSA", "SSAPlan", "prepare", "simulate", "initial_populations"]

@dataclass(frozen=True)
class SSAPlan(BirthDeathPlan):
    """Everything the ssa kernel needs for one run of one mode (rates in energy units)."""

    em: NDArray[np.float64] = None  # type: ignore[assignment]
    ab: NDArray[np.float64] = None  # type: ignore[assignment]
    cap: int = 0
    per_traj: float = 0.0
    entropy: NDArray[np.uint32] = None  # type: ignore[assignment]
    initial_args: tuple[int, int, float, float] = (0, 0, 0.0, 0.0)

    grid_from_jumps = True

    @property
    def jumps_per_traj(self) -> float:
        return self.per_traj


def prepare(model, spec: RunSpec):
    """Rates, population cap and a compiled kernel (JIT compilation happens here, untimed).

    ``model``: a :class:`sim.model.JumpModel` (one mode: the birth-death fast path, :class:`SSAPlan`),
    a :class:`sim.covariance.ModeSystem` (K modes without cross terms, one chain per mode:
    :func:`sim.trajectories.labelled.prepare_ssa`) or a :class:`sim.level_chain.LevelChain` (a ladder of
    levels: :func:`sim.trajectories.ladder_ssa.prepare_ladder_ssa`).
    """
    from ..level_chain import LevelChain

    if isinstance(model, LevelChain):  # a ladder of levels: Gillespie over the level graph
        from .ladder_ssa import prepare_ladder_ssa

        return prepare_ladder_ssa(model, spec)
    if not isinstance(model, RateModel):
        from .labelled import prepare_ssa

        return prepare_ssa(model, spec)
    args = _initial_args(spec.initial)
    em, ab = bath_rates(model)
    cap = spec.cap(model)
    plan = SSAPlan(spec, model, em=em, ab=ab, cap=cap, per_traj=expected_jumps(model, spec, cap),
                   entropy=entropy_words(spec.seed), initial_args=args)
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
    capacity = int(1.1 * plan.per_traj * count + 5.0 * math.sqrt(plan.per_traj * count + 1.0)) + 256
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


def simulate(plan, start: int, count: int, threads: int | None = None):
    """Trajectories ``start .. start+count-1`` (global indices) as a :class:`Batch`.

    A labelled plan (several modes, :func:`sim.trajectories.labelled.simulate_ssa`) gives a
    :class:`sim.trajectories.labelled.LabelledBatch`.

    ``threads`` (default :func:`threads_for`) splits the batch into that many consecutive
    chunks run at once (the kernel releases the GIL); trajectory ``i`` draws from its own
    stream whichever chunk runs it, so the batch is the same for any number of threads.
    """
    from .ladder_ssa import LadderSSAPlan

    if isinstance(plan, LadderSSAPlan):
        from .ladder_ssa import simulate_ladder_ssa

        return simulate_ladder_ssa(plan, start, count, threads_for(count) if threads is None else threads)
    if not isinstance(plan, SSAPlan):
        from .labelled import simulate_ssa

        return simulate_ssa(plan, start, count)
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


SSA = Engine("ssa", prepare, simulate, diagonal_only=True,
             description="exact Gillespie simulation of the birth-death process (numba); one chain per mode")
