"""Quantum-jump trajectories of K >= 1 modes: one runner, engines that all return the same jump table.

Engines (:data:`ENGINES`; what each supports: :data:`sim.registry.SUPPORT`): ``ssa`` (exact
Gillespie simulation, numba; Fock-diagonal initial states; one mode is the birth-death fast path,
several modes one chain per mode, without cross terms only) and ``mcsolve`` (QuTiP 5, any initial
state and cross terms; ``qutip`` is an alias). Example::

    from sim import load_config, system
    from sim.trajectories import run_trajectories, read_run

    s = system(load_config("runs/paper_double_dot.toml"))       # any number of modes
    res = run_trajectories(s, engine="ssa", ntraj=1000, t_end=50.0, seed=1)
    res.jumps.groupby(["channel", "direction"], observed=False).size()
    res.N_mean, res.N_sem              # mean total population on res.t and its standard error
    res.mode_mean                      # per mode, shape (K, n_points)

With ``out_dir=`` the tables are streamed batch by batch to a run directory
(:mod:`sim.io`) and read back with ``res.jump_table()`` or, for any run directory,
:func:`read_run` (also ``sim.read_run``).

The names are loaded on first use (PEP 562 module ``__getattr__``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .engine import Engine, RunSpec
    from .initial import InitialState, parse_initial
    from .runner import ENGINES, TrajectoryResult, get_engine, run_trajectories
    from .stored import RunTables, read_run
    from .table import CHANNEL_DTYPE, DIRECTION_DTYPE, DIRECTIONS, JUMP_CHANNELS, Batch, jumps_frame

#: public name -> submodule that defines it
_LAZY: dict[str, str] = {
    "Engine": "engine", "RunSpec": "engine", "InitialState": "initial", "parse_initial": "initial",
    "ENGINES": "runner", "TrajectoryResult": "runner", "get_engine": "runner", "run_trajectories": "runner",
    "RunTables": "stored", "read_run": "stored",
    "CHANNEL_DTYPE": "table", "DIRECTION_DTYPE": "table", "DIRECTIONS": "table", "JUMP_CHANNELS": "table",
    "Batch": "table", "jumps_frame": "table",
}

__all__ = [
    "ENGINES", "Engine", "RunSpec", "TrajectoryResult", "run_trajectories", "read_run", "RunTables", "get_engine",
    "InitialState", "parse_initial", "Batch", "jumps_frame", "JUMP_CHANNELS", "DIRECTIONS", "CHANNEL_DTYPE",
    "DIRECTION_DTYPE",
]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access and cache the value."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
