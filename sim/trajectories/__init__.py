"""Quantum-jump trajectories of the mode: engines that all return the same jump table.

Engines (:data:`ENGINES`): ``ssa`` (exact Gillespie simulation of the birth-death
process, numba; Fock-diagonal initial states) and ``mcsolve`` (QuTiP 5, any initial
state; ``qutip`` is an alias). Example::

    from sim import load_config, rate_model
    from sim.trajectories import run_trajectories

    model = rate_model(load_config("runs/paper_double_dot.toml"))
    res = run_trajectories(model, engine="ssa", ntraj=1000, t_end=50.0, seed=1)
    res.jumps.groupby(["channel", "direction"], observed=False).size()
    res.N_mean, res.N_sem              # mean population on res.t and its standard error

With ``out_dir=`` the tables are streamed batch by batch to a run directory
(:mod:`sim.io`) and read back with ``res.jump_table()``.
"""

from .engine import Engine, RunSpec
from .initial import InitialState, parse_initial
from .runner import ENGINES, TrajectoryResult, get_engine, run_trajectories, trajectories_from_config
from .table import CHANNEL_DTYPE, DIRECTION_DTYPE, DIRECTIONS, JUMP_CHANNELS, Batch, jumps_frame

__all__ = [
    "ENGINES", "Engine", "RunSpec", "TrajectoryResult", "run_trajectories", "trajectories_from_config", "get_engine",
    "InitialState", "parse_initial", "Batch", "jumps_frame", "JUMP_CHANNELS", "DIRECTIONS", "CHANNEL_DTYPE",
    "DIRECTION_DTYPE",
]
