r"""Run many trajectories of K >= 1 modes in batches with any engine; in memory or streamed to a run directory.

:func:`run_trajectories` is the one entry point, for every number of modes. It takes a
:class:`sim.system.System` (or a config, which it builds into one), or the jump process an engine
runs directly: a :class:`sim.model.JumpModel` (one mode) or a :class:`sim.covariance.ModeSystem`.
A system of one mode runs on its birth-death chain (:meth:`sim.system.System.jump_model`: the
numba ssa and the one-mode mcsolve, the fast path); a system of several modes on its labelled
collapse operators (:meth:`sim.system.System.modes`, :mod:`.labelled`); a ladder config (``[mode.potential]``)
on its labelled level chain (:meth:`sim.system.System.level_chain`, :mod:`.ladder_ssa`, :mod:`.ladder_mcsolve`:
every jump labelled with its from and to levels, each trajectory stopping at rupture). What each engine supports
(modes, cross terms, initial states) is declared in :data:`sim.registry.SUPPORT`; a run it
cannot do is refused in one line naming the engine that can.

Trajectories ``0 .. ntraj-1`` are cut into batches of ``batch_size``; each batch is simulated by
the engine, turned into tables by the plan and either kept in memory or written as one parquet
part per table (:mod:`sim.io`), so memory is bounded by one batch however large ``ntraj`` is.
Running aggregates (jump counts per label and per operator, sums of ``N`` and ``N^2`` on the grid
for the total and for each mode, stops) are kept for the summary.

Timing: ``sim_s`` is the time spent simulating and building the tables; imports,
JIT compilation and operator set-up (the engine's ``prepare``) and file output are
excluded, so ``jumps_per_s = n_jumps / sim_s`` compares engines fairly. ``wall_s`` is
the whole call.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..config import Config, ConfigError
from ..fock import DEFAULT_TOL
from ..initial import InitialSpec
from ..model import JumpModel
from ..registry import ENGINE_NAMES
from ..results import Result
from .engine import Engine, RunSpec
from .initial import parse_initial
from .mcsolve import MCSOLVE
from .ssa import SSA
from .table import CHANNEL_DTYPE, DIRECTION_DTYPE, N_LABELS, counts_frame, grid_table


def resolve_initial(spec: str | InitialSpec, model):
    """``run.initial`` resolved for the model an engine runs: :func:`sim.trajectories.initial.parse_initial`
    for a one-mode :class:`sim.model.JumpModel` (an :class:`~sim.trajectories.initial.InitialState`),
    :func:`sim.trajectories.labelled.modes_initial` for a :class:`sim.covariance.ModeSystem`
    (a :class:`sim.trajectories.labelled.ModesInitial`).

    Raises
    ------
    ValueError
        As those functions (``steady`` without a steady state, an explicit distribution, bad text).
    """
    if isinstance(model, JumpModel):
        return parse_initial(spec, model)
    from ..level_chain import LevelChain

    if isinstance(model, LevelChain):  # the initial distribution over the levels (sim.ladder_time)
        from ..ladder_time import ladder_initial

        return ladder_initial(spec, model)
    from .labelled import modes_initial

    return modes_initial(model, spec)

__all__ = ["ENGINES", "TrajectoryResult", "run_trajectories", "get_engine", "default_batch_size", "jump_process"]

#: Engines by name; ``qutip`` is an alias of ``mcsolve``. Each declares what it supports in
#: :data:`sim.registry.SUPPORT` (:attr:`sim.trajectories.engine.Engine.support`).
ENGINES: dict[str, Engine] = {name: {"ssa": SSA, "mcsolve": MCSOLVE}[target] for name, target in ENGINE_NAMES.items()}

#: Jumps (and grid cells) per batch aimed at by :func:`default_batch_size`: tables of ~25 MB, ~70 MB peak.
BATCH_CELLS = 1_000_000

#: Bytes per jump of the jump table in memory and on disk (the refusal of runs that would not fit).
JUMP_BYTES = 40.0


def get_engine(name: str) -> Engine:
    """The engine registered as ``name`` (``ssa``, ``mcsolve`` or its alias ``qutip``)."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {name!r}") from None


def default_batch_size(engine: str, ntraj: int, jumps_per_traj: float, n_points: int, store_grid: bool = True) -> int:
    """Trajectories per batch: about :data:`BATCH_CELLS` jumps (and grid cells ``n_points``, if kept) for ssa;
    for mcsolve about 20 batches (a progress step each) of at most 200 trajectories."""
    if get_engine(engine).name == "mcsolve":
        return max(1, min(200, -(-int(ntraj) // 20)))
    per = max(float(jumps_per_traj), float(n_points) if store_grid else 1.0, 1.0)
    return int(max(1, min(ntraj, BATCH_CELLS // per)))


def jump_process(system, params=None):
    """The model the engines run for a :class:`sim.system.System` at one bias point ``params``.

    The birth-death chain (:meth:`sim.system.System.jump_model`, the fast path) where the system has
    one (a single mode), its labelled :class:`sim.covariance.ModeSystem` (:meth:`sim.system.System.modes`)
    otherwise.
    """
    if system.ladder:  # a ladder of levels: its labelled level chain
        return system.level_chain(params)
    return system.jump_model(params) if system.K == 1 else system.modes(params)


@dataclass(frozen=True)
class TrajectoryResult(Result):
    """Outcome of :func:`run_trajectories`, for every number of modes K.

    Tables (``jumps``, ``trajectories``, ``stops``, ``initial``, ``operators``) are in memory when no
    ``out_dir`` was given, otherwise ``None`` here and on disk: use :meth:`jump_table` and friends
    for either. Aggregates are always present.

    Attributes
    ----------
    t
        Time grid (1/energy).
    counts
        Jumps per ``(channel, direction)`` over all trajectories (10 rows).
    N_sum, N_sumsq, N_count
        Sums over trajectories of the total population ``N = sum_k N_k`` and ``N^2`` on the grid and
        how many trajectories were not stopped there (NaN-free).
    mode_sum, mode_sumsq, mode_count
        The same per mode, shape (K, n_points).
    op_counts
        Jumps per collapse operator (the rows of :meth:`operator_table`; for the one-mode chain the
        10 labels).
    kappa
        The stability margin: ``kappa`` for one mode, ``2 min Re eig(Y)`` for several (energy units).
    sim_s, wall_s
        Seconds simulating (engine plus table building, all batches ever run for this
        directory) and seconds of this call.
    model
        The jump process that ran: a :class:`sim.model.JumpModel` (the one-mode fast path) or a
        :class:`sim.covariance.ModeSystem` (labelled jumps).
    """

    engine: str
    ntraj: int
    spec: RunSpec
    batch_size: int
    counts: pd.DataFrame
    n_jumps: int
    N_sum: NDArray[np.float64]
    N_sumsq: NDArray[np.float64]
    N_count: NDArray[np.int64]
    n_stopped: int
    sim_s: float
    wall_s: float
    n_batches: int
    n_batches_resumed: int = 0
    out_dir: Path | None = None
    jumps: pd.DataFrame | None = None
    trajectories: pd.DataFrame | None = None
    stops: pd.DataFrame | None = None
    kappa: float = float("nan")
    model: Any = dataclasses.field(default=None, kw_only=True)
    initial: pd.DataFrame | None = dataclasses.field(default=None, kw_only=True)
    operators: pd.DataFrame | None = dataclasses.field(default=None, kw_only=True)
    tables: tuple[str, ...] = dataclasses.field(default=("jumps", "trajectories", "stops"), kw_only=True)
    mode_sum: NDArray[np.float64] | None = dataclasses.field(default=None, kw_only=True)
    mode_sumsq: NDArray[np.float64] | None = dataclasses.field(default=None, kw_only=True)
    mode_count: NDArray[np.int64] | None = dataclasses.field(default=None, kw_only=True)
    op_counts: NDArray[np.int64] | None = dataclasses.field(default=None, kw_only=True)
    rupture_sums: NDArray[np.float64] | None = dataclasses.field(default=None, kw_only=True)

    @property
    def route(self) -> str:  # type: ignore[override]
        return self.engine

    @property
    def K(self) -> int:
        """Number of modes."""
        return 1 if isinstance(self.model, JumpModel) or self.model is None else int(self.model.K)

    @property
    def labelled(self) -> bool:
        """True for a run of labelled collapse operators (jump table with ``mode`` and ``op``)."""
        return not (isinstance(self.model, JumpModel) or self.model is None)

    @property
    def omega(self) -> NDArray[np.float64]:
        """Quanta of the modes (K,)."""
        return np.atleast_1d(np.asarray(self.model.omega, dtype=float))

    @property
    def margin(self) -> float:
        """:attr:`kappa`: the stability margin (positive where stable)."""
        return float(self.kappa)

    def model_record(self) -> dict[str, Any] | None:
        """The record of the model behind the run (:meth:`sim.model.JumpModel.record` or :meth:`ModeSystem.record`)."""
        return None if self.model is None else self.model.record()

    def to_frame(self) -> pd.DataFrame:
        """The jump table (:meth:`jump_table`)."""
        return self.jump_table()

    @property
    def t(self) -> NDArray[np.float64]:
        return self.spec.t_grid

    @property
    def jumps_per_s(self) -> float:
        return self.n_jumps / self.sim_s if self.sim_s > 0 else float("nan")

    @staticmethod
    def _mean(s1, n):
        with np.errstate(invalid="ignore", divide="ignore"):
            return s1 / n

    @staticmethod
    def _sem(s1, s2, n):
        n = np.asarray(n, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (s2 - s1**2 / n) / (n - 1)
            return np.sqrt(np.maximum(var, 0.0) / n)

    @property
    def N_mean(self) -> NDArray[np.float64]:
        """Mean total population on the grid over the trajectories not stopped there."""
        return self._mean(self.N_sum, self.N_count)

    @property
    def N_sem(self) -> NDArray[np.float64]:
        """Standard error of :attr:`N_mean`."""
        return self._sem(self.N_sum, self.N_sumsq, self.N_count)

    @property
    def mode_mean(self) -> NDArray[np.float64]:
        """Mean population of each mode on the grid, shape (K, n_points)."""
        return self._mean(self.mode_sum, self.mode_count)

    @property
    def mode_sem(self) -> NDArray[np.float64]:
        """Standard error of :attr:`mode_mean`."""
        return self._sem(self.mode_sum, self.mode_sumsq, self.mode_count)

    def _table(self, name: str) -> pd.DataFrame:
        df = getattr(self, name)
        if df is not None:
            return df
        from ..io import read_table

        return read_table(self.out_dir, name)

    def jump_table(self) -> pd.DataFrame:
        """All jumps (read from the run directory when streamed)."""
        return self._table("jumps")

    def trajectory_table(self) -> pd.DataFrame:
        """The populations per trajectory on the grid: ``traj, t, N`` (one mode) or ``traj, t, mode, N``
        (labelled runs).

        Read when the run kept it (mcsolve, labelled runs, or ssa with ``store_grid``); otherwise rebuilt
        exactly from the ``initial`` table and the jumps (:func:`.table.grid_from_jumps`).
        """
        if "trajectories" in self.tables:
            return self._table("trajectories")
        return grid_table(self.jump_table(), self.initial_table(), self.stop_table(), self.spec.t_grid)

    def populations(self) -> NDArray[np.float64]:
        """Populations per trajectory and mode on the grid, shape (ntraj, K, n_points) (NaN after a stop)."""
        tr = self.trajectory_table()
        return tr["N"].to_numpy(dtype=float).reshape(self.ntraj, self.K, self.spec.n_points)

    def initial_table(self) -> pd.DataFrame:
        """Initial Fock population per trajectory: traj, n0 (one-mode ssa runs)."""
        if "initial" not in self.tables:
            raise ValueError(f"a {self.engine} run of {self.K} mode(s) has no initial table "
                             "(its populations at t = 0 are in the trajectories table)")
        return self._table("initial")

    def stop_table(self) -> pd.DataFrame:
        """Trajectories stopped at the population cap: traj, t_stop, n (and mode, labelled runs)."""
        return self._table("stops")

    def operator_table(self) -> pd.DataFrame | None:
        """The labelled collapse operators (:func:`sim.trajectories.labelled.operators_frame`; None for one
        mode's chain, whose operators are its 10 labels)."""
        if not self.labelled:
            return None
        return self._table("operators")

    def summary(self) -> dict[str, Any]:
        """The record written to ``summary.json`` (the same keys for every K).

        ``counts``: per (channel, direction) the count and the rate ``count / (ntraj t_end)``;
        ``counts_per_operator``: per operator (the labels for one mode's chain); ``N_final``,
        ``N_final_sem``: the total population at ``t_end`` and its standard error; ``modes``: per
        mode ``omega``, ``N_final``, ``N_final_sem`` (``N_final_mean``: the same means as one list);
        ``stable``, ``kappa`` (= ``margin``, the stability margin) and ``growth_rate``.
        """
        from ..model import clean

        rate = float(self.ntraj) * float(self.spec.t_end)
        counts = [{"channel": str(ch), "direction": str(d), "count": int(n), "rate": int(n) / rate}
                  for ch, d, n in zip(self.counts["channel"], self.counts["direction"], self.counts["count"],
                                      strict=True)]
        out = {
            "engine": self.engine, "ntraj": self.ntraj, "n_modes": self.K, "n_jumps": self.n_jumps,
            "wall_s": self.wall_s, "jumps_per_s": self.jumps_per_s, "sim_s": self.sim_s, "t_end": self.spec.t_end,
            "n_points": self.spec.n_points, "seed": self.spec.seed, "initial": self.options.get("initial"),
            "cutoff": self.spec.cutoff, "batch_size": self.batch_size, "n_batches": self.n_batches,
            "n_batches_resumed": self.n_batches_resumed, "n_stopped": self.n_stopped, "counts": counts,
            "counts_per_operator": [int(x) for x in self.op_counts],
            **self._final_population(),
        }
        from ..level_chain import LevelChain

        if isinstance(self.model, LevelChain):  # a ladder: trajectories stop at rupture, not at a population cap
            from ..ladder_time import rupture_summary

            p0 = np.asarray(self.spec.initial, dtype=float)
            n, s1, s2 = (float(x) for x in self.rupture_sums)
            out["rupture"] = rupture_summary((int(n), s1, s2), self.ntraj, self.model, p0, float(self.spec.t_end))
            if out.get("N_final_note"):
                out["N_final_note"] = (f"{self.n_stopped} of {self.ntraj} trajectories ruptured before t_end (see "
                                       "rupture): the mean level at t_end over the others is not reported")
        return clean(out)

    def _final_population(self) -> dict[str, Any]:
        """``N(t_end)`` over all trajectories, or ``None`` with the reason when some stopped at the cap.

        The mean over the trajectories still below the cap is biased low (the fastest-growing
        ones are missing), so it is not reported; unstable modes have no steady state and grow
        at rate ``-margin``.
        """
        m = self.kappa
        out: dict[str, Any] = {"stable": bool(m > 0) if np.isfinite(m) else None,
                               "kappa": float(m) if np.isfinite(m) else None,
                               "margin": float(m) if np.isfinite(m) else None,
                               "growth_rate": float(-m) if m <= 0 else None}
        mm, ms = self.mode_mean[:, -1], self.mode_sem[:, -1]
        full = self.mode_count[:, -1] == self.ntraj
        modes = [{"mode": k, "omega": float(self.omega[k]), "N_final": float(mm[k]) if full[k] else None,
                  "N_final_sem": float(ms[k]) if full[k] else None} for k in range(self.K)]
        out.update(modes=modes, N_final_mean=[e["N_final"] for e in modes])
        n_end = int(self.N_count[-1])
        if n_end == self.ntraj:
            return {**out, "N_final": float(self.N_mean[-1]), "N_final_sem": float(self.N_sem[-1])}
        note = (f"{self.ntraj - n_end} of {self.ntraj} trajectories stopped at the population cap before t_end: "
                "N(t_end) over the others would be biased low, not reported")
        if m <= 0:
            note += f"; unstable, N grows at rate -kappa = {-m:.6g}"
        return {**out, "N_final": None, "N_final_sem": None, "N_final_note": note}


@dataclass
class _Totals:
    counts: NDArray[np.int64]
    op_counts: NDArray[np.int64]
    N_sum: NDArray[np.float64]
    N_sumsq: NDArray[np.float64]
    N_count: NDArray[np.int64]
    mode_sum: NDArray[np.float64]
    mode_sumsq: NDArray[np.float64]
    mode_count: NDArray[np.int64]
    n_stopped: int = 0
    sim_s: float = 0.0
    rupture: NDArray[np.float64] = dataclasses.field(default_factory=lambda: np.zeros(3))

    @classmethod
    def zeros(cls, K: int, n_ops: int, npts: int) -> _Totals:
        return cls(np.zeros(N_LABELS, np.int64), np.zeros(n_ops, np.int64), np.zeros(npts), np.zeros(npts),
                   np.zeros(npts, np.int64), np.zeros((K, npts)), np.zeros((K, npts)), np.zeros((K, npts), np.int64))

    def add(self, stats: dict[str, Any]) -> None:
        self.counts += np.asarray(stats["counts"], dtype=np.int64)
        self.op_counts += np.asarray(stats.get("op_counts", stats["counts"]), dtype=np.int64)
        self.N_sum += np.asarray(stats["N_sum"], dtype=float)
        self.N_sumsq += np.asarray(stats["N_sumsq"], dtype=float)
        self.N_count += np.asarray(stats["N_count"], dtype=np.int64)
        # parts written before per-mode sums were kept are one-mode runs: the mode is the total
        self.mode_sum += np.asarray(stats.get("mode_sum", [stats["N_sum"]]), dtype=float)
        self.mode_sumsq += np.asarray(stats.get("mode_sumsq", [stats["N_sumsq"]]), dtype=float)
        self.mode_count += np.asarray(stats.get("mode_count", [stats["N_count"]]), dtype=np.int64)
        self.n_stopped += int(stats["n_stopped"])
        self.sim_s += float(stats["sim_s"])
        self.rupture += np.asarray(stats.get("rupture", (0.0, 0.0, 0.0)), dtype=float)  # ladders: (n, sum t, sum t^2)


def _simulate_batch(task) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """One batch, start to tables: ``task = (engine, model, spec, start, count)`` (picklable, for workers)."""
    from .table import empty_jumps

    name, model, spec, start, count = task
    eng = get_engine(name)
    plan = eng.prepare(model, spec)
    empty_jumps()  # compile the table kernel outside the timed region
    batch = eng.simulate(plan, start, count)
    t0 = time.perf_counter()
    tables = plan.frames(batch)
    return tables, plan.stats(batch, batch.sim_s + time.perf_counter() - t0)


def _resolve_model(model, config: Config | None, params):
    """``(jump process, config)`` of what :func:`run_trajectories` was given."""
    from ..covariance import ModeSystem
    from ..level_chain import LevelChain
    from ..system import System

    if isinstance(model, Config):
        config = model if config is None else config
        model = System(model)
    if isinstance(model, System):
        config = model.config if config is None else config
        try:
            return jump_process(model, params), config
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if params:
        raise ConfigError("params (bias at solve time) need a System or a config, not a bare "
                          f"{type(model).__name__}")
    if not isinstance(model, JumpModel | ModeSystem | LevelChain):
        raise ConfigError(f"run_trajectories takes a System, a Config, a JumpModel, a ModeSystem or a LevelChain, got "
                          f"{type(model).__name__}")
    return model, config


def run_trajectories(
    model, *, engine: str | None = None, ntraj: int | None = None, t_end: float | None = None,
    n_points: int | None = None, seed: int | None = None, initial: str | None = None, cutoff=None,
    batch_size: int | None = None, out_dir: str | Path | None = None, overwrite: bool = False,
    progress: bool | None = None, config: Config | None = None, command: str = "trajectories",
    scheduler: str | Any = "serial", store_grid: bool | None = None, params: dict[str, float] | None = None,
    tol: float = DEFAULT_TOL, max_liouville: int | None = None,
) -> TrajectoryResult:
    """Simulate ``ntraj`` quantum-jump trajectories of K >= 1 modes from t = 0 to ``t_end``.

    Parameters
    ----------
    model
        A :class:`sim.system.System` or a :class:`sim.config.Config` (any K; the run's defaults come
        from the config's ``[run]``), or the jump process itself: a :class:`sim.model.JumpModel`
        (one mode at one bias point, the fast path) or a :class:`sim.covariance.ModeSystem`.
    engine
        ``"ssa"`` (exact Gillespie; Fock-diagonal initial states; several modes only without cross
        terms), ``"mcsolve"`` or ``"qutip"`` (QuTiP 5 ``mcsolve``, any initial state and cross terms).
        Default ``run.engine``.
    ntraj, t_end, n_points
        Number of trajectories; N(t) is recorded on ``linspace(0, t_end, n_points)``.
    seed
        ``SeedSequence(seed)``; its child ``i`` drives trajectory ``i`` (tables do not
        depend on ``batch_size``; the streams of several modes: :mod:`.labelled`).
    initial
        ``vacuum``, ``steady``, ``thermal:N``, ``thermal:T=<temperature>``, ``fock:n`` or
        ``coherent:alpha`` (several modes: a product state, each mode at its own quantum for
        ``thermal:T=``; the Gaussian steady state for ``steady``).
    cutoff
        Fock states kept (one number, or one per mode for a labelled run); a trajectory stops on
        reaching ``n = cutoff - 1`` (see :mod:`sim.trajectories.engine`).
    batch_size
        Trajectories per batch (and per parquet part); default :func:`default_batch_size`.
    out_dir, overwrite
        Stream the tables to this run directory (:mod:`sim.io`: resumed if it holds
        the same run, refused if it holds another one unless ``overwrite``).
    progress
        tqdm progress bar on stderr (None: when stderr is a terminal).
    config, command
        Recorded in ``metadata.json`` (the config's ``[run]`` is replaced by the values used).
    store_grid
        Also write every trajectory's N on the grid (the ``trajectories`` table) for the one-mode ssa,
        which otherwise writes the ``initial`` table (``traj, n0``) from which
        :meth:`TrajectoryResult.trajectory_table` rebuilds it exactly; the others always write it.
    scheduler
        Where batches run: ``serial``, ``processes``, ``dask`` or ``tcp://HOST:PORT``
        (:func:`sim.parallel.run_tasks`); the tables are identical whichever runs them, since
        trajectory ``i`` always draws from child ``i`` of ``SeedSequence(seed)``.
    params
        Bias at solve time for a System (:data:`sim.system.SOLVE_TIME_KEYS`).
    tol, max_liouville
        Labelled runs: tail tolerance of the per-mode cutoffs and mcsolve's budget on ``dim^2``.

    Raises
    ------
    sim.config.ConfigError
        Bad input: unknown engine, a run the engine does not support (:data:`sim.registry.SUPPORT`:
        cross terms or a coherent state with ``ssa``), ``steady`` without a steady state, a refused
        run directory, no ``t_end``.
    """
    from ..initial import InitialSpec

    t_wall = time.perf_counter()
    model, config = _resolve_model(model, config, params)
    r = config.run if config is not None else _default_run()
    engine = r.engine if engine is None else engine
    eng = get_engine(engine)
    ntraj = r.ntraj if ntraj is None else ntraj
    t_end = r.t_end if t_end is None else t_end
    if t_end is None:
        raise ConfigError("run.t_end is not set: give it in [run] or with --t-end")
    n_points = r.n_points if n_points is None else n_points
    seed = r.seed if seed is None else seed
    initial = r.initial if initial is None else initial
    store_grid = r.store_grid if store_grid is None else store_grid
    if cutoff is None and config is not None and r.cutoff is not None:
        cutoff = r.cutoff
    if np.ndim(getattr(model, "kappa", 0.0)) != 0:
        raise ValueError(f"trajectories need a model at one bias point, got rates of shape {np.shape(model.kappa)}")
    if isinstance(ntraj, bool) or int(ntraj) < 1:
        raise ConfigError(f"ntraj must be >= 1, got {ntraj}")
    from ..level_chain import LevelChain

    K = 1 if isinstance(model, JumpModel) else model.K
    ladder = isinstance(model, LevelChain)
    try:
        kind = InitialSpec.parse(initial).kind
        from .labelled import has_cross_terms

        cross = False if isinstance(model, JumpModel | LevelChain) else has_cross_terms(model)
        why = eng.refusal(K, cross_terms=cross, initial=kind, ladder=ladder)
        if why is not None:
            raise ConfigError(why)
        init = resolve_initial(initial, model)
        cut = None if cutoff is None else (int(cutoff) if np.ndim(cutoff) == 0 else tuple(int(c) for c in cutoff))
        spec = RunSpec(float(t_end), int(n_points), int(seed), init, cut, bool(store_grid), float(tol), max_liouville)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from None
    ntraj = int(ntraj)
    from ..progress import slow_step
    from .table import empty_jumps

    with slow_step(f"{eng.name}: preparing the engine (numba compiles its kernels on the first run only)", progress):
        try:
            plan = eng.prepare(model, spec)
        except ValueError as e:  # budgets (check_dimension), rates: one line
            raise ConfigError(str(e)) from None
        empty_jumps()
    if plan.stable:  # refuse a run whose jump tables would not fit (sim.guards.MEMORY_BUDGET)
        from ..guards import ResourceError, check_memory

        n = ntraj * plan.jumps_per_traj
        try:
            check_memory(f"--ntraj x --t-end: about {n:.3g} expected jumps ({ntraj} trajectories x t_end "
                         f"{float(t_end):g})", JUMP_BYTES * n, "use fewer trajectories or a shorter t_end",
                         "memory or disk")
        except ResourceError as e:
            raise ConfigError(str(e)) from None
    if batch_size is None:
        cells = plan.grid_cells
        batch_size = default_batch_size(eng.name, ntraj, plan.jumps_per_traj, cells, cells > 0)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    n_batches = -(-ntraj // batch_size)
    run = {"engine": eng.name, "ntraj": ntraj, "t_end": spec.t_end, "n_points": spec.n_points, "seed": spec.seed,
           "initial": initial, "cutoff": None if cut is None else (cut if np.ndim(cut) == 0 else list(cut)),
           "store_grid": spec.store_grid}
    rd = None
    if out_dir is not None:
        from ..io import RunDirectory

        cfg_dict = None
        if config is not None:
            rcfg = dataclasses.replace(config.run, **{**run, "cutoff": config.run.cutoff if K > 1 else run["cutoff"]})
            cfg_dict = dataclasses.replace(config, run=rcfg).to_dict()
        identity = {"command": command, "config": cfg_dict, **plan.identity(), "run": run,
                    "layout": {"batch_size": batch_size}}
        rd = RunDirectory.open(out_dir, identity, overwrite=overwrite,
                               metadata={"command": command, "config": cfg_dict, "seed": spec.seed, "engine": eng.name,
                                         "n_modes": K})
    if rd is None:
        return _run_batches(None, eng, model, plan, ntraj, batch_size, n_batches, scheduler, progress, t_wall,
                            config, run)
    with rd:  # an exception marks the run failed and releases the lock
        return _run_batches(rd, eng, model, plan, ntraj, batch_size, n_batches, scheduler, progress, t_wall,
                            config, run)


def _default_run():
    from ..config import RunConfig

    return RunConfig()


def _run_batches(rd, eng: Engine, model, plan, ntraj: int, batch_size: int, n_batches: int, scheduler,
                 progress: bool | None, t_wall: float, config: Config | None, params: dict[str, Any]
                 ) -> TrajectoryResult:
    """Simulate the batches not finished in ``rd`` (all of them without one) and assemble the result."""
    spec = plan.spec
    totals = _Totals.zeros(plan.K, plan.n_operators, spec.n_points)
    frames: dict[int, dict[str, pd.DataFrame]] = {}
    n_resumed = 0
    todo = []
    names = plan.tables
    once = plan.run_tables()
    if rd is not None:
        for table in names:
            rd.expect(table, n_batches)
        for name, df in once.items():
            rd.expect(name, 1)
            if not rd.has_part(name, 0):
                rd.write_part(name, 0, df)
    for b in range(n_batches):
        start = b * batch_size
        count = min(batch_size, ntraj - start)
        if rd is not None and all(rd.has_part(t, b) for t in names):
            meta = rd.part_meta("stops", b) or rd.part_meta("jumps", b)  # (runs of earlier versions: on jumps)
            if meta.get("start") == start and meta.get("ntraj") == count:
                totals.add(meta)
                n_resumed += 1
                continue
        todo.append((eng.name, model, spec, start, count))
    from ..parallel import run_tasks

    done_traj = ntraj - sum(t[4] for t in todo)
    desc = f"{eng.name}" + (f" (K = {plan.K})" if plan.K > 1 else "") + (f" ({done_traj} done)" if done_traj else "")
    results = run_tasks(_simulate_batch, todo, scheduler, progress=progress, weights=[t[4] for t in todo], desc=desc)
    for i, (tables, stats) in results:
        b = todo[i][3] // batch_size
        batch = (todo[i][3], todo[i][4])
        totals.add(stats)
        if rd is not None:
            for name in names:  # the stops part carries the batch's statistics (what a resume adds up)
                if name != "jumps":
                    rd.write_part(name, b, tables[name], stats if name == "stops" else None, batch=batch)
            rd.write_part("jumps", b, tables["jumps"], batch=batch)  # last: the batch is complete when it is there
        else:
            frames[b] = tables
        del tables
    mem: dict[str, pd.DataFrame] = {}
    if rd is None:
        order = sorted(frames)
        mem = {k: pd.concat([frames[b][k] for b in order], ignore_index=True) if len(order) > 1 else frames[order[0]][k]
               for k in names}
        if "jumps" in mem:  # concatenating parts keeps the categories only when all agree: restore them
            mem["jumps"] = mem["jumps"].astype({"channel": CHANNEL_DTYPE, "direction": DIRECTION_DTYPE})
        mem.update(once)
    res = TrajectoryResult(
        eng.name, ntraj, spec, batch_size, counts_frame(totals.counts), int(totals.counts.sum()), totals.N_sum,
        totals.N_sumsq, totals.N_count, totals.n_stopped, totals.sim_s, time.perf_counter() - t_wall, n_batches,
        n_resumed, None if rd is None else rd.path, mem.get("jumps"), mem.get("trajectories"), mem.get("stops"),
        plan.margin, model=model, config=config, options=dict(params), initial=mem.get("initial"),
        operators=mem.get("operators"), tables=names, mode_sum=totals.mode_sum, mode_sumsq=totals.mode_sumsq,
        mode_count=totals.mode_count, op_counts=totals.op_counts, rupture_sums=totals.rupture)
    if rd is not None:
        rd.write_summary(res.summary())
        rd.finish(wall_s=res.wall_s)
    return res

