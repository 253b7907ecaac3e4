"""EHP-bath simulator: a voltage-biased conductor as four electron-hole-pair baths.

Public API::

    from sim import load_config, rate_model, steady_state, evolve, channel_rates, landauer

``rate_model(config)`` builds the :class:`JumpModel` that every route takes;
``evolve(config, t, method)`` runs a time-domain route of :data:`ROUTES`.

The names are loaded on first use (PEP 562 module ``__getattr__``): ``import sim`` alone
imports neither numpy nor numba, so the command line starts fast.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .channels import ChannelRates, channel_rates
    from .conductor import CHANNELS, CHARGE_SIGN, Conductor, FlatConductor, double_dot
    from .config import Config, ConfigError, load_config, parse_config
    from .landauer import LandauerResult, landauer
    from .model import JumpModel, RateModel, rate_model
    from .rate_equation import SteadyState, steady_state
    from .results import Result
    from .routes import ROUTES, evolve
    from .system import System, system
    from .trajectories.stored import RunTables, read_run

#: public name -> submodule that defines it
_LAZY: dict[str, str] = {
    "ChannelRates": "channels", "channel_rates": "channels",
    "CHANNELS": "conductor", "CHARGE_SIGN": "conductor", "Conductor": "conductor", "FlatConductor": "conductor",
    "double_dot": "conductor",
    "Config": "config", "ConfigError": "config", "load_config": "config", "parse_config": "config",
    "LandauerResult": "landauer", "landauer": "landauer",
    "RateModel": "model", "JumpModel": "model", "rate_model": "model",
    "SteadyState": "rate_equation", "steady_state": "rate_equation",
    "Result": "results", "ROUTES": "routes", "evolve": "routes",
    "System": "system", "system": "system",
    "RunTables": "trajectories.stored", "read_run": "trajectories.stored",
}

__all__ = [
    "CHANNELS", "CHARGE_SIGN", "ChannelRates", "Conductor", "Config", "ConfigError", "FlatConductor",
    "JumpModel", "LandauerResult", "ROUTES", "RateModel", "Result", "SteadyState", "channel_rates", "evolve",
    "double_dot", "landauer", "load_config", "parse_config", "rate_model", "steady_state", "System", "system",
    "RunTables", "read_run", "__version__",
]


def _package_version() -> str:
    """The installed distribution's version (``importlib.metadata``; no numpy import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ehp-sim")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.1.0"


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access and cache the value."""
    if name == "__version__":
        value = _package_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """``sim.landauer`` stays the function when the submodule ``sim.landauer`` is first imported.

    Importing a submodule binds it as an attribute of the package; the function of the same
    name must win (as it did when ``sim/__init__.py`` imported it eagerly).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
