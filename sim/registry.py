"""Names of the trajectory engines, in one light module (config validation, the CLI and the runner read it).

The engines themselves register in :data:`sim.trajectories.runner.ENGINES` under these
names; the time-domain routes register in :data:`sim.routes.ROUTES`.
"""

from __future__ import annotations

__all__ = ["ENGINE_NAMES", "engine_name"]

#: Accepted engine names -> the engine they select (``qutip`` is an alias of ``mcsolve``).
ENGINE_NAMES: dict[str, str] = {"ssa": "ssa", "mcsolve": "mcsolve", "qutip": "mcsolve"}


def engine_name(name: str) -> str:
    """The engine a name selects; ``ValueError`` naming the choices otherwise."""
    try:
        return ENGINE_NAMES[name]
    except KeyError:
        raise ValueError(f"engine must be one of {', '.join(ENGINE_NAMES)}, got {name!r}") from None
