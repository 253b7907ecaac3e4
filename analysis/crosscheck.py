r"""Cross-check report: N, J, J_ph and Ie from every level of theory, side by side.

Routes (docs/theory.md, docs/approximations.md) and the difference each should show from the rate
equation (the reference row):

============================  ===============================================================
route                         expected difference from the rate equation
============================  ===============================================================
population equation           truncation only: ``<= 1e-8`` relative (tail below 1e-10)
Lindblad steady state         truncation and solver: ``<= 1e-8`` relative
trajectories (ssa, steady)    statistics: within 4 standard errors (plus the O(1/(kappa T))
                              finite-window bias, far below the errors for T >> 1/kappa)
Landauer lowest order         equals the pinned formula X(n_ph) (the rate fluxes at N = n_ph;
                              its gap to the rate equation is X(n_ph) - X(N), for J the relative
                              gap is Gamma_e/gamma_ph, sec. 5) within ``3 gamma_ph/Omega`` times the
                              larger of ``|X(n_ph)|`` and the largest flux density off resonance;
                              compared only for gamma_ph/Omega <= 0.05
Landauer full broadening      narrow-resonance limit: ``3 kappa/Omega`` times the larger of
                              ``|X|`` and the largest integrand off resonance over kappa;
                              compared only for kappa/Omega <= 0.1 (defined only for kappa > 0)
============================  ===============================================================

Columns: ``difference`` = value - rate equation (for information); ``center`` = the value the
row is checked against (the rate equation, or ``X(n_ph)`` for Landauer lowest order);
``deviation`` = value - center, the checked quantity; ``within`` = ``|deviation| <= tolerance``.
The reference row has no tolerance and no verdict. N is not defined for the Landauer rows
(``NaN``); J_ph = J in steady state there. A row outside its limit's range, not computed or
not defined has ``within = None`` and is counted in the summary's "rows not compared"; its
``expected`` says why. The factor 3 on
the O(gamma/Omega) and O(kappa/Omega) terms allows for the energy dependence of the rates
across the resonance (their coefficient is of order one but not known in closed form).

Several modes (``config.n_modes > 1``): :func:`crosscheck` hands over to
:func:`analysis.crosscheck_modes.crosscheck_modes` (covariance route as the reference, Lindblad,
mcsolve trajectories, Landauer lowest order summed over the modes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.config import Config
from sim.landauer import landauer
from sim.lindblad import steady_lindblad
from sim.population import TruncationError, steady_population
from sim.rate_equation import rate_model, steady_state

from .estimators import estimate_cumulant_rates, totals_per_trajectory
from .verdicts import not_compared, not_compared_note

__all__ = ["crosscheck", "CrossCheck", "plot_crosscheck", "not_compared", "not_compared_note"]

QUANTITIES = ("N", "J", "J_ph", "Ie")
_NUM_TOL = 1e-8
_LOWEST_MAX = 0.05  # gamma_ph/Omega up to which lowest order is compared (O(gamma/Omega) corrections)
_FULL_MAX = 0.1  # kappa/Omega up to which full broadening is compared with the rate equation


@dataclass(frozen=True)
class CrossCheck:
    """The report table: one row per (route, quantity)."""

    table: pd.DataFrame
    stable: bool
    message: str

    def to_dict(self) -> dict:
        recs = []
        for r in self.table.to_dict("records"):
            recs.append({k: (None if isinstance(v, float) and not np.isfinite(v) else
                             (bool(v) if isinstance(v, np.bool_ | bool) else v)) for k, v in r.items()})
        return {"stable": self.stable, "message": self.message, "rows": recs}


def _fluxes(model, N):
    f = model.fluxes(N)
    return {"N": N, "J": float(f["J"]), "J_ph": float(f["J_ph"]), "Ie": float(f["Ie"])}


def _trajectories(config: Config, model, ntraj: int, t_end: float, seed: int, progress: bool = False):
    from sim.trajectories import run_trajectories

    res = run_trajectories(model, engine="ssa", ntraj=ntraj, t_end=t_end, n_points=201, seed=seed,
                           initial="steady", progress=progress)
    jumps = res.jump_table()
    grid = res.trajectory_table()
    N_traj = grid.groupby("traj")["N"].mean().reindex(range(ntraj)).to_numpy()
    om = model.omega
    tot = {q: totals_per_trajectory(jumps, q, om, ntraj) for q in
           ("charge", "energy:LL", "energy:RR", "energy:LR", "energy:RL", "energy:ph")}
    per = {
        "N": N_traj * t_end,
        "J": sum(tot[f"energy:{c}"] for c in ("LL", "RR", "LR", "RL")),
        "J_ph": -tot["energy:ph"],
        "Ie": tot["charge"],
    }
    out = {}
    for q, x in per.items():
        est, err = estimate_cumulant_rates(x, t_end, order=1)
        out[q] = (float(est[0]), float(err[0]))
    return out


def _flux_density_scale(config: Config) -> dict[str, dict[str, float]]:
    """Largest flux densities off resonance, for the Landauer tolerances.

    ``lowest``: ``max_w |x(w)|`` on ``w in [0.05, 3] Omega`` of the pinned densities
    ``x(w)`` (the lowest-order integrand is ``A_ph(w) x(w)``, and ``A_ph`` puts a weight
    ``O(gamma/Omega)`` off resonance). ``full``: ``max_w |G(w)| / kappa`` of the
    full-broadening integrand without ``|D(w)|^2`` (``int |D|^2 dw/2pi ~ 1/kappa``; the tails
    add ``O(kappa/Omega)`` of it).
    """
    from sim.channels import channel_rates
    from sim.conductor import CHANNEL_SIGN
    from sim.special import bose

    om, g = config.mode.omega, config.phonon_bath.gamma
    b = config.bias
    w = np.linspace(0.05, 3.0, 300) * om
    r = channel_rates(config.conductor.build(), w, b.mu_L, b.mu_R, b.T_L, b.T_R)
    net = r.emission - r.damping * bose(w, config.phonon_bath.T)
    sign = CHANNEL_SIGN[:, None]
    low_J = float(np.max(np.abs(w * net.sum(axis=0))))
    low_I = float(np.max(np.abs((sign * net).sum(axis=0))))
    gam_e = r.damping.sum(axis=0)
    kappa = float(np.interp(om, w, gam_e)) + g
    ph = (g * w / om) * net
    cross = r.emission * gam_e - r.damping * r.emission.sum(axis=0)
    full_J = float(np.max(np.abs(w * ph.sum(axis=0)))) / kappa
    full_I = float(np.max(np.abs((sign * (ph + cross)).sum(axis=0)))) / kappa
    return {"lowest": {"N": 0.0, "J": low_J, "J_ph": low_J, "Ie": low_I},
            "full": {"N": 0.0, "J": full_J, "J_ph": full_J, "Ie": full_I}}


def crosscheck(config: Config, *, ntraj: int | None = None, t_end: float | None = None, seed: int | None = None,
               progress: bool | None = None) -> CrossCheck:
    """Compare all routes for one config (see the module docstring for the expected gaps).

    ``progress``: tqdm bars on stderr, one over the routes and the trajectory run's own
    (``None``: when stderr is a terminal).
    """
    if config.n_modes > 1:  # several modes: the covariance route is the reference (analysis.crosscheck_modes)
        from .crosscheck_modes import crosscheck_modes

        table, stable, msg = crosscheck_modes(config, flux_scale=_flux_density_scale, ntraj=ntraj, t_end=t_end,
                                              seed=seed, progress=progress)
        return CrossCheck(table, stable, msg)
    from .stats import progress_bar, progress_enabled

    with progress_bar(6, "crosscheck", "route", progress) as bar:
        return _crosscheck(config, ntraj, t_end, seed, bar, progress_enabled(progress))


def _crosscheck(config: Config, ntraj, t_end, seed, bar, progress: bool) -> CrossCheck:
    model = rate_model(config)
    ss = steady_state(config)
    om, g = config.mode.omega, config.phonon_bath.gamma
    kappa = float(model.kappa)
    rows = []

    def add(route, level, vals, expected_abs, expected_text, errs=None, center=None):
        """One row per quantity; ``within`` checks |value - center| <= tolerance (center: the rate equation)."""
        for q in QUANTITIES:
            v = vals.get(q, np.nan)
            ref = getattr(ss, q)
            err = (errs or {}).get(q, np.nan)
            diff = v - ref
            tol = expected_abs(q, ref) if np.isfinite(v) and expected_abs is not None else np.nan
            if route == "rate_equation":
                tol = np.nan  # the reference itself: no tolerance, nothing to check
            c = (ref if center is None else center[q]) if np.isfinite(v) else np.nan
            rows.append({"route": route, "level": level, "quantity": q, "value": v, "stderr": err,
                         "rate_equation": ref, "difference": diff, "center": c, "deviation": v - c,
                         "expected": expected_text,
                         "tolerance": tol, "within": bool(abs(v - c) <= tol) if np.isfinite(tol) else None})
        bar.update(1)

    if not ss.stable:
        low = landauer(config, "lowest")
        head = (f"near threshold: |kappa| = {abs(kappa):.3g} is within round-off of 0, stability is not determined"
                if ss.near_threshold else f"unstable: kappa = {kappa:.6g} <= 0, growth rate {-kappa:.6g}")
        msg = (f"{head}; only the lowest-order Landauer "
               f"fluxes exist (J = {low.J:.6g}, Ie = {low.Ie:.6g}) and they cannot see the instability")
        table = pd.DataFrame([{"route": "landauer", "level": "lowest", "quantity": q,
                               "value": {"J": low.J, "J_ph": low.J, "Ie": low.Ie}.get(q, np.nan)} for q in QUANTITIES])
        return CrossCheck(table, False, msg)

    def rel(tol):
        return lambda q, ref: tol * abs(ref) + 1e-300

    add("rate_equation", "Eq. 8", {q: getattr(ss, q) for q in QUANTITIES}, None, "reference")
    try:
        pop = steady_population(model)
        add("population", f"cutoff {pop.cutoff}", _fluxes(model, pop.N), rel(_NUM_TOL), "truncation <= 1e-8 relative")
    except TruncationError as e:  # N_ss too large for the cutoff cap (near threshold)
        add("population", f"cutoff {getattr(e.partial, 'cutoff', '?')}", {}, None, f"not computed: {e}")
    try:
        lin = steady_lindblad(model)
        add("lindblad", f"cutoff {lin.cutoff}", _fluxes(model, lin.N), rel(_NUM_TOL),
            "truncation, solver <= 1e-8 relative")
    except TruncationError as e:
        add("lindblad", f"cutoff {getattr(e.partial, 'cutoff', '?')}", {}, None,
            f"not computed: {e}")

    ntraj = ntraj or config.run.ntraj
    t_end = t_end or config.run.t_end or 200.0 / kappa
    seed = config.run.seed if seed is None else seed
    from sim.guards import check_jumps

    check_jumps("the ssa row (--ntraj x --t-end, default t_end = 200/kappa)", model, ntraj, t_end, float(ss.N))
    tr = _trajectories(config, model, ntraj, t_end, seed, progress)
    add("trajectories", f"ssa, {ntraj} x T={t_end:.4g}", {q: v for q, (v, _) in tr.items()},
        lambda q, ref: 4 * tr[q][1], "within 4 standard errors", {q: e for q, (_, e) in tr.items()})

    pinned = _fluxes(model, float(model.n_ph))  # N held at n_ph: the lowest-order limit
    pinned["J_ph"] = pinned["J"]  # in the Landauer picture the flux to the ph-bath is J
    scale = _flux_density_scale(config)
    low = landauer(config, "lowest")
    low_vals = {"J": low.J, "J_ph": low.J, "Ie": low.Ie}
    if g / om <= _LOWEST_MAX:
        add("landauer", "lowest", low_vals,
            lambda q, ref: 3 * g / om * max(abs(pinned[q]), scale["lowest"][q]) + _NUM_TOL * abs(ref),
            "= X(n_ph), the rate fluxes with N pinned at n_ph (gap to the rate equation: X(n_ph) - X(N)), "
            "within 3 gamma_ph/Omega max(|X(n_ph)|, max_w |x(w)|)", center=pinned)
    else:
        add("landauer", "lowest", low_vals, None,
            f"not comparable: gamma_ph/Omega = {g / om:.3g} > {_LOWEST_MAX} (needs gamma_ph << Omega)")
    full = landauer(config, "full")
    full_vals = {"J": full.J, "J_ph": full.J, "Ie": full.Ie}
    if kappa / om <= _FULL_MAX:
        add("landauer", "full", full_vals,
            lambda q, ref: 3 * kappa / om * max(abs(ref), scale["full"][q]) + _NUM_TOL * abs(ref),
            "narrow resonance: 3 kappa/Omega max(|X|, max_w |G(w)|/kappa)")
    else:
        add("landauer", "full", full_vals, None,
            f"not comparable: kappa/Omega = {kappa / om:.3g} > {_FULL_MAX}; the rate equation is its narrow-resonance "
            "limit only")
    table = pd.DataFrame(rows)
    table["within"] = table["within"].astype(object)
    ok = table["within"].dropna().all()
    msg = "all compared routes agree within their expected differences" if ok else \
        "some routes differ more than expected"
    return CrossCheck(table, True, msg + not_compared_note(table, "rate_equation"))


def _plot_table(report: CrossCheck) -> pd.DataFrame:
    """The rows :func:`plot_crosscheck` draws: every row with a value but the reference, relative to the reference.

    Columns added: ``label`` (route and level), ``rel`` = ``(X - X_ref)/|X_ref|``, ``rel_err``,
    ``lo``/``hi`` = the expected window ``(center -+ tolerance - X_ref)/|X_ref|`` (``NaN`` without a
    tolerance), ``compared`` (a finite tolerance), ``own_center`` (checked against a center other than
    the reference, e.g. Landauer lowest order against ``X(n_ph)``: it differs from the reference by
    construction), ``center_name`` (that center, from ``expected``), ``z`` = deviation / tolerance.
    """
    t = report.table.dropna(subset=["value"])
    if "reference" in t:  # several modes: the covariance route is the reference row
        t = t[t["route"] != "covariance"].rename(columns={"reference": "rate_equation"})
    t = t[t["route"] != "rate_equation"].copy()
    if "center" not in t:
        t["center"] = t["value"] - t["deviation"]
    scale = t["rate_equation"].abs()
    tol = t["tolerance"].astype(float)
    compared = np.isfinite(tol.to_numpy()) & (tol.to_numpy() > 0)
    exp = t["expected"].fillna("").astype(str) if "expected" in t else pd.Series("", index=t.index)
    return t.assign(
        label=t["route"] + " " + t["level"].str.split(",").str[0],
        rel=t["difference"] / scale, rel_err=t["stderr"] / scale,
        lo=(t["center"] - tol - t["rate_equation"]) / scale, hi=(t["center"] + tol - t["rate_equation"]) / scale,
        compared=compared,
        own_center=compared & (np.abs(t["center"] - t["rate_equation"]) > 1e-6 * scale).to_numpy(),
        center_name=np.where(exp.str.startswith("="), exp.str.split(",").str[0].str.lstrip("= "), ""),
        z=t["deviation"] / tol.where(compared))


def plot_crosscheck(report: CrossCheck, path) -> None:
    """Two linear panels per route and quantity, the reference (rate equation) row left out.

    (a) Relative difference from the rate equation, ``(X - X_rate)/|X_rate|``, with the trajectory
    rows' standard errors as error bars and each compared row's expected window ``center +-
    tolerance`` as a shaded bar: a row agrees when its point lies in its bar. Rows checked against
    their own center (Landauer lowest order against ``X(n_ph)``) are labelled "expected to differ",
    and rows not compared (outside their limit's range) are hollow and labelled "not comparable".
    (b) The deviation from the row's center in units of its tolerance; a row agrees when it lies in
    the shaded band ``[-1, 1]`` (rows without a tolerance are not drawn there).
    """
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    t = _plot_table(report)
    ref = "covariance route" if "reference" in report.table else "rate equation"
    labels = list(dict.fromkeys(t["label"]))
    qs = [q for q in QUANTITIES if q in set(t["quantity"])]
    colors = dict(zip(labels, sns.color_palette("colorblind", len(labels)), strict=True))
    width = 0.8 / max(1, len(labels))
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.6), layout="constrained")
    a, b = axes
    for k, lab in enumerate(labels):
        sub = t[t["label"] == lab]
        col = colors[lab]
        x = np.array([qs.index(q) for q in sub["quantity"]]) - 0.4 + width * (k + 0.5)
        err = sub["rel_err"].to_numpy()
        has = sub["compared"].to_numpy()
        legend = lab
        if sub["own_center"].any():
            legend += f": expected to differ (checked against {sub['center_name'].iloc[0] or 'its own center'})"
        elif not has.any():
            why = str(sub["expected"].iloc[0]) if "expected" in sub else ""
            why = why.split(":", 1)[1].split(";")[0].strip() if why.startswith("not") and ":" in why else ""
            legend += ": not comparable" + (f" ({why})" if why else "") + ", hollow"
        if has.any():
            a.vlines(x[has], sub["lo"].to_numpy()[has], sub["hi"].to_numpy()[has], color=col, lw=7, alpha=0.25)
        for sel, filled in ((has, True), (~has, False)):
            if sel.any():
                a.errorbar(x[sel], sub["rel"].to_numpy()[sel], yerr=np.where(np.isfinite(err), err, 0)[sel], fmt="o",
                           ms=5, capsize=3, color=col, mfc=col if filled else "white", mew=1.5,
                           label=legend if filled or not has.any() else None)
        for xi, (_, r) in zip(x, sub.iterrows(), strict=True):
            if r["own_center"] or not r["compared"]:
                up = not r["compared"]  # "expected to differ" below the point, inside its window
                a.annotate("not comparable" if up else "expected to differ", (xi, r["rel"]), xytext=(0, 7 if up else -7),
                           textcoords="offset points", fontsize=6.5, color=col, rotation=90, ha="center",
                           va="bottom" if up else "top")
        if has.any():
            zerr = np.where(np.isfinite(sub["stderr"].to_numpy()), sub["stderr"].to_numpy(), 0)
            tol = sub["tolerance"].to_numpy()
            b.errorbar(x[has], sub["z"].to_numpy()[has], yerr=(zerr / np.where(has, tol, 1))[has],
                       fmt="o", ms=5, capsize=3, color=col)
    for ax in axes:
        ax.axhline(0, color="0.4", lw=0.8)
        ax.set_xticks(range(len(qs)), qs)
        ax.set_xlim(-0.6, len(qs) - 0.4)
        for v in np.arange(len(qs) - 1) + 0.5:
            ax.axvline(v, color="0.9", lw=0.8, zorder=0)
    a.plot([], [], color="0.5", lw=7, alpha=0.4, label="expected window: center $\\pm$ tolerance (may run off the axis)")
    lo, hi = float(np.nanmin(t["rel"] - t["rel_err"].fillna(0))), float(np.nanmax(t["rel"] + t["rel_err"].fillna(0)))
    pad = max(hi - lo, 1e-3) * 0.25
    a.set_ylim(min(lo, 0.0) - pad, max(hi, 0.0) + 1.6 * pad)  # the points set the scale; wide windows run off
    a.set_ylabel(f"(route - {ref}) / |{ref}|")
    a.set_title(f"(a) difference from the {ref}", fontsize=10)
    fig.legend(*a.get_legend_handles_labels(), fontsize=7.5, loc="outside lower center", ncol=3)
    b.axhspan(-1, 1, color="C2", alpha=0.12, label="within the expected difference")
    b.set_ylabel("deviation / tolerance")
    b.set_title("(b) deviation from the row's center / tolerance (compared rows only)", fontsize=10)
    lim = max(1.5, float(np.nanmax(np.abs(b.get_ylim()))))
    b.set_ylim(-lim, lim)
    b.legend(fontsize=7, loc="upper right")
    fig.suptitle("\n".join(textwrap.wrap(report.message, 110)), fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
