r"""Parameter sweeps: grids of config values -> one tidy table (docs/tutorial.md).

A sweep evaluates a *point function* (by default :class:`SteadyPoint`, the rate-equation
steady state of docs/theory.md, optionally with the Landauer-like fluxes) on every
point of a :class:`Grid` of numeric config keys, and returns one :class:`pandas.DataFrame`
with one row per grid point: the parameter columns first, named by their config key
(``bias.V``), then the result columns named as in ``ehp steady --json`` (``kappa``,
``stable``, ``N``, ``J``, ``Ie``, ...; per channel ``LR.emission``, ``LR.J``, ...;
with Landauer ``landauer.J``, ``landauer.Ie``, ...). Units are the config's
(hbar = k_B = e = 1): rates and energy currents in energy units, ``Ie`` in particles per
unit time.

Grid syntax (one ``--grid`` per key; several keys form an outer product, the last varying
fastest, as ``itertools.product``)::

    section.key=start:stop:num     numpy.linspace(start, stop, num), end included
    section.key=[a, b, c]          an explicit list (TOML values)
    section.key=a                  a single value

Points are evaluated in *chunks* of consecutive grid points; a chunk is the unit of work
given to a scheduler and the unit written to disk (one parquet part,
``DIR/sweep.parquet/part-XXXXX.parquet`` with ``XXXXX`` the chunk index, see
:mod:`sim.io`). The chunk size depends only on the number of points (or is given), so a
killed sweep rerun into the same directory with any scheduler recomputes only the chunks
that have no part yet, and the table read back is the same whichever scheduler wrote it.

Schedulers (:class:`Scheduler`): ``serial`` (in this process), ``processes``
(:class:`concurrent.futures.ProcessPoolExecutor`, spawn start method), ``dask`` (a
:class:`distributed.LocalCluster` with ``dashboard_address=None``, closed at the end) or
the address of a running Dask scheduler (``tcp://HOST:PORT``). :func:`run_tasks` is the
scheduler-independent core (map a picklable function over tasks, yield results as they
finish, tqdm progress on stderr); other engines (trajectories) reuse it.

``processes`` uses the *spawn* start method (safe in a process with threads, and what
macOS, Windows and Python >= 3.14 do anyway): a script that uses it must guard its entry
point with ``if __name__ == "__main__":``, and code piped to ``python -`` cannot use it.
"""

from __future__ import annotations

import itertools
import math
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import guards
from .config import Config, ConfigError
from .io import RunDirectory, read_table
from .parallel import Scheduler, available_workers, run_tasks
from .system import flatten_record, solve_time_keys, system

__all__ = [
    "GridAxis", "Grid", "Scheduler", "SteadyPoint", "SweepJob", "run_tasks", "evaluate_chunk", "default_chunk_size",
    "run_sweeps", "sweep", "read_sweep", "flatten_record", "available_workers",
]

MAX_CHUNK = 1000
"""Largest automatic chunk (points per part)."""
TARGET_CHUNKS = 64
"""The automatic chunk size aims at this many chunks per sweep (progress and resume granularity)."""


# --------------------------------------------------------------------------- grids

def _one_line(what: str, text: str) -> None:
    """Refuse a newline or other control character (TOML would read what follows as more keys)."""
    bad = sorted({c for c in text if ord(c) < 32 or ord(c) == 127} - {"\t"})
    if bad:
        raise ConfigError(f"{what} {text!r}: must be on one line (no newline or other control character: found "
                          f"{', '.join(repr(c) for c in bad)})")


def _toml_value(key: str, raw: str) -> Any:
    _one_line(f"--grid {key}", raw)
    try:
        return tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        raise ConfigError(f"--grid {key}: cannot read {raw.strip()!r} as a number; expected start:stop:num, "
                          "[a, b, c] or a number") from None


POINT_BYTES = 2048
"""Memory of one sweep point (its table row and record, about 60 columns), for :func:`sim.guards.check_memory`."""


def _check_points(what: str, n: int) -> None:
    """Refuse a grid whose table would exceed :data:`sim.guards.MEMORY_BUDGET` (before it is built)."""
    try:
        guards.check_memory(f"{what} = {n} points", float(n) * POINT_BYTES,
                            "use a coarser grid, or several sweeps over parts of it")
    except guards.ResourceError as e:
        raise ConfigError(str(e)) from None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True)
class GridAxis:
    """One swept config key and its values.

    Attributes
    ----------
    key
        ``section.key`` of a numeric config value (``bias.V``, ``phonon_bath.gamma``, ...).
    values
        The values in sweep order (config units).
    spec
        The text the axis was parsed from (``0:2:21``, ``[0.1, 0.2]``), kept for metadata.
    """

    key: str
    values: tuple[float | int, ...]
    spec: str = ""
    linspace: tuple[float, float, int] | None = None

    def __post_init__(self) -> None:
        if not self.values:
            raise ConfigError(f"--grid {self.key}: needs at least one value")
        for v in self.values:
            if not _is_number(v) or not math.isfinite(v):
                raise ConfigError(f"--grid {self.key}: values must be finite numbers, got {v!r}")

    @classmethod
    def parse(cls, text: str) -> GridAxis:
        """``section.key=start:stop:num``, ``section.key=[a, b, c]`` or ``section.key=a``."""
        _one_line("--grid", text)
        key, eq, raw = text.partition("=")
        key = key.strip()
        if not eq or not key or "." not in key:
            raise ConfigError(f"--grid expects section.key=start:stop:num or section.key=[a,b,c], got {text!r}")
        raw = raw.strip()
        if raw.count(":") == 2 and not raw.startswith("["):
            a, b, n = (_toml_value(key, p) for p in raw.split(":"))
            if not (_is_number(a) and _is_number(b)):
                raise ConfigError(f"--grid {key}: start and stop must be numbers, got {raw!r}")
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError(f"--grid {key}: num must be an integer >= 1, got {raw!r}")
            _check_points(f"--grid {key}={raw}", n)
            return cls(key, tuple(float(x) for x in np.linspace(a, b, n)), raw, (float(a), float(b), n))
        v = _toml_value(key, raw)
        values = tuple(v) if isinstance(v, list) else (v,)
        return cls(key, values, raw)

    @classmethod
    def make(cls, key: str, spec: str | Sequence[float]) -> GridAxis:
        """An axis from a key and either a spec string or a sequence of numbers."""
        if isinstance(spec, str):
            return cls.parse(f"{key}={spec}")
        return cls(key, tuple(spec), repr(list(spec)))

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "spec": self.spec, "values": list(self.values)}

    def identity(self) -> str | list[float | int]:
        """Compact, canonical form: ``start:stop:num`` for a linspace, else the list of values."""
        if self.linspace is not None:
            a, b, n = self.linspace
            return f"{a!r}:{b!r}:{n}"
        return list(self.values)


@dataclass(frozen=True)
class Grid:
    """Outer product of :class:`GridAxis` objects, the last axis varying fastest."""

    axes: tuple[GridAxis, ...]

    def __post_init__(self) -> None:
        keys = [a.key for a in self.axes]
        if not keys:
            raise ConfigError("a sweep needs at least one --grid section.key=...")
        if len(set(keys)) != len(keys):
            raise ConfigError(f"--grid keys must differ, got {keys}")
        forms = {"V/mu0": {"bias.V", "bias.mu0"} & set(keys), "mu_L/mu_R": {"bias.mu_L", "bias.mu_R"} & set(keys)}
        if all(forms.values()):
            raise ConfigError(f"--grid cannot mix bias.V/bias.mu0 with bias.mu_L/bias.mu_R, got {keys}")
        _check_points(f"--grid {' x '.join(f'{a.key}({len(a.values)})' for a in self.axes)}",
                      math.prod(len(a.values) for a in self.axes))

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Grid:
        return cls(tuple(GridAxis.parse(s) for s in specs))

    @classmethod
    def from_mapping(cls, mapping: dict[str, str | Sequence[float]]) -> Grid:
        """``{"bias.V": "0:2:21", "bias.T_e": [0.1, 0.2]}`` (insertion order = axis order)."""
        return cls(tuple(GridAxis.make(k, v) for k, v in mapping.items()))

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(a.key for a in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    def __len__(self) -> int:
        return math.prod(self.shape)

    def points(self) -> list[tuple[float | int, ...]]:
        """All points, in sweep order (the last axis fastest)."""
        return list(itertools.product(*(a.values for a in self.axes)))

    def frame(self) -> pd.DataFrame:
        """The parameter columns of the sweep table."""
        return pd.DataFrame(self.points(), columns=list(self.keys))

    def to_dict(self) -> list[dict[str, Any]]:
        return [a.to_dict() for a in self.axes]

    def validate(self, config: Config) -> Grid:
        """Check every key is a numeric key of ``config`` and the extreme values are accepted.

        Integer keys (``run.ntraj``) get integer values. Returns the (possibly converted) grid.

        Raises
        ------
        ConfigError
            Unknown or non-numeric key, or a value the config rejects (naming key and value).
        """
        axes = []
        for a in self.axes:
            current = config.get(a.key)
            if not _is_number(current):
                raise ConfigError(f"--grid {a.key} must name a numeric config key, got {a.key} = {current!r}")
            values = a.values
            if isinstance(current, int):
                if not all(float(v).is_integer() for v in values):
                    raise ConfigError(f"--grid {a.key} is an integer key, got values {list(values)}")
                values = tuple(int(v) for v in values)
            else:
                values = tuple(float(v) for v in values)
            for v in {min(values), max(values), values[0], values[-1]}:
                config.with_value(a.key, v)
            axes.append(GridAxis(a.key, values, a.spec, a.linspace))
        return Grid(tuple(axes))


def study_values(key: str, spec: Any) -> tuple[float, ...]:
    """``study.KEY`` of a run config: a list of numbers or a ``start:stop:num`` string (numpy.linspace) -> floats."""
    if isinstance(spec, str):
        return tuple(float(v) for v in GridAxis.parse(f"study.{key}={spec}").values)
    if isinstance(spec, list) and spec and all(isinstance(v, int | float) and not isinstance(v, bool) for v in spec):
        return tuple(float(v) for v in spec)
    raise ConfigError(f"study.{key} must be a list of numbers or 'start:stop:num', got {spec!r}")


def apply_point(config: Config, keys: Sequence[str], values: Sequence[Any]) -> Config:
    """``config`` with each ``keys[i]`` set to ``values[i]`` (validated)."""
    for k, v in zip(keys, values, strict=True):
        config = config.with_value(k, v.item() if isinstance(v, np.generic) else v)
    return config


# --------------------------------------------------------------------------- point functions

@dataclass(frozen=True)
class SteadyPoint:
    r"""Point function: the rate-equation steady state (and optionally Eqs. 13-14).

    ``SteadyPoint()(config)`` returns the flattened ``ehp steady --json`` record:
    ``gamma_e, emission_total, kappa`` (= Gamma_e + gamma_ph, energy units),
    ``kappa_over_omega, stable, growth_rate, N, T_eff, mu_eff, J, J_ph, Ie, eta, n_ph`` and
    ``{LL,RR,LR,RL}.{mu, emission, absorption, damping, J, Ie}``; steady-state numbers are
    NaN where ``kappa <= 0``. With ``landauer="lowest"`` or ``"full"`` it adds
    ``landauer.J, landauer.Ie, landauer.J_err, landauer.Ie_err, landauer.valid`` from
    :func:`sim.landauer.landauer` (~0.1 s per point).

    Several modes (``config.n_modes > 1``): the covariance route
    (:meth:`sim.covariance.ModesSteadyState.to_record`): ``stable, growth_rate`` (``-2 min Re
    eig(Y)``), ``margin`` (``2 min Re eig(Y)``, the one-mode ``kappa``), totals ``N, J, J_ph,
    Ie``, per mode ``N_k, T_eff_k, mu_eff_k`` and ``{LL,RR,LR,RL}.{J, Ie}``; Landauer refused.
    """

    landauer: str | None = None

    def __post_init__(self) -> None:
        if self.landauer not in (None, "lowest", "full"):
            raise ConfigError(f"--landauer must be lowest or full, got {self.landauer!r}")

    def __call__(self, config: Config) -> dict[str, Any]:
        from .landauer import landauer

        rec = system(config).steady_state().to_record()
        if self.landauer:
            la = landauer(config, self.landauer).to_dict()
            for k in ("J", "Ie", "J_err", "Ie_err", "valid"):
                v = la[k]
                rec[f"landauer.{k}"] = np.nan if v is None else v
        return rec

    def batch(self, config: Config, keys: Sequence[str], points: Sequence[tuple[Any, ...]]
              ) -> dict[str, Any] | list[dict[str, Any]] | None:
        """The results of ``points`` on the system built once (parameters at solve time), or None.

        None (evaluate point by point) unless every key is a bias parameter of
        :data:`sim.system.SOLVE_TIME_KEYS` and no Landauer level is asked for. The columns (one
        mode, the chunk in one vectorised call) or records equal ``self(apply_point(config, keys, p))``
        point by point (:meth:`sim.system.System.steady_columns`).
        """
        if self.landauer or not solve_time_keys(keys) or not points:
            return None
        params = {k: np.array([p[i] for p in points], dtype=float) for i, k in enumerate(keys)}
        return system(config).steady_columns(params)

    def describe(self) -> dict[str, Any]:
        """What the point function computes (part of a sweep's identity)."""
        return {"kind": "steady", "landauer": self.landauer}


def describe_function(fn: Callable[[Config], dict[str, Any]]) -> dict[str, Any]:
    """Identity of a point function: its ``describe()`` or its qualified name."""
    if hasattr(fn, "describe"):
        return dict(fn.describe())
    return {"kind": "function", "name": f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"}


def _column(values: list[Any]) -> np.ndarray | list[Any]:
    if all(isinstance(v, bool | np.bool_) for v in values):
        return np.array(values, dtype=bool)
    if all(v is None or (_is_number(v) or isinstance(v, np.number)) for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype=float)
    return values


def evaluate_chunk(task: tuple[Config, tuple[str, ...], list[tuple[Any, ...]], Callable[[Config], dict]]) -> pd.DataFrame:
    """Evaluate one chunk ``(config, keys, points, fn)``: parameter columns, then ``fn``'s results.

    Module-level and picklable, so any scheduler can run it.
    """
    config, keys, points, fn = task
    batch = getattr(fn, "batch", None)
    records = batch(config, keys, points) if batch is not None else None
    if records is None:
        records = [fn(apply_point(config, keys, p)) for p in points]
    if isinstance(records, dict):  # columns of the whole chunk
        results = records
    else:
        results = {name: _column([r.get(name) for r in records]) for name in dict.fromkeys(k for r in records for k in r)}
    cols: dict[str, Any] = {k: np.array([p[i] for p in points]) for i, k in enumerate(keys)}
    for name, col in results.items():
        if name in cols:
            raise ValueError(f"point function result {name!r} clashes with a parameter column")
        cols[name] = col
    return pd.DataFrame(cols)


# --------------------------------------------------------------------------- sweeps

def default_chunk_size(n_points: int) -> int:
    """Points per chunk: about :data:`TARGET_CHUNKS` chunks, at most :data:`MAX_CHUNK` points each.

    Depends only on ``n_points``, so a resumed sweep cuts its chunks exactly as before.
    """
    return max(1, min(MAX_CHUNK, math.ceil(n_points / TARGET_CHUNKS)))


@dataclass(frozen=True)
class SweepJob:
    """One table of a run directory: ``fn`` on every point of ``grid`` around ``config``.

    Attributes
    ----------
    table
        Name of the table (``sweep`` -> ``DIR/sweep.parquet/``).
    config
        The base config; each point sets the grid's keys on it.
    grid
        The points.
    fn
        Point function ``config -> dict`` (picklable for ``processes`` and ``dask``).
    chunk_size
        Points per chunk (= per parquet part); default :func:`default_chunk_size`.
    """

    table: str
    config: Config
    grid: Grid
    fn: Callable[[Config], dict[str, Any]] = field(default_factory=SteadyPoint)
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", self.grid.validate(self.config))
        cs = self.chunk_size if self.chunk_size is not None else default_chunk_size(len(self.grid))
        if not isinstance(cs, int) or isinstance(cs, bool) or cs < 1:
            raise ConfigError(f"--chunk-size must be an integer >= 1, got {cs!r}")
        try:  # a chunk's points are held in memory together
            guards.check_memory(f"--chunk-size {cs}", float(cs) * POINT_BYTES, "use a smaller chunk size")
        except guards.ResourceError as e:
            raise ConfigError(str(e)) from None
        object.__setattr__(self, "chunk_size", cs)

    def chunks(self) -> list[list[tuple[Any, ...]]]:
        pts = self.grid.points()
        cs = int(self.chunk_size or 1)
        return [pts[i:i + cs] for i in range(0, len(pts), cs)]

    def identity(self) -> dict[str, Any]:
        """What makes two sweeps the same (stored in ``metadata.json``; resume needs equality)."""
        return {"config": self.config.to_dict(), "grid": {a.key: a.identity() for a in self.grid.axes},
                "axes": list(self.grid.keys), "compute": describe_function(self.fn), "chunk_size": self.chunk_size}


def run_sweeps(
    jobs: Sequence[SweepJob],
    rundir: RunDirectory | None = None,
    scheduler: str | Scheduler = "serial",
    *,
    progress: bool | None = None,
    desc: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Run several sweeps on one scheduler (one pool for all), optionally into a run directory.

    With ``rundir``, each finished chunk is written at once as part ``part-XXXXX`` of its
    job's table and recorded in its manifest; chunks already recorded (and verified when the
    directory was opened) are not recomputed (resume).

    Returns
    -------
    dict
        ``{table: DataFrame}``, rows in grid order (the last axis fastest).
    """
    tasks, where, weights = [], [], []
    results: dict[str, dict[int, pd.DataFrame]] = {j.table: {} for j in jobs}
    if len(results) != len(jobs):
        raise ValueError(f"table names must differ, got {[j.table for j in jobs]}")
    for job in jobs:
        chunks = job.chunks()
        if rundir is not None:
            rundir.expect(job.table, len(chunks))
        start = 0
        for ci, pts in enumerate(chunks):
            start, first = start + len(pts), start
            if rundir is not None and rundir.has_part(job.table, ci):
                continue
            tasks.append((job.config, job.grid.keys, pts, job.fn))
            where.append((job.table, ci, (first, len(pts))))
            weights.append(len(pts))
    for i, df in run_tasks(evaluate_chunk, tasks, scheduler, progress=progress, weights=weights, desc=desc):
        table, ci, batch = where[i]
        if rundir is not None:
            rundir.write_part(table, ci, df, batch=batch)
        else:
            results[table][ci] = df
    out = {}
    for job in jobs:
        if rundir is not None:
            out[job.table] = rundir.read_table(job.table)
        else:
            frames = [results[job.table][i] for i in sorted(results[job.table])]
            out[job.table] = pd.concat(frames, ignore_index=True) if frames else job.grid.frame()
    return out


def sweep(
    config: Config,
    grid: Grid | Sequence[str] | dict[str, str | Sequence[float]],
    *,
    fn: Callable[[Config], dict[str, Any]] | None = None,
    landauer: str | None = None,
    scheduler: str | Scheduler = "serial",
    workers: int | None = None,
    chunk_size: int | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Sweep ``config`` over ``grid`` and return the tidy table (optionally saved and resumable).

    Parameters
    ----------
    config
        Base config.
    grid
        A :class:`Grid`, a list of ``--grid`` strings, or ``{"section.key": spec}``.
    fn
        Point function (default :class:`SteadyPoint` with ``landauer``).
    landauer
        ``"lowest"`` or ``"full"`` adds the Landauer columns (with the default ``fn``).
    scheduler, workers
        See :class:`Scheduler`.
    chunk_size
        Points per chunk (= parquet part); default :func:`default_chunk_size`.
    out
        Run directory: ``out/sweep.parquet/part-XXXXX.parquet`` and ``out/metadata.json``
        (resolved config, grid spec, point function, chunk size, versions, times). An
        existing directory of the same sweep is resumed; a different one is refused.
    overwrite
        Replace a different sweep's results in ``out``.
    progress
        tqdm bar on stderr (None: when stderr is a terminal).

    Raises
    ------
    ConfigError
        Bad grid, a value the config rejects, or ``out`` holds a different run (without ``overwrite``).
    """
    if not isinstance(grid, Grid):
        grid = Grid.from_mapping(grid) if isinstance(grid, dict) else Grid.parse(grid)
    if fn is None:
        fn = SteadyPoint(landauer)
    elif landauer is not None:
        raise ConfigError("landauer= only applies to the default point function")
    sched = Scheduler.parse(scheduler, workers)
    job = SweepJob("sweep", config, grid, fn, chunk_size)
    if out is None:
        return run_sweeps([job], None, sched, progress=progress)["sweep"]
    ident = {"command": "sweep", **job.identity()}
    rd = RunDirectory.open(out, ident, overwrite=overwrite, metadata={
        "config": config.to_dict(), "grid": grid.to_dict(), "n_points": len(job.grid), "scheduler": sched.describe()})
    t0 = time.perf_counter()
    with rd:  # an exception marks the run failed and releases the lock
        table = run_sweeps([job], rd, sched, progress=progress, desc="sweep")["sweep"]
        rd.finish(wall_s=time.perf_counter() - t0)
    return table


def read_sweep(path: str | Path, table: str = "sweep") -> pd.DataFrame:
    """Read a sweep table back from a run directory (parts in chunk order = grid order)."""
    return read_table(path, table)
