"""Validation primitives of the config (errors that name the key, the value and the rule).

:mod:`sim.config` and :mod:`sim.modes_config` both build on these; neither imports the other's
classes through this module, so the import graph stays one-way.
"""

from __future__ import annotations

import math
from typing import Any

from . import guards

__all__ = ["ConfigError"]


class ConfigError(guards.GuardError):
    """Bad input: the message names the key, the value and the rule."""


def _num(key: str, v: Any, *, ge: float | None = None, gt: float | None = None, scale: bool = False) -> float:
    """A finite number; ``scale``: a temperature/rate/omega (0 or |v| in [1e-12, 1e12]), else a
    signed energy (|v| <= 1e12), see :mod:`sim.guards`."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"{key} must be a number, got {v!r}")
    try:
        v = float(v)
    except OverflowError:  # a TOML integer beyond the float range
        raise ConfigError(f"{key} must be a finite number, got {v!r}") from None
    if not math.isfinite(v):
        raise ConfigError(f"{key} must be finite, got {v!r}")
    if ge is not None and v < ge:
        raise ConfigError(f"{key} must be >= {ge:g}, got {v:g}")
    if gt is not None and v <= gt:
        raise ConfigError(f"{key} must be > {gt:g}, got {v:g}")
    if scale:
        guards.check_scale(key, v, exc=ConfigError)
    else:
        guards.check_signed(key, v, exc=ConfigError)
    return v


def _int(key: str, v: Any, *, ge: int | None = None, le: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{key} must be an integer, got {v!r}")
    if ge is not None and v < ge:
        raise ConfigError(f"{key} must be >= {ge}, got {v}")
    if le is not None and v > le:
        raise ConfigError(f"{key} must be <= {le}, got {v}")
    return int(v)


def _rate_matrix(key: str, a: Any) -> None:
    """A broadening matrix ``gamma_a``: positive semi-definite up to round-off relative to its scale, and its
    largest eigenvalue (the largest rate) 0 or in the numeric domain [1e-12, 1e12] like a rate."""
    ev = guards.check_psd(key, a, ConfigError)
    top = float(ev.max(initial=0.0))
    guards.check_scale(f"{key} (its largest eigenvalue, the largest rate)", top, exc=ConfigError)


def _matrix(key: str, v: Any, n: int | None = None) -> tuple[tuple[float, ...], ...]:
    rule = "an n x n list of lists of numbers" if n is None else f"a {n} x {n} list of lists of numbers (the shape of H)"
    if not isinstance(v, list) or not v or not all(isinstance(r, list) for r in v):
        raise ConfigError(f"{key} must be {rule}, got {v!r}")
    rows = tuple(tuple(_num(f"{key}[{i}][{j}]", x) for j, x in enumerate(r)) for i, r in enumerate(v))
    size = len(rows) if n is None else n
    if len(rows) != size or any(len(r) != size for r in rows):
        raise ConfigError(f"{key} must be {rule}, got shape {len(rows)} x {[len(r) for r in rows]}")
    return rows
