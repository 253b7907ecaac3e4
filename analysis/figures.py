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

Every study is validated whole before its directory is opened (:func:`validate_study`): its
``[study]`` keys and values, the config of every point of every sweep (built, not computed),
the routes it calls (Landauer and the one-mode tables refuse several modes, the population
route too), the final time of its time-domain runs and, where it needs one, the threshold it
runs around (the root finder, milliseconds). A bad study is one ``ConfigError`` and nothing
is written; what a failed run did write is recorded, so the same run resumes over it.
"""

from __future__ import annotations

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
from sim.results import Result
from sim.sweep import GridAxis, SteadyPoint, SweepJob, run_sweeps, study_values

from . import modes_study, plots
from . import study_common as sc
from .maps import InstabilityMap, confirm_runs, initial_population, threshold_curve
from .plots import unstable_intervals
from .threshold import find_threshold

__all__ = ["StudyResult", "run_study", "validate_study", "study_kinds", "cooling_window", "default_out",
           "DEFAULT_STUDY", "default_study", "unstable_intervals"]

Draw = Callable[[pd.DataFrame, Path], None]
Outcome = tuple[pd.DataFrame, dict[str, Any], Draw]


@dataclass(frozen=True)
class StudyResult(Result):
    """What :func:`run_study` wrote: the table, the figure and the summary (a :class:`sim.results.Result`:
    ``to_frame()`` is the figure's table, ``provenance()`` the study's config)."""

    route = "study"

    name: str
    out: Path
    table: pd.DataFrame
    table_path: Path
    figure_path: Path
    summary: dict[str, Any]
    resumed: bool

    def to_frame(self) -> pd.DataFrame:
        return self.table


@dataclass(frozen=True)
class _Ctx:
    rundir: RunDirectory
    scheduler: Scheduler
    progress: bool | None


@dataclass(frozen=True)
class _Plan:
    """A validated study: its sweeps (every point's config built: :func:`study_common.sweep_job`) and the
    function that computes it into a run directory."""

    jobs: tuple[SweepJob, ...]
    run: Callable[[_Ctx], Outcome]


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


def _one_mode(config: Config, kind: str, why: str,
              instead: str = "for several modes use kind = 'collective_runaway' or 'instability_map'") -> None:
    """Refuse a config of several modes for a study whose route (``why``) has one mode only."""
    if config.n_modes > 1:
        raise ConfigError(f"study.kind = {kind!r} {why}, which refuses several modes (K = {config.n_modes}, "
                          f"mode.omega = {list(config.mode.omegas)}); {instead} (docs/modes.md)")


def _landauer_route(config: Config, kind: str, level: str) -> None:
    _one_mode(config, kind, f"computes the Landauer fluxes (study.level = {level!r})")


# --------------------------------------------------------------------------- Fig. 3 and 4

def _forward_jobs(name: str, base: Config, ckey: str, cvals, xs, level: str, with_reverse: bool) -> list[SweepJob]:
    T0 = base.phonon_bath.T
    if T0 <= 0:
        raise ConfigError(f"phonon_bath.T must be > 0 for a dT/T_ph axis, got {T0:g}")
    fn = SteadyPoint(level)
    what = f"study.curves / study.x (T_e = T_ph (1 + x), {name} DOS)"
    jobs = [sc.sweep_job(what, f"sweep-{name}-forward", base, (GridAxis(ckey, cvals), GridAxis("bias.T_e", tuple(
        T0 * (1 + x) for x in xs))), fn)]
    xpos = tuple(x for x in xs if x > 0)
    if with_reverse and xpos:
        rev = base.with_value("bias.T_e", T0)
        jobs.append(sc.sweep_job(what, f"sweep-{name}-reverse", rev, (GridAxis(ckey, cvals), GridAxis(
            "phonon_bath.T", tuple(T0 * (1 + x) for x in xpos))), fn))
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


def _rectification(config: Config, o: dict[str, Any]) -> _Plan:
    level = _level(o["level"])
    _landauer_route(config, "rectification", level)
    ckey, cvals = _curves(o["curves"])
    xs = _values("x", o["x"])
    base = config.with_value("bias.V", 0.0)
    variants = {"lorentzian": base}
    if o["flat"] is not None:
        if not isinstance(o["flat"], dict):
            raise ConfigError(f"study.flat must be a table of flat kernels K_LL, K_RR, K_LR, K_RL, got {o['flat']!r}")
        d = base.to_dict()
        d["conductor"] = {"kind": "flat", **o["flat"]}
        try:
            variants["flat"] = parse_config(d)
        except ConfigError as e:
            raise ConfigError(f"study.flat: {e}") from None
    jobs = [j for dos, cfg in variants.items() for j in _forward_jobs(dos, cfg, ckey, cvals, xs, level, True)]
    return _Plan(tuple(jobs), lambda c: _rectification_run(c, jobs, variants, base, ckey, cvals, xs, level))


def _rectification_run(c: _Ctx, jobs, variants, base, ckey, cvals, xs, level) -> Outcome:
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


def _thermoelectric(config: Config, o: dict[str, Any]) -> _Plan:
    level = _level(o["level"])
    _landauer_route(config, "thermoelectric", level)
    ckey, cvals = _curves(o["curves"])
    xs = _values("x", o["x"])
    base = config.with_value("bias.V", 0.0)
    (job,) = _forward_jobs("lorentzian", base, ckey, cvals, xs, level, False)
    return _Plan((job,), lambda c: _thermoelectric_run(c, job, base, ckey, cvals, xs, level))


def _thermoelectric_run(c: _Ctx, job, base, ckey, cvals, xs, level) -> Outcome:
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


def _cooling(config: Config, o: dict[str, Any]) -> _Plan:
    level = _level(o["level"])
    _landauer_route(config, "cooling", level)
    temps = _values("temperatures", o["temperatures"])
    V = sc.axis("V", "bias.V", o["V"])
    jobs = []
    for i, T in enumerate(temps):
        try:
            cfg = config.with_value("bias.T_e", T).with_value("phonon_bath.T", T)
        except ConfigError as e:
            raise ConfigError(f"study.temperatures = {T:g}: {e}") from None
        jobs.append(sc.sweep_job("study.V", f"sweep-T{i}", cfg, (V,), SteadyPoint(level)))
    return _Plan(tuple(jobs), lambda c: _cooling_run(c, jobs, temps, level))


def _cooling_run(c: _Ctx, jobs, temps, level) -> Outcome:
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

def _method(v: Any) -> str:
    if v not in ("rate", "population"):
        raise ConfigError(f"study.method must be 'rate' or 'population', got {v!r}")
    return v


def _confirm_route(config: Config, kind: str, method: str) -> float:
    """The initial population of the confirming runs (``run.initial``), refusing what their route cannot run."""
    N0 = initial_population(config.run.initial)
    if config.n_modes > 1:
        if method != "rate":
            _one_mode(config, kind, f"runs the population route (study.method = {method!r})",
                      "use study.method = 'rate' (the covariance route)")
        if N0 != 0:
            raise ConfigError(f"study.kind = {kind!r}: several modes start from the vacuum in the confirming runs, "
                              f"got run.initial = {config.run.initial!r}")
    return N0


def _threshold(config: Config, key: str, between: tuple[float, float], what: str):
    """The root finder's :class:`~analysis.threshold.Threshold` in ``between`` (found before any sweep or run:
    a bracket without a threshold is refused now, naming ``what``)."""
    sc.check_values(config, key, between, what)
    try:
        return find_threshold(config, key, between)
    except ConfigError as e:
        raise ConfigError(f"{what} = {list(between)}: {e}") from None


def _transient(config: Config, o: dict[str, Any]) -> _Plan:
    key = o["vary"]
    try:
        current = config.get(key) if isinstance(key, str) else None
    except ConfigError:
        current = None
    if isinstance(current, bool) or not isinstance(current, int | float):
        raise ConfigError(f"study.vary must name a numeric config key, got {key!r}")
    between = sc.between(o["between"])
    rel = _values("relative", o["relative"])
    t = sc.time_grid(config, o["t_end"], "transient")
    method = _method(o["method"])
    N0 = _confirm_route(config, "transient", method)
    th = _threshold(config, key, between, "study.between")
    vals = [th.threshold * (1 + r) for r in rel]
    sc.check_values(config, key, vals, "a run at threshold x (1 + study.relative)")
    return _Plan((), lambda c: _transient_run(c, config, key, th, rel, vals, t, N0, method))


def _transient_run(c: _Ctx, config, key, th, rel, vals, t, N0, method) -> Outcome:
    series, rates = confirm_runs(config, key, vals, t, N0=N0, method=method)
    series.insert(1, "relative", np.repeat(rel, [int((series[key] == v).sum()) for v in vals]))
    rates.insert(1, "relative", rel)
    kap = dict(zip(rates[key], rates["kappa"], strict=True))
    series.insert(2, "kappa", series[key].map(kap))
    summary = {"vary": key, "threshold": th.threshold, "slope": th.slope,
               "runs": rates.to_dict(orient="records"), "method": method}
    return series, summary, lambda s, p: plots.plot_transient(s, p, key, th.threshold)


def _instability_map(config: Config, o: dict[str, Any]) -> _Plan:
    axes = []
    for name in ("x", "y"):
        a = o[name]
        if not (isinstance(a, dict) and set(a) == {"key", "grid"}):
            raise ConfigError(f"study.{name} must be {{ key = \"section.key\", grid = \"start:stop:num\" }}, got {a!r}")
        axes.append(sc.axis(f"{name}.grid", a["key"], a["grid"]))
    ax, ay = axes
    job = sc.sweep_job("study.x / study.y", "sweep-map", config, (ay, ax), SteadyPoint(None))
    between = sc.between(o["between"]) if o["between"] is not None else (float(min(ax.values)), float(max(ax.values)))
    y0 = (sc.number("confirm_at", o["confirm_at"]) if o["confirm_at"] is not None
          else float(np.unique(job.grid.axes[0].values)[len(set(ay.values)) // 2]))
    off = sc.number("confirm_offset", o["confirm_offset"], positive=True)
    t = sc.time_grid(config, o["t_end"], "instability_map")
    method = _method(o["method"])
    N0 = _confirm_route(config, "instability_map", method)
    try:
        cfg0 = config.with_value(ay.key, y0)
    except ConfigError as e:
        raise ConfigError(f"study.confirm_at = {y0:g}: {e}") from None
    th0 = _threshold(cfg0, ax.key, between, f"study.between (at study.confirm_at: {ay.key} = {y0:g})").threshold
    vals = [th0 * (1 - off), th0 * (1 + off)]
    sc.check_values(cfg0, ax.key, vals, "a confirming run at threshold x (1 -+ study.confirm_offset)")
    return _Plan((job,), lambda c: _instability_map_run(c, config, job, ax, ay, between, y0, cfg0, vals, t, N0,
                                                        method))


def _instability_map_run(c: _Ctx, config, job, ax, ay, between, y0, cfg0, vals, t_grid, N0, method) -> Outcome:
    t = run_sweeps([job], c.rundir, c.scheduler, progress=c.progress, desc="map")[job.table]
    m = InstabilityMap.from_table(t, ax.key, ay.key)
    curve = threshold_curve(config, ax.key, between, ay.key, m.y).merge(m.boundary(), on=ay.key)
    series, rates = confirm_runs(cfg0, ax.key, vals, t_grid, N0=N0, method=method)
    rates.insert(0, ay.key, y0)
    sc.write_recorded(c.rundir, curve, "thresholds.parquet")
    sc.write_recorded(c.rundir, series, "confirm.parquet")
    diff = (curve["threshold_grid"] - curve["threshold"]).abs()
    dx = float(np.min(np.diff(np.sort(ax.values)))) if len(ax.values) > 1 else float("nan")
    summary = {"x": ax.key, "y": ay.key, "grid_step_x": dx,
               "max_abs_grid_minus_root": float(diff.max()) if diff.notna().any() else None,
               "thresholds": curve.to_dict(orient="records"), "confirm": rates.to_dict(orient="records")}
    table = t[[ay.key, ax.key, "kappa" if "kappa" in t.columns else "margin", "stable", "growth_rate", "N"]].copy()
    return table, summary, lambda tb, p: plots.plot_instability_map(m, curve, series, rates, p)


# --------------------------------------------------------------------------- default: bias sweep

def _bias_sweep(config: Config, o: dict[str, Any]) -> _Plan:
    level = None if o["level"] == "rate" else _level(o["level"])
    _one_mode(config, "bias_sweep", "tabulates the one-mode steady state (kappa, T_eff, eta, ...)")
    if o["V"] is None:
        om = config.mode.omega
        V = GridAxis("bias.V", tuple(float(v) for v in np.linspace(-2 * om, 2 * om, 41)))
    else:
        V = sc.axis("V", "bias.V", o["V"])
    job = sc.sweep_job("study.V", "sweep-bias", config, (V,), SteadyPoint(level))
    return _Plan((job,), lambda c: _bias_sweep_run(c, config, job, level))


def _bias_sweep_run(c: _Ctx, config, job, level) -> Outcome:
    t = run_sweeps([job], c.rundir, c.scheduler, progress=c.progress, desc="bias sweep")[job.table]
    cols = ["bias.V", "kappa", "stable", "growth_rate", "N", "T_eff", "mu_eff", "J", "J_ph", "Ie", "eta"]
    cols += [k for k in ("landauer.J", "landauer.Ie") if k in t]
    table = t[cols].copy()
    V, kap = table["bias.V"].to_numpy(), table["kappa"].to_numpy()
    roots = []
    for i in np.flatnonzero(np.sign(kap[:-1]) * np.sign(kap[1:]) < 0):  # refine each sign change on the grid
        roots.append(find_threshold(config, "bias.V", (float(V[i]), float(V[i + 1]))).threshold)
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

def _collective_runaway(config: Config, o: dict[str, Any]) -> _Plan:
    p = modes_study.plan(config, o)
    return _Plan(p.jobs, lambda c: p.run(c.rundir, c.scheduler, c.progress))


#: kind -> (planner: validates and returns the :class:`_Plan`, option defaults, required options)
_KINDS: dict[str, tuple[Callable[[Config, dict[str, Any]], _Plan], dict[str, Any], tuple[str, ...]]] = {
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

def default_out(config_path: str | Path) -> Path:
    """``runs/NAME.toml`` -> ``runs/NAME/``."""
    p = Path(config_path)
    return p.with_suffix("") if p.suffix == ".toml" else p.with_name(p.name + ".out")


def _plan(config: Config) -> tuple[str, _Plan]:
    kind = config.study.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ConfigError(f"study.kind must be one of {', '.join(_KINDS)}, got {kind!r}"
                          + ("" if config.study else " (the config has no [study] table)"))
    planner, defaults, required = _KINDS[kind]
    return kind, planner(config, _options(config, defaults, required))


def validate_study(config: Config) -> str:
    """Check the whole study of ``config`` as :func:`run_study` runs it, computing nothing but the thresholds it
    runs around (see the module doc); returns its kind.

    Raises
    ------
    ConfigError
        The first thing the study would refuse: a ``[study]`` key or value, a config value at a grid point,
        a route that refuses this config, a missing final time, a bracket without a threshold.
    """
    return _plan(config)[0]


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

    The whole study is validated first (:func:`validate_study`): a bad study writes nothing.

    Raises
    ------
    ConfigError
        Missing or unknown ``study.kind``, anything :func:`validate_study` refuses, or ``out`` holds a
        different run and ``overwrite`` is False.
    """
    kind, plan = _plan(config)
    sched = Scheduler.parse(scheduler)
    rd = RunDirectory.open(out, {"command": "run", "config": config.to_dict()}, overwrite=overwrite,
                           metadata={"config": config.to_dict(), "study": name, "kind": kind})
    t0 = time.perf_counter()
    with rd:  # an exception marks the run failed and releases the lock; what it wrote is recorded
        table, summary, draw = plan.run(_Ctx(rd, sched, progress))
        table_path = sc.write_recorded(rd, table, f"{name}.parquet")
        fig_path = sc.draw_recorded(rd, lambda p: draw(table, p), f"{name}.png")
        rd.write_summary({"study": name, "kind": kind, **summary})
        rd.finish(wall_s=time.perf_counter() - t0, scheduler=sched.describe())
    return StudyResult(name, rd.path, table, table_path, fig_path, summary, rd.resumed, config=config,
                       options={"name": name})
