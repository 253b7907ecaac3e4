r"""Quantum-jump trajectories of several modes, with a mode and an operator label on every jump.

Engines:

* ``mcsolve`` (QuTiP 5): the several-mode Lindblad equation on the truncated tensor Fock space
  (:mod:`sim.lindblad_modes`) with one labelled collapse operator per (channel, direction,
  eigen-index, cluster) and per-mode ph-bath operators. Exact with cross terms, where a jump
  creates or destroys a quantum in a superposition of modes. ``N_k(t)`` of each trajectory is
  ``<psi(t)|a_k^+ a_k|psi(t)>``.
* ``ssa`` (exact Gillespie, numba): only without cross terms (every cluster a single mode). The
  modes are then independent birth-death chains; mode ``k``'s chain has the one-mode coefficients
  ``em_c = T_em^c_kk``, ``ab_c = T_abs^c_kk``, ``em_ph = gamma_k n_k``, ``ab_ph = gamma_k (n_k + 1)``
  and runs through the one-mode kernel of :mod:`.ssa` (same cost per jump). The jumps of all modes
  are merged and sorted by ``(traj, t)``. With cross terms ssa raises a ValueError naming mcsolve.

Seeds (deterministic, independent of batching):

* ssa: the chain of trajectory ``i``, mode ``k`` draws from xoshiro256** seeded by
  ``SeedSequence(seed, spawn_key=(i + k * 2**32,))``. Mode 0 uses exactly the stream of the one-mode
  engine's trajectory ``i``, so a one-mode system gives the one-mode engine's jumps for the same seed.
* mcsolve: trajectory ``i`` gets ``SeedSequence(seed, spawn_key=(i,))`` as its QuTiP seed (as the
  one-mode engine); its initial pure state is drawn with ``default_rng(SeedSequence(seed, spawn_key=(i, 0)))``.

Initial states: ``vacuum`` or ``steady`` (the Gaussian steady state of covariance
``C = ModeSystem.steady_covariance()``). For mcsolve the Gaussian state is unravelled into Fock
states of its normal modes ``b_j = sum_m U_mj a_m`` (``C = U diag(n) U^+``): occupation ``n_j`` is
geometric of mean ``n_j`` (exact in law), the ket ``prod_j (b_j^+)^{n_j}/sqrt(n_j!) |0>``. For ssa
(no cross terms, diagonal ``C``) each mode starts from the geometric law of mean ``C_kk``.

Rotating frame (mcsolve): every collapse operator acts within one cluster ``c`` and changes the
number of quanta by +-1, so in the frame ``U = exp(-i t sum_k Omega_bar_c(k) a_k^+ a_k)`` (``Omega_bar_c`` the
cluster's mean quantum) it only picks up a phase ``e^{+-i Omega_bar_c t}``: the jump statistics and every
``N_k(t)`` are those of ``H_rot = sum_k (Omega_k - Omega_bar_c(k)) a_k^+ a_k`` (zero for degenerate clusters),
which spares the ODE solver the fast rotation at ``Omega``.

Cutoffs (mcsolve; ssa caps only unstable runs): :func:`sim.lindblad_modes.mode_cutoffs`
(``max_t C(t)_kk`` on the grid, tail ``<= tol`` per mode). Units: time in 1/energy.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..covariance import ModeSystem
from ..fock import DEFAULT_TOL
from ..lindblad import (
    MAX_LIOUVILLE,
    check_dimension,
    collapse_operators_modes,
    mode_cutoffs,
    mode_operators,
    normal_modes,
    operator_properties,
)
from ..model import label_index
from ._rng import base_pool, child_seed_sequences, entropy_words
from .engine import NO_CAP
from .initial import _FOCK, _GEOMETRIC
from .ssa import _ssa_kernel
from .table import CHANNEL_DTYPE, DIRECTION_DTYPE, mode_jumps_frame

__all__ = ["MODE_ENGINES", "ModeTrajectories", "has_cross_terms", "operators_frame", "run_mode_trajectories",
           "mode_trajectories_frame", "mode_summary", "system_record", "write_mode_run", "mode_run",
           "read_mode_run", "mode_batch_size"]

#: Engines of :func:`run_mode_trajectories` (``qutip`` is an alias of ``mcsolve``).
MODE_ENGINES: tuple[str, ...] = ("ssa", "mcsolve", "qutip")

_MODE_STRIDE = 2**32  # spawn-key offset between the ssa streams of different modes


class ModeTrajectories(NamedTuple):
    """What :func:`run_mode_trajectories` returns (unpacks as ``jumps, N, operators``).

    jumps
        Jump table (:func:`sim.trajectories.table.mode_jumps_frame`): traj, t, channel, direction, dn, dQ, dE,
        mode, op; sorted by ``(traj, t)``.
    N
        Populations per trajectory and mode on ``linspace(0, t_end, n_points)``, shape (ntraj, K, n_points)
        (ssa: integers, NaN after a stop at the cap of an unstable run; mcsolve: ``<a_k^+ a_k>`` of the state).
    operators
        Operator table (:func:`operators_frame`); ``jumps.op`` indexes its rows.
    """

    jumps: pd.DataFrame
    N: NDArray[np.float64]
    operators: pd.DataFrame


def has_cross_terms(system: ModeSystem) -> bool:
    """True where some cluster holds several modes (jumps may then act on superpositions of modes)."""
    return any(len(S) > 1 for S in system.clusters)


def operators_frame(system: ModeSystem) -> pd.DataFrame:
    """The table of labelled collapse operators (``operators.parquet`` of a several-mode run).

    One row per operator of :meth:`ModeSystem.collapse_operators` (the ``op`` of the jump table):
    ``op`` (int16), ``channel``, ``direction`` (categorical, as in the jump table), ``j`` (eigen-index
    within the cluster; the mode for ``ph``), ``cluster``, ``mode`` (int16; -1 for an operator spanning
    several modes), ``rate`` (1/time), ``dn``, ``dQ``, ``quantum`` (``sum_m |w_m|^2 Omega_m``), ``dE``,
    and the weights ``w_k = |w_k|`` and phases ``phi_k = arg w_k`` (radians) for ``k = 0..K-1``
    (emission ``L = sqrt(rate) sum_m w_m a_m^+``, absorption ``sqrt(rate) sum_m conj(w_m) a_m``).
    """
    ops = system.collapse_operators()
    p = operator_properties(ops, system.omega)
    n = len(ops)
    W = np.array([op.weights for op in ops], dtype=complex).reshape(n, system.K)
    d = {
        "op": np.arange(n, dtype=np.int16),
        "channel": pd.Categorical([op.channel for op in ops], dtype=CHANNEL_DTYPE),
        "direction": pd.Categorical([op.direction for op in ops], dtype=DIRECTION_DTYPE),
        "j": np.array([op.j for op in ops], dtype=np.int16),
        "cluster": np.array([op.cluster for op in ops], dtype=np.int16),
        "mode": p["mode"],
        "rate": np.array([op.rate for op in ops], dtype=float),
        "dn": p["dn"],
        "dQ": p["dQ"],
        "quantum": p["quantum"],
        "dE": p["dE"],
    }
    for k in range(system.K):
        d[f"w_{k}"] = np.abs(W[:, k])
    for k in range(system.K):
        d[f"phi_{k}"] = np.where(np.abs(W[:, k]) > 0, np.angle(W[:, k]), 0.0)
    return pd.DataFrame(d)


def _grid(t_end: float, n_points: int) -> NDArray[np.float64]:
    if not (np.isfinite(t_end) and t_end > 0):
        raise ValueError(f"t_end must be finite and > 0, got {t_end}")
    if int(n_points) < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    return np.linspace(0.0, float(t_end), int(n_points))


def _initial_C(system: ModeSystem, initial: str) -> NDArray[np.complex128]:
    if initial == "vacuum":
        return np.zeros((system.K, system.K), dtype=complex)
    if initial == "steady":
        if not system.stable:
            raise ValueError(f"initial 'steady' needs stable modes (growth rate {system.growth_rate:.6g} > 0)")
        return system.steady_covariance()
    raise ValueError(f"several-mode trajectories start from 'vacuum' or 'steady', got {initial!r}")


# --------------------------------------------------------------------------- ssa

def _ssa_modes(system: ModeSystem, ops_table: pd.DataFrame, ntraj: int, grid: NDArray[np.float64], seed: int,
               C0: NDArray[np.complex128], tol: float, start: int = 0):
    if has_cross_terms(system):
        several = [S for S in system.clusters if len(S) > 1]
        raise ValueError(f"the ssa engine needs modes without cross terms (every cluster of one mode); the clusters "
                         f"{several} couple modes, so jumps act on superpositions of modes: use the mcsolve engine")
    K = system.K
    t_end = float(grid[-1])
    caps = [NO_CAP] * K
    if not system.stable:
        caps = [c - 1 for c in mode_cutoffs(system, grid, C0, tol=tol)]
    Ct = np.diagonal(system.covariance(np.linspace(0.0, t_end, 257), C0), axis1=1, axis2=2).real
    pool0, hc0 = base_pool(entropy_words(seed))
    hc0 = np.uint64(hc0)  # numba hands a uint64 scalar back as a Python int
    lookup = np.full((K, 10), -1, dtype=np.int64)
    for row in ops_table.itertuples(index=False):
        lookup[int(row.mode), label_index(row.channel, row.direction)] = int(row.op)
    trajs, times, opss = [], [], []
    N = np.empty((ntraj, K, grid.size))
    for k in range(K):
        em = np.append(system.emission[:, k, k].real, system.gamma[k] * system.n_th[k])
        ab = np.append(system.absorption[:, k, k].real, system.gamma[k] * (system.n_th[k] + 1))
        if not (np.all(np.isfinite(em)) and np.all(np.isfinite(ab)) and em.min() >= 0 and ab.min() >= 0):
            raise ValueError(f"mode {k}: jump rates must be finite and >= 0, got {em.tolist()}, {ab.tolist()}")
        Nk = float(C0[k, k].real)
        kind, log_x = (_GEOMETRIC, math.log(Nk / (Nk + 1.0))) if Nk > 0 else (_FOCK, -np.inf)
        cap = min(caps[k], NO_CAP)
        rate = em.sum() * (np.minimum(Ct[:, k], cap) + 1.0) + ab.sum() * np.minimum(Ct[:, k], cap)
        per_traj = float(np.trapezoid(rate, dx=t_end / 256))
        capacity = min(int(1.1 * per_traj * ntraj + 5.0 * math.sqrt(per_traj * ntraj + 1.0)) + 256, 2**27)
        traj, t, lab, m, Nmode, *_ = _ssa_kernel(pool0, hc0, k * _MODE_STRIDE + start, start, ntraj, kind, 0, log_x,
                                                 0.0, grid, t_end, em, ab, np.int64(cap), capacity, True)
        op = lookup[k][lab[:m].astype(np.intp)]
        if (op < 0).any():
            raise RuntimeError(f"mode {k}: a jump of a label without collapse operator (rate 0)")
        trajs.append(traj[:m])
        times.append(t[:m])
        opss.append(op)
        N[:, k, :] = Nmode
    traj, t, op = np.concatenate(trajs), np.concatenate(times), np.concatenate(opss)
    order = np.lexsort((t, traj))
    return traj[order], t[order], op[order], N


# --------------------------------------------------------------------------- mcsolve

def _rotating_hamiltonian(system: ModeSystem, a: list):
    """``sum_k (Omega_k - Omega_bar_c(k)) a_k^+ a_k``: H in the frame rotating at each cluster's mean quantum."""
    H = 0 * a[0]
    for S in system.clusters:
        wbar = float(np.mean(system.omega[list(S)]))
        for k in S:
            if system.omega[k] != wbar:
                H = H + float(system.omega[k] - wbar) * a[k].dag() * a[k]
    return H


def _mc_modes(system: ModeSystem, ntraj: int, grid: NDArray[np.float64], seed: int, C0: NDArray[np.complex128],
              cutoffs, tol: float, max_liouville: int, start: int = 0):
    import qutip

    cut = mode_cutoffs(system, grid, C0, tol=tol) if cutoffs is None else tuple(
        int(c) for c in np.broadcast_to(np.asarray(cutoffs), (system.K,)))
    check_dimension(cut, max_liouville, "mcsolve")
    c_ops = [L for _, L in collapse_operators_modes(system, cut)]
    a = mode_operators(cut)
    H = _rotating_hamiltonian(system, a)
    numbers = [x.dag() * x for x in a]
    vac = qutip.tensor(*(qutip.basis(c, 0) for c in cut))
    children = child_seed_sequences(seed, start, ntraj)
    # initial pure states: Fock states of the normal modes, occupations drawn per trajectory
    n_occ, U = normal_modes(C0)
    occ = np.zeros((ntraj, system.K), dtype=np.int64)
    if n_occ.max() > 0:
        x = n_occ / (n_occ + 1.0)
        for i in range(ntraj):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(start + i, 0)))
            occ[i] = [rng.geometric(1.0 - xj) - 1 if xj > 0 else 0 for xj in x]
    bdag = [sum((complex(np.conj(U[m, j])) * a[m].dag() for m in range(system.K)), 0 * a[0]) for j in range(system.K)]
    opts = {"progress_bar": False, "map": "serial", "store_states": False, "store_final_state": False,
            "keep_runs_results": True}
    per = [(np.zeros(0), np.zeros(0, np.int16))] * ntraj
    N = np.empty((ntraj, system.K, grid.size))
    configs, inverse = np.unique(occ, axis=0, return_inverse=True)
    for g, conf in enumerate(configs):
        idx = np.flatnonzero(inverse.ravel() == g)
        psi = vac
        for j, nj in enumerate(conf):
            for _ in range(int(nj)):
                psi = bdag[j] * psi
        psi = psi / psi.norm()
        if not c_ops:
            N[idx] = np.array([float(np.real(qutip.expect(n, psi))) for n in numbers])[None, :, None]
            continue
        res = qutip.mcsolve(H, psi, grid, c_ops, e_ops=numbers, ntraj=idx.size, seeds=[children[i] for i in idx],
                            options=opts)
        for k in range(system.K):
            N[idx, k, :] = np.real(np.asarray(res.runs_expect[k], dtype=complex))
        for r, i in enumerate(idx):
            per[i] = (np.asarray(res.col_times[r], dtype=float), np.asarray(res.col_which[r], dtype=np.int16))
    lengths = np.array([p[0].size for p in per], dtype=np.int64)
    traj = np.repeat(np.arange(start, start + ntraj, dtype=np.int32), lengths)
    t = np.concatenate([p[0] for p in per]) if ntraj else np.zeros(0)
    op = np.concatenate([p[1] for p in per]).astype(np.int16) if ntraj else np.zeros(0, np.int16)
    return traj, t, op, N


def run_mode_trajectories(system: ModeSystem, engine: str, ntraj: int, t_end: float, n_points: int, seed: int,
                          initial: str = "vacuum", *, cutoffs=None, tol: float = DEFAULT_TOL,
                          max_liouville: int = MAX_LIOUVILLE, start: int = 0) -> ModeTrajectories:
    """Quantum-jump trajectories of several modes (see the module doc).

    Parameters
    ----------
    system
        The modes (:func:`sim.covariance.mode_system`).
    engine
        ``"ssa"`` (no cross terms only), ``"mcsolve"`` or its alias ``"qutip"``.
    ntraj, t_end, n_points
        Trajectories ``0 .. ntraj-1`` on ``t = linspace(0, t_end, n_points)`` (1/energy).
    seed
        Seed of the ``SeedSequence`` scheme of the module doc (>= 0).
    initial
        ``"vacuum"`` or ``"steady"`` (the Gaussian steady state).
    cutoffs, tol, max_liouville
        mcsolve's levels per mode (default :func:`sim.lindblad_modes.mode_cutoffs` with ``tol``) and the
        budget on ``dim^2`` (:func:`sim.lindblad_modes.check_dimension`); ``tol`` also sizes ssa's cap
        for unstable modes.
    start
        Index of the first trajectory: trajectories ``start .. start+ntraj-1`` (a batch of a larger run; each
        trajectory's stream depends only on ``(seed, index)``, so batches concatenate to the whole run).

    Returns
    -------
    ModeTrajectories
        ``(jumps, N, operators)``.
    """
    if engine not in MODE_ENGINES:
        raise ValueError(f"engine must be one of {', '.join(MODE_ENGINES)}, got {engine!r}")
    if isinstance(ntraj, bool) or int(ntraj) < 1:
        raise ValueError(f"ntraj must be >= 1, got {ntraj!r}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if int(start) < 0:
        raise ValueError(f"start must be >= 0, got {start}")
    grid = _grid(t_end, n_points)
    C0 = _initial_C(system, initial)
    ops = operators_frame(system)
    if engine == "ssa":
        traj, t, op, N = _ssa_modes(system, ops, int(ntraj), grid, int(seed), C0, tol, int(start))
    else:
        traj, t, op, N = _mc_modes(system, int(ntraj), grid, int(seed), C0, cutoffs, tol, max_liouville, int(start))
    return ModeTrajectories(mode_jumps_frame(traj, t, op, ops), N, ops)


def mode_trajectories_frame(N: NDArray[np.float64], t_end: float, start: int = 0) -> pd.DataFrame:
    """Long table of the populations: ``traj`` (int32), ``t``, ``mode`` (int16), ``N`` (float64), one row per
    trajectory, mode and grid time (``N`` of :class:`ModeTrajectories`, grid ``linspace(0, t_end, n_points)``;
    trajectories numbered from ``start``)."""
    ntraj, K, npts = N.shape
    return pd.DataFrame({
        "traj": np.repeat(np.arange(start, start + ntraj, dtype=np.int32), K * npts),
        "t": np.tile(np.linspace(0.0, float(t_end), npts), ntraj * K),
        "mode": np.tile(np.repeat(np.arange(K, dtype=np.int16), npts), ntraj),
        "N": np.ascontiguousarray(N, dtype=float).reshape(-1),
    }, copy=False)


def mode_summary(result: ModeTrajectories, t_end: float) -> dict:
    """JSON-ready figures of a run: jumps per (channel, direction) and per operator, and per mode the mean
    population and its standard error at ``t_end`` (NaN-free trajectories), and the mean jump rate
    ``count / (ntraj t_end)`` per (channel, direction)."""
    from ..model import clean

    jumps, N, ops = result
    ntraj = N.shape[0]
    counts = jumps.groupby(["channel", "direction"], observed=False).size()
    last = N[:, :, -1]
    ok = np.isfinite(last)
    n_ok = ok.sum(axis=0)
    mean = np.where(n_ok > 0, np.nansum(last, axis=0) / np.maximum(n_ok, 1), np.nan)
    with np.errstate(invalid="ignore"):
        sem = np.nanstd(last, axis=0, ddof=1) / np.sqrt(n_ok) if ntraj > 1 else np.full(N.shape[1], np.nan)
    return clean({
        "ntraj": ntraj, "n_jumps": len(jumps),
        "counts": [{"channel": c, "direction": d, "count": int(n), "rate": n / (ntraj * float(t_end))}
                   for (c, d), n in counts.items()],
        "counts_per_operator": np.bincount(jumps["op"].to_numpy(np.intp), minlength=len(ops)).tolist(),
        "N_final_mean": mean.tolist(), "N_final_sem": np.asarray(sem).tolist(),
    })


def system_record(system: ModeSystem) -> dict:
    """JSON record of a :class:`ModeSystem` (what identifies a several-mode run): quanta, ph-baths, clusters,
    ``mu_c`` and the rate matrices as real and imaginary parts (channels LL, RR, LR, RL)."""
    return {"omega": system.omega.tolist(), "gamma": system.gamma.tolist(), "n_th": system.n_th.tolist(),
            "clusters": [list(S) for S in system.clusters], "mu": np.asarray(system.mu).tolist(), "T_e": system.T_e,
            "emission_re": system.emission.real.tolist(), "emission_im": system.emission.imag.tolist(),
            "absorption_re": system.absorption.real.tolist(), "absorption_im": system.absorption.imag.tolist()}


def write_mode_run(system: ModeSystem, result: ModeTrajectories, out_dir, *, engine: str, ntraj: int, t_end: float,
                   n_points: int, seed: int, initial: str, overwrite: bool = False, config: dict | None = None,
                   command: str = "trajectories"):
    """Store a several-mode run in a run directory (:class:`sim.io.RunDirectory`: lock, manifest, metadata).

    Tables (one part each): ``jumps`` (:data:`sim.trajectories.table.MODE_JUMP_COLUMNS`), ``trajectories``
    (:func:`mode_trajectories_frame`) and ``operators`` (:func:`operators_frame`, the table ``jumps.op``
    indexes); ``summary.json`` holds :func:`mode_summary`. Read back with ``sim.io.read_table(out_dir, name)``.
    The identity (for resume/refusal) is the command, ``config``, :func:`system_record` and the run parameters.
    Returns the directory's path.
    """
    from ..io import RunDirectory

    run = {"engine": engine, "ntraj": int(ntraj), "t_end": float(t_end), "n_points": int(n_points), "seed": int(seed),
           "initial": initial}
    identity = {"command": command, "config": config, "modes": system_record(system), "run": run, "layout": "modes"}
    rd = RunDirectory.open(out_dir, identity, overwrite=overwrite,
                           metadata={"command": command, "config": config, "seed": int(seed), "engine": engine,
                                     "modes": system.K})
    jumps, N, ops = result
    with rd:
        tables = {"jumps": jumps, "trajectories": mode_trajectories_frame(N, t_end), "operators": ops}
        for name, df in tables.items():
            rd.expect(name, 1)
            rd.write_part(name, 0, df, batch=(0, int(ntraj)) if name != "operators" else None)
        rd.write_summary(mode_summary(result, t_end))
        rd.finish()
    return rd.path


def mode_batch_size(engine: str, ntraj: int) -> int:
    """Trajectories per batch (and parquet part) when none is given: about 20 batches for mcsolve (a progress
    step each), one batch of up to 10^5 trajectories for ssa (cheap per trajectory)."""
    n = max(1, int(ntraj))
    return min(n, 100_000) if engine == "ssa" else max(1, math.ceil(n / 20))


def read_mode_run(path) -> ModeTrajectories:
    """The tables of a several-mode run directory as :class:`ModeTrajectories` (reads through :func:`sim.io.read_table`,
    which verifies every part against the manifest)."""
    from ..io import read_table

    return _assemble(read_table(path, "jumps"), read_table(path, "operators"), read_table(path, "trajectories"))


def _assemble(jumps: pd.DataFrame, ops: pd.DataFrame, tr: pd.DataFrame) -> ModeTrajectories:
    # parts written before sim.io kept the categories of a part without rows read back with none, and
    # concatenation then gives object labels: restore the documented dtypes
    jumps = jumps.astype({"channel": CHANNEL_DTYPE, "direction": DIRECTION_DTYPE})
    tr = tr.sort_values(["traj", "mode", "t"], kind="stable")
    ntraj = int(tr["traj"].max()) + 1 if len(tr) else 0
    K = int(tr["mode"].max()) + 1 if len(tr) else 0
    N = tr["N"].to_numpy(float).reshape(ntraj, K, -1) if ntraj else np.zeros((0, K, 0))
    return ModeTrajectories(jumps.reset_index(drop=True), N, ops.reset_index(drop=True))


def _mode_batch(task: tuple) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One batch of :func:`mode_run`, start to tables (a top-level function of plain data: picklable for workers).

    ``task = (system, engine, start, count, t_end, n_points, seed, initial, tol, max_liouville)``; returns the
    batch's ``jumps`` and ``trajectories`` tables (trajectories ``start .. start+count-1``).
    """
    system, engine, start, count, t_end, n_points, seed, initial, tol, max_liouville = task
    res = run_mode_trajectories(system, engine, count, t_end, n_points, seed, initial, tol=tol,
                                max_liouville=max_liouville, start=start)
    return res.jumps, mode_trajectories_frame(res.N, t_end, start=start)


def mode_run(system: ModeSystem, out_dir, *, engine: str, ntraj: int, t_end: float, n_points: int, seed: int,
             initial: str = "vacuum", batch_size: int | None = None, overwrite: bool = False,
             config: dict | None = None, progress: bool | None = None, tol: float = DEFAULT_TOL,
             max_liouville: int = MAX_LIOUVILLE, command: str = "trajectories", scheduler="serial"):
    """Run and store a several-mode run batch by batch in a run directory (``ehp trajectories`` for K > 1).

    The directory is opened (locked, refused or resumed by :class:`sim.io.RunDirectory`) before any work;
    each batch of ``batch_size`` trajectories (default :func:`mode_batch_size`) is one part of ``jumps`` and
    ``trajectories``; ``operators`` is one part. A run stopped part-way resumes with the same command: batches
    already in the manifest are kept. The batches run on ``scheduler`` (``serial``, ``auto``, ``processes``,
    ``dask``, ``tcp://HOST:PORT`` or a :class:`sim.parallel.Scheduler`; :func:`sim.parallel.run_tasks`), and
    the parts are written as batches finish. Trajectory ``i``'s stream depends only on ``(seed, i)``, so the
    tables depend neither on the batch size nor on the scheduler. ``summary.json`` holds :func:`mode_summary`
    plus the run parameters. Returns ``(path, ModeTrajectories, n_batches, n_resumed)``.
    """
    from ..io import RunDirectory
    from ..parallel import run_tasks

    ntraj = int(ntraj)
    bs = mode_batch_size(engine, ntraj) if batch_size is None else max(1, min(int(batch_size), ntraj))
    starts = list(range(0, ntraj, bs))
    run = {"engine": engine, "ntraj": ntraj, "t_end": float(t_end), "n_points": int(n_points), "seed": int(seed),
           "initial": initial, "batch_size": bs}
    identity = {"command": command, "config": config, "modes": system_record(system), "run": run, "layout": "modes"}
    rd = RunDirectory.open(out_dir, identity, overwrite=overwrite,
                           metadata={"command": command, "config": config, "seed": int(seed), "engine": engine,
                                     "modes": system.K})
    with rd:
        rd.expect("jumps", len(starts))
        rd.expect("trajectories", len(starts))
        rd.expect("operators", 1)
        if not rd.has_part("operators", 0):
            rd.write_part("operators", 0, operators_frame(system))
        todo = [(system, engine, s0, min(bs, ntraj - s0), float(t_end), int(n_points), int(seed), initial, tol,
                 max_liouville) for b, s0 in enumerate(starts)
                if not (rd.has_part("jumps", b) and rd.has_part("trajectories", b))]
        resumed = len(starts) - len(todo)
        done = ntraj - sum(task[3] for task in todo)
        desc = f"trajectories ({engine}, K = {system.K}" + (f", {done} done)" if done else ")")
        for i, (jumps, traj) in run_tasks(_mode_batch, todo, scheduler, progress=progress,
                                          weights=[task[3] for task in todo], desc=desc, unit="traj"):
            b, batch = todo[i][2] // bs, (todo[i][2], todo[i][3])
            rd.write_part("trajectories", b, traj, batch=batch)
            rd.write_part("jumps", b, jumps, batch=batch)
        result = _assemble(rd.read_table("jumps"), rd.read_table("operators"), rd.read_table("trajectories"))
        rd.write_summary({**mode_summary(result, t_end), "engine": engine, "initial": initial, "K": system.K,
                          "n_batches": len(starts), "n_batches_resumed": resumed})
        rd.finish()
    return rd.path, result, len(starts), resumed
