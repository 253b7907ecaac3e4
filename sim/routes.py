r"""Time-domain routes, chosen from one registry: ``rate``, ``population``, ``lindblad`` (solvers load on use).

Every route evolves the mode of a config from an initial state on a time grid and returns
a :class:`sim.results.TimeSeries` (``t``, ``N``, the model, the config and the options;
``to_frame()`` is the ``evolution.parquet`` table of ``ehp evolve``):

- ``rate``: the mean population, Eq. 8 with the ph-bath (closed form; ``solve_ivp`` with a
  time-dependent bias). No truncation.
- ``population``: the birth-death master equation for ``P_n(t)`` (exact propagators,
  Fock-diagonal initial states); on a ladder config (``[mode.potential]``) the master equation
  of its level chain, with the survival probability (:mod:`sim.ladder_time`).
- ``lindblad``: QuTiP's ``mesolve`` of the Lindblad equation with one labelled collapse
  operator per (channel, direction); any initial state, coherent ones included. Its function
  :func:`sim.lindblad.evolve_lindblad` is the one Lindblad route for every K: it takes this
  JumpModel (the one-mode fast path) or a :class:`sim.covariance.ModeSystem` of K modes.

With a :class:`sim.timedep.BiasSchedule` the rates follow ``mu_L(t)``, ``mu_R(t)``
adiabatically and the fluxes use the instantaneous rates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .config import Config
    from .initial import InitialSpec
    from .results import TimeSeries
    from .timedep import BiasSchedule

__all__ = ["Route", "ROUTES", "get_route", "evolve"]


def _rate(model, t, spec: InitialSpec, cutoff, progress=None):
    from .rate_equation import evolve_rate

    return evolve_rate(model, t, spec.mean(model))


def _population(model, t, spec, cutoff, progress=None):
    from .level_chain import LevelChain

    if isinstance(model, LevelChain):  # a ladder of levels: its exact propagator (sim.ladder_time)
        from .ladder_time import evolve_ladder

        return evolve_ladder(model, t, spec)
    from .population import evolve_population

    return evolve_population(model, t, spec, cutoff)


def _lindblad(system, t, spec, cutoff, progress=None):
    from .level_chain import LevelChain

    if isinstance(system, LevelChain):  # a ladder of levels: collapse operators sqrt(k)|j><i| (sim.ladder_time)
        from .ladder_time import evolve_ladder_lindblad

        return evolve_ladder_lindblad(system, t, spec)
    from .lindblad import evolve_lindblad

    return evolve_lindblad(system, t, spec, cutoff, progress=progress)


def _rate_timedep(config, schedule, t, spec, cutoff, model0):
    from .timedep import evolve_rate_timedep

    return evolve_rate_timedep(config, schedule, t, spec.mean(model0))


def _population_timedep(config, schedule, t, spec, cutoff, model0):
    from .timedep import evolve_population_timedep

    return evolve_population_timedep(config, schedule, t, spec, cutoff)


def _lindblad_timedep(config, schedule, t, spec, cutoff, model0):
    from .timedep import evolve_lindblad_timedep

    return evolve_lindblad_timedep(config, schedule, t, spec, cutoff)


@dataclass(frozen=True)
class Route:
    """A time-domain route: ``evolve(model, t, initial, cutoff, progress)`` and its time-dependent-bias form.

    ``fock_diagonal`` routes accept only Fock-diagonal initial states (not coherent ones);
    ``truncated`` routes use a Fock cutoff.
    """

    name: str
    evolve: Callable[..., Any]
    evolve_timedep: Callable[..., Any]
    fock_diagonal: bool
    truncated: bool
    description: str


#: The registry: the CLI's ``--method`` choices and the tests read it.
ROUTES: dict[str, Route] = {
    "rate": Route("rate", _rate, _rate_timedep, False, False, "mean population, Eq. 8 with the ph-bath"),
    "population": Route("population", _population, _population_timedep, True, True,
                        "birth-death master equation for P_n(t)"),
    "lindblad": Route("lindblad", _lindblad, _lindblad_timedep, False, True,
                      "QuTiP mesolve with labelled collapse operators"),
}


def get_route(name: str) -> Route:
    """The route called ``name`` (ValueError naming the choices otherwise)."""
    try:
        return ROUTES[name]
    except KeyError:
        raise ValueError(f"method must be one of {', '.join(ROUTES)}, got {name!r}") from None


def evolve(config: Config, t: ArrayLike, method: str = "population", initial: str | InitialSpec = "vacuum",
           cutoff: int | None = None, schedule: BiasSchedule | None = None, progress: bool | None = None
           ) -> TimeSeries:
    """Evolve the mode of ``config`` on the grid ``t`` (1/energy) by one route of :data:`ROUTES`.

    Parameters
    ----------
    config
        Validated config (rates at ``Omega``, Eqs. 5 and 7; ph-bath).
    t
        Time grid; ``t[0]`` is the time of the initial state.
    method
        ``rate``, ``population`` or ``lindblad``.
    initial
        ``run.initial`` text or an :class:`sim.initial.InitialSpec`. ``rate`` uses only its mean.
    cutoff
        Fock levels (truncated routes); default: the cutoff rule of :mod:`sim.cutoff`.
    schedule
        Time-dependent bias (adiabatic rates), or None for the config's constant bias.
    progress
        A progress bar on stderr for the slow route (``lindblad``; None: when stderr is a terminal).

    Returns
    -------
    TimeSeries
        The route's result with ``model`` (instantaneous rates on the returned grid for a
        schedule), ``config`` and ``options`` set; ``to_frame()`` gives the table.
    """
    import numpy as np

    from .initial import InitialSpec
    from .model import rate_model

    route = get_route(method)
    spec = InitialSpec.parse(initial)
    from .ladder_time import is_ladder

    if is_ladder(config):  # a ladder of levels: the labelled level chain (sim.ladder_time)
        return _evolve_ladder(config, t, route, spec, initial, cutoff, schedule, progress)
    model = rate_model(config)
    if schedule is None:
        res = route.evolve(model, t, spec, cutoff, progress)
        flux_model = model
    else:
        from .timedep import rates_at

        res = route.evolve_timedep(config, schedule, t, spec, cutoff, model)
        flux_model = rates_at(config, schedule, np.asarray(res.t))
    options = {"method": route.name, "initial": str(initial) if isinstance(initial, str) else str(spec),
               "cutoff": cutoff, "schedule": schedule is not None}
    return dataclasses.replace(res, model=flux_model, config=config, options=options)


def _evolve_ladder(config, t, route: Route, spec, initial, cutoff, schedule, progress) -> TimeSeries:
    """A ladder config (``[mode.potential]`` not harmonic) on the population or Lindblad route: the level chain
    of :func:`sim.ladder_time.ladder_chain` at the config's bias (constant bias only)."""
    import numpy as np

    from .config_base import ConfigError
    from .ladder_time import ladder_chain

    if route.name == "rate":
        raise ConfigError("evolve --method rate is the harmonic mode's closed form (Eq. 8); a ladder of levels "
                          f"(mode.potential.kind = {config.mode.potential.kind!r}) runs on --method population or "
                          "lindblad")
    if schedule is not None:
        raise ConfigError("a ladder of levels (mode.potential) takes a constant bias on the time-domain routes (no "
                          "--bias-table)")
    res = route.evolve(ladder_chain(config), np.asarray(t, dtype=float), spec, cutoff, progress)
    options = {"method": route.name, "initial": str(initial) if isinstance(initial, str) else spec.text,
               "cutoff": cutoff, "schedule": False, "ladder": config.mode.potential.kind}
    return dataclasses.replace(res, config=config, options=options)
