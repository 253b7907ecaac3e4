"""The registries in one light module: engine names, and what every route supports for K modes.

:data:`SUPPORT` declares for each route (steady state, rate, population, Lindblad, Landauer, the
trajectory engines, counting, thresholds, sweeps) whether it takes every K, clusters with cross
terms, which initial states, and a time-dependent bias; the command line refuses from it in one
line, and docs/modes.md prints it. Imports nothing heavy (no numpy).

The engines themselves register in :data:`sim.trajectories.runner.ENGINES` under these
names (each engine reads its entry here: ``Engine.support``, ``Engine.refusal``); the
time-domain routes register in :data:`sim.routes.ROUTES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ENGINE_NAMES", "engine_name", "Support", "SUPPORT", "route_refusal", "support_table",
           "ladder_support_table"]

#: Accepted engine names -> the engine they select (``qutip`` is an alias of ``mcsolve``).
ENGINE_NAMES: dict[str, str] = {"ssa": "ssa", "mcsolve": "mcsolve", "qutip": "mcsolve"}


def engine_name(name: str) -> str:
    """The engine a name selects; ``ValueError`` naming the choices otherwise."""
    try:
        return ENGINE_NAMES[name]
    except KeyError:
        raise ValueError(f"engine must be one of {', '.join(ENGINE_NAMES)}, got {name!r}") from None


# --------------------------------------------------------------------------- what each route supports

@dataclass(frozen=True)
class Support:
    """What one route supports, declared once (the command line and the docs read it).

    Attributes
    ----------
    route
        The route's name (``steady``, ``rate``, ``population``, ``lindblad``, ``ssa``, ...).
    command
        Where a user reaches it (``ehp steady``, ``ehp evolve --method rate``, ...).
    modes
        ``"any"`` (every K >= 1) or ``"1"`` (one mode only).
    cross_terms
        Whether clusters of several modes with cross terms are supported (else only modes whose
        clusters have one mode each, the secular case; irrelevant for one mode).
    initial, initial_modes
        Initial-state kinds accepted with one mode and with several (``()``: the route has no
        initial state).
    bias_table
        A time-dependent bias (``--bias-table``): ``"any"`` (every K), ``"1"`` (one mode) or ``"none"``.
    fast_path
        The special case the route takes inside itself (K = 1, diagonal clusters), in words.
    ladder
        Initial-state kinds the route takes on a ladder of levels (``[mode.potential]`` other than
        harmonic: one mode, its labelled level chain; docs/ladder_time.md); ``()``: not on ladders.
        Routes without an initial state list ``("-",)`` where they take ladders.
    ladder_path
        What the route does on a ladder, in words.
    """

    route: str
    command: str
    modes: str
    cross_terms: bool
    initial: tuple[str, ...]
    initial_modes: tuple[str, ...]
    bias_table: str
    fast_path: str = ""
    ladder: tuple[str, ...] = ()
    ladder_path: str = ""

    def refusal(self, K: int, *, cross_terms: bool = False, initial: str | None = None,
                bias_table: bool = False, ladder: bool = False) -> str | None:
        """Why this route cannot take a system of ``K`` modes with these options, or None when it can.

        ``ladder``: the mode is a ladder of levels (:attr:`ladder` gives the initial states it takes there)."""
        if ladder:
            if not self.ladder:
                return f"{self.command} does not take a ladder of levels (mode.potential)"
            if initial is not None and "-" not in self.ladder and initial not in self.ladder:
                return f"{self.command} on a ladder of levels starts from {', '.join(self.ladder)}, not {initial!r}"
            if bias_table:
                return f"{self.command} on a ladder of levels takes a constant bias (no --bias-table)"
            return None
        if K > 1 and self.modes != "any":
            return f"{self.command} takes one mode, the config has K = {K}"
        if K > 1 and cross_terms and not self.cross_terms:
            return f"{self.command} needs modes without cross terms (clusters of one mode each)"
        kinds = self.initial if K == 1 else self.initial_modes
        if initial is not None and kinds and initial not in kinds:
            return (f"{self.command} with {'one mode' if K == 1 else f'K = {K} modes'} starts from "
                    f"{', '.join(kinds)}, not {initial!r}")
        if bias_table and not (self.bias_table == "any" or (self.bias_table == "1" and K == 1)):
            return (f"{self.command} takes a constant bias (no --bias-table)" if self.bias_table == "none" else
                    f"{self.command} takes a --bias-table with one mode only, the config has K = {K}")
        return None


_FOCK_DIAGONAL = ("vacuum", "steady", "thermal", "fock", "distribution")
_ANY_STATE = (*_FOCK_DIAGONAL, "coherent")
#: Starts on a ladder of levels (sim.ladder_time.ladder_initial: thermal by its temperature; steady where nothing absorbs).
_LADDER_STATES = _FOCK_DIAGONAL
#: Starts of a trajectory run (every K: product states; thermal by N or by temperature, T=).
_TRAJ_DIAGONAL = ("vacuum", "steady", "thermal", "fock")
_TRAJ_ANY = (*_TRAJ_DIAGONAL, "coherent")

#: The registry of routes: what each supports for K modes (docs/modes.md prints it as a table).
SUPPORT: dict[str, Support] = {s.route: s for s in (
    Support("steady", "ehp steady", "any", True, (), (), "none",
            "K = 1: the rate equation (Eq. 9); K > 1: the Lyapunov covariance"),
    Support("rate", "ehp evolve --method rate", "any", True, _ANY_STATE, ("vacuum",), "1",
            "K = 1: the closed form of Eq. 8; K > 1: C(t) of the covariance equation"),
    Support("population", "ehp evolve --method population", "any", False, _FOCK_DIAGONAL, _FOCK_DIAGONAL, "1",
            "exact birth-death propagators; K > 1: one chain per mode (modes without cross terms are independent)",
            _LADDER_STATES, "level populations and survival S(t) by the exact propagator exp(G dt)"),
    Support("lindblad", "ehp evolve --method lindblad", "any", True, _ANY_STATE, ("vacuum", "steady", "thermal"), "1",
            "K > 1: the zero-charge sector of the truncated tensor Fock space", _LADDER_STATES,
            "mesolve with one collapse operator per label (bath, direction, from i, to j): sqrt(k) times the jump i -> j"),
    Support("landauer", "ehp steady --landauer", "any", True, (), (), "none",
            "K = 1: Eqs. 13-14 of one mode; K > 1: the K x K propagator (full) or the sum over modes (lowest)"),
    Support("ssa", "ehp trajectories --engine ssa", "any", False, _TRAJ_DIAGONAL, _TRAJ_DIAGONAL, "none",
            "K = 1: the numba birth-death Gillespie; K > 1: one chain per mode (same kernel) with mode and operator "
            "labels", _LADDER_STATES,
            "numba Gillespie over the level graph: labelled jumps with from/to levels, each trajectory stopping at "
            "rupture"),
    Support("mcsolve", "ehp trajectories --engine mcsolve", "any", True, _TRAJ_ANY, _TRAJ_ANY, "none",
            "QuTiP quantum jumps: K = 1 on one Fock ladder, K > 1 on the tensor space with labelled collapse "
            "operators", _LADDER_STATES,
            "QuTiP quantum jumps with one collapse operator per label (from i, to j), cut at rupture"),
    Support("counting", "ehp crosscheck / sim.counting", "any", True, (), (), "none",
            "K = 1: the tilted birth-death generator"),
    Support("threshold", "ehp threshold", "any", True, (), (), "none",
            "a bias key varies at solve time on the system built once"),
    Support("sweep", "ehp sweep / ehp run", "any", True, (), (), "none",
            "bias chunks on the system built once (one vectorised rate call for K = 1)"),
)}


def ladder_support_table() -> str:
    """What each route does on a ladder of levels (``[mode.potential]``), as a markdown table
    (docs/ladder_time.md carries it; a test keeps the two equal)."""
    rows = ["| route | command | initial states | on a ladder |", "|---|---|---|---|"]
    for s in SUPPORT.values():
        if s.ladder:
            rows.append(f"| {s.route} | `{s.command}` | {', '.join(k for k in s.ladder if k != '-') or '-'} | "
                        f"{s.ladder_path} |")
    return "\n".join(rows)


def route_refusal(route: str, K: int, **options: Any) -> str | None:
    """:meth:`Support.refusal` of the route called ``route`` (KeyError naming the routes otherwise)."""
    try:
        return SUPPORT[route].refusal(K, **options)
    except KeyError:
        raise KeyError(f"no route {route!r}; routes: {', '.join(SUPPORT)}") from None


def support_table() -> str:
    """The registry as a markdown table (docs/modes.md carries it; a test keeps the two equal)."""
    rows = ["| route | command | modes | cross terms | initial (one mode) | initial (K > 1) | bias table | fast path |",
            "|---|---|---|---|---|---|---|---|"]
    for s in SUPPORT.values():
        table = {"any": "every K", "none": "no"}.get(s.bias_table, "K = 1")
        rows.append(f"| {s.route} | `{s.command}` | {'every K' if s.modes == 'any' else 'K = 1'} | "
                    f"{'yes' if s.cross_terms else 'no'} | {', '.join(s.initial) or '-'} | "
                    f"{', '.join(s.initial_modes) or '-'} | {table} | {s.fast_path} |")
    return "\n".join(rows)
