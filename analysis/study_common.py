"""What every study of ``ehp run`` shares: option checks made before anything is computed, and its outputs.

Options (:func:`number`, :func:`between`, :func:`axis`, :func:`time_grid`, :func:`check_points`)
raise :class:`sim.config.ConfigError` naming ``study.KEY``, the value and the rule. Every
point of every sweep is built as a config (:func:`check_points`; cheap: no physics) before
the run directory is opened.

Every output is written under a temporary name unique to its writer (the pattern
:mod:`sim.io` cleans up) and renamed into place, then recorded in the run's manifest, so
that a run that fails or is killed after writing it leaves only files a later run of
``ehp run`` may resume over or replace (``--overwrite``), never "foreign" ones.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim import guards
from sim.config import Config, ConfigError
from sim.io import RunDirectory
from sim.sweep import Grid, GridAxis, SteadyPoint, SweepJob, apply_point

__all__ = ["number", "between", "axis", "sweep_job", "time_grid", "check_points", "check_values", "write_parquet",
           "write_recorded", "draw_recorded"]


# --------------------------------------------------------------------------- options


def number(key: str, v: Any, *, positive: bool = False) -> float:
    """``study.KEY``: a finite number (``> 0`` with ``positive``)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or (positive and v <= 0):
        raise ConfigError(f"study.{key} must be a finite number{' > 0' if positive else ''}, got {v!r}")
    return float(v)


def between(v: Any, key: str = "between") -> tuple[float, float]:
    """``study.between = [A, B]``: two different finite numbers."""
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) and not isinstance(x, bool)
                                                        and math.isfinite(x) for x in v) and v[0] != v[1]):
        raise ConfigError(f"study.{key} must be [A, B], two different finite numbers, got {v!r}")
    return float(v[0]), float(v[1])


def axis(name: str, key: Any, spec: Any) -> GridAxis:
    """The sweep axis of option ``study.NAME``: config key ``key`` over ``spec`` (``"start:stop:num"`` or a list)."""
    if not isinstance(key, str) or "." not in key:
        raise ConfigError(f"study.{name}: the swept key must be a config key 'section.key', got {key!r}")
    ok = isinstance(spec, str) or (isinstance(spec, list) and spec and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in spec))
    if not ok:
        raise ConfigError(f"study.{name} must be 'start:stop:num' or a list of numbers, got {spec!r}")
    try:
        return GridAxis.make(key, spec)
    except ConfigError as e:
        raise ConfigError(f"study.{name}: {e}") from None


def sweep_job(what: str, table: str, config: Config, axes: Sequence[GridAxis], fn: SteadyPoint) -> SweepJob:
    """A study's sweep, the config of each of its points built (:func:`check_points`); a key or value the
    config refuses is an error naming ``what`` (the study option)."""
    try:
        job = SweepJob(table, config, Grid(tuple(axes)), fn)
    except ConfigError as e:
        raise ConfigError(f"{what}: {e}") from None
    check_points([job], what)
    return job


def time_grid(config: Config, t_end: Any, kind: str) -> np.ndarray:
    """The time grid of a study's runs: ``study.t_end`` (else ``run.t_end``), ``run.n_points`` points from 0."""
    if t_end is None:
        t_end = config.run.t_end
        if t_end is None:
            raise ConfigError(f"study.t_end (or run.t_end) is required for kind = {kind!r}: the final time of its "
                              "time-domain runs")
    t_end = guards.check_time("study.t_end", t_end, exc=ConfigError)
    return np.linspace(0.0, t_end, config.run.n_points)


def check_points(jobs: Sequence[SweepJob], what: str = "study") -> None:
    """Build the config of every point of every sweep (no physics): a value the config refuses at any point
    (a corner of two axes, say) is an error now, naming the point, not after the sweep has run for a while."""
    for job in jobs:
        keys = job.grid.keys
        for p in job.grid.points():
            try:
                apply_point(job.config, keys, p)
            except ConfigError as e:
                at = ", ".join(f"{k} = {v:g}" for k, v in zip(keys, p, strict=True))
                raise ConfigError(f"{what}: at the grid point {at}: {e}") from None


def check_values(config: Config, key: str, values: Sequence[float], what: str) -> None:
    """``config`` with ``key`` set to each of ``values`` is valid (``what`` says where they come from)."""
    for v in values:
        try:
            config.with_value(key, float(v))
        except ConfigError as e:
            raise ConfigError(f"study: {what} at {key} = {v:g}: {e}") from None


# --------------------------------------------------------------------------- outputs


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """``df`` to ``path`` atomically (a hidden temporary name, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_recorded(rundir: RunDirectory, df: pd.DataFrame, name: str) -> Path:
    """``rundir/NAME`` from ``df`` (atomically), recorded in the manifest."""
    path = rundir.path / name
    write_parquet(df, path)
    rundir.record(path)
    return path


def draw_recorded(rundir: RunDirectory, draw: Callable[[Path], None], name: str) -> Path:
    """``draw(rundir/NAME)`` (a figure), recorded; a figure left half-written by a failing ``draw`` is removed."""
    path = rundir.path / name
    try:
        draw(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if path.is_file():
        rundir.record(path)
    return path
