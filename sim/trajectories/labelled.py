r"""Labelled quantum jumps of K >= 1 modes (a :class:`sim.covariance.ModeSystem`): the plans of both engines.

Every jump carries the operator that made it (``op``, a row of the operator table
:func:`operators_frame`) and the mode it acted on (``mode``; -1 for an operator spanning several
modes), besides the channel and direction of every jump table. The runner
(:func:`sim.trajectories.run_trajectories`) reaches these plans through the engines' ``prepare``
when the model is a ModeSystem; one mode with a :class:`sim.model.JumpModel` takes the
birth-death fast path instead (same seeds, same jumps for the same seed: see below).

Engines:

* ``mcsolve`` (QuTiP 5): the Lindblad equation of the modes on the truncated tensor Fock space
  (:mod:`sim.lindblad`) with one labelled collapse operator per (channel, direction,
  eigen-index, cluster) and per-mode ph-bath operators. Exact with cross terms, where a jump
  creates or destroys a quantum in a superposition of modes. ``N_k(t)`` of each trajectory is
  ``<psi(t)|a_k^+ a_k|psi(t)>``.
* ``ssa`` (exact Gillespie, numba): only without cross terms (every cluster a single mode). The
  modes are then independent birth-death chains; mode ``k``'s chain has the one-mode coefficients
  ``em_c = T_em^c_kk``, ``ab_c = T_abs^c_kk``, ``em_ph = gamma_k n_k``, ``ab_ph = gamma_k (n_k + 1)``
  and runs through the one-mode kernel of :mod:`.ssa` (same cost per jump). The jumps of all modes
  are merged and sorted by ``(traj, t)``.

Seeds (deterministic, independent of batching and of the scheduler):

* ssa: the chain of trajectory ``i``, mode ``k`` draws from xoshiro256** seeded by
  ``SeedSequence(seed, spawn_key=(i + k * 2**32,))``. Mode 0 uses exactly the stream of the one-mode
  engine's trajectory ``i``, so a one-mode system gives the fast path's jumps for the same seed.
* mcsolve: trajectory ``i`` gets ``SeedSequence(seed, spawn_key=(i,))`` as its QuTiP seed (as the
  one-mode engine); a Gaussian start draws its pure state with
  ``default_rng(SeedSequence(seed, spawn_key=(i, 0)))``.

Initial states (:func:`modes_initial`, from one ``run.initial`` text for every K):

* Gaussian: ``vacuum``; ``steady`` (covariance ``C = ModeSystem.steady_covariance()``);
  ``thermal:N`` (``C = N 1``) and ``thermal:T=<temperature>`` (``C = diag(nB(Omega_k, T))``, each mode
  at its own quantum). mcsolve unravels the state into Fock states of its normal modes
  ``b_j = sum_m U_mj a_m`` (``C = U diag(n) U^+``): occupation ``n_j`` geometric of mean ``n_j``
  (exact in law), the ket ``prod_j (b_j^+)^{n_j}/sqrt(n_j!) |0>``. ssa (no cross terms, a diagonal
  ``C`` in the mode basis) starts each mode from the geometric law of mean ``C_kk``.
* ``fock:n``: every mode in Fock state ``n`` (both engines).
* ``coherent:alpha``: every mode in the coherent state ``|alpha>`` (mcsolve only: coherences
  between Fock states are no birth-death process).

Rotating frame (mcsolve): every collapse operator acts within one cluster ``c`` and changes the
number of quanta by +-1, so in the frame ``U = exp(-i t sum_k Omega_bar_c(k) a_k^+ a_k)`` (``Omega_bar_c``
the cluster's mean quantum) it only picks up a phase: the jump statistics and every ``N_k(t)`` are
those of ``H_rot = sum_k (Omega_k - Omega_bar_c(k)) a_k^+ a_k`` (zero for degenerate clusters), which
spares the ODE solver the fast rotation at ``Omega``.

Cutoffs (mcsolve; ssa caps only unstable runs): :func:`sim.lindblad.mode_cutoffs` (``max_t C(t)_kk``
on the grid from the initial second moments, geometric tail ``<= tol`` per mode; conservative for
Fock and coherent starts, whose tails are lighter). Units: time in 1/energy, rates in energy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..covariance import ModeSystem
from ..initial import InitialSpec
from ..model import N_LABELS, label_index
from ._rng import base_pool, child_seed_sequences, entropy_words
from .engine import NO_CAP, RunSpec
from .initial import InitialState, _initial_args
from .table import CHANNEL_DTYPE, DIRECTION_DTYPE, mode_jumps_frame, modes_grid_frame, stops_frame

__all__ = ["MODE_STRIDE", "ModesInitial", "modes_initial", "LabelledBatch", "LabelledPlan", "has_cross_terms",
           "cross_term_clusters", "operators_frame", "prepare_ssa", "simulate_ssa", "prepare_mcsolve",
           "simulate_mcsolve"]

#: Spawn-key offset between the ssa streams of different modes.
MODE_STRIDE = 2**32


def cross_term_clusters(system: ModeSystem) -> list[tuple[int, ...]]:
    """The clusters holding several modes (their jumps act on superpositions of modes)."""
    return [S for S in system.clusters if len(S) > 1]


def has_cross_terms(system: ModeSystem) -> bool:
    """True where some cluster holds several modes (jumps may then act on superpositions of modes)."""
    return bool(cross_term_clusters(system))


def operators_frame(system: ModeSystem) -> pd.DataFrame:
    """The table of labelled collapse operators (``operators.parquet`` of a labelled run).

    One row per operator of :meth:`ModeSystem.collapse_operators` (the ``op`` of the jump table):
    ``op`` (int16), ``channel``, ``direction`` (categorical, as in the jump table), ``j`` (eigen-index
    within the cluster; the mode for ``ph``), ``cluster``, ``mode`` (int16; -1 for an operator spanning
    several modes), ``rate`` (1/time), ``dn``, ``dQ``, ``quantum`` (``sum_m |w_m|^2 Omega_m``), ``dE``,
    and the weights ``w_k = |w_k|`` and phases ``phi_k = arg w_k`` (radians) for ``k = 0..K-1``
    (emission ``L = sqrt(rate) sum_m w_m a_m^+``, absorption ``sqrt(rate) sum_m conj(w_m) a_m``).
    """
    from ..lindblad import operator_properties

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


# --------------------------------------------------------------------------- initial states


@dataclass(frozen=True, eq=False)
class ModesInitial:
    """A resolved ``run.initial`` of K modes.

    Attributes
    ----------
    kind
        ``"gaussian"`` (covariance ``C0``), ``"fock"`` (every mode in ``|n>``) or ``"coherent"``
        (every mode in ``|alpha>``).
    C0
        Second moments ``C0_mn = <a_m^+ a_n>`` at t = 0 (K, K): what the cutoffs and the expected
        jump counts are computed from, for every kind.
    """

    kind: str
    C0: NDArray[np.complex128]
    n: int = 0
    alpha: complex = 0j

    @property
    def diagonal(self) -> bool:
        """True for a mixture of Fock states of the modes (a birth-death start for ssa)."""
        return self.kind != "coherent"

    @property
    def mean_population(self) -> float:
        """``sum_k <n_k>`` at t = 0."""
        return float(np.trace(self.C0).real)

    def mode_state(self, k: int) -> InitialState:
        """The one-mode start of mode ``k`` (a Fock state or the geometric law of mean ``C0_kk``)."""
        if self.kind == "fock":
            return InitialState("fock", n=int(self.n))
        if self.kind == "coherent":
            return InitialState("coherent", alpha=complex(self.alpha))
        return InitialState("geometric", mean=float(self.C0[k, k].real))


def modes_initial(system: ModeSystem, spec: str | InitialSpec) -> ModesInitial:
    """Resolve ``run.initial`` for the modes of ``system`` (see the module doc).

    Raises
    ------
    ValueError
        ``steady`` for unstable modes (no steady state), an explicit distribution, bad text.
    """
    s = InitialSpec.parse(spec)
    K = system.K
    if s.kind == "vacuum":
        return ModesInitial("gaussian", np.zeros((K, K), dtype=complex))
    if s.kind == "steady":
        if not system.stable:
            raise ValueError(f"run.initial = 'steady' needs stable modes, but the growth rate is "
                             f"{system.growth_rate:.6g} > 0 (within round-off or above): there is no steady state; "
                             "start from 'vacuum'")
        return ModesInitial("gaussian", system.steady_covariance())
    if s.kind == "thermal":
        return ModesInitial("gaussian", np.diag(s.means(system.omega)).astype(complex))
    if s.kind == "fock":
        return ModesInitial("fock", float(s.value) * np.eye(K, dtype=complex), n=int(s.value))
    if s.kind == "coherent":
        a = np.full(K, complex(s.value))
        return ModesInitial("coherent", np.outer(a.conj(), a), alpha=complex(s.value))
    raise ValueError("trajectories start from vacuum, steady, thermal:N, thermal:T=<temperature>, fock:n or "
                     f"coherent:alpha, not from an explicit distribution ({s.kind})")


# --------------------------------------------------------------------------- plans and batches


@dataclass(frozen=True, eq=False)
class LabelledBatch:
    """Raw output of one labelled engine call for trajectories ``start .. start + ntraj - 1``.

    ``traj, t, op``: one entry per jump, sorted by trajectory then time (``op`` indexes the
    operator table). ``N``: populations per trajectory and mode on ``t_grid``, shape
    (ntraj, K, n_points) (ssa: integers, NaN from a stop at the cap on; mcsolve: ``<a_k^+ a_k>``).
    Stops: trajectory, time, population and mode of each mode that reached its cap.
    """

    start: int
    ntraj: int
    traj: NDArray[np.int32]
    t: NDArray[np.float64]
    op: NDArray[np.int16]
    t_grid: NDArray[np.float64]
    N: NDArray[np.float64]
    stop_traj: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    stop_t: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    stop_n: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    stop_mode: NDArray[np.int16] = field(default_factory=lambda: np.zeros(0, np.int16))
    sim_s: float = 0.0

    @property
    def n_jumps(self) -> int:
        return int(self.t.shape[0])


@dataclass(frozen=True, eq=False)
class LabelledPlan:
    """What a labelled plan gives the runner (the base of the ssa and mcsolve plans of a ModeSystem).

    Tables of a batch: ``jumps`` (:data:`sim.trajectories.table.MODE_JUMP_COLUMNS`), ``trajectories``
    (``traj, t, mode, N``) and ``stops`` (``traj, t_stop, n, mode``); once per run: ``operators``
    (:func:`operators_frame`, the table ``jumps.op`` indexes).
    """

    spec: RunSpec
    system: ModeSystem
    operators: pd.DataFrame
    labels: NDArray[np.int64]
    per_traj: float

    tables = ("jumps", "trajectories", "stops")

    @property
    def K(self) -> int:
        return self.system.K

    @property
    def omega(self) -> NDArray[np.float64]:
        return self.system.omega

    @property
    def margin(self) -> float:
        """``2 min Re eig(Y)`` (``kappa`` for one mode; energy units; positive where stable)."""
        return float(self.system.margin)

    @property
    def stable(self) -> bool:
        return bool(self.system.stable)

    @property
    def n_operators(self) -> int:
        return len(self.operators)

    @property
    def jumps_per_traj(self) -> float:
        return self.per_traj

    @property
    def grid_cells(self) -> int:
        return int(self.K * self.spec.n_points)

    def identity(self) -> dict[str, Any]:
        """What identifies the model: ``{"modes": ModeSystem.record(), "options": {"tol": ...}}``."""
        opts: dict[str, Any] = {"tol": float(self.spec.tol)}
        if self.spec.max_liouville is not None:
            opts["max_liouville"] = int(self.spec.max_liouville)
        return {"modes": self.system.record(), "options": opts}

    def run_tables(self) -> dict[str, pd.DataFrame]:
        return {"operators": self.operators}

    def frames(self, batch: LabelledBatch) -> dict[str, pd.DataFrame]:
        return {"jumps": mode_jumps_frame(batch.traj, batch.t, batch.op, self.operators),
                "trajectories": modes_grid_frame(batch.start, batch.t_grid, batch.N),
                "stops": stops_frame(batch.stop_traj, batch.stop_t, batch.stop_n, batch.stop_mode)}

    def stats(self, batch: LabelledBatch, sim_s: float) -> dict[str, Any]:
        N = batch.N
        ok = np.isfinite(N)
        N0 = np.where(ok, N, 0.0)
        tot = N.sum(axis=1)
        tok = np.isfinite(tot)
        T0 = np.where(tok, tot, 0.0)
        op = batch.op.astype(np.intp)
        return {"start": batch.start, "ntraj": batch.ntraj,
                "counts": np.bincount(self.labels[op], minlength=N_LABELS).tolist(),
                "op_counts": np.bincount(op, minlength=self.n_operators).tolist(),
                "N_sum": T0.sum(axis=0).tolist(), "N_sumsq": (T0**2).sum(axis=0).tolist(),
                "N_count": tok.sum(axis=0).tolist(),
                "mode_sum": N0.sum(axis=0).tolist(), "mode_sumsq": (N0**2).sum(axis=0).tolist(),
                "mode_count": ok.sum(axis=0).tolist(),
                "n_stopped": int(np.unique(batch.stop_traj).size), "sim_s": sim_s}


def _base(system: ModeSystem, spec: RunSpec) -> tuple[pd.DataFrame, NDArray[np.int64], ModesInitial]:
    if not isinstance(spec.initial, ModesInitial):
        raise ValueError(f"a labelled run needs the initial state of its modes (ModesInitial), got {spec.initial!r}")
    if spec.initial.C0.shape != (system.K, system.K):
        raise ValueError(f"the initial state has {spec.initial.C0.shape[0]} modes, the system {system.K}")
    ops = operators_frame(system)
    labels = np.array([label_index(c, d) for c, d in zip(ops["channel"].astype(str), ops["direction"].astype(str),
                                                            strict=True)], dtype=np.int64)
    return ops, labels, spec.initial


def _per_mode_cutoffs(system: ModeSystem, spec: RunSpec) -> tuple[int, ...]:
    from ..lindblad import mode_cutoffs

    if spec.cutoff is not None:
        return tuple(int(c) for c in np.broadcast_to(np.asarray(spec.cutoff), (system.K,)))
    return mode_cutoffs(system, spec.t_grid, spec.initial.C0, tol=spec.tol)


def _expected_per_mode(system: ModeSystem, spec: RunSpec, caps) -> NDArray[np.float64]:
    """Mean jumps of one trajectory per mode up to ``t_end`` (diagonal rates at ``C(t)_kk``, clipped at the caps)."""
    t_end = float(spec.t_end)
    Ct = np.diagonal(system.covariance(np.linspace(0.0, t_end, 257), spec.initial.C0), axis1=1, axis2=2).real
    em = system.emission.real.sum(axis=0).diagonal() + system.gamma * system.n_th
    ab = system.absorption.real.sum(axis=0).diagonal() + system.gamma * (system.n_th + 1)
    N = np.minimum(Ct, np.asarray(caps, dtype=float)[None, :])
    rate = em[None, :] * (N + 1.0) + ab[None, :] * N
    return np.trapezoid(rate, dx=t_end / 256, axis=0)


# --------------------------------------------------------------------------- ssa


@dataclass(frozen=True, eq=False)
class LabelledSSAPlan(LabelledPlan):
    """One birth-death chain per mode: coefficients ``em``, ``ab`` (K, 5), caps (K,), the label -> op map."""

    em: NDArray[np.float64] = None  # type: ignore[assignment]
    ab: NDArray[np.float64] = None  # type: ignore[assignment]
    caps: NDArray[np.int64] = None  # type: ignore[assignment]
    lookup: NDArray[np.int64] = None  # type: ignore[assignment]
    mode_jumps: NDArray[np.float64] = None  # type: ignore[assignment]


def prepare_ssa(system: ModeSystem, spec: RunSpec) -> LabelledSSAPlan:
    """The ssa plan of K modes without cross terms (JIT compilation of the shared kernel happens here).

    Raises
    ------
    ValueError
        Cross terms (naming the clusters and mcsolve), a coherent start, negative or non-finite rates.
    """
    several = cross_term_clusters(system)
    if several:
        raise ValueError(f"the ssa engine needs modes without cross terms (every cluster of one mode); the clusters "
                         f"{[list(S) for S in several]} couple modes, so jumps act on superpositions of modes: use the "
                         "mcsolve engine")
    ops, labels, init = _base(system, spec)
    if not init.diagonal:
        raise ValueError(f"the ssa engine needs a Fock-diagonal initial state, got coherent:{init.alpha}; a coherent "
                         "state has coherences between Fock states, use the mcsolve engine")
    K = system.K
    caps = np.full(K, NO_CAP, dtype=np.int64)
    if spec.cutoff is not None or not system.stable:
        caps = np.array([c - 1 for c in _per_mode_cutoffs(system, spec)], dtype=np.int64)
    em = np.empty((K, 5))
    ab = np.empty((K, 5))
    for k in range(K):
        em[k] = np.append(system.emission[:, k, k].real, system.gamma[k] * system.n_th[k])
        ab[k] = np.append(system.absorption[:, k, k].real, system.gamma[k] * (system.n_th[k] + 1))
        if not (np.all(np.isfinite(em[k])) and np.all(np.isfinite(ab[k])) and em[k].min() >= 0 and ab[k].min() >= 0):
            raise ValueError(f"mode {k}: jump rates must be finite and >= 0, got {em[k].tolist()}, {ab[k].tolist()}")
    lookup = np.full((K, N_LABELS), -1, dtype=np.int64)
    for row in ops.itertuples(index=False):
        lookup[int(row.mode), label_index(row.channel, row.direction)] = int(row.op)
    per = _expected_per_mode(system, spec, np.minimum(caps, 2**40))
    plan = LabelledSSAPlan(spec, system, ops, labels, float(per.sum()), em=em, ab=ab, caps=caps, lookup=lookup,
                           mode_jumps=per)
    _ssa_run(plan, 0, 0, 1, tiny=True)  # compile (or load the cache) outside the timed region
    return plan


def _ssa_run(plan: LabelledSSAPlan, k: int, start: int, count: int, tiny: bool = False):
    from .kernel import _ssa_kernel

    spec = plan.spec
    grid, t_end = spec.t_grid, float(spec.t_end)
    if tiny:
        grid, t_end = grid[:2] * 1e-12, 1e-12
    pool0, hc0 = base_pool(entropy_words(spec.seed))
    hc0 = np.uint64(hc0)  # numba hands a uint64 scalar back as a Python int
    per = float(plan.mode_jumps[k]) * count
    capacity = min(int(1.1 * per + 5.0 * math.sqrt(per + 1.0)) + 256, 2**27)
    kind, n_fixed, log_x, u_zero = _initial_args(spec.initial.mode_state(k))
    return _ssa_kernel(pool0, hc0, k * MODE_STRIDE + int(start), int(start), int(count), kind, n_fixed, log_x, u_zero,
                       grid, t_end, plan.em[k], plan.ab[k], np.int64(min(plan.caps[k], NO_CAP)), capacity, True)


def simulate_ssa(plan: LabelledSSAPlan, start: int, count: int) -> LabelledBatch:
    """Trajectories ``start .. start+count-1``: every mode's chain, the jumps merged by ``(traj, t)``."""
    t0 = time.perf_counter()
    K = plan.K
    trajs, times, opss, stops = [], [], [], []
    N = np.empty((count, K, plan.spec.n_points))
    for k in range(K):
        traj, t, lab, m, Nmode, _, _, st, stt, stn = _ssa_run(plan, k, start, count)
        op = plan.lookup[k][lab[:m].astype(np.intp)]
        if (op < 0).any():
            raise RuntimeError(f"mode {k}: a jump of a label without collapse operator (rate 0)")
        trajs.append(traj[:m])
        times.append(t[:m])
        opss.append(op)
        N[:, k, :] = Nmode
        stops.append((st, stt, stn, np.full(st.size, k, np.int16)))
    traj, t, op = np.concatenate(trajs), np.concatenate(times), np.concatenate(opss).astype(np.int16)
    order = np.lexsort((t, traj))
    st, stt, stn, stm = (np.concatenate([s[j] for s in stops]) for j in range(4))
    so = np.lexsort((stm, st))
    return LabelledBatch(int(start), int(count), traj[order], t[order], op[order], plan.spec.t_grid, N,
                         st[so].astype(np.int32), stt[so], stn[so].astype(np.int64), stm[so],
                         time.perf_counter() - t0)


# --------------------------------------------------------------------------- mcsolve


@dataclass(frozen=True, eq=False)
class LabelledMCPlan(LabelledPlan):
    """QuTiP operators on the truncated tensor space, the initial kets, the rotating-frame Hamiltonian."""

    cutoffs: tuple[int, ...] = ()
    H: Any = None
    c_ops: list = None  # type: ignore[assignment]
    numbers: list = None  # type: ignore[assignment]
    psi0: Any = None
    bdag: list = None  # type: ignore[assignment]
    occupation: NDArray[np.float64] = None  # type: ignore[assignment]


def _rotating_hamiltonian(system: ModeSystem, a: list):
    """``sum_k (Omega_k - Omega_bar_c(k)) a_k^+ a_k``: H in the frame rotating at each cluster's mean quantum (plus
    the Lamb shift ``sum_mn L_mn a_m^+ a_n`` where the system includes it; it conserves each cluster's number)."""
    from ..lindblad import lamb_hamiltonian

    H = 0 * a[0]
    for S in system.clusters:
        wbar = float(np.mean(system.omega[list(S)]))
        for k in S:
            if system.omega[k] != wbar:
                H = H + float(system.omega[k] - wbar) * a[k].dag() * a[k]
    return H if system.lamb is None else H + lamb_hamiltonian(system, a)


def prepare_mcsolve(system: ModeSystem, spec: RunSpec) -> LabelledMCPlan:
    """Operators on the per-mode cutoffs (default :func:`sim.lindblad.mode_cutoffs`), checked against
    ``max_liouville`` (:func:`sim.lindblad.check_dimension`); untimed."""
    import qutip

    from ..lindblad import MAX_LIOUVILLE, check_dimension, collapse_operators_modes, mode_operators, normal_modes

    ops, labels, init = _base(system, spec)
    cut = _per_mode_cutoffs(system, spec)
    if init.kind == "fock" and min(cut) <= init.n:
        raise ValueError(f"fock:{init.n} does not fit in the cutoffs {list(cut)} (levels 0..cutoff-1)")
    check_dimension(cut, MAX_LIOUVILLE if spec.max_liouville is None else spec.max_liouville, "mcsolve")
    c_ops = [L for _, L in collapse_operators_modes(system, cut)]
    a = mode_operators(cut)
    psi0, bdag, occ = None, None, None
    if init.kind == "gaussian":
        occ, U = normal_modes(init.C0)
        bdag = [sum((complex(np.conj(U[m, j])) * a[m].dag() for m in range(system.K)), 0 * a[0])
                for j in range(system.K)]
    elif init.kind == "fock":
        psi0 = qutip.tensor(*(qutip.basis(c, init.n) for c in cut))
    else:
        psi0 = qutip.tensor(*(qutip.coherent(c, init.alpha) for c in cut)).unit()
    per = _expected_per_mode(system, spec, cut)
    return LabelledMCPlan(spec, system, ops, labels, float(per.sum()), cutoffs=tuple(cut),
                          H=_rotating_hamiltonian(system, a), c_ops=c_ops, numbers=[x.dag() * x for x in a], psi0=psi0,
                          bdag=bdag, occupation=occ)


def simulate_mcsolve(plan: LabelledMCPlan, start: int, count: int) -> LabelledBatch:
    """Trajectories ``start .. start+count-1``; trajectories with the same initial ket run in one ``mcsolve``."""
    import qutip

    t0 = time.perf_counter()
    spec, K = plan.spec, plan.K
    grid = spec.t_grid
    children = child_seed_sequences(spec.seed, start, count)
    groups: list[tuple[Any, NDArray[np.intp]]] = []
    if plan.psi0 is not None:
        groups.append((plan.psi0, np.arange(count)))
    else:  # Fock states of the normal modes, occupations drawn per trajectory
        occ = np.zeros((count, K), dtype=np.int64)
        x = plan.occupation / (plan.occupation + 1.0)
        if plan.occupation.max() > 0:
            for i in range(count):
                rng = np.random.default_rng(np.random.SeedSequence(spec.seed, spawn_key=(start + i, 0)))
                occ[i] = [rng.geometric(1.0 - xj) - 1 if xj > 0 else 0 for xj in x]
        vac = qutip.tensor(*(qutip.basis(c, 0) for c in plan.cutoffs))
        configs, inverse = np.unique(occ, axis=0, return_inverse=True)
        for g, conf in enumerate(configs):
            psi = vac
            for j, nj in enumerate(conf):
                for _ in range(int(nj)):
                    psi = plan.bdag[j] * psi
            groups.append((psi / psi.norm(), np.flatnonzero(inverse.ravel() == g)))
    opts = {"progress_bar": False, "map": "serial", "store_states": False, "store_final_state": False,
            "keep_runs_results": True}
    per = [(np.zeros(0), np.zeros(0, np.int16))] * count
    N = np.empty((count, K, grid.size))
    for psi, idx in groups:
        if not plan.c_ops:
            N[idx] = np.array([float(np.real(qutip.expect(n, psi))) for n in plan.numbers])[None, :, None]
            continue
        res = qutip.mcsolve(plan.H, psi, grid, plan.c_ops, e_ops=plan.numbers, ntraj=idx.size,
                            seeds=[children[i] for i in idx], options=opts)
        for k in range(K):
            N[idx, k, :] = np.real(np.asarray(res.runs_expect[k], dtype=complex))
        for r, i in enumerate(idx):
            per[i] = (np.asarray(res.col_times[r], dtype=float), np.asarray(res.col_which[r], dtype=np.int16))
    lengths = np.array([p[0].size for p in per], dtype=np.int64)
    traj = np.repeat(np.arange(start, start + count, dtype=np.int32), lengths)
    t = np.concatenate([p[0] for p in per]) if count else np.zeros(0)
    op = np.concatenate([p[1] for p in per]).astype(np.int16) if count else np.zeros(0, np.int16)
    return LabelledBatch(int(start), int(count), traj, t, op, grid, N, sim_s=time.perf_counter() - t0)
