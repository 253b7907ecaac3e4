"""Configuration: TOML -> frozen, validated dataclasses (docs/config.md).

Every error is a :class:`ConfigError` whose message names the key, the value and
the rule, for example ``phonon_bath.gamma must be >= 0, got -1``. Numbers must also lie
in the numeric domain of :mod:`sim.guards` (temperatures, rates and ``omega``: 0 or a
magnitude in [1e-12, 1e12]; signed energies within +-1e12; ``t_end`` in (0, 1e12]).
"""

from __future__ import annotations

import copy
import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import guards
from .conductor import Conductor, FlatConductor, double_dot
from .config_base import ConfigError, _int, _matrix, _num, _rate_matrix
from .files import read_text
from .initial import InitialSpec
from .modes_config import (
    _COVARIANCE_ROUTES,
    ModesConfig,
    _conductor_n_modes,
    _coupling_matrices,
    _coupling_value,
    _file_params,
    _npz_arrays,
    _number_list,
    _one_mode_message,
    _resolve_files,
    check_lamb_shift,
)
from .potential_config import PotentialConfig
from .registry import ENGINE_NAMES

__all__ = [
    "Config", "ConfigError", "ConductorConfig", "ModeConfig", "BiasConfig", "PhononBathConfig",
    "ModesConfig", "RunConfig", "load_config", "one_mode_config", "parse_config", "parse_override", "apply_overrides",
    "to_toml",
]


def _check_keys(section: str, d: dict[str, Any], allowed: set[str]) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"[{section}] must be a table, got {d!r}")
    for k in d:
        if k not in allowed:
            close = difflib.get_close_matches(str(k), sorted(allowed), n=1, cutoff=0.6)
            hint = f"did you mean {section}.{close[0]}? " if close else ""
            raise ConfigError(f"{section}.{k} = {d[k]!r} is not a known key ({hint}allowed: {', '.join(sorted(allowed))})")


_KINDS = {
    "double_dot": {"eps", "hopping", "gamma_L", "gamma_R", "coupling"},
    "matrix": {"H", "H_imag", "gamma_L", "gamma_R", "M", "M_imag", "file", "file_sha256"},
    "flat": {"K_LL", "K_RR", "K_LR", "K_RL"},
}


@dataclass(frozen=True)
class ConductorConfig:
    """``[conductor]``: ``kind`` and its parameters (see docs/config.md)."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConductorConfig:
        if not isinstance(d, dict):
            raise ConfigError(f"[conductor] must be a table, got {d!r}")
        d = dict(d)
        kind = d.pop("kind", "double_dot")
        if not isinstance(kind, str) or kind not in _KINDS:
            raise ConfigError(f"conductor.kind must be one of {', '.join(_KINDS)}, got {kind!r}")
        _check_keys("conductor", d, _KINDS[kind])
        p: dict[str, Any] = {}
        if kind == "double_dot":
            eps = d.get("eps", [0.5, -0.5])
            if not isinstance(eps, list) or len(eps) != 2:
                raise ConfigError(f"conductor.eps must be a list of two numbers [eps_1, eps_2], got {eps!r}")
            p["eps"] = [_num(f"conductor.eps[{i}]", e) for i, e in enumerate(eps)]
            p["hopping"] = _num("conductor.hopping", d.get("hopping", 0.0))
            p["gamma_L"] = _num("conductor.gamma_L", d.get("gamma_L", 0.5), ge=0, scale=True)
            p["gamma_R"] = _num("conductor.gamma_R", d.get("gamma_R", 0.5), ge=0, scale=True)
            p["coupling"] = _coupling_value(d.get("coupling", 0.5))
        elif kind == "matrix" and "file_sha256" in d and "file" not in d:
            raise ConfigError(f"conductor.file_sha256 = {d['file_sha256']!r} pins the contents of conductor.file, "
                              "which is not given (the matrices are inline)")
        elif kind == "matrix" and "file" in d:
            p.update(_file_params(d))
        elif kind == "matrix":
            for k in ("H", "gamma_L", "gamma_R", "M"):
                if k not in d:
                    raise ConfigError(f"conductor.{k} is required for kind = 'matrix'")
            H = _matrix("conductor.H", d["H"])
            n = len(H)
            try:  # the exact channel rates hold 4 n^4 pole weights and n^4 temporaries per mode quantum
                guards.check_memory(f"conductor.H of size {n} x {n}", 512.0 * n**4,
                                    "the exact channel rates need O(n^4) memory; use a smaller central region")
            except guards.ResourceError as e:
                raise ConfigError(str(e)) from None
            p["H"] = [list(r) for r in H]
            for k in ("H_imag", "gamma_L", "gamma_R"):
                if k in d:
                    p[k] = [list(r) for r in _matrix(f"conductor.{k}", d[k], n)]
            p.update(_coupling_matrices(d, n))
        else:
            for c in ("LL", "RR", "LR", "RL"):
                p[f"K_{c}"] = _num(f"conductor.K_{c}", d.get(f"K_{c}", 0.0), ge=0, scale=True)
        obj = cls(kind, p)
        obj.build_modes() if obj.n_modes > 1 else obj.build()  # validates Hermiticity and positivity
        return obj

    @property
    def n_modes(self) -> int:
        """Number of modes ``K`` the couplings describe (1 unless given as a list of K)."""
        return _conductor_n_modes(self)

    def build_modes(self) -> tuple[Conductor, np.ndarray]:
        """The conductor (its ``M`` zero) and the couplings ``M^k``, shape (K, n, n), for any ``K``."""
        return _build_modes(self)

    def build(self) -> Conductor | FlatConductor:
        """The physics object of one mode: :class:`Conductor` or :class:`FlatConductor`.

        Raises :class:`ConfigError` for several modes (use :meth:`build_modes`).
        """
        p = self.params
        if self.n_modes > 1:
            raise ConfigError(_one_mode_message(f"conductor couplings for K = {self.n_modes} modes"))
        if "file" in p:
            a = _npz_arrays(p["file"])
            return Conductor(a["H"], a["gamma_L"], a["gamma_R"], a["M"][0])
        if self.kind == "double_dot":
            return double_dot(tuple(p["eps"]), p["hopping"], p["gamma_L"], p["gamma_R"], p["coupling"])
        if self.kind == "flat":
            return FlatConductor(p["K_LL"], p["K_RR"], p["K_LR"], p["K_RL"])
        H = np.array(p["H"]) + 1j * np.array(p.get("H_imag", np.zeros_like(p["H"])))
        M = np.array(p["M"]) + 1j * np.array(p.get("M_imag", np.zeros_like(p["M"])))
        mats = {"H": H, "gamma_L": np.array(p["gamma_L"]), "gamma_R": np.array(p["gamma_R"]), "M": M}
        for k, a in mats.items():  # round-off relative to each matrix's own scale (sim.guards.check_hermitian)
            guards.check_hermitian(f"conductor.{k}", a, ConfigError)
        for k in ("gamma_L", "gamma_R"):
            _rate_matrix(f"conductor.{k}", mats[k])
        return Conductor(**mats)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **copy.deepcopy(self.params)}


@dataclass(frozen=True)
class ModeConfig:
    """``[mode]``: the mode quantum ``omega`` (> 0, energy units) and its ladder ``[mode.potential]``.

    ``potential`` (:class:`sim.potential_config.PotentialConfig`, given as a table) defaults to the
    harmonic ladder, the mode of every route; the other kinds (truncated, morse, grid, file) add
    absorbing levels for ``ehp rupture`` (docs/ladder.md). ``coherence_width`` matters only for
    several modes (:class:`ModesConfig`): given with one mode it would do nothing, so it is refused
    (the field stays ``None``).
    """

    omega: float = 1.0
    coherence_width: float | None = None
    lamb_shift: bool = False
    potential: PotentialConfig = field(default_factory=PotentialConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "omega", _num("mode.omega", self.omega, gt=0, scale=True))
        check_lamb_shift(self.lamb_shift)
        if not isinstance(self.potential, PotentialConfig):
            object.__setattr__(self, "potential", PotentialConfig.from_dict(self.potential))
        self.potential.check(self.omega)
        if self.lamb_shift and self.potential.kind != "harmonic":
            raise ConfigError(f"mode.lamb_shift = true applies to a harmonic mode (it shifts the quantum Omega); "
                              f"mode.potential.kind = {self.potential.kind!r} has its own levels: remove one or the other")
        if self.coherence_width is not None:
            raise ConfigError(f"mode.coherence_width = {self.coherence_width!r} applies only to several modes (mode.omega "
                              f"a list of K >= 2 quanta: it groups their cross terms); with one mode (mode.omega = "
                              f"{self.omega:g}) it does nothing: remove it")

    @property
    def n_modes(self) -> int:
        return 1

    @property
    def omegas(self) -> tuple[float, ...]:
        """``(omega,)``: the quanta as for several modes."""
        return (self.omega,)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"omega": self.omega}
        if self.coherence_width is not None:
            d["coherence_width"] = self.coherence_width
        if self.lamb_shift:  # false (the default) is left out: configs without the key resolve as before
            d["lamb_shift"] = True
        if self.potential.kind != "harmonic":  # the default stays out: today's configs resolve as before
            d["potential"] = self.potential.to_dict()
        return d


@dataclass(frozen=True)
class BiasConfig:
    """``[bias]``: chemical potentials and electron temperatures (resolved form).

    Given either as ``mu_L, mu_R`` or as ``V, mu0`` (``mu_L = mu0 + V/2``,
    ``mu_R = mu0 - V/2``); ``T_L``, ``T_R`` default to ``T_e``.
    """

    mu_L: float
    mu_R: float
    T_e: float
    T_L: float
    T_R: float
    form: str = "mu"  # "mu" or "V": how the user gave it (kept for printing and sweeps)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BiasConfig:
        _check_keys("bias", d, {"mu_L", "mu_R", "V", "mu0", "T_e", "T_L", "T_R"})
        has_mu = "mu_L" in d or "mu_R" in d
        has_v = "V" in d or "mu0" in d
        if has_mu and has_v:
            raise ConfigError(
                f"bias: give either mu_L and mu_R, or V and mu0, not both (got keys {sorted(d)})")
        if has_v:
            V = _num("bias.V", d.get("V", 0.0))
            mu0 = _num("bias.mu0", d.get("mu0", 0.0))
            mu_L, mu_R, form = mu0 + V / 2, mu0 - V / 2, "V"
        else:
            mu_L = _num("bias.mu_L", d.get("mu_L", 0.0))
            mu_R = _num("bias.mu_R", d.get("mu_R", 0.0))
            form = "mu"
        if "T_e" not in d:
            raise ConfigError("bias.T_e is required (electron temperature, >= 0)")
        T_e = _num("bias.T_e", d["T_e"], ge=0, scale=True)
        T_L = _num("bias.T_L", d.get("T_L", T_e), ge=0, scale=True)
        T_R = _num("bias.T_R", d.get("T_R", T_e), ge=0, scale=True)
        if form == "V":
            _num("bias.mu_L = mu0 + V/2", mu_L)
            _num("bias.mu_R = mu0 - V/2", mu_R)
        _num("bias.V = mu_L - mu_R", mu_L - mu_R)
        return cls(mu_L, mu_R, T_e, T_L, T_R, form)

    @property
    def V(self) -> float:
        return self.mu_L - self.mu_R

    @property
    def mu0(self) -> float:
        return 0.5 * (self.mu_L + self.mu_R)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"V": self.V, "mu0": self.mu0} if self.form == "V" else {"mu_L": self.mu_L, "mu_R": self.mu_R}
        d["T_e"] = self.T_e
        if self.T_L != self.T_e:
            d["T_L"] = self.T_L
        if self.T_R != self.T_e:
            d["T_R"] = self.T_R
        return d


@dataclass(frozen=True)
class PhononBathConfig:
    """``[phonon_bath]``: Ohmic bath at ``T`` (>= 0) with energy damping ``gamma`` (>= 0)."""

    T: float = 0.0
    gamma: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "T", _num("phonon_bath.T", self.T, ge=0, scale=True))
        if isinstance(self.gamma, list | tuple):
            object.__setattr__(self, "gamma", _number_list("phonon_bath.gamma", self.gamma, ge=0, scale=True))
        else:
            object.__setattr__(self, "gamma", _num("phonon_bath.gamma", self.gamma, ge=0, scale=True))

    def gammas(self, K: int) -> np.ndarray:
        """``gamma_k`` of ``K`` modes (a number applies to every mode), shape (K,)."""
        g = np.asarray(self.gamma, dtype=float)
        return np.full(K, float(g)) if g.ndim == 0 else g.copy()

    def to_dict(self) -> dict[str, Any]:
        return {"T": self.T, "gamma": list(self.gamma) if isinstance(self.gamma, tuple) else self.gamma}


_INITIAL_PREFIXES = ("vacuum", "steady", "thermal:", "fock:", "coherent:")


@dataclass(frozen=True)
class RunConfig:
    """``[run]``: time-domain settings (command-line flags override them)."""

    t_end: float | None = None
    n_points: int = 201
    ntraj: int = 100
    seed: int = 0
    engine: str = "ssa"
    cutoff: int | None = None
    initial: str = "vacuum"
    store_grid: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.store_grid, bool):
            raise ConfigError(f"run.store_grid must be true or false, got {self.store_grid!r}")
        if self.t_end is not None:
            object.__setattr__(self, "t_end", guards.check_time("run.t_end", self.t_end, exc=ConfigError))
        _int("run.n_points", self.n_points, ge=2)
        _int("run.ntraj", self.ntraj, ge=1)
        _int("run.seed", self.seed, ge=0, le=2**63 - 1)
        if self.cutoff is not None:
            _int("run.cutoff", self.cutoff, ge=1)
        try:  # an oversize count is refused here, on every command, not only where it is used
            for key, flag, v, what in (("run.n_points", "--n-points", self.n_points, "time point"),
                                       ("run.ntraj", "--ntraj", self.ntraj, "trajectory"),
                                       ("run.cutoff", "--cutoff", self.cutoff, "Fock level")):
                if v is not None:
                    guards.check_memory(f"{key} = {v} ({flag})", 8.0 * v,
                                        f"every {what} takes at least 8 bytes; use a smaller {key}")
        except guards.ResourceError as e:
            raise ConfigError(str(e)) from None
        grid_rows = self.store_grid or self.engine not in ("ssa",)
        try:  # the N(t) grid of every trajectory: about 64 bytes per (trajectory, time point) in the tables
            if grid_rows:
                guards.check_memory(f"run.ntraj x run.n_points = {self.ntraj} x {self.n_points} (--ntraj, --n-points)",
                                    64.0 * self.ntraj * self.n_points,
                                    "use fewer trajectories or time points, or several runs with different seeds")
        except guards.ResourceError as e:
            raise ConfigError(str(e)) from None
        if not isinstance(self.engine, str) or self.engine not in ENGINE_NAMES:
            raise ConfigError(f"run.engine must be one of {', '.join(ENGINE_NAMES)}, got {self.engine!r}")
        ok = isinstance(self.initial, str) and self.initial.isprintable() and not any(
            c.isspace() for c in self.initial) and (
            self.initial in ("vacuum", "steady") or self.initial.startswith(_INITIAL_PREFIXES[2:]))
        if ok:
            try:
                InitialSpec.parse(self.initial)
            except ValueError:
                ok = False
        if not ok:
            raise ConfigError(
                f"run.initial must be 'vacuum', 'steady', 'thermal:N' (N >= 0, finite), 'thermal:T=<temperature>' "
                f"(T >= 0, finite), 'fock:n' (integer n >= 0) or "
                f"'coherent:alpha' (alpha finite, real or complex), got {self.initial!r}")


_SECTIONS = ("conductor", "mode", "bias", "phonon_bath", "run", "study")


@dataclass(frozen=True)
class Config:
    """A whole validated config. Replace values with :meth:`with_value`."""

    conductor: ConductorConfig
    mode: ModeConfig | ModesConfig
    bias: BiasConfig
    phonon_bath: PhononBathConfig
    run: RunConfig = field(default_factory=RunConfig)
    study: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as a plain dict (round-trips through :func:`parse_config`)."""
        d = {
            "conductor": self.conductor.to_dict(),
            "mode": self.mode.to_dict(),
            "bias": self.bias.to_dict(),
            "phonon_bath": self.phonon_bath.to_dict(),
            "run": {k: v for k, v in vars(self.run).items() if v is not None},
        }
        if self.study:
            d["study"] = copy.deepcopy(self.study)
        return d

    @property
    def n_modes(self) -> int:
        """Number of modes ``K`` (1: the one-mode routes; > 1: the covariance route only)."""
        return self.mode.n_modes

    def require_one_mode(self, route: str) -> None:
        """Raise :class:`ConfigError` naming ``route`` if this config has several modes."""
        if self.n_modes > 1:
            raise ConfigError(f"several modes (K = {self.n_modes}): not yet on the {route} route; {_COVARIANCE_ROUTES}")

    def with_value(self, key: str, value: Any) -> Config:
        """A new config with ``section.key`` (or a list element ``section.key[i]``) set to
        ``value`` (validated again).

        Setting ``bias.V`` or ``bias.mu0`` on a config given as ``mu_L, mu_R``
        (or the reverse) converts the bias to that form first.
        """
        return parse_config(_set(self.to_dict(), key, value))

    def get(self, key: str) -> Any:
        """The value of ``section.key`` (``bias.V`` and ``bias.mu0`` always work); a list
        element as ``section.key[i]`` (for example ``conductor.eps[0]``)."""
        section, _, name = key.partition(".")
        if section == "bias" and name in ("V", "mu0", "mu_L", "mu_R", "T_e", "T_L", "T_R"):
            return getattr(self.bias, name)
        d = self.to_dict()
        if section in d and "." in name:  # a sub-table key, mode.potential.D
            sub, _, name = name.partition(".")
            tab = d[section].get(sub)
            d = {section: tab if isinstance(tab, dict) else {}}
        name, index = _split_index(key, name)
        if section not in d or name not in d[section]:
            raise ConfigError(f"{key} is not a known key of this config")
        v = d[section][name]
        if index is None:
            return v
        if not isinstance(v, list) or not 0 <= index < len(v):
            raise ConfigError(f"{key}: {section}.{name} = {v!r} has no element {index}")
        return v[index]


def _split_index(key: str, name: str) -> tuple[str, int | None]:
    """``eps[0]`` -> (``eps``, 0); ``eps`` -> (``eps``, None)."""
    if not name.endswith("]"):
        return name, None
    base, bracket, idx = name[:-1].partition("[")
    if not bracket or not base or not idx.strip().isdigit():
        raise ConfigError(f"{key!r}: a list element is written section.key[i] with an integer i >= 0 (counted from "
                          "0; negative indices are not accepted)")
    return base, int(idx)


def _set(d: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    section, dot, name = key.partition(".")
    if not dot or not name or section not in _SECTIONS:
        raise ConfigError(f"{key!r} must be section.key with section one of {', '.join(_SECTIONS)}")
    d = copy.deepcopy(d)
    sec = d.setdefault(section, {})
    if section == "bias" and name in ("V", "mu0") and "mu_L" in sec:
        mu_L, mu_R = sec.pop("mu_L"), sec.pop("mu_R", 0.0)
        sec["V"], sec["mu0"] = mu_L - mu_R, 0.5 * (mu_L + mu_R)
    elif section == "bias" and name in ("mu_L", "mu_R") and "V" in sec:
        V, mu0 = sec.pop("V"), sec.pop("mu0", 0.0)
        sec["mu_L"], sec["mu_R"] = mu0 + V / 2, mu0 - V / 2
    if "." in name:  # a sub-table key, mode.potential.D
        sub, _, rest = name.partition(".")
        if not rest or "." in rest or "[" in sub:
            raise ConfigError(f"{key!r} must be section.key or section.table.key")
        tab = sec.setdefault(sub, {})
        if not isinstance(tab, dict):
            raise ConfigError(f"{key}: {section}.{sub} = {tab!r} is not a table")
        sec, name = tab, rest
    name, index = _split_index(key, name)
    if index is None:
        sec[name] = value
        return d
    current = sec.get(name)
    if not isinstance(current, list) or not 0 <= index < len(current):
        raise ConfigError(f"{key}: {section}.{name} = {current!r} has no element {index}")
    current[index] = value
    return d


def parse_config(d: dict[str, Any]) -> Config:
    """Validate a config dict (as read from TOML) into a :class:`Config`."""
    if not isinstance(d, dict):
        raise ConfigError(f"config must be a table, got {d!r}")
    for k in d:
        if k not in _SECTIONS:
            raise ConfigError(f"[{k}] is not a known section (allowed: {', '.join(_SECTIONS)})")
    for k in ("conductor", "mode", "bias"):
        if k not in d:
            raise ConfigError(f"[{k}] section is required")
    mode = d["mode"]
    _check_keys("mode", mode, {"omega", "coherence_width", "lamb_shift", "potential"})
    if "omega" not in mode:
        raise ConfigError("mode.omega is required (the mode quantum, > 0)")
    ph = d.get("phonon_bath", {})
    _check_keys("phonon_bath", ph, {"T", "gamma"})
    run = d.get("run", {})
    _check_keys("run", run, set(RunConfig.__dataclass_fields__))
    study = d.get("study", {})
    if not isinstance(study, dict):
        raise ConfigError(f"[study] must be a table, got {study!r}")
    mode_cfg = _mode_section(mode)
    cfg = Config(
        conductor=ConductorConfig.from_dict(d["conductor"]),
        mode=mode_cfg,
        bias=BiasConfig.from_dict(d["bias"]),
        phonon_bath=PhononBathConfig(**ph),
        run=RunConfig(**run),
        study=dict(study),
    )
    _check_mode_counts(cfg)
    return cfg


def parse_override(item: str) -> tuple[str, Any]:
    """``section.key=value``; the value is read as TOML, a bare word as a string."""
    bad = sorted({c for c in item if ord(c) < 32 or ord(c) == 127} - {"\t"})
    if bad:  # TOML would read the rest as more keys and tables (silently dropped or set)
        raise ConfigError(f"--set {item!r}: a key and value must be on one line (no newline or other control "
                          f"character: found {', '.join(repr(c) for c in bad)}); give each override as its own --set")
    key, eq, raw = item.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    except RecursionError:  # arrays or tables nested thousands deep: no config key takes them
        raise ConfigError(f"--set {key.strip()}: the value is nested too deeply to be a config value") from None
    return key.strip(), value


def apply_overrides(d: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    for item in overrides:
        key, value = parse_override(item)
        d = _set(d, key, value)
    return d


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a TOML file, apply ``--set`` overrides and validate.

    ``path`` is a file, or the name of a bundled example (``paper_double_dot`` or
    ``paper_double_dot.toml``, see :mod:`sim.examples`) when no such file exists.
    """
    from .examples import resolve_config

    p = resolve_config(path)  # a path that exists, else a bundled example's name
    try:  # a regular file of at most 8 MiB: a FIFO, a device or a directory is refused, never read
        text = read_text(p, "config file", exc=ConfigError)
    except ConfigError as e:
        hint = "" if os.path.lexists(p) else " (nor is it a bundled example: see 'ehp examples')"
        e.args = (f"{e}{hint}",)
        raise
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {e}") from None
    except RecursionError:  # arrays or inline tables nested thousands deep
        raise ConfigError(f"config file {str(p)!r} nests arrays or tables too deeply to be a config (no key takes "
                          "more than a few levels)") from None
    try:
        return parse_config(_resolve_files(apply_overrides(d, overrides), p.parent))
    except ConfigError as e:  # name the config the key came from (the key, value and rule are in the message)
        e.args = (f"{e} (config {str(path)!r})",)
        raise


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):  # a TOML basic string: backslash, quote and control characters escaped
        body = v.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + "".join(c if c.isprintable() or c == " " else f"\\U{ord(c):08x}" for c in body) + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(d: dict[str, Any]) -> str:
    """A small TOML writer for resolved configs (tables of scalars and lists)."""
    out = []
    for section, body in d.items():
        out.append(f"[{section}]")
        out.extend(f"{k} = {_toml_value(v)}" for k, v in body.items())
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- several modes (parts that need the classes)

def _mode_section(mode: dict[str, Any]) -> ModeConfig | ModesConfig:
    om = mode["omega"]
    if isinstance(om, list):
        if "potential" in mode:
            raise ConfigError(f"mode.potential = {mode['potential']!r} applies to one mode (mode.omega a number); "
                              f"mode.omega = {om!r} gives several: remove one or the other")
        return ModesConfig(tuple(om), mode.get("coherence_width"), mode.get("lamb_shift", False))
    return ModeConfig(**mode)


def _build_modes(c: ConductorConfig) -> tuple[Conductor, np.ndarray]:
    p = c.params
    if c.kind == "flat":
        raise ConfigError("conductor.kind = 'flat' has no orbital couplings M^k; several modes need kind = "
                          "'matrix' or 'double_dot'")
    if c.kind == "double_dot":
        cs = p["coupling"] if isinstance(p["coupling"], list) else [p["coupling"]]
        cond = double_dot(tuple(p["eps"]), p["hopping"], p["gamma_L"], p["gamma_R"], 0.0)
        return cond, np.array([[[0.0, x], [x, 0.0]] for x in cs], dtype=complex)
    if "file" in p:
        a = _npz_arrays(p["file"])
        return Conductor(a["H"], a["gamma_L"], a["gamma_R"], np.zeros_like(a["H"])), a["M"]
    M = np.array(p["M"], dtype=complex) + 1j * np.array(p.get("M_imag", np.zeros_like(p["M"])))
    M = M if M.ndim == 3 else M[None]
    one = ConductorConfig("matrix", {**{k: v for k, v in p.items() if k not in ("M", "M_imag")},
                                     "M": np.zeros(M.shape[1:]).tolist()}).build()
    for i, m in enumerate(M):
        guards.check_hermitian(f"conductor.M[{i}]", m, ConfigError)
    return one, 0.5 * (M + M.conj().transpose(0, 2, 1))


def _check_mode_counts(cfg: Config) -> None:
    """The number of quanta, couplings and ph-bath dampings must agree."""
    K = cfg.mode.n_modes
    Kc = cfg.conductor.n_modes
    what = {"double_dot": "conductor.coupling", "matrix": "conductor.M", "flat": "conductor.kind"}[cfg.conductor.kind]
    if cfg.conductor.kind == "flat" and K > 1:
        _build_modes(cfg.conductor)
    if Kc != K:
        if "file" in cfg.conductor.params:
            what = f"conductor.file {Path(cfg.conductor.params['file']).name}: M"
        raise ConfigError(f"{what} describes K = {Kc} mode(s) but mode.omega gives {K}: give mode.omega as a list of "
                          f"{Kc} quanta" + ("" if Kc > 1 else " or one number") + f", or {K} couplings")
    if K > 1 and cfg.run.cutoff is not None:
        raise ConfigError(f"run.cutoff = {cfg.run.cutoff} applies only to one mode: with K = {K} modes the routes "
                          "choose a cutoff per mode from the covariance (docs/modes.md), so it would do nothing; remove it")
    if cfg.mode.lamb_shift and cfg.conductor.kind == "flat":
        raise ConfigError("mode.lamb_shift = true needs orbital couplings (conductor.kind = 'matrix' or 'double_dot'): "
                          "with conductor.kind = 'flat' the damping Lambda_c(w) grows linearly in w and the "
                          "principal-value integral of the Lamb shift diverges logarithmically; set mode.lamb_shift = false")
    g = cfg.phonon_bath.gamma
    if isinstance(g, tuple) and (len(g) != K or K == 1):
        raise ConfigError(f"phonon_bath.gamma must be one number or a list of K = {K} (one per mode), got {list(g)!r}")


def one_mode_config(config: Config, k: int) -> Config:
    """Mode ``k`` of a config of several modes, alone: a one-mode config (its own quantum,
    coupling and ph-bath damping; the conductor, bias and ph-bath temperature unchanged).

    Raises :class:`ConfigError` for a ``conductor.file`` model (its couplings live in the file).
    """
    K = config.n_modes
    if not (isinstance(k, int) and 0 <= k < K):
        raise ConfigError(f"mode index must be an integer in 0..{K - 1}, got {k!r}")
    d = config.to_dict()
    if K == 1:
        return config
    c = d["conductor"]
    if "file" in c:
        raise ConfigError("conductor.file: one mode alone needs its couplings inline (write a file per mode)")
    if c["kind"] == "double_dot":
        c["coupling"] = c["coupling"][k]
    else:
        for q in ("M", "M_imag"):
            if q in c:
                c[q] = c[q][k]
    d["mode"] = {"omega": d["mode"]["omega"][k], **{q: v for q, v in d["mode"].items() if q == "lamb_shift"}}
    g = d["phonon_bath"]["gamma"]
    d["phonon_bath"]["gamma"] = g[k] if isinstance(g, list) else g
    return parse_config(d)
