"""Instability threshold: where ``kappa`` crosses zero (docs/theory.md).

``kappa(v)`` is the mode's relaxation rate with the numeric config key set to
``v``. The threshold is found by Brent's bracketing root finder; the slope
``d kappa / d v`` there by a central difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from sim.config import Config, ConfigError
from sim.rate_equation import rate_model

__all__ = ["Threshold", "kappa_at", "find_threshold"]


@dataclass(frozen=True)
class Threshold:
    """``threshold``: value of ``key`` where kappa = 0; ``slope``: d kappa/d key there."""

    key: str
    threshold: float
    slope: float
    kappa_low: float
    kappa_high: float

    def to_dict(self) -> dict:
        return {"key": self.key, "threshold": self.threshold, "slope": self.slope,
                "kappa_at_bounds": [self.kappa_low, self.kappa_high]}


def kappa_at(config: Config, key: str, value: float) -> float:
    """``kappa`` of ``config`` with ``key`` set to ``value``."""
    return float(rate_model(config.with_value(key, float(value))).kappa)


def find_threshold(config: Config, key: str, between: tuple[float, float], xtol: float = 1e-12) -> Threshold:
    """Root of ``kappa(key)`` in ``[A, B]`` by ``scipy.optimize.brentq``.

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
    ka, kb = kappa_at(config, key, a), kappa_at(config, key, b)
    if ka == 0.0:
        root = a
    elif kb == 0.0:
        root = b
    elif np.sign(ka) == np.sign(kb):
        raise ConfigError(
            f"kappa does not change sign for {key} in [{a:g}, {b:g}]: kappa({a:g}) = {ka:.6g}, "
            f"kappa({b:g}) = {kb:.6g}")
    else:
        root = optimize.brentq(lambda v: kappa_at(config, key, v), a, b, xtol=xtol, rtol=4 * np.finfo(float).eps)
    h = 1e-5 * max(1.0, abs(root), abs(b - a))
    slope = (kappa_at(config, key, root + h) - kappa_at(config, key, root - h)) / (2 * h)
    return Threshold(key, float(root), float(slope), ka, kb)
