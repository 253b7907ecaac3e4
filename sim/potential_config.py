r"""``[mode.potential]``: the ladder of levels of one mode (docs/ladder.md).

Keys per ``kind`` (default ``harmonic``: the mode as everywhere else, nothing absorbs):

``truncated``  ``bound = N`` (integer >= 1): ``N`` harmonic levels, level ``N`` absorbing.
``morse``      ``D`` (well depth, energy, > omega/4 so that one level is bound), ``spacing`` (DVR spacing in
               ``x``, default 0.08, in (0, 0.5]), ``x_max`` (outer box edge, default from the well, > 0).
``grid``       ``x`` and ``U`` (lists: points in ``x``, strictly increasing, and the potential there, energy)
               or ``file`` (an ``.npz`` with arrays ``x``, ``U``), ``absorb_above`` (energy from the well
               bottom above which levels absorb, > 0), ``spacing``.
``file``       ``file``: an ``.npz`` with ``E`` (n,), ``x`` (n, n, symmetric) and ``absorbing`` (n,) arrays.

Every error is a :class:`sim.config_base.ConfigError` naming the key, the value and the rule.
Built on :mod:`sim.config_base` only (:mod:`sim.config` imports this module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import guards
from .config_base import ConfigError, _int, _num
from .files import open_input
from .ladder import (
    LADDER_KINDS,
    SPACING,
    Ladder,
    file_ladder,
    grid_ladder,
    harmonic_ladder,
    morse_bound,
    morse_box,
    morse_ladder,
    truncated_ladder,
)

__all__ = ["PotentialConfig", "POTENTIAL_KEYS", "DEFAULT_HARMONIC_CUTOFF"]

#: Allowed keys of each kind (``kind`` itself always).
POTENTIAL_KEYS: dict[str, frozenset[str]] = {
    "harmonic": frozenset(),
    "truncated": frozenset({"bound"}),
    "morse": frozenset({"D", "spacing", "x_max"}),
    "grid": frozenset({"x", "U", "file", "absorb_above", "spacing"}),
    "file": frozenset({"file"}),
}
#: Fock levels of the harmonic ladder when ``run.cutoff`` is not set.
DEFAULT_HARMONIC_CUTOFF = 60
_MAX_GRID = 6000  # DVR points: a dense eigenproblem of this size takes seconds


@dataclass(frozen=True)
class PotentialConfig:
    """``[mode.potential]`` (resolved form). ``params`` holds the given keys of the kind, validated."""

    kind: str = "harmonic"
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any) -> PotentialConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"[mode.potential] must be a table, got {d!r}")
        d = dict(d)
        kind = d.pop("kind", "harmonic")
        if not isinstance(kind, str) or kind not in LADDER_KINDS:
            raise ConfigError(f"mode.potential.kind must be one of {', '.join(LADDER_KINDS)}, got {kind!r}")
        allowed = POTENTIAL_KEYS[kind]
        for k in d:
            if k not in allowed:
                rule = f"allowed with kind = {kind!r}: {', '.join(sorted(allowed))}" if allowed else \
                    f"kind = {kind!r} takes no other key"
                raise ConfigError(f"mode.potential.{k} = {d[k]!r} is not a known key ({rule})")
        p: dict[str, Any] = {}
        if kind == "truncated":
            if "bound" not in d:
                raise ConfigError("mode.potential.bound is required for kind = 'truncated' (the number of bound "
                                  "levels, an integer >= 1)")
            p["bound"] = _int("mode.potential.bound", d["bound"], ge=1, le=100000)
        elif kind == "morse":
            if "D" not in d:
                raise ConfigError("mode.potential.D is required for kind = 'morse' (the well depth, energy, > 0)")
            p["D"] = _num("mode.potential.D", d["D"], gt=0, scale=True)
            if "x_max" in d:
                p["x_max"] = _num("mode.potential.x_max", d["x_max"], gt=0)
        elif kind == "grid":
            if "absorb_above" not in d:
                raise ConfigError("mode.potential.absorb_above is required for kind = 'grid' (energy from the well "
                                  "bottom above which levels absorb, > 0)")
            p["absorb_above"] = _num("mode.potential.absorb_above", d["absorb_above"], gt=0, scale=True)
            has_file, has_inline = "file" in d, ("x" in d or "U" in d)
            if has_file == has_inline:
                raise ConfigError("mode.potential: kind = 'grid' takes either file (an .npz with x, U) or the lists "
                                  f"x and U, not both and not neither (got keys {sorted(d)})")
            if has_file:
                p["file"] = _path("mode.potential.file", d["file"])
                a = _npz(p["file"], ("x", "U"))
                _grid_points(a["x"], a["U"], "mode.potential.file")
            else:
                for k in ("x", "U"):
                    if k not in d:
                        raise ConfigError(f"mode.potential.{k} is required with the inline grid (lists x and U)")
                    v = d[k]
                    if not isinstance(v, list) or not all(isinstance(e, int | float) and not isinstance(e, bool)
                                                          for e in v):
                        raise ConfigError(f"mode.potential.{k} must be a list of numbers, got {v!r}")
                p["x"] = [_num(f"mode.potential.x[{i}]", e) for i, e in enumerate(d["x"])]
                p["U"] = [_num(f"mode.potential.U[{i}]", e) for i, e in enumerate(d["U"])]
                _grid_points(np.array(p["x"]), np.array(p["U"]), "mode.potential")
        elif kind == "file":
            if "file" not in d:
                raise ConfigError("mode.potential.file is required for kind = 'file' (an .npz with E, x, absorbing)")
            p["file"] = _path("mode.potential.file", d["file"])
            _levels_file(p["file"])
        if kind in ("morse", "grid"):
            sp = _num("mode.potential.spacing", d.get("spacing", SPACING), gt=0)
            if sp > 0.5:
                raise ConfigError(f"mode.potential.spacing must be in (0, 0.5] (the DVR spacing in x; the default "
                                  f"{SPACING} converges the rates), got {sp:g}")
            if "spacing" in d:
                p["spacing"] = sp
        return cls(kind, p)

    def check(self, omega: float) -> None:
        """Rules that need the quantum ``omega``: a Morse well needs a bound level, the box a size that fits."""
        if self.kind == "morse":
            D = self.params["D"]
            nb, _ = morse_bound(omega, D)
            if nb < 1:
                raise ConfigError(f"mode.potential.D = {D:g} gives a Morse well with no bound level: need D > omega/4 "
                                  f"= {omega / 4:g} (lambda = 2 D/omega = {2 * D / omega:g} must exceed 1/2)")
            x_min, x_max = morse_box(omega, D, D + omega, self.spacing, self.params.get("x_max"))
            _grid_size(f"the Morse box [{x_min:.4g}, {x_max:.4g}] (mode.potential.x_max, mode.potential.spacing)",
                       (x_max - x_min) / self.spacing)
        elif self.kind == "grid":
            xs = self._grid()[0]
            _grid_size("the grid box (mode.potential.x, mode.potential.spacing)", (xs[-1] - xs[0]) / self.spacing)

    @property
    def spacing(self) -> float:
        return float(self.params.get("spacing", SPACING))

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        if "file" in self.params:
            a = _npz(self.params["file"], ("x", "U"))
            return np.asarray(a["x"], float), np.asarray(a["U"], float)
        return np.array(self.params["x"], float), np.array(self.params["U"], float)

    def ladder(self, omega: float, e_keep: float, cutoff: int | None = None) -> Ladder:
        """The :class:`sim.ladder.Ladder` of this potential (``e_keep``: keep box states up to this energy
        from the well bottom; ``cutoff``: Fock levels of the harmonic ladder)."""
        p = self.params
        if self.kind == "harmonic":
            return harmonic_ladder(omega, cutoff or DEFAULT_HARMONIC_CUTOFF)
        if self.kind == "truncated":
            return truncated_ladder(omega, p["bound"])
        if self.kind == "morse":
            return morse_ladder(omega, p["D"], e_keep, self.spacing, p.get("x_max"))
        if self.kind == "grid":
            x, U = self._grid()
            try:
                return grid_ladder(omega, x, U, p["absorb_above"], max(e_keep, p["absorb_above"]), self.spacing)
            except ValueError as e:
                raise ConfigError(f"mode.potential (kind = 'grid'): {e}") from None
        a = _levels_file(p["file"])
        return file_ladder(omega, a["E"], a["x"], a["absorbing"])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: (list(v) if isinstance(v, list) else v) for k, v in self.params.items()}}


def _path(key: str, v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise ConfigError(f"{key} must be a path to an .npz file, got {v!r}")
    return v


def _grid_size(what: str, n: float) -> None:
    if not math.isfinite(n) or n > _MAX_GRID:
        raise ConfigError(f"{what} needs {n:.0f} DVR points, more than {_MAX_GRID} (a dense eigenproblem): use a "
                          "larger spacing or a smaller box")
    guards.check_memory(what, 24.0 * n * n, "use a larger spacing or a smaller box")


def _grid_points(x: np.ndarray, U: np.ndarray, where: str) -> None:
    if x.ndim != 1 or U.shape != x.shape or x.size < 4:
        raise ConfigError(f"{where}: x and U must be 1-D of the same length >= 4, got shapes {x.shape} and {U.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(U))):
        raise ConfigError(f"{where}: x and U must be finite")
    if np.any(np.diff(x) <= 0):
        raise ConfigError(f"{where}: x must be strictly increasing, got {x[:6].tolist()}...")


def _npz(path: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    from .modes_config import _read_npz

    with open_input(Path(path), "mode.potential.file", guards.MEMORY_BUDGET, exc=ConfigError) as f:
        raw = _read_npz(f, path, "mode.potential.file")
    missing = [k for k in keys if k not in raw]
    extra = sorted(set(raw) - set(keys))
    if missing or extra:
        raise ConfigError(f"mode.potential.file {Path(path).name}: must hold the arrays {', '.join(keys)}"
                          + (f"; missing {', '.join(missing)}" if missing else "")
                          + (f"; unknown {', '.join(extra)}" if extra else ""))
    for k, a in raw.items():
        if a.dtype.kind not in "biuf":
            raise ConfigError(f"mode.potential.file {Path(path).name}: {k} must be a real numeric array, got dtype "
                              f"{a.dtype}")
    return raw


def _levels_file(path: str) -> dict[str, np.ndarray]:
    a = _npz(path, ("E", "x", "absorbing"))
    name = f"mode.potential.file {Path(path).name}"
    E, x, ab = np.asarray(a["E"], float), np.asarray(a["x"], float), np.asarray(a["absorbing"])
    n = E.size
    if E.ndim != 1 or n < 2 or x.shape != (n, n) or ab.shape != (n,):
        raise ConfigError(f"{name}: need E (n,), x (n, n) and absorbing (n,) with n >= 2, got shapes {E.shape}, "
                          f"{x.shape}, {ab.shape}")
    if not (np.all(np.isfinite(E)) and np.all(np.isfinite(x))):
        raise ConfigError(f"{name}: E and x must be finite")
    if not np.allclose(np.abs(x), np.abs(x.T), rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(x).max()))):
        raise ConfigError(f"{name}: x must be symmetric (|x_ij| = |x_ji|)")
    if ab.dtype.kind not in "biu" or not np.all((ab == 0) | (ab == 1)):
        raise ConfigError(f"{name}: absorbing must be a mask of booleans (or 0/1)")
    if ab.astype(bool).all():
        raise ConfigError(f"{name}: every level is absorbing; at least one must not be")
    return {"E": E, "x": x, "absorbing": ab.astype(bool)}
