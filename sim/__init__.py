"""EHP-bath simulator: a voltage-biased conductor as four electron-hole-pair baths.

Public API::

    from sim import load_config, steady_state, channel_rates, landauer
"""

from importlib.metadata import PackageNotFoundError, version

from .channels import ChannelRates, channel_rates
from .conductor import CHANNELS, CHARGE_SIGN, Conductor, FlatConductor, double_dot
from .config import Config, ConfigError, load_config, parse_config
from .landauer import LandauerResult, landauer
from .rate_equation import RateModel, SteadyState, rate_model, steady_state

try:
    __version__ = version("ehp-sim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.1.0"

__all__ = [
    "CHANNELS", "CHARGE_SIGN", "ChannelRates", "Conductor", "Config", "ConfigError", "FlatConductor",
    "LandauerResult", "RateModel", "SteadyState", "channel_rates", "double_dot", "landauer", "load_config",
    "parse_config", "rate_model", "steady_state", "__version__",
]
