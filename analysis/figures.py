r"""Studies: ``ehp run runs/NAME.toml`` -> ``runs/NAME/`` with the table (parquet) and the figure (PNG).

A study is a config whose ``[study]`` table says what to compute (``kind``) and the
figure's options; choices the paper leaves open are stated in the TOML's comments.
Kinds (docs/figures.md, docs/config.md):

``bias_sweep`` (the default for a config without ``[study]``)
    The rate-equation steady state against ``bias.V`` (``study.V``, default
    ``-2 Omega:2 Omega:41``): ``kappa``, ``N``, ``J``, ``Ie``, ..., points with
    ``kappa <= 0`` flagged, each sign change of ``kappa`` refined by the root finder;
    ``study.level = "lowest" | "full"`` adds the Landauer-like ``J``, ``Ie``.

``rectification`` (paper Fig. 3)
    Heat current ``J`` (e-bath -> mode, Landauer Eq. 13) against ``x = dT/T_ph`` with
    ``T_ph = phonon_bath.T`` held fixed and ``T_e = T_ph (1 + x)``, for ``mu_L = mu_R``
    (``bias.V = 0``) and the curves of ``study.curves``, for the configured (Lorentzian)
    conductor and a flat DOS (``study.flat``). Rectification with temperatures exchanged
    (docs/figures.md), for ``|dT| = x T_0``, ``x > 0``::

        rho = (|J(T_e = T0 + |dT|, T_ph = T0)| - |J(T_e = T0, T_ph = T0 + |dT|)|) / mean of the two

    exactly zero for a flat DOS (the transmission does not depend on temperature).
``thermoelectric`` (Fig. 4)
    ``Ie`` (Eq. 14) and ``eta = Ie / (J_ph/Omega)`` (``J_ph = J`` in steady state) against
    ``x = dT/T_ph``, same temperature convention.
``cooling`` (Fig. 5)
    ``J`` against ``mu_LR = bias.V`` at several ``T = T_e = T_ph``; ``J < 0`` is electronic
    cooling of the mode; points with ``kappa <= 0`` (no steady state) are flagged.
``transient``
    ``N(t)`` either side of the instability threshold in ``study.vary``.
``instability_map``
    ``kappa`` over two keys, boundary from the grid and from the root finder, and one run
    on each side of the boundary (:mod:`analysis.maps`; several modes: the margin
    ``2 min Re eig(Y)``).
``collective_runaway``
    Several modes that run away together while each alone is stable: margin maps over
    ``vary`` and the splitting of the quanta with and without cross terms, each mode alone,
    and ``N_k(t)`` above threshold (:mod:`analysis.modes_study`).

Outputs in ``DIR`` (default ``runs/NAME/``): ``NAME.parquet`` (the figure's table),
``NAME.png``, ``summary.json`` (the figure's headline numbers), ``metadata.json`` and the
resumable raw sweeps ``sweep-*.parquet/``. A ``DIR`` holding a different run is refused
unless ``overwrite``; the same run is resumed (saved sweep chunks are not recomputed).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.config import Config, ConfigError, parse_config
from sim.io import RunDirectory
from sim.parallel import Scheduler
from sim.sweep import Grid, GridAxis, SteadyPoint, SweepJob, run_sweeps, study_values

from . import modes_study, plots
from .maps import InstabilityMap, confirm_runs, initial_population, threshold_curve
from .plots import unstable_intervals
from .threshold import find_threshold

__all__ = ["StudyResult", "run_study", "study_kinds", "cooling_window", "default_out", "DEFAULT_STUDY",
           "default_study", "unstable_intervals"]


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` wrote: the table, the figure and the summary."""

    name: str
    out: Path
    table: pd.DataFrame
    table_path: Path
    figure_path: Path
    summary: dict[str, Any]
    resumed: bool


@dataclass(frozen=True)
class _Ctx:
    config: Config
    opts: dict[str, Any]
    rundir: RunDirectory
    scheduler: Scheduler
    progress: bool


# --------------------------------------------------------------------------- option helpers

def _values(key: str, spec: Any) -> tuple[float, ...]:
    """``study.KEY``: a list of numbers or a ``start:stop:num`` string (numpy.linspace) -> floats."""
    return study_values(key, spec)


def _curves(spec: Any) -> tuple[str, tuple[float, ...]]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"study.curves must be a table with one key, e.g. {{ \"bias.mu0\" = [0, 0.5] }}, got {spec!r}")
    ((key, vals),) = spec.items()
    return key, _values(f"curves.{key}", vals)


def _options(config: Config, defaults: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    study = dict(config.study)
    kind = study.pop("kind")
    for k in study:
        if k not in defaults:
            raise ConfigError(f"study.{k} is not a known key for kind = {kind!r} (allowed: kind, {', '.join(defaults)})")
    for k in required:
        if k not in study:
            raise ConfigError(f"study.{k} is required for kind = {kind!r}")
    return {**defaults, **study}


def _level(v: Any) -> str:
    if v not in ("lowest", "full"):
        raise ConfigError(f"study.level must be 'lowest' or 'full', got {v!r}")
    return v


# --------------------------------------------------------------------------- Fig. 3 and 4

def _forward_jobs(name: str, base: Config, ckey: str, cvals, xs, level: str, with_reverse: bool) -> list[SweepJob]:
    T0 = base.phonon_bath.T
    if T0 <= 0:
        raise ConfigError(f"phonon_bath.T must be > 0 for a dT/T_ph axis, got {T0:g}")
    fn = SteadyPoint(level)
    jobs = [SweepJob(f"sweep-{name}-forward", base, Grid((GridAxis(ckey, cvals), GridAxis("bias.T_e", tuple(
        T0 * (1 + x) for x in xs)))), fn)]
    xpos = tuple(x for x in xs if x > 0)
    if with_reverse and xpos:
        rev = base.with_value("bias.T_e", T0)
        jobs.append(SweepJob(f"sweep-{name}-reverse", rev, Grid((GridAxis(ckey, cvals), GridAxis("phonon_bath.T", tuple(
            T0 * (1 + x) for x in xpos)))), fn))
    return jobs


def _landauer_columns(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"J": t["landauer.J"].to_numpy(), "Ie": t["landauer.Ie"].to_numpy(),
                         "kappa": t["kappa"].to_numpy(), "stable": t["stable"].to_numpy()})


def _x_table(t: pd.DataFrame, ckey: str, cvals, xs, dos: str | None, T_e, T_ph) -> pd.DataFrame:
    n = len(xs)
    head = {} if dos is None else {"dos": dos}
    params = pd.DataFrame({**head, ckey: np.repeat(cvals, n), "dT_over_T_ph": np.tile(xs, len(cvals)),
                           "bias.T_e": T_e, "phonon_bath.T": T_ph})
    return pd.concat([params, _landauer_columns(t)], axis=1)


def _rectification(c: _Ctx) -> tuple[pd.DataFrame, dict[str, Any], Callable[[pd.DataFrame, Path], None]]:
    o = c.opts
    level = _level(o["level"])
    ckey, cvals = _curves(o["curves"])
    xs = _values("x", o["x"])
    base = c.config.with_value("bias.V", 0.0)
    variants = {"lorentzian": base}
    if o["flat"] is not None:
        if not isinstance(o["flat"], dict):
            raise ConfigError(f"study.flat must be a table of flat kernels K_LL, K_RR, K_LR, K_RL, got {o['flat']!r}")
        d = base.to_dict()
        d["conductor"] = {"kind": "flat", **o["flat"]}
        variants["flat"] = parse_config(d)
    jobs = [j for dos, cfg in variants.items() for j in _forward_jobs(dos, cfg, ckey, cvals, xs, level, True)]
    tabs = run_sweeps(jobs, c.rundir, c.scheduler, progress=c.progress, desc="rectification")
    T0 = base.phonon_bath.T
    xpos = np.array([x for x in xs if x > 0])
    frames, summary = [], {"fluxes": f"landauer {level} (Eq. 13)", "T0": T0, "rho_max_abs": {}}
    for dos in variants:
        fwd = _x_table(tabs[f"sweep-{dos}-forward"], ckey, cvals, xs, dos, T0 * (1 + np.tile(xs, len(cvals))), T0)
        fwd["J_reverse"] = np.nan
        fwd["rho"] = np.nan
        if len(xpos):
            rev = tabs[f"sweep-{dos}-reverse"]["landauer.J"].to_numpy().reshape(len(cvals), len(xpos))
            for i, cv in enumerate(cvals):
                for j, x in enumerate(xpos):
                    row = (fwd[ckey] == cv) & (fwd["dT_over_T_ph"] == x)
                    jf, jr = abs(float(fwd.loc[row, "J"].iloc[0])), abs(float(rev[i, j]))
                    fwd.loc[row, "J_reverse"] = rev[i, j]
                    fwd.loc[row, "rho"] = (jf - jr) / ((jf + jr) / 2) if jf + jr > 0 else np.nan
        frames.append(fwd)
        summary["rho_max_abs"][dos] = float(np.nanmax(np.abs(fwd["rho"]))) if len(xpos) else None
    table = pd.concat(frames, ignore_index=True)
    return table, summary, lambda t, p: plots.plot_rectification(t, p, ckey)


def _thermoelectric(c: _Ctx) -> tuple[pd.DataFrame, dict[str, Any], Callable[[pd.DataFrame, Path], None]]:
    o = c.opts
    level = _level(o["level"])
    ckey, cvals = _curves(o["curves"])
    xs = _values("x", o["x"])
    base = c.config.with_value("bias.V", 0.0)
    (job,) = _forward_jobs("lorentzian", base, ckey, cvals, xs, level, False)
    t = run_sweeps([job], c.rundir, c.scheduler, progress=c.progress, desc="thermoelectric")[job.table]
    T0 = base.phonon_bath.T
    table = _x_table(t, ckey, cvals, xs, None, T0 * (1 + np.tile(xs, len(cvals))), T0)
    om = base.mode.omega
    with np.errstate(divide="ignore", invalid="ignore"):
        table["eta"] = np.where(table["J"] != 0, table["Ie"] / (table["J"] / om), np.nan)
    best = table.groupby(ckey)["eta"].max()
    summary = {"fluxes": f"landauer {level} (Eqs. 13-14); eta = Ie / (J_ph/Omega), J_ph = J in steady state",
               "T0": T0, "eta_max": {f"{k:g}": float(v) for k, v in best.items()},
               "curve_with_largest_eta": float(best.idxmax()), "Ie_range": [float(table["Ie"].min()),
                                                                            float(table["Ie"].max())]}
    return table, summary, lambda t, p: plots.plot_thermoelectric(t, p, ckey)


# --------------------------------------------------------------------------- Fig. 5

def cooling_window(V: np.ndarray, J: np.ndarray) -> tuple[float, float, bool]:
    """The ``J < 0`` window at negative bias that ends nearest ``V = 0``.

    Returns ``(lower, upper, open)``: edges by linear interpolation of the sign changes of
    ``J``, and ``open = True`` when the window runs to the end of the grid (``lower`` is
    then the grid's first value). ``(nan, nan, False)`` if ``J >= 0`` at every ``V < 0``.
    """
    V = np.asarray(V, dtype=float)
    J = np.asarray(J, dtype=float)
    neg = np.flatnonzero((V < 0) & (J < 0))
    if not len(neg):
        return float("nan"), float("nan"), False
    hi = neg[-1]
    lo = hi
    while lo > 0 and J[lo - 1] < 0:
        lo -= 1

    def edge(i: int, k: int) -> float:
        return float(V[i] - J[i] * (V[k] - V[i]) / (J[k] - J[i]))

    lower = edge(lo - 1, lo) if lo > 0 else float(V[0])
    upper = edge(hi, hi + 1) if hi + 1 < len(V) else float(V[hi])
    return lower, upper, bool(lo == 0)


def _cooling(c: _Ctx) -> tuple[pd.DataFrame, dict[str, Any], Callable[[pd.DataFrame, Path], None]]:
    o = c.opts
    level = _level(o["level"])
    temps = _values("temperatures", o["temperatures"])
    jobs = []
    for i, T in enumerate(temps):
        cfg = c.config.with_value("bias.T_e", T).with_value("phonon_bath.T", T)
        jobs.append(SweepJob(f"sweep-T{i}", cfg, Grid((GridAxis.make("bias.V", o["V"]),)), SteadyPoint(level)))
    tabs = run_sweeps(jobs, c.rundir, c.scheduler, progress=c.progress, desc="cooling")
    frames, windows = [], {}
    for T, job in zip(temps, jobs, strict=True):
        t = tabs[job.table]
        f = pd.DataFrame({"T": T, "bias.V": t["bias.V"], "mu_LR": t["bias.V"]})
        f = pd.concat([f, _landauer_columns(t)], axis=1)
        f["J_rate"] = t["J"].to_numpy()
        frames.append(f)
        lo, up, open_ = cooling_window(f["mu_LR"].to_numpy(), f["J"].to_numpy())
        windows[f"{T:g}"] = {"lower": lo, "upper": up, "width": up - lo, "open_at_grid_edge": open_}
    table = pd.concat(frames, ignore_index=True)
    unstable = table.loc[~table["stable"], "mu_LR"]
    summary = {"fluxes": f"landauer {level} (Eq. 13); J_rate is the rate-equation steady state (NaN if unstable)",
               "cooling_window": windows,
               "unstable_mu_LR": {f"{T:g}": sorted(map(float, table.loc[(~table['stable']) & (table['T'] == T),
                                                                         'mu_LR'])) for T in temps},
               "n_unstable": int(len(unstable))}
    return table, summary, lambda t, p: plots.plot_cooling(t, p, windows)


# --------------------------------------------------------------------------- transient and map

def _time_grid(c: _Ctx) -> np.ndarray:
    t_end = c.opts["t_end"] if c.opts["t_end"] is not None else c.config.run.t_end
    if t_end is None:
        raise ConfigError("study.t_end (or run.t_end) is required for kind = "
                          f"{c.config.study['kind']!r}")
    if not isinstance(t_end, int | float) or isinstance(t_end, bool) or t_end <= 0:
        raise ConfigError(f"study.t_end must be a number > 0, got {t_end!r}")
    return np.linspace(0.0, float(t_end), c.config.run.n_points)


def _between(v: Any) -> tuple[float, float]:
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int | float) for x in v)):
        raise ConfigError(f"study.between must be [A, B], got {v!r}")
    return float(v[0]), float(v[1])


def _method(v: Any) -> str:
    if v not in ("rate", "population"):
        raise ConfigError(f"study.method must be 'rate' or 'population', got {v!r}")
    return v


def _transient(c: _Ctx) -> tuple[pd.DataFrame, dict[str, Any], Callable[[pd.DataFrame, Path], None]]:
    o = c.opts
    key = o["vary"]
    th = find_threshold(c.config, key, _between(o["between"]))
    rel = _values("relative", o["relative"])
    t = _time_grid(c)
    vals = [th.threshold * (1 + r) for r in rel]
    series, rates = confirm_runs(c.config, key, vals, t, N0=initial_population(c.config.run.initial),
                                 method=_method(o["method"]))
    series.insert(1, "relative", np.repeat(rel, [int((series[key] == v).sum()) for v in vals]))
    rates.insert(1, "relative", rel)
    kap = dict(zip(rates[key], rates["kappa"], strict=True))
    series.insert(2, "kappa", series[key].map(kap))
    summary = {"vary": key, "threshold": th.threshold, "slope": th.slope,
               "runs": rates.to_dict(orient="records"), "method": o["method"]}
    return series, summary, lambda s, p: plots.plot_transient(s, p, key, th.threshold)


def _instability_map(c: _Ctx) -> tuple[pd.DataFrame, dict[str, Any], Callable[[pd.DataFrame, Path], None]]:
    o = c.opts
    axes = []
    for name in ("x", "y"):
        a = o[name]
        if not (isinstance(a, dict) and set(a) == {"key", "grid"}):
            raise ConfigError(f"study.{name} must be {{ key = \"section.key\", grid = \"start:stop:num\" }}, got {a!r}")
        axes.append(GridAxis.make(a["key"], a["grid"]))
    ax, ay = axes
    job = SweepJob("sweep-map", c.config, Grid((ay, ax)), SteadyPoint(None))
    t = run_sweeps([job], c.rundir, c.scheduler, progress=c.progress, desc="map")[job.table]
    m = InstabilityMap.from_table(t, ax.key, ay.key)
    between = _between(o["between"]) if o["between"] is not None else (float(min(ax.values)), float(max(ax.values)))
    curve = threshold_curve(c.config, ax.key, between, ay.key, m.y).merge(m.boundary(), on=ay.key)
    y0 = float(o["confirm_at"]) if o["confirm_at"] is not None else float(m.y[len(m.y) // 2])
    th0 = find_threshold(c.config.with_value(ay.key, y0), ax.key, between).threshold
    off = float(o["confirm_offset"])
    cfg0 = c.config.with_value(ay.key, y0)
    series, rates = confirm_runs(cfg0, ax.key, [th0 * (1 - off), th0 * (1 + off)], _time_grid(c),
                                 N0=initial_population(c.config.run.initial), method=_method(o["method"]))
    rates.insert(0, ay.key, y0)
    rd = c.rundir.path
    _write_parquet(curve, rd / "thresholds.parquet")
    _write_parquet(series, rd / "confirm.parquet")
    c.rundir.record("thresholds.parquet", "confirm.parquet")
    diff = (curve["threshold_grid"] - curve["threshold"]).abs()
    dx = float(np.min(np.diff(np.sort(ax.values)))) if len(ax.values) > 1 else float("nan")
    summary = {"x": ax.key, "y": ay.key, "grid_step_x": dx,
               "max_abs_grid_minus_root": float(diff.max()) if diff.notna().any() else None,
               "thresholds": curve.to_dict(orient="records"), "confirm": rates.to_dict(orient="records")}
    table = t[[ay.key, ax.key, "kappa" if "kappa" in t.columns else "margin", "stable", "growth_rate", "N"]].copy()
    return table, summary, lambda tb, p: plots.plot_instability_map(m, curve, series, rates, p)


# --------------------------------------------------------------------------- default: bias sweep

def _bias_grid(c: _Ctx) -> GridAxis:
    if c.opts["V"] is None:
        om = c.config.mode.omega
        return GridAxis("bias.V", tuple(float(v) for v in np.linspace(-2 * om, 2 * om, 41)))
    return GridAxis.make("bias.V", c.opts["V"])


def _bias_sweep(c: _Ctx) -> tuple[pd.DataFrame, dict[str, Any], Callable[[pd.DataFrame, Path], None]]:
    o = c.opts
    level = None if o["level"] == "rate" else _level(o["level"])
    job = SweepJob("sweep-bias", c.config, Grid((_bias_grid(c),)), SteadyPoint(level))
    t = run_sweeps([job], c.rundir, c.scheduler, progress=c.progress, desc="bias sweep")[job.table]
    cols = ["bias.V", "kappa", "stable", "growth_rate", "N", "T_eff", "mu_eff", "J", "J_ph", "Ie", "eta"]
    cols += [k for k in ("landauer.J", "landauer.Ie") if k in t]
    table = t[cols].copy()
    V, kap = table["bias.V"].to_numpy(), table["kappa"].to_numpy()
    roots = []
    for i in np.flatnonzero(np.sign(kap[:-1]) * np.sign(kap[1:]) < 0):  # refine each sign change on the grid
        roots.append(find_threshold(c.config, "bias.V", (float(V[i]), float(V[i + 1]))).threshold)
    summary = {"fluxes": "rate equation (steady state, NaN where kappa <= 0)"
               + (f"; landauer.J, landauer.Ie: landauer {level}" if level else ""),
               "thresholds_bias_V": roots, "n_points": len(table), "n_unstable": int((~table["stable"]).sum()),
               "unstable_V_range": ([float(V[~table["stable"]].min()), float(V[~table["stable"]].max())]
                                    if (~table["stable"]).any() else None)}
    return table, summary, lambda tb, p: _plot_bias_sweep(tb, p, roots)


def _plot_bias_sweep(table: pd.DataFrame, path: Path, roots: list[float]) -> None:
    """(a) kappa, (b) N_ss and (c) the fluxes J, Ie against bias.V; kappa <= 0 shaded from the thresholds
    (:func:`unstable_intervals`), thresholds dotted."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13.5, 4.1))
    axes = fig.subplots(1, 3)
    V = table["bias.V"].to_numpy()
    spans = unstable_intervals(V, table["kappa"].to_numpy(), table["stable"].to_numpy(dtype=bool), roots)
    titles = (r"(a) relaxation rate $\kappa$ ($\leq 0$: runaway)", r"(b) steady-state population $N_{ss}$",
              r"(c) energy current $J$, electron current $I_e$")
    for ax, ys, ylab, title in zip(axes, (("kappa",), ("N",), ("J", "Ie")), (r"$\kappa$", r"$N_{ss}$", r"$J$, $I_e$"),
                                   titles, strict=True):
        for y in ys:
            ax.plot(V, table[y].to_numpy(), marker=".", label=y)
        for k, r in enumerate(roots):
            ax.axvline(r, color="0.4", ls=":", label=f"threshold $V_c$ = {r:.4g}" if k == 0 else None)
        for k, (a, b) in enumerate(spans):
            ax.axvspan(a, b, color="tab:red", alpha=0.12, lw=0, label=r"$\kappa \leq 0$ (runaway)" if k == 0 else None)
        ax.set_xlabel(r"$V = \mu_L - \mu_R$")
        ax.set_ylabel(ylab)
        ax.set_title(title, fontsize=10)
    axes[0].axhline(0, color="k", lw=0.8)
    if np.any(table["N"].to_numpy() > 0):
        axes[1].set_yscale("log")
    axes[2].set_yscale("symlog", linthresh=1e-4)
    lo, hi = axes[2].get_ylim()
    axes[2].set_ylim(lo * 3 if lo < -1e-4 else lo, hi * 3 if hi > 1e-4 else hi)  # headroom on the log part
    axes[2].legend(frameon=False, loc="lower right", fontsize=9)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.91, wspace=0.3)  # tight_layout costs seconds
    fig.savefig(path, dpi=110)


#: The study ``ehp run`` uses for a one-mode config without ``[study]`` (several modes: :func:`default_study`).
DEFAULT_STUDY: dict[str, Any] = {"kind": "bias_sweep"}


def default_study(config: Config) -> dict[str, Any]:
    """The study ``ehp run`` uses for a config without ``[study]``: :data:`DEFAULT_STUDY` for one mode; for
    several modes ``collective_runaway`` over ``bias.V`` in ``[0, 2 |V|]`` (21 points; ``[0, 2]`` at ``V = 0``;
    5 splittings of the quanta), with the threshold searched in that range, the other options at their defaults."""
    if config.n_modes == 1:
        return dict(DEFAULT_STUDY)
    hi = 2.0 * abs(float(config.bias.V)) or 2.0
    return {"kind": "collective_runaway", "vary": "bias.V", "between": [0.0, hi], "grid": f"0:{hi:.12g}:21",
            "splitting": "0:0.04:5"}

def _collective_runaway(c: _Ctx) -> tuple[pd.DataFrame, dict[str, Any], Callable[[pd.DataFrame, Path], None]]:
    return modes_study.collective_runaway(c.config, c.opts, c.rundir, c.scheduler, c.progress)


_KINDS: dict[str, tuple[Callable[[_Ctx], Any], dict[str, Any], tuple[str, ...]]] = {
    "bias_sweep": (_bias_sweep, {"V": None, "level": "rate"}, ()),
    "rectification": (_rectification, {"level": "lowest", "x": "-0.4:0.4:16", "curves": None, "flat": None},
                      ("curves",)),
    "thermoelectric": (_thermoelectric, {"level": "lowest", "x": "-0.4:0.4:16", "curves": None}, ("curves",)),
    "cooling": (_cooling, {"level": "lowest", "V": "-2:1.5:36", "temperatures": None}, ("temperatures",)),
    "transient": (_transient, {"vary": "bias.V", "between": None, "relative": [-0.2, -0.05, 0.05, 0.2],
                               "t_end": None, "method": "rate"}, ("between",)),
    "collective_runaway": (_collective_runaway, dict(modes_study.DEFAULTS), ("between",)),
    "instability_map": (_instability_map, {"x": None, "y": None, "between": None, "confirm_at": None,
                                           "confirm_offset": 0.1, "t_end": None, "method": "rate"}, ("x", "y")),
}


def study_kinds() -> tuple[str, ...]:
    """The ``study.kind`` values :func:`run_study` knows."""
    return tuple(_KINDS)


# --------------------------------------------------------------------------- runner

def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def default_out(config_path: str | Path) -> Path:
    """``runs/NAME.toml`` -> ``runs/NAME/``."""
    p = Path(config_path)
    return p.with_suffix("") if p.suffix == ".toml" else p.with_name(p.name + ".out")


def run_study(
    config: Config,
    name: str,
    out: str | Path,
    *,
    scheduler: str | Scheduler = "serial",
    overwrite: bool = False,
    progress: bool | None = None,
) -> StudyResult:
    """Run the study described by ``config.study`` into ``out`` (see the module doc).

    Raises
    ------
    ConfigError
        Missing or unknown ``study.kind``, bad study options, or ``out`` holds a different
        run and ``overwrite`` is False.
    """
    kind = config.study.get("kind")
    if kind not in _KINDS:
        raise ConfigError(f"study.kind must be one of {', '.join(_KINDS)}, got {kind!r}"
                          + ("" if config.study else " (the config has no [study] table)"))
    fn, defaults, required = _KINDS[kind]
    opts = _options(config, defaults, required)
    sched = Scheduler.parse(scheduler)
    rd = RunDirectory.open(out, {"command": "run", "config": config.to_dict()}, overwrite=overwrite,
                           metadata={"config": config.to_dict(), "study": name, "kind": kind})
    t0 = time.perf_counter()
    with rd:  # an exception marks the run failed and releases the lock
        table, summary, draw = fn(_Ctx(config, opts, rd, sched, progress))
        table_path = rd.path / f"{name}.parquet"
        fig_path = rd.path / f"{name}.png"
        _write_parquet(table, table_path)
        draw(table, fig_path)
        rd.record(table_path, *([fig_path] if fig_path.is_file() else []))
        rd.write_summary({"study": name, "kind": kind, **summary})
        rd.finish(wall_s=time.perf_counter() - t0, scheduler=sched.describe())
    return StudyResult(name, rd.path, table, table_path, fig_path, summary, rd.resumed)
