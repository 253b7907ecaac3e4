r"""Figures (seaborn on matplotlib's object API; no global state, no display needed).

Each function draws one study's table (:mod:`analysis.figures`) into a PNG. Quantities
are in the config's units (hbar = k_B = e = 1; the mode quantum ``Omega = 1`` in the
paper's figures): ``J`` in energy per time (``Omega^2``), ``Ie`` in particles per time
(``Omega``), ``kappa`` in energy (rate) units, ``t`` in ``1/Omega``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import colors
from matplotlib.figure import Figure

if TYPE_CHECKING:  # pragma: no cover
    from .maps import InstabilityMap

__all__ = ["plot_rectification", "plot_thermoelectric", "plot_cooling", "plot_transient", "plot_instability_map",
           "unstable_intervals"]

_LABELS = {"bias.mu0": r"$\mu$", "bias.V": r"$\mu_{LR}$", "bias.T_e": r"$T_e$", "phonon_bath.T": r"$T_{ph}$",
           "phonon_bath.gamma": r"$\gamma_{ph}$", "mode.omega": r"$\Omega$"}
_DT = r"$\Delta T / T_{ph}$"


def _label(key: str) -> str:
    return _LABELS.get(key, key)


def _hue(df: pd.DataFrame, key: str) -> tuple[pd.DataFrame, list[str]]:
    """A categorical legend column ``'mu = 0.25'`` in the order of the values."""
    df = df.copy()
    vals = sorted(df[key].unique())
    names = [f"{_label(key)} = {v:g}" for v in vals]
    df["curve"] = df[key].map(dict(zip(vals, names, strict=True)))
    return df, names


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def _figure(ncols: int, width: float = 5.2, height: float = 4.0) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height))
    axes = fig.subplots(1, ncols)
    return fig, list(np.atleast_1d(axes))


def plot_rectification(table: pd.DataFrame, path: Path, key: str = "bias.mu0") -> None:
    """Fig. 3: (a) ``J`` against ``dT/T_ph``; (b) ``rho`` against ``|dT|/T_0``; flat DOS dashed."""
    with sns.axes_style("ticks"), sns.plotting_context("notebook", font_scale=0.9):
        fig, (a, b) = _figure(2)
        lor, names = _hue(table[table["dos"] == "lorentzian"], key)
        pal = sns.color_palette("viridis", len(names))
        sns.lineplot(lor, x="dT_over_T_ph", y="J", hue="curve", hue_order=names, palette=pal, marker="o", ax=a,
                     markersize=4)
        sns.lineplot(lor[lor["rho"].notna()], x="dT_over_T_ph", y="rho", hue="curve", hue_order=names, palette=pal,
                     marker="o", ax=b, markersize=4, legend=False)
        flat = table[table["dos"] == "flat"]
        if len(flat):
            f0 = flat[flat[key] == flat[key].iloc[0]]
            a.plot(f0["dT_over_T_ph"], f0["J"], "k--", lw=1.5, label="flat DOS")
            fr = f0[f0["rho"].notna()]
            rmax = float(np.abs(fr["rho"]).max())
            b.plot(fr["dT_over_T_ph"], fr["rho"], "k--", lw=1.5, label=f"flat DOS (max |rho| = {rmax:.1e})")
            b.legend(loc="best", fontsize=8)
        a.axhline(0, color="0.6", lw=0.8)
        a.axvline(0, color="0.6", lw=0.8)
        b.axhline(0, color="0.6", lw=0.8)
        a.set(xlabel=_DT, ylabel=r"$J$ (e-bath $\to$ mode)", title="(a) heat current, Lorentzian double dot")
        b.set(xlabel=r"$|\Delta T| / T_0$", ylabel=r"$\rho$ (temperatures exchanged)", title="(b) rectification")
        a.legend(loc="upper left", fontsize=8)
        _save(fig, path)


def plot_thermoelectric(table: pd.DataFrame, path: Path, key: str = "bias.mu0") -> None:
    """Fig. 4: (a) ``eta`` (%) and (b) ``Ie`` against ``dT/T_ph``, one curve per chemical potential."""
    with sns.axes_style("ticks"), sns.plotting_context("notebook", font_scale=0.9):
        fig, (a, b) = _figure(2)
        df, names = _hue(table, key)
        df["eta_pct"] = 100 * df["eta"]
        pal = sns.color_palette("viridis", len(names))
        sns.lineplot(df, x="dT_over_T_ph", y="eta_pct", hue="curve", hue_order=names, palette=pal, marker="o",
                     markersize=4, ax=a)
        sns.lineplot(df, x="dT_over_T_ph", y="Ie", hue="curve", hue_order=names, palette=pal, marker="o",
                     markersize=4, ax=b, legend=False)
        for ax in (a, b):
            ax.axvline(0, color="0.6", lw=0.8)
        b.axhline(0, color="0.6", lw=0.8)
        a.set(xlabel=_DT, ylabel=r"$\eta = I_e / (J_{ph}/\Omega)$ (%)", title="(a) thermoelectric efficiency")
        b.set(xlabel=_DT, ylabel=r"$I_e$ (electrons L$\to$R per unit time)", title="(b) electron particle current")
        a.legend(loc="lower left", fontsize=8)
        _save(fig, path)


def unstable_intervals(V: np.ndarray, kappa: np.ndarray, stable: np.ndarray, roots: list[float] = ()
                       ) -> list[tuple[float, float]]:
    r"""The bias ranges ``[a, b]`` where the mode runs away (``kappa <= 0``), edges at the thresholds.

    For each run of consecutive unstable grid points ``V[i0..i1]`` the left edge is the threshold
    between ``V[i0-1]`` and ``V[i0]``: the root finder's ``roots`` value in that gap if there is one,
    else the linear interpolation of the ``kappa = 0`` crossing,
    ``V[i0-1] + (V[i0] - V[i0-1]) kappa[i0-1] / (kappa[i0-1] - kappa[i0])``; the right edge likewise.
    A run at the end of the grid ends at ``V[0]`` or ``V[-1]``. ``V`` increasing (units of the bias).
    """
    V, kappa, bad = np.asarray(V, float), np.asarray(kappa, float), ~np.asarray(stable, bool)

    def edge(i: int, k: int) -> float:  # the threshold between stable V[i] and unstable V[k]
        lo, hi = sorted((V[i], V[k]))
        inside = [r for r in roots if lo <= r <= hi]
        if inside:
            return float(inside[0])
        if np.isfinite(kappa[i]) and np.isfinite(kappa[k]) and kappa[i] != kappa[k] and kappa[i] * kappa[k] <= 0:
            return float(V[i] + (V[k] - V[i]) * kappa[i] / (kappa[i] - kappa[k]))
        return float(V[k])

    out = []
    idx = np.flatnonzero(bad)
    for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1) if idx.size else []:
        i0, i1 = int(run[0]), int(run[-1])
        a = float(V[0]) if i0 == 0 else edge(i0 - 1, i0)
        b = float(V[-1]) if i1 == len(V) - 1 else edge(i1 + 1, i1)
        out.append((a, b))
    return out


def plot_cooling(table: pd.DataFrame, path: Path, windows: dict[str, dict[str, float]] | None = None) -> None:
    """Fig. 5: ``J`` against ``mu_LR`` at several ``T``; ``J < 0`` shaded; ``kappa <= 0`` points crossed.

    Panel (b) zooms on the cooling window at negative bias (symmetric-log ``J`` axis).
    """
    with sns.axes_style("ticks"), sns.plotting_context("notebook", font_scale=0.9):
        fig, (a, b) = _figure(2)
        df, names = _hue(table, "T")
        df["curve"] = df["curve"].str.replace("T =", r"$T = T_e = T_{ph}$ =", regex=False)
        names = [n.replace("T =", r"$T = T_e = T_{ph}$ =") for n in names]
        pal = sns.color_palette("rocket_r", len(names) + 1)[1:]
        for ax, legend in ((a, True), (b, False)):
            sns.lineplot(df, x="mu_LR", y="J", hue="curve", hue_order=names, palette=pal, marker="o", markersize=3,
                         ax=ax, legend=legend)
            bad = df[~df["stable"]]
            if len(bad):
                ax.plot(bad["mu_LR"], bad["J"], "x", color="tab:red", ms=6, mew=1.5,
                        label=r"$\kappa \leq 0$: unstable, no steady state" if legend else None)
            ax.axhline(0, color="0.5", lw=0.8)
        first = np.inf  # the runaway band starts at the lowest temperature curve's threshold (kappa = 0 crossing)
        for (_, g), col in zip(df.groupby("curve", sort=False), pal, strict=False):
            g = g.sort_values("mu_LR")
            if "kappa" not in g or g["stable"].all():
                continue
            spans = unstable_intervals(g["mu_LR"].to_numpy(), g["kappa"].to_numpy(), g["stable"].to_numpy(bool))
            for lo_, _ in spans:
                a.axvline(lo_, color=col, ls="--", lw=0.9, zorder=1)
            first = min([first] + [lo_ for lo_, _ in spans])
        if np.isfinite(first):
            a.axvspan(first, float(df["mu_LR"].max()) + 0.05, color="tab:red", alpha=0.08, zorder=0)
        lo, hi = a.get_ylim()
        a.axhspan(min(lo, -0.02 * hi), 0, color="0.88", zorder=0)
        a.set_ylim(min(lo, -0.02 * hi), hi)
        a.set(xlabel=r"$\mu_{LR} = \mu_L - \mu_R$", ylabel=r"$J$ (e-bath $\to$ mode)",
              title="(a) energy current; grey: $J<0$; red band: $\\kappa \\leq 0$ (dashed: each $T$'s threshold)")
        a.legend(loc="upper left", fontsize=8)
        neg = df[df["mu_LR"] <= 0.1]
        if len(neg):
            scale = max(float(np.nanmax(np.abs(neg["J"]))), 1e-300)
            b.set_xlim(float(neg["mu_LR"].min()) - 0.05, 0.1)
            b.set_yscale("symlog", linthresh=scale * 1e-4)
            b.set_ylim(-1.5 * scale, 1.5 * scale)
            b.axhspan(-1.5 * scale, 0, color="0.88", zorder=0)
        for w, col in zip((windows or {}).values(), pal, strict=False):
            if np.isfinite(w.get("lower", np.nan)):
                b.axvline(w["lower"], color=col, ls=":", lw=1.2)
        b.set(xlabel=r"$\mu_{LR}$", ylabel=r"$J$ (symlog)", title="(b) cooling window (dotted: lower edge)")
        _save(fig, path)


def plot_transient(series: pd.DataFrame, path: Path, key: str, threshold: float) -> None:
    """``N(t)`` either side of the threshold (log scale); dotted: ``N_ss`` or the ``e^{|kappa| t}`` asymptote."""
    with sns.axes_style("ticks"), sns.plotting_context("notebook", font_scale=0.9):
        fig, (a,) = _figure(1, width=6.5, height=4.5)
        runs = series.groupby(key, sort=True)
        stable_cols = sns.color_palette("Blues_d", 3 + len(runs))
        unstable_cols = sns.color_palette("Reds_d", 3 + len(runs))
        for i, (v, s) in enumerate(runs):
            k = float(s["kappa"].iloc[0])
            rel = float(s["relative"].iloc[0])
            col = stable_cols[i + 2] if k > 0 else unstable_cols[i + 2]
            lab = (f"{_label(key)} = {v:.4g} ({rel:+.0%} of threshold): "
                   + (f"relaxes, $\\kappa$ = {k:.3g}" if k > 0 else f"runs away, growth {-k:.3g}"))
            if float(s["t"].max()) < float(series["t"].max()):
                lab += " (stopped: Fock cutoff guard)"
            a.plot(s["t"], s["N"], color=col, lw=2, label=lab)
            t, N = s["t"].to_numpy(), s["N"].to_numpy()
            if k < 0 and len(t) > 2:
                a.plot(t, N[-1] * np.exp(-k * (t - t[-1])), ":", color=col, lw=1)
        a.set_yscale("log")
        a.set(xlabel=r"$t$ ($1/\Omega$)", ylabel=r"$N(t)$",
              title=f"mode population either side of the threshold {_label(key)} = {threshold:.4g}")
        a.legend(loc="upper left", fontsize=7.5)
        _save(fig, path)


def plot_instability_map(m: InstabilityMap, curve: pd.DataFrame, series: pd.DataFrame, rates: pd.DataFrame,
                         path: Path) -> None:
    """(a) ``kappa`` over the two keys, ``kappa = 0`` contour (grid) and root-finder thresholds;
    (b) ``N(t)`` of one run on each side of the boundary with the measured rates."""
    with sns.axes_style("ticks"), sns.plotting_context("notebook", font_scale=0.9):
        fig, (a, b) = _figure(2, width=5.6)
        k = m.kappa
        lo, hi = float(np.nanmin(k)), float(np.nanmax(k))
        norm = colors.TwoSlopeNorm(0.0, lo, hi) if lo < 0 < hi else colors.Normalize(lo, hi)
        mesh = a.pcolormesh(m.x, m.y, k, cmap="RdBu", norm=norm, shading="nearest")
        fig.colorbar(mesh, ax=a, label=r"$\kappa$ (relaxation rate; $<0$: growth)")
        if lo < 0 < hi:
            a.contour(m.x, m.y, k, levels=[0.0], colors="k", linewidths=1.5)
        a.plot(curve["threshold"], curve[m.y_key], "o", mfc="w", mec="k", ms=4, label="root finder")
        a.plot([], [], "k-", label=r"$\kappa = 0$ on the grid")
        xk = m.x_key
        for _, r in rates.iterrows():
            a.plot(r[xk], r[m.y_key], "*", ms=12, mec="k", color="tab:blue" if r["kappa"] > 0 else "tab:red")
        a.set(xlabel=_label(m.x_key), ylabel=_label(m.y_key), title="(a) stability map: blue stable, red unstable")
        a.legend(loc="upper left", fontsize=8)
        for _, r in rates.iterrows():
            s = series[series[xk] == r[xk]]
            col = "tab:blue" if r["kappa"] > 0 else "tab:red"
            b.plot(s["t"], s["N"], color=col, lw=2,
                   label=(f"{_label(xk)} = {r[xk]:.4g}: $-\\kappa$ = {-r['kappa']:.4g}, "
                          f"fit {-r['fitted_kappa']:.4g}"))
        b.set_yscale("log")
        b.set(xlabel=r"$t$ ($1/\Omega$)", ylabel=r"$N(t)$",
              title=f"(b) relaxation vs growth at {_label(m.y_key)} = {rates[m.y_key].iloc[0]:g}")
        b.legend(loc="upper left", fontsize=8)
        _save(fig, path)
