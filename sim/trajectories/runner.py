r"""Run many trajectories in batches with any engine; in memory or streamed to a run directory.

:func:`run_trajectories` is the one entry point. Trajectories ``0 .. ntraj-1`` are
cut into batches of ``batch_size``; each batch is simulated by the engine, turned
into tables (:mod:`.table`) and either kept in memory or written as one parquet part
per table (:mod:`sim.io`), so memory is bounded by one batch however large ``ntraj``
is. Running aggregates (jump counts per label, sums of ``N`` and ``N^2`` on the grid,
stops) are kept for the summary.

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
from ..model import JumpModel as RateModel
from ..registry import ENGINE_NAMES
from ..results import Result
from .engine import Engine, RunSpec, expected_jumps
from .initial import parse_initial
from .mcsolve import MCSOLVE
from .ssa import SSA
from .table import (
    DIRECTIONS,
    JUMP_CHANNELS,
    N_LABELS,
    Batch,
    counts_frame,
    empty_jumps,
    grid_frame,
    grid_table,
    initial_frame,
    jumps_frame,
    stops_frame,
)

__all__ = ["ENGINES", "TrajectoryResult", "run_trajectories", "trajectories_from_config", "get_engine",
           "default_batch_size"]

#: Engines by name; ``qutip`` is an alias of ``mcsolve``.
ENGINES: dict[str, Engine] = {name: {"ssa": SSA, "mcsolve": MCSOLVE}[target] for name, target in ENGINE_NAMES.items()}

#: Jumps (and grid cells) per batch aimed at by :func:`default_batch_size`: tables of ~25 MB, ~70 MB peak.
BATCH_CELLS = 1_000_000


def get_engine(name: str) -> Engine:
    """The engine registered as ``name`` (``ssa``, ``mcsolve`` or its alias ``qutip``)."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {name!r}") from None


def default_batch_size(engine: str, ntraj: int, jumps_per_traj: float, n_points: int, store_grid: bool = True) -> int:
    """Trajectories per batch: about :data:`BATCH_CELLS` jumps (and grid cells, if kept) for ssa; 200 for mcsolve."""
    if get_engine(engine).name == "mcsolve":
        return max(1, min(ntraj, 200))
    per = max(float(jumps_per_traj), float(n_points) if store_grid else 1.0, 1.0)
    return int(max(1, min(ntraj, BATCH_CELLS // per)))


@dataclass(frozen=True)
class TrajectoryResult(Result):
    """Outcome of :func:`run_trajectories`.

    Tables (``jumps``, ``trajectories``, ``stops``) are in memory when no ``out_dir``
    was given, otherwise ``None`` here and on disk: use :meth:`jump_table` and friends
    for either. Aggregates are always present.

    Attributes
    ----------
    t
        Time grid (1/energy).
    counts
        Jumps per ``(channel, direction)`` over all trajectories (10 rows).
    N_sum, N_sumsq, N_count
        Sums of ``N`` and ``N^2`` over trajectories on the grid and how many were not
        stopped there (NaN-free).
    sim_s, wall_s
        Seconds simulating (engine plus table building, all batches ever run for this
        directory) and seconds of this call.
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
    model: RateModel | None = dataclasses.field(default=None, kw_only=True)
    initial: pd.DataFrame | None = dataclasses.field(default=None, kw_only=True)
    tables: tuple[str, ...] = dataclasses.field(default=("jumps", "trajectories", "stops"), kw_only=True)

    @property
    def route(self) -> str:  # type: ignore[override]
        return self.engine

    def to_frame(self) -> pd.DataFrame:
        """The jump table (:meth:`jump_table`)."""
        return self.jump_table()

    @property
    def t(self) -> NDArray[np.float64]:
        return self.spec.t_grid

    @property
    def jumps_per_s(self) -> float:
        return self.n_jumps / self.sim_s if self.sim_s > 0 else float("nan")

    @property
    def N_mean(self) -> NDArray[np.float64]:
        """Mean population on the grid over the trajectories not stopped there."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.N_sum / self.N_count

    @property
    def N_sem(self) -> NDArray[np.float64]:
        """Standard error of :attr:`N_mean`."""
        n = self.N_count.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (self.N_sumsq - self.N_sum**2 / n) / (n - 1)
            return np.sqrt(np.maximum(var, 0.0) / n)

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
        """``N`` per trajectory on the grid: columns traj, t, N.

        Read when the run kept it (mcsolve, or ssa with ``store_grid``); otherwise rebuilt
        exactly from the ``initial`` table and the jumps (:func:`.table.grid_from_jumps`).
        """
        if "trajectories" in self.tables:
            return self._table("trajectories")
        return grid_table(self.jump_table(), self.initial_table(), self.stop_table(), self.spec.t_grid)

    def initial_table(self) -> pd.DataFrame:
        """Initial Fock population per trajectory: traj, n0 (ssa runs)."""
        if "initial" not in self.tables:
            raise ValueError(f"a {self.engine} run has no initial table")
        return self._table("initial")

    def stop_table(self) -> pd.DataFrame:
        """Trajectories stopped at the population cap: traj, t_stop, n."""
        return self._table("stops")

    def summary(self) -> dict[str, Any]:
        """The record written to ``summary.json``."""
        c = {(ch, d): n for ch, d, n in zip(self.counts["channel"], self.counts["direction"], self.counts["count"],
                                           strict=True)}
        return {
            "engine": self.engine, "ntraj": self.ntraj, "n_jumps": self.n_jumps, "wall_s": self.wall_s,
            "jumps_per_s": self.jumps_per_s, "sim_s": self.sim_s, "t_end": self.spec.t_end,
            "n_points": self.spec.n_points, "seed": self.spec.seed, "cutoff": self.spec.cutoff,
            "batch_size": self.batch_size, "n_batches": self.n_batches, "n_batches_resumed": self.n_batches_resumed,
            "n_stopped": self.n_stopped,
            "counts": {ch: {d: int(c[(ch, d)]) for d in DIRECTIONS} for ch in JUMP_CHANNELS},
            **self._final_population(),
        }

    def _final_population(self) -> dict[str, Any]:
        """``N(t_end)`` over all trajectories, or ``None`` with the reason when some stopped at the cap.

        The mean over the trajectories still below the cap is biased low (the fastest-growing
        ones are missing), so it is not reported; an unstable mode has no steady state and
        grows at rate ``-kappa``.
        """
        out: dict[str, Any] = {"stable": bool(self.kappa > 0) if np.isfinite(self.kappa) else None,
                               "kappa": float(self.kappa) if np.isfinite(self.kappa) else None,
                               "growth_rate": float(-self.kappa) if self.kappa <= 0 else None}
        n_end = int(self.N_count[-1])
        if n_end == self.ntraj:
            return {**out, "N_final": float(self.N_mean[-1]), "N_final_sem": float(self.N_sem[-1])}
        note = (f"{self.ntraj - n_end} of {self.ntraj} trajectories stopped at the population cap before t_end: "
                "N(t_end) over the others would be biased low, not reported")
        if self.kappa <= 0:
            note += f"; unstable mode, N grows at rate -kappa = {-self.kappa:.6g}"
        return {**out, "N_final": None, "N_final_sem": None, "N_final_note": note}


@dataclass
class _Totals:
    counts: NDArray[np.int64]
    N_sum: NDArray[np.float64]
    N_sumsq: NDArray[np.float64]
    N_count: NDArray[np.int64]
    n_stopped: int = 0
    sim_s: float = 0.0

    def add(self, stats: dict[str, Any]) -> None:
        self.counts += np.asarray(stats["counts"], dtype=np.int64)
        self.N_sum += np.asarray(stats["N_sum"], dtype=float)
        self.N_sumsq += np.asarray(stats["N_sumsq"], dtype=float)
        self.N_count += np.asarray(stats["N_count"], dtype=np.int64)
        self.n_stopped += int(stats["n_stopped"])
        self.sim_s += float(stats["sim_s"])


def _stats(batch: Batch, sim_s: float) -> dict[str, Any]:
    s1, s2, cnt = batch.grid_sums()
    return {"start": batch.start, "ntraj": batch.ntraj, "counts": batch.counts().tolist(),
            "N_sum": s1.tolist(), "N_sumsq": s2.tolist(), "N_count": cnt.tolist(),
            "n_stopped": int(batch.stop_traj.size), "sim_s": sim_s}


def _simulate_batch(task) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """One batch, start to tables: ``task = (engine, model, spec, start, count)`` (picklable, for workers)."""
    name, model, spec, start, count = task
    eng = get_engine(name)
    plan = eng.prepare(model, spec)
    empty_jumps()  # compile the table kernel outside the timed region
    batch = eng.simulate(plan, start, count)
    t0 = time.perf_counter()
    tables = {"jumps": jumps_frame(batch.traj, batch.t, batch.label, float(model.omega)),
              "stops": stops_frame(batch.stop_traj, batch.stop_t, batch.stop_n)}
    names = eng.tables(spec)
    if "initial" in names:
        tables["initial"] = initial_frame(start, batch.n0)
    if "trajectories" in names:
        tables["trajectories"] = grid_frame(start, batch.t_grid, batch.N)
    return tables, _stats(batch, batch.sim_s + time.perf_counter() - t0)


def run_trajectories(
    model: RateModel, *, engine: str = "ssa", ntraj: int, t_end: float, n_points: int = 201, seed: int = 0,
    initial: str = "vacuum", cutoff: int | None = None, batch_size: int | None = None,
    out_dir: str | Path | None = None, overwrite: bool = False, progress: bool | None = None,
    config: Config | None = None, command: str = "trajectories", scheduler: str | Any = "serial",
    store_grid: bool = False,
) -> TrajectoryResult:
    """Simulate ``ntraj`` quantum-jump trajectories of the mode from t = 0 to ``t_end``.

    Parameters
    ----------
    model
        Rates at one bias point (:func:`sim.rate_equation.rate_model`).
    engine
        ``"ssa"`` (exact Gillespie, Fock-diagonal initial states only), ``"mcsolve"``
        or ``"qutip"`` (QuTiP 5 ``mcsolve``).
    ntraj, t_end, n_points
        Number of trajectories; N(t) is recorded on ``linspace(0, t_end, n_points)``.
    seed
        ``SeedSequence(seed)``; its child ``i`` drives trajectory ``i`` (tables do not
        depend on ``batch_size``).
    initial
        ``vacuum``, ``steady``, ``thermal:N``, ``fock:n`` or ``coherent:alpha``.
    cutoff
        Fock states kept; a trajectory stops on reaching ``n = cutoff - 1`` (see
        :mod:`sim.trajectories.engine`).
    batch_size
        Trajectories per batch (and per parquet part); default
        :func:`default_batch_size`.
    out_dir, overwrite
        Stream the tables to this run directory (:mod:`sim.io`: resumed if it holds
        the same run, refused if it holds another one unless ``overwrite``).
    progress
        tqdm progress bar on stderr (None: when stderr is a terminal).
    config, command
        Recorded in ``metadata.json`` (the config's ``[run]`` is replaced by the values used).
    store_grid
        Also write every trajectory's N on the grid (the ``trajectories`` table) for the ssa
        engine, which otherwise writes the ``initial`` table (``traj, n0``) from which
        :meth:`TrajectoryResult.trajectory_table` rebuilds it exactly; mcsolve always writes it.
    scheduler
        Where batches run: ``serial``, ``processes``, ``dask`` or ``tcp://HOST:PORT``
        (:func:`sim.parallel.run_tasks`); the tables are identical whichever runs them, since
        trajectory ``i`` always draws from child ``i`` of ``SeedSequence(seed)``.

    Raises
    ------
    sim.config.ConfigError
        Bad input: unknown engine, an initial state the engine cannot take (a coherent
        state with ``ssa``), a refused run directory.
    """
    t_wall = time.perf_counter()
    eng = get_engine(engine)
    if np.ndim(model.kappa) != 0:
        raise ValueError(f"trajectories need a model at one bias point, got rates of shape {np.shape(model.kappa)}")
    try:
        init = parse_initial(initial, model)
        spec = RunSpec(float(t_end), int(n_points), int(seed), init, None if cutoff is None else int(cutoff),
                       bool(store_grid))
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if int(ntraj) < 1:
        raise ConfigError(f"ntraj must be >= 1, got {ntraj}")
    if eng.diagonal_only and not init.diagonal:
        raise ConfigError(f"the {eng.name} engine needs a Fock-diagonal initial state, got run.initial = {initial!r}: "
                          "a coherent state has coherences between Fock states; use the mcsolve engine "
                          "(--engine mcsolve)")
    ntraj = int(ntraj)
    if batch_size is None:
        batch_size = default_batch_size(eng.name, ntraj, expected_jumps(model, spec, spec.cap(model)), spec.n_points,
                                        "trajectories" in eng.tables(spec))
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    n_batches = -(-ntraj // batch_size)
    params = {"engine": eng.name, "ntraj": ntraj, "t_end": spec.t_end, "n_points": spec.n_points, "seed": spec.seed,
              "initial": initial, "cutoff": spec.cutoff, "store_grid": spec.store_grid}
    rd = None
    if out_dir is not None:
        from ..io import RunDirectory

        cfg_dict = None
        if config is not None:
            run = dataclasses.replace(config.run, **params)
            cfg_dict = dataclasses.replace(config, run=run).to_dict()
        identity = {"command": command, "config": cfg_dict, "model": model.record(), "run": params,
                    "layout": {"batch_size": batch_size}}
        rd = RunDirectory.open(out_dir, identity, overwrite=overwrite,
                               metadata={"command": command, "config": cfg_dict, "seed": spec.seed, "engine": eng.name})
    if rd is None:
        return _run_batches(None, eng, model, spec, ntraj, batch_size, n_batches, scheduler, progress, t_wall,
                            config, params)
    with rd:  # an exception marks the run failed and releases the lock
        return _run_batches(rd, eng, model, spec, ntraj, batch_size, n_batches, scheduler, progress, t_wall,
                            config, params)


def _run_batches(rd, eng: Engine, model: RateModel, spec: RunSpec, ntraj: int, batch_size: int, n_batches: int,
                 scheduler, progress: bool, t_wall: float, config: Config | None, params: dict[str, Any]
                 ) -> TrajectoryResult:
    """Simulate the batches not finished in ``rd`` (all of them without one) and assemble the result."""
    totals = _Totals(np.zeros(N_LABELS, np.int64), np.zeros(spec.n_points), np.zeros(spec.n_points),
                     np.zeros(spec.n_points, np.int64))
    frames: dict[int, dict[str, pd.DataFrame]] = {}
    n_resumed = 0
    todo = []
    names = eng.tables(spec)
    if rd is not None:
        for table in names:
            rd.expect(table, n_batches)
    for b in range(n_batches):
        start = b * batch_size
        count = min(batch_size, ntraj - start)
        if rd is not None and all(rd.has_part(t, b) for t in names):
            meta = rd.part_meta("jumps", b)
            if meta.get("start") == start and meta.get("ntraj") == count:
                totals.add(meta)
                n_resumed += 1
                continue
        todo.append((eng.name, model, spec, start, count))
    from ..parallel import run_tasks
    from ..progress import slow_step

    if todo:  # compile (numba caches it on disk for the batches and later runs), saying so if it is slow
        with slow_step(f"{eng.name}: preparing the engine (numba compiles its kernels on the first run only)", progress):
            eng.prepare(model, spec)
            empty_jumps()
    done_traj = ntraj - sum(t[4] for t in todo)
    results = run_tasks(_simulate_batch, todo, scheduler, progress=progress, weights=[t[4] for t in todo],
                        desc=f"{eng.name} ({done_traj} done)" if done_traj else eng.name)
    for i, (tables, stats) in results:
        b = todo[i][3] // batch_size
        batch = (todo[i][3], todo[i][4])
        totals.add(stats)
        if rd is not None:
            for name in names:
                if name != "jumps":
                    rd.write_part(name, b, tables[name], batch=batch)
            rd.write_part("jumps", b, tables["jumps"], stats, batch=batch)  # last: carries the batch's statistics
        else:
            frames[b] = tables
        del tables
    mem = {}
    if rd is None:
        order = sorted(frames)
        mem = {k: pd.concat([frames[b][k] for b in order], ignore_index=True) if len(order) > 1 else frames[order[0]][k]
               for k in names}
    res = TrajectoryResult(
        eng.name, ntraj, spec, batch_size, counts_frame(totals.counts), int(totals.counts.sum()), totals.N_sum,
        totals.N_sumsq, totals.N_count, totals.n_stopped, totals.sim_s, time.perf_counter() - t_wall, n_batches,
        n_resumed, None if rd is None else rd.path, mem.get("jumps"), mem.get("trajectories"), mem.get("stops"),
        float(model.kappa), model=model, config=config, options=dict(params), initial=mem.get("initial"), tables=names)
    if rd is not None:
        rd.write_summary(res.summary())
        rd.finish(wall_s=res.wall_s)
    return res


def trajectories_from_config(config: Config, *, out_dir: str | Path | None = None, overwrite: bool = False,
                             batch_size: int | None = None, progress: bool | None = None, scheduler: str | Any = "serial"
                             ) -> TrajectoryResult:
    """:func:`run_trajectories` with the model and the ``[run]`` keys of a config.

    Raises
    ------
    sim.config.ConfigError
        ``run.t_end`` is not set.
    """
    from ..model import rate_model

    r = config.run
    if r.t_end is None:
        raise ConfigError("run.t_end is not set: give it in [run] or with --t-end")
    return run_trajectories(
        rate_model(config), engine=r.engine, ntraj=r.ntraj, t_end=r.t_end, n_points=r.n_points, seed=r.seed,
        initial=r.initial, cutoff=r.cutoff, batch_size=batch_size, out_dir=out_dir, overwrite=overwrite,
        progress=progress, config=config, scheduler=scheduler, store_grid=r.store_grid)
