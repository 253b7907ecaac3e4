r"""Study ``kind = "collective_runaway"``: several modes that run away together (docs/modes.md).

Two (or more) modes, each stable alone, can run away together: the damping matrix
``K = sum_c Lambda^c + diag(gamma)`` of the covariance equation has a negative eigenvalue
while every diagonal entry ``K_kk`` (the one-mode ``kappa`` of mode ``k``) is positive. The
study shows it three ways:

1. the stability margin ``2 min Re eig(Y)`` (``= kappa`` for one mode; < 0: runaway) over
   ``study.vary`` (default ``bias.V``) and the splitting ``Delta`` of the quanta
   (``Omega_k = Omega_bar + (k - (K-1)/2) Delta``, ``Omega_bar`` the mean of ``mode.omega``),
   with the cross terms (``mode.coherence_width`` of the config, or its default: the bundled splittings
   stay in one cluster, rates at its common frequency) and without them
   (``coherence_width = 0``: secular, every split mode its own cluster); the threshold
   ``V_c(Delta)`` of each by Brent's method (:func:`analysis.threshold.find_threshold`);
2. each mode alone (:func:`sim.config.one_mode_config`): its ``kappa`` along ``vary``;
3. the time domain at ``vary = V_c(0) (1 + study.above)``: ``N_k(t)`` of the pair from the
   vacuum (closed-form covariance ``C(t)``), against each mode alone.

Outputs: ``NAME.parquet`` (the margin maps: ``variant, splitting, <vary>, margin, stable,
growth_rate, N``), ``thresholds.parquet`` (``variant, splitting, threshold``),
``evolution.parquet`` (``run, t, N, N_0 ..``), ``NAME.png`` and ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.config import Config, ConfigError, one_mode_config
from sim.sweep import GridAxis, SteadyPoint, SweepJob, run_sweeps, study_values

from . import study_common as sc
from .threshold import find_threshold, margin_at

__all__ = ["DEFAULTS", "CollectivePlan", "plan", "collective_runaway", "plot_collective_runaway", "split_quanta",
           "run_verdict"]

#: ``[study]`` options and their defaults (``vary``, ``between`` and the grids in config units).
DEFAULTS: dict[str, Any] = {"vary": "bias.V", "between": None, "grid": "1.0:3.0:41", "splitting": "0:0.04:9",
                            "above": 0.1, "t_end": None}


def split_quanta(config: Config, delta: float) -> Config:
    """``config`` with its quanta spread evenly by ``delta`` around their mean (``K >= 2``)."""
    om = np.asarray(config.mode.omegas, dtype=float)
    K = om.size
    new = om.mean() + (np.arange(K) - (K - 1) / 2) * float(delta)
    return config.with_value("mode.omega", [float(x) for x in new])


def _values(key: str, spec: Any) -> tuple[float, ...]:
    return study_values(key, spec)


def _threshold(cfg: Config, key: str, between: tuple[float, float]) -> float:
    try:
        return find_threshold(cfg, key, between).threshold
    except ConfigError:
        return float("nan")


def run_verdict(key: str, value: float, pair_margin: float, alone_kappa: list[float]) -> dict[str, Any]:
    """The verdicts at ``key = value`` from the computed numbers: the pair's margin ``2 min Re eig(Y)`` and each
    mode's ``kappa`` alone (``> 0``: stable; ``<= 0``: runs away). ``text`` is what the figure and stdout say."""
    alone_stable = [bool(k > 0) for k in alone_kappa]
    pair_stable = bool(pair_margin > 0)
    if all(alone_stable):
        alone = "each mode alone is stable"
    elif not any(alone_stable):
        alone = "each mode alone runs away"
    else:
        alone = ", ".join(f"mode {k} alone {'is stable' if s else 'runs away'}" for k, s in enumerate(alone_stable))
    pair = "the modes together are stable" if pair_stable else "the modes together run away"
    contrast = all(alone_stable) != pair_stable or (not any(alone_stable) and pair_stable)
    text = f"{alone}, {'but ' if contrast else ''}{pair}"
    return {key: float(value), "pair_margin": float(pair_margin), "pair_stable": pair_stable,
            "alone_kappa": [float(k) for k in alone_kappa], "alone_stable": alone_stable,
            "collective": bool(all(alone_stable) and not pair_stable), "text": text}


@dataclass(frozen=True)
class CollectivePlan:
    """A validated ``collective_runaway`` study: every option read, every config built, the degenerate
    threshold found (:func:`plan`); :meth:`run` computes the rest."""

    config: Config
    key: str
    xs: tuple[float, ...]
    deltas: tuple[float, ...]
    between: tuple[float, float]
    Vc: float
    V_run: float
    t: np.ndarray
    jobs: tuple[SweepJob, ...]
    where: tuple[tuple[str, float], ...]
    variants: dict[str, Config]
    alone: tuple[Config, ...]

    def run(self, rundir, scheduler, progress: bool | None
            ) -> tuple[pd.DataFrame, dict[str, Any], Callable[[pd.DataFrame, Path], None]]:
        """Run the study (see the module doc); returns ``(table, summary, draw)`` like :mod:`analysis.figures`."""
        config, key, xs, deltas, between = self.config, self.key, self.xs, self.deltas, self.between
        tabs = run_sweeps(list(self.jobs), rundir, scheduler, progress=progress, desc="collective runaway")
        frames = []
        for job, (vname, d) in zip(self.jobs, self.where, strict=True):
            t = tabs[job.table]
            frames.append(pd.DataFrame({"variant": vname, "splitting": d, key: t[key].to_numpy(),
                                        "margin": t["margin"].to_numpy(), "stable": t["stable"].to_numpy(),
                                        "growth_rate": t["growth_rate"].to_numpy(), "N": t["N"].to_numpy()}))
        table = pd.concat(frames, ignore_index=True)
        thr = pd.DataFrame([{"variant": vname, "splitting": d,
                             "threshold": _threshold(split_quanta(base, d), key, between)}
                            for vname, base in self.variants.items() for d in deltas])
        kappa_alone = pd.DataFrame({key: xs, **{f"kappa_{k}": [margin_at(c, key, x) for x in xs]
                                                for k, c in enumerate(self.alone)}})
        Vc, V_run, tt = self.Vc, self.V_run, self.t
        verdict = run_verdict(key, V_run, margin_at(config, key, V_run), [margin_at(c, key, V_run) for c in self.alone])
        evo = [_evolution("pair", config.with_value(key, V_run), tt)]
        evo += [_evolution(f"mode {k} alone", c.with_value(key, V_run), tt) for k, c in enumerate(self.alone)]
        evolution = pd.concat(evo, ignore_index=True)
        for df, name in ((thr, "thresholds"), (evolution, "evolution"), (kappa_alone, "alone")):
            sc.write_recorded(rundir, df, f"{name}.parquet")
        cross, sec = (thr[thr["variant"] == v].set_index("splitting")["threshold"] for v in ("cross terms", "secular"))
        summary = {
            "vary": key, "between": list(between), "threshold_degenerate": Vc,
            "threshold_vs_splitting": {"cross terms": {f"{d:g}": _none(cross[d]) for d in deltas},
                                       "secular": {f"{d:g}": _none(sec[d]) for d in deltas}},
            "each_mode_alone_min_kappa": [float(kappa_alone[f"kappa_{k}"].min()) for k in range(len(self.alone))],
            "each_mode_alone_stable_on_grid": [bool((kappa_alone[f"kappa_{k}"] > 0).all())
                                               for k in range(len(self.alone))],
            "run": {key: V_run, "t_end": float(tt[-1]),
                    "growth_rate_pair": float(-verdict["pair_margin"]),
                    "N_final": {r: float(g["N"].iloc[-1]) for r, g in evolution.groupby("run")}},
            "at_run": verdict,
            "verdict": f"at {key} = {V_run:.4g}: {verdict['text']}",
            "lamb_shift": ("included (mode.lamb_shift = true)" if config.mode.lamb_shift else
                           "neglected (moves the onset of collective runaway by a few percent)"),
        }
        return table, summary, lambda tb, p: plot_collective_runaway(tb, thr, kappa_alone, evolution, key, Vc, V_run, p,
                                                                     verdict)


def plan(config: Config, opts: dict[str, Any]) -> CollectivePlan:
    """Read and check every option and build every config the study will use, before anything is computed.

    The only physics done here is the root finder for the degenerate threshold ``V_c(0)`` (milliseconds): the
    time-domain runs sit at ``V_c (1 + above)``, and a bracket without a threshold is refused now.

    Raises
    ------
    ConfigError
        One mode, a bad option, a config value refused at some grid point or at the run's bias, a
        ``conductor.file`` model (each mode alone needs the couplings inline), or no threshold in ``between``.
    """
    if config.n_modes < 2:
        raise ConfigError(f"study.kind = 'collective_runaway' needs several modes (mode.omega a list), "
                          f"got K = {config.n_modes}")
    key = opts["vary"]
    xs_axis = sc.axis("grid", key, opts["grid"])
    xs = tuple(float(v) for v in xs_axis.values)
    deltas = _values("splitting", opts["splitting"])
    between = sc.between(opts["between"])
    above = sc.number("above", opts["above"])
    tt = sc.time_grid(config, opts["t_end"], "collective_runaway")
    try:
        alone = tuple(one_mode_config(config, k) for k in range(config.n_modes))
    except ConfigError as e:
        raise ConfigError(f"study.kind = 'collective_runaway' compares each mode alone: {e}") from None
    variants = {"cross terms": config, "secular": config.with_value("mode.coherence_width", 0.0)}
    jobs, where = [], []
    for vname, base in variants.items():
        for i, d in enumerate(deltas):
            try:
                split = split_quanta(base, d)
            except ConfigError as e:
                raise ConfigError(f"study.splitting = {d:g}: {e}") from None
            jobs.append(sc.sweep_job(f"study.vary / study.grid ({key})",
                                     f"sweep-{'cross' if vname == 'cross terms' else 'secular'}-{i}", split,
                                     (GridAxis(key, xs),), SteadyPoint()))
            where.append((vname, d))
    for k, c in enumerate(alone):
        sc.check_values(c, key, xs, f"mode {k} alone, on study.grid")
    sc.check_values(config, key, between, "study.between")
    Vc = _threshold(config, key, between)
    if not np.isfinite(Vc):
        m = [margin_at(config, key, b) for b in between]
        raise ConfigError(f"study.between = {list(between)}: the modes of this config do not run away between "
                          f"(margin {m[0]:.4g} at {key} = {between[0]:g}, {m[1]:.4g} at {between[1]:g}: no sign "
                          "change); widen study.between")
    V_run = Vc * (1 + above)
    sc.check_values(config, key, [V_run], f"the time-domain run (threshold x (1 + study.above = {above:g}))")
    for k, c in enumerate(alone):
        sc.check_values(c, key, [V_run], f"mode {k} alone, in the time-domain run")
    return CollectivePlan(config, key, xs, deltas, between, Vc, V_run, tt, tuple(jobs), tuple(where), variants, alone)


def collective_runaway(config: Config, opts: dict[str, Any], rundir, scheduler, progress: bool | None
                       ) -> tuple[pd.DataFrame, dict[str, Any], Callable[[pd.DataFrame, Path], None]]:
    """:func:`plan`, then :meth:`CollectivePlan.run`."""
    return plan(config, opts).run(rundir, scheduler, progress)


def _none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _evolution(name: str, cfg: Config, t: np.ndarray) -> pd.DataFrame:
    from sim.covariance import mode_system_from_config

    s = mode_system_from_config(cfg)
    Nk = np.real(np.diagonal(s.covariance(t), axis1=-2, axis2=-1))
    return pd.DataFrame({"run": name, "t": t, "N": Nk.sum(axis=1), **{f"N_{k}": Nk[:, k] for k in range(s.K)}})


def plot_collective_runaway(table: pd.DataFrame, thr: pd.DataFrame, alone: pd.DataFrame, evolution: pd.DataFrame,
                            key: str, Vc: float, V_run: float, path: Path, verdict: dict[str, Any]) -> None:
    """(a), (b) margin maps with and without cross terms, thresholds; (c) each mode alone;
    (d) ``N_k(t)`` of the pair against each mode alone at ``V_run``.

    The title of (c) is ``verdict["text"]`` (:func:`run_verdict`: the margins computed at ``V_run``, which (c)
    marks), never a fixed sentence."""
    import seaborn as sns
    from matplotlib import colors
    from matplotlib.figure import Figure

    with sns.axes_style("ticks"), sns.plotting_context("notebook", font_scale=0.85):
        fig = Figure(figsize=(11.5, 8.4), layout="constrained")
        axs = fig.subplots(2, 2)
        m = table["margin"].to_numpy(float)
        lo, hi = float(np.nanmin(m)), float(np.nanmax(m))
        norm = colors.TwoSlopeNorm(0.0, lo, hi) if lo < 0 < hi else colors.Normalize(lo, hi)
        for a, (vname, title) in zip(axs[0], (("cross terms", "(a) with cross terms (common frequency)"),
                                              ("secular", "(b) secular: coherence_width = 0")), strict=True):
            piv = table[table["variant"] == vname].pivot_table(index="splitting", columns=key, values="margin")
            mesh = a.pcolormesh(piv.columns.to_numpy(float), piv.index.to_numpy(float), piv.to_numpy(float),
                                cmap="RdBu", norm=norm, shading="nearest")
            th = thr[thr["variant"] == vname]
            a.plot(th["threshold"], th["splitting"], "o-", color="k", mfc="w", ms=4, label="threshold (root finder)")
            a.set(xlabel=key, ylabel=r"splitting $\Delta = \Omega_2 - \Omega_1$", title=title)
            a.legend(loc="upper left", fontsize=8)
        fig.colorbar(mesh, ax=list(axs[0]), label=r"margin $2\,\min\,\mathrm{Re\,eig}(Y)$ ($<0$: runaway)")
        c = axs[1][0]
        pal = sns.color_palette("deep")
        for k in range(sum(col.startswith("kappa_") for col in alone.columns)):
            c.plot(alone[key], alone[f"kappa_{k}"], color=pal[k], lw=2, label=rf"mode {k} alone: $\kappa_{k}$")
        pair = table[(table["variant"] == "cross terms") & (table["splitting"] == table["splitting"].min())]
        d0 = float(table["splitting"].min())
        c.plot(pair[key], pair["margin"], color="k", lw=2, ls="--",
               label=r"modes together: $2\,\min\,\mathrm{Re\,eig}(Y)$" + (f" ($\\Delta$ = {d0:g})" if d0 else ""))
        c.axhline(0, color="0.5", lw=0.8)
        c.axvline(Vc, color="tab:red", lw=1, ls=":", label=f"$V_c$ = {Vc:.5g}")
        c.axvline(V_run, color="0.3", lw=1, ls="-.", label=f"run of (d): {key} = {V_run:.4g}")
        c.set(xlabel=key, ylabel="relaxation rate", title=f"(c) at {key} = {V_run:.4g}:\n{verdict['text']}")
        c.legend(fontsize=8)
        d = axs[1][1]
        for i, (run, g) in enumerate(evolution.groupby("run", sort=False)):
            if run == "pair":
                for k in range(sum(col.startswith("N_") for col in g.columns)):
                    if g[f"N_{k}"].notna().all():
                        d.plot(g["t"], g[f"N_{k}"], color=pal[k], lw=2, label=f"pair: $N_{k}(t)$")
            else:
                d.plot(g["t"], g["N_0"], color=pal[i - 1], lw=1.5, ls="--", label=f"{run}: $N(t)$")
        d.set_yscale("log")
        d.set(xlabel=r"$t$ (1/energy)", ylabel="population", title=f"(d) from the vacuum at {key} = {V_run:.4g}")
        d.legend(fontsize=8)
        fig.savefig(path, dpi=130)
