r"""Instability threshold: where the stability margin crosses zero (docs/theory.md, docs/modes.md).

The *stability margin* ``m(v)`` with the numeric config key set to ``v`` is

- one mode: ``kappa = Gamma_e + gamma_ph`` (the mode's relaxation rate);
- several modes: ``2 min Re eig(Y)`` of the covariance equation's drift matrix
  ``Y = conj(K)/2 - i diag(Omega)`` (``-growth_rate``; it equals ``kappa`` for one mode), or
  ``Y = conj(K/2 + i(diag(Omega) + L))`` with the Lamb shift (``mode.lamb_shift = true``).

Both are rates (energy units), positive where stable. The threshold is found by Brent's
bracketing root finder; the slope ``d m / d v`` there by a central difference. (Below,
"kappa" stands for the margin; for several modes its round-off bound is
:attr:`sim.covariance.ModeSystem.margin_roundoff`, the verdict's own.)

Round-off: a bound whose ``|kappa|`` is within :func:`sim.guards.kappa_roundoff` of 0
(``near_threshold``) is itself taken as the threshold; the report gives
``kappa_roundoff`` at the threshold, the resolution of the root in kappa. The bounds
are validated like any config value (numeric domain, :mod:`sim.guards`), and a
non-finite kappa raises :class:`sim.guards.NumericalError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize

from sim.config import Config, ConfigError
from sim.guards import NumericalError
from sim.rate_equation import rate_model
from sim.results import Result
from sim.system import System

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Threshold", "kappa_at", "margin_at", "find_threshold"]


@dataclass(frozen=True)
class Threshold(Result):
    """``threshold``: value of ``key`` where kappa = 0; ``slope``: d kappa/d key there.

    A :class:`sim.results.Result`: ``provenance()`` records the config and the bracket,
    ``to_frame()`` is the one-row table of :meth:`to_dict` (``margin_at_bounds`` as two columns).
    """

    route = "threshold"

    key: str
    threshold: float
    slope: float
    kappa_low: float
    kappa_high: float
    kappa_roundoff: float = 0.0
    near_threshold_at_bound: bool = False
    n_modes: int = 1
    lamb_shift: bool = False

    def to_frame(self) -> pd.DataFrame:
        """One row: the :meth:`to_dict` record, a pair ``[low, high]`` split into ``*_low`` and ``*_high``."""
        import pandas as pd

        row: dict = {}
        for k, v in self.to_dict().items():
            if isinstance(v, list):
                row[f"{k}_low"], row[f"{k}_high"] = v
            else:
                row[k] = v
        return pd.DataFrame([row])

    def to_dict(self) -> dict:
        """The ``ehp threshold --json`` record; ``lamb_shift``: whether the margin includes the Lamb shift
        (``mode.lamb_shift``; for one mode it moves only the quantum, never kappa)."""
        if self.n_modes == 1:
            return {"key": self.key, "threshold": self.threshold, "slope": self.slope,
                    "kappa_at_bounds": [self.kappa_low, self.kappa_high], "kappa_roundoff": self.kappa_roundoff,
                    "near_threshold_at_bound": self.near_threshold_at_bound, "lamb_shift": self.lamb_shift}
        return {"key": self.key, "threshold": self.threshold, "slope": self.slope, "margin": "2 min Re eig(Y)",
                "margin_at_bounds": [self.kappa_low, self.kappa_high], "margin_roundoff": self.kappa_roundoff,
                "near_threshold_at_bound": self.near_threshold_at_bound, "n_modes": self.n_modes,
                "lamb_shift": self.lamb_shift}


def kappa_at(config: Config, key: str, value: float) -> float:
    """``kappa`` of ``config`` with ``key`` set to ``value``."""
    return float(rate_model(config.with_value(key, float(value))).kappa)


def margin_at(config: Config | System, key: str, value: float) -> float:
    """The stability margin with ``key`` set to ``value``: ``kappa`` (one mode) or ``2 min Re eig(Y)``."""
    return _kappa_and_roundoff(config, key, value)[0]


def _kappa_and_roundoff(config: Config | System, key: str, value: float) -> tuple[float, float]:
    """Margin and its round-off bound at ``key = value``: a bias key is a solve-time parameter of the
    system built once (:mod:`sim.system`); any other key rebuilds the system from the config."""
    s = config if isinstance(config, System) else System(config)
    at, params = s.varied(key, value)
    m, r = at.margins(params)
    return float(m), float(r)


def _slope(config: Config | System, key: str, root: float, lo: float, hi: float) -> float:
    """``d margin / d key`` at ``root`` by a difference that never leaves the bracket ``[lo, hi]``.

    Central with step ``h = 1e-5 max(1, |root|, hi - lo)`` where ``root +- h`` lie inside; one-sided
    (or over the whole bracket when it is shorter than ``h``) at an end: the bracket is the only
    range the caller vouched for (a key's domain may stop there, as a temperature at 0).
    """
    h = 1e-5 * max(1.0, abs(root), hi - lo)
    x0, x1 = max(lo, root - h), min(hi, root + h)
    if x1 <= x0:  # a bracket of zero width cannot happen (A != B), but keep the guard explicit
        raise ConfigError(f"--between [{lo:g}, {hi:g}] is too narrow to take the slope d margin / d {key}")
    return (margin_at(config, key, x1) - margin_at(config, key, x0)) / (x1 - x0)


def find_threshold(config: Config, key: str, between: tuple[float, float], xtol: float = 1e-12) -> Threshold:
    """Root of ``kappa(key)`` in ``[A, B]`` by ``scipy.optimize.brentq``.

    Every evaluation of the margin (the bounds, Brent's steps, the slope) lies in ``[A, B]``.

    Raises
    ------
    ConfigError
        If ``key`` is not numeric or ``kappa`` has the same sign at both ends
        (the message shows both values).
    """
    a, b = (float(x) for x in between)
    if not (np.isfinite(a) and np.isfinite(b)) or a == b:
        raise ConfigError(f"--between needs two different finite numbers, got {between!r}")
    current = config.get(key)  # the key must exist and be numeric
    if isinstance(current, bool) or not isinstance(current, int | float):
        raise ConfigError(f"--vary {key} must name a numeric key, got {key} = {current!r}")
    if isinstance(current, int):
        raise ConfigError(f"--vary {key} is an integer key ({key} = {current!r}); kappa does not depend on it")
    for v in (a, b):
        try:
            config.with_value(key, v)
        except ConfigError as e:
            raise ConfigError(f"--between bound {v:g}: {e}") from None
    built = System(config)  # built once: a bias key varies at solve time
    (ka, ra), (kb, rb) = _kappa_and_roundoff(built, key, a), _kappa_and_roundoff(built, key, b)
    near = False
    if abs(ka) <= ra:
        root, near = a, True
    elif abs(kb) <= rb:
        root, near = b, True
    elif np.sign(ka) == np.sign(kb):
        name = "kappa" if config.n_modes == 1 else "the stability margin 2 min Re eig(Y)"
        short = "kappa" if config.n_modes == 1 else "margin"
        raise ConfigError(
            f"{name} does not change sign for {key} in [{a:g}, {b:g}]: {short}({a:g}) = {ka:.6g}, "
            f"{short}({b:g}) = {kb:.6g}")
    else:
        root = optimize.brentq(lambda v: margin_at(built, key, v), a, b, xtol=xtol, rtol=4 * np.finfo(float).eps)
    slope = _slope(built, key, root, min(a, b), max(a, b))
    if not np.isfinite(slope):
        raise NumericalError(f"the slope d kappa / d {key} at the threshold {root:g} came out {slope}")
    return Threshold(key, float(root), float(slope), ka, kb, _kappa_and_roundoff(built, key, root)[1], near,
                     config.n_modes, bool(config.mode.lamb_shift), config=config,
                     options={"between": [a, b], "xtol": xtol})
