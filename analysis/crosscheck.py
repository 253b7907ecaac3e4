r"""Cross-check report for K >= 1 modes: N, J, J_ph and Ie from every level of theory, side by side.

One report for every number of modes K (docs/theory.md, docs/approximations.md, docs/modes.md). The
reference row is the exact mean of the jump picture: the rate equation (Eq. 8) for one mode, and its
K-mode form, the covariance route (the Lyapunov steady state of ``C_mn = <a_m^+ a_n>``, with the Lamb
shift where ``mode.lamb_shift`` is true, as in the Lindblad and mcsolve routes), for several. Each other
route and the difference it should show from the reference:

============================  ===============================================================
route                         expected difference from the reference
============================  ===============================================================
population equation (K = 1)   truncation only: ``<= 1e-8`` relative (tail below 1e-10)
Lindblad steady state         truncation and solver: ``<= 1e-8`` relative for one mode;
                              ``<= 1e-6`` for several (tail of each mode's Fock cutoff below
                              1e-10; fluxes from the truncated ``C``)
trajectories                  statistics: within 4 standard errors. One mode: the exact ssa
                              engine (plus the O(1/(kappa T)) finite-window bias, far below the
                              errors for T >> 1/kappa). Several: mcsolve from the Gaussian
                              steady state, plus the resolution of the run, 3 jumps' worth of
                              the quantity over ``ntraj T`` (a rare label may be seen 0 times)
Landauer lowest order         only the diagonal ``Lambda^c_kk`` enters (``A_ph`` is diagonal):
                              equals the pinned formula ``sum_k X_k(n_k)`` (each mode's rate
                              fluxes at ``N_k = n_k``; one mode: ``X(n_ph)``; its gap to the
                              reference is physics: for J the relative gap is Gamma_e/gamma_ph,
                              sec. 5, and it cannot see coherences or collective damping) within
                              ``sum_k 3 gamma_k/Omega_k`` times the larger of ``|X_k(n_k)|`` and
                              mode k's largest flux density off resonance; compared only for
                              ``max_k gamma_k/Omega_k <= 0.05``
Landauer full broadening      narrow-resonance limit of the K x K propagator: ``3 w/Omega``
                              times the larger of ``|X|`` and the largest integrand off
                              resonance over each mode's width (``w``: the widest collective
                              resonance, ``2 max Re eig(Y)``, ``kappa`` for one mode; ``Omega``
                              the smallest quantum); compared only for ``w/Omega <= 0.1``
                              (defined only where the modes are stable)
============================  ===============================================================

Columns: ``rate_equation`` = the reference value (the covariance route for several modes);
``difference`` = value - reference (for information); ``center`` = the value the row is checked
against (the reference, or ``sum_k X_k(n_k)`` for Landauer lowest order); ``deviation`` = value -
center, the checked quantity; ``within`` = ``|deviation| <= tolerance``. N is the total
``sum_k N_k``. The reference row has no tolerance and no verdict. N is not defined for the Landauer
rows (``NaN``); J_ph = J in steady state there. A row outside its limit's range, not computed or
not defined has ``within = None`` and is counted in the summary's "rows not compared"; its
``expected`` says why. The factor 3 on the O(gamma/Omega) and O(w/Omega) terms allows for the
energy dependence of the rates across the resonance (their coefficient is of order one but not
known in closed form).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sim.config import Config
from sim.landauer import landauer
from sim.results import Result

from .estimators import estimate_cumulant_rates, totals_per_trajectory
from .verdicts import not_compared, not_compared_note

__all__ = ["crosscheck", "CrossCheck", "plot_crosscheck", "not_compared", "not_compared_note"]

QUANTITIES = ("N", "J", "J_ph", "Ie")
_NUM_TOL = 1e-8
_LINDBLAD_MODES_TOL = 1e-6  # several modes: the truncated tensor Fock space
_LOWEST_MAX = 0.05  # gamma_ph/Omega up to which lowest order is compared (O(gamma/Omega) corrections)
_FULL_MAX = 0.1  # w/Omega up to which full broadening is compared with the reference
#: Trajectories of the mcsolve row (several modes) when ``--ntraj`` is not given (each solves a tensor Fock space).
DEFAULT_MODES_NTRAJ = 40


@dataclass(frozen=True)
class CrossCheck(Result):
    """The report table: one row per (route, quantity) (:meth:`to_frame`). ``reference``: the route of the
    reference row (``rate_equation`` for one mode, ``covariance`` for several); its values are the
    ``rate_equation`` column. ``config``, ``options`` (``ntraj``, ``t_end``, ``seed``): :meth:`provenance`."""

    route = "crosscheck"

    table: pd.DataFrame
    stable: bool
    message: str
    #: the reference row's route and what it is; ``pinned_label``: the center of the Landauer lowest-order row
    reference: str = "rate_equation"
    n_modes: int = 1
    reference_label: str = "the rate equation"
    pinned_label: str = "X(n_ph), the rate fluxes at N = n_ph"

    def to_frame(self) -> pd.DataFrame:
        """The report table (``crosscheck.parquet``)."""
        return self.table

    def to_dict(self) -> dict:
        recs = []
        for r in self.table.to_dict("records"):
            recs.append({k: (None if isinstance(v, float) and not np.isfinite(v) else
                             (bool(v) if isinstance(v, np.bool_ | bool) else v)) for k, v in r.items()})
        return {"stable": self.stable, "message": self.message, "rows": recs}


@dataclass(frozen=True, eq=False)
class _Reference:
    """The reference route of a config: its name, level, values, stability and the models behind it.

    ``model``: the one-mode :class:`sim.model.JumpModel` (None for several modes); ``system``: the
    :class:`sim.covariance.ModeSystem` (None for one mode); ``width``: ``kappa`` or the margin
    ``2 min Re eig(Y)``; ``widest``: the widest resonance (``kappa`` or ``2 max Re eig(Y)``).
    """

    route: str
    level: str
    label: str
    values: dict
    stable: bool
    near_threshold: bool
    width: float
    widest: float
    model: object = None
    system: object = None
    C: object = None


def _reference(config: Config) -> _Reference:
    K = config.n_modes
    if K == 1:  # one mode (flat conductors too): the rate equation, Eq. 8
        from sim.rate_equation import rate_model, steady_state

        model = rate_model(config)
        ss = steady_state(config)
        kappa = float(model.kappa)
        return _Reference("rate_equation", "Eq. 8", "the rate equation", {q: getattr(ss, q) for q in QUANTITIES},
                          bool(ss.stable), bool(ss.near_threshold), kappa, kappa, model=model)
    from sim.covariance import mode_system_from_config

    system = mode_system_from_config(config)
    ss = system.steady_state()
    vals = _flux_record(system, ss.C) if system.stable else dict.fromkeys(QUANTITIES, np.nan)
    return _Reference("covariance", "reference", "the covariance route", vals, bool(system.stable),
                      bool(system.near_threshold), float(system.margin),
                      float(2 * system.eigenvalues.real.max()), system=system, C=ss.C)


def _fluxes(model, N):
    f = model.fluxes(N)
    return {"N": N, "J": float(f["J"]), "J_ph": float(f["J_ph"]), "Ie": float(f["Ie"])}


def _flux_record(system, C) -> dict[str, float]:
    f = system.fluxes(C)
    return {"N": float(np.sum(np.diagonal(np.asarray(C)).real)), "J": float(f["J"]), "J_ph": float(f["J_ph"]),
            "Ie": float(f["Ie"])}


def _trajectories(config: Config, model, ntraj: int, t_end: float, seed: int, progress: bool = False):
    """One mode: the exact ssa engine from the steady state; rates with jackknife errors (resolution 0)."""
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
        out[q] = (float(est[0]), float(err[0]), 0.0)
    return out


def _mode_trajectories(system, ntraj: int, t_end: float, seed: int) -> dict[str, tuple[float, float, float]]:
    """Several modes: mcsolve from the Gaussian steady state; per-trajectory totals over ``[0, t_end]``, rates
    with errors, and the resolution (3 jumps' worth of the quantity over the run)."""
    from sim.trajectories import run_trajectories

    res = run_trajectories(system, engine="mcsolve", ntraj=ntraj, t_end=t_end, n_points=201, seed=seed,
                           initial="steady", tol=1e-8, progress=False)
    jumps, N, ops = res.jump_table(), res.populations(), res.operator_table()
    traj = jumps["traj"].to_numpy(np.intp)
    ph = (jumps["channel"].astype(str) == "ph").to_numpy()
    dE, dQ = jumps["dE"].to_numpy(float), jumps["dQ"].to_numpy(float)

    def tot(w):
        return np.bincount(traj, weights=w, minlength=ntraj)[:ntraj]

    # N: time average of sum_k N_k(t) per trajectory (trapezoid on the grid), times t_end as a "total"
    per_N = np.trapezoid(N.sum(axis=1), dx=t_end / (N.shape[2] - 1), axis=1)
    per = {"N": per_N, "J": tot(np.where(ph, 0.0, dE)), "J_ph": tot(np.where(ph, -dE, 0.0)), "Ie": tot(dQ)}
    oph = (ops["channel"].astype(str) == "ph").to_numpy()
    odE = np.abs(ops["dE"].to_numpy(float))
    unit = {"N": 0.0, "J": float(odE[~oph].max(initial=0.0)), "J_ph": float(odE[oph].max(initial=0.0)),
            "Ie": float(np.abs(ops["dQ"].to_numpy(float)).max(initial=0.0))}
    out = {}
    for q, x in per.items():
        est, err = estimate_cumulant_rates(x, t_end, order=1, groups=min(20, ntraj))
        out[q] = (float(est[0]), float(err[0]), 3 * unit[q] / (ntraj * t_end))
    return out


def _per_mode(config: Config) -> list[dict]:
    """Each mode's pinned fluxes ``X_k(n_k)`` and largest flux densities off resonance, for the Landauer rows.

    Mode k alone (its own ``M^k``: the diagonal rates ``tau^c_kk``, quantum ``Omega_k``, ``gamma_k``):
    ``pinned`` = ``{J, J_ph, Ie}`` at ``N_k = n_k = nB(Omega_k, T_ph)`` (``J_ph = J`` in the Landauer picture);
    ``lowest``: ``max_w |x_k(w)|`` on ``w in [0.05, 3] Omega_k`` of the pinned densities ``x_k(w)`` (the
    lowest-order integrand is ``A_ph(w) x(w)``, and ``A_ph`` puts a weight ``O(gamma/Omega)`` off resonance);
    ``full``: ``max_w |G_k(w)| / kappa_k`` of the full-broadening integrand without ``|D(w)|^2``
    (``int |D|^2 dw/2pi ~ 1/kappa``; the tails add ``O(kappa/Omega)`` of it), ``kappa_k = Gamma_e,kk(Omega_k) +
    gamma_k``. Off-diagonal rates are bounded by the diagonal ones (the rate matrices are positive
    semi-definite), so the sum over modes bounds the size of the cross terms too.
    """
    from sim.channels import channel_rates
    from sim.conductor import CHANNEL_SIGN
    from sim.landauer import _modes
    from sim.special import bose

    md = _modes(config)
    b = config.bias
    T_ph = config.phonon_bath.T
    sign = CHANNEL_SIGN[:, None]
    out = []
    for k, cond in enumerate(md.conductors):
        om, g = float(md.omega[k]), float(md.gamma[k])
        r0 = channel_rates(cond, om, b.mu_L, b.mu_R, b.T_L, b.T_R)
        net0 = np.ravel(r0.emission - r0.damping * float(bose(om, T_ph)))
        J0 = float(om * net0.sum())
        pinned = {"N": np.nan, "J": J0, "J_ph": J0, "Ie": float((CHANNEL_SIGN * net0).sum())}
        w = np.linspace(0.05, 3.0, 300) * om
        r = channel_rates(cond, w, b.mu_L, b.mu_R, b.T_L, b.T_R)
        net = r.emission - r.damping * bose(w, T_ph)
        low_J = float(np.max(np.abs(w * net.sum(axis=0))))
        low_I = float(np.max(np.abs((sign * net).sum(axis=0))))
        gam_e = r.damping.sum(axis=0)
        kappa = float(np.interp(om, w, gam_e)) + g
        ph = (g * w / om) * net
        cross = r.emission * gam_e - r.damping * r.emission.sum(axis=0)
        full_J = float(np.max(np.abs(w * ph.sum(axis=0)))) / kappa
        full_I = float(np.max(np.abs((sign * (ph + cross)).sum(axis=0)))) / kappa
        out.append({"omega": om, "gamma": g, "pinned": pinned,
                    "lowest": {"N": 0.0, "J": low_J, "J_ph": low_J, "Ie": low_I},
                    "full": {"N": 0.0, "J": full_J, "J_ph": full_J, "Ie": full_I}})
    return out


def _flux_density_scale(config: Config) -> dict[str, dict[str, float]]:
    """Largest flux densities off resonance, summed over the modes (:func:`_per_mode`), for the Landauer tolerances."""
    per = _per_mode(config)
    return {lv: {q: float(sum(p[lv][q] for p in per)) for q in QUANTITIES} for lv in ("lowest", "full")}


def crosscheck(config: Config, *, ntraj: int | None = None, t_end: float | None = None, seed: int | None = None,
               progress: bool | None = None) -> CrossCheck:
    """Compare all routes for one config of any number of modes (see the module docstring for the expected gaps).

    ``progress``: tqdm bars on stderr, one over the routes and the trajectory run's own
    (``None``: when stderr is a terminal).
    """
    from sim.progress import progress_bar, progress_enabled

    with progress_bar(6, "crosscheck", "route", progress) as bar:
        return _crosscheck(config, ntraj, t_end, seed, bar, progress_enabled(progress))


def _crosscheck(config: Config, ntraj, t_end, seed, bar, progress: bool) -> CrossCheck:
    ref = _reference(config)
    K = config.n_modes
    rows = []
    what = {"config": config, "options": {"ntraj": ntraj, "t_end": t_end, "seed": seed},
            "reference": ref.route, "n_modes": K, "reference_label": ref.label,
            "pinned_label": ("sum_k X_k(n_k), each mode's rate fluxes at N_k = n_k" if ref.system is not None else
                             "X(n_ph), the rate fluxes at N = n_ph")}
    width_name = "kappa" if ref.system is None else "2 min Re eig(Y)"

    def add(route, level, vals, expected_abs, expected_text, errs=None, center=None):
        """One row per quantity; ``within`` checks |value - center| <= tolerance (center: the reference)."""
        for q in QUANTITIES:
            v = vals.get(q, np.nan)
            r = ref.values[q]
            err = (errs or {}).get(q, np.nan)
            tol = expected_abs(q, r) if np.isfinite(v) and expected_abs is not None else np.nan
            if route == ref.route:
                tol = np.nan  # the reference itself: no tolerance, nothing to check
            c = (r if center is None else center[q]) if np.isfinite(v) else np.nan
            rows.append({"route": route, "level": level, "quantity": q, "value": v, "stderr": err,
                         "rate_equation": r, "difference": v - r, "center": c, "deviation": v - c,
                         "expected": expected_text,
                         "tolerance": tol, "within": bool(abs(v - c) <= tol) if np.isfinite(tol) else None})
        bar.update(1)

    if not ref.stable:
        low = landauer(config, "lowest")
        if ref.near_threshold:
            head = (f"near threshold: |{width_name}| = {abs(ref.width):.3g} is within round-off of 0, stability is "
                    "not determined")
        elif ref.system is None:
            head = f"unstable: kappa = {ref.width:.6g} <= 0, growth rate {-ref.width:.6g}"
        else:
            head = f"unstable: the modes run away (growth rate {-ref.width:.6g} > 0)"
        msg = (f"{head}; only the lowest-order Landauer fluxes exist (J = {low.J:.6g}, Ie = {low.Ie:.6g}) and they "
               "cannot see the instability")
        table = pd.DataFrame([{"route": "landauer", "level": "lowest", "quantity": q,
                               "value": {"J": low.J, "J_ph": low.J, "Ie": low.Ie}.get(q, np.nan)} for q in QUANTITIES])
        return CrossCheck(table, False, msg, **what)

    def rel(tol):
        return lambda q, r: tol * abs(r) + 1e-300

    add(ref.route, ref.level, ref.values, None,
        "reference" if ref.system is None else "reference (exact second moments)")
    _exact_rows(ref, add, rel)
    _trajectory_rows(config, ref, add, ntraj, t_end, seed, progress)
    _landauer_rows(config, ref, add)
    table = pd.DataFrame(rows)
    table["within"] = table["within"].astype(object)
    ok = table["within"].dropna().all()
    msg = "all compared routes agree within their expected differences" if ok else \
        "some routes differ more than expected"
    if ref.system is not None:
        msg += f" ({K} modes; reference: the covariance route)"
    return CrossCheck(table, True, msg + not_compared_note(table, ref.route), **what)


def _exact_rows(ref: _Reference, add, rel) -> None:
    """The population (one mode) and Lindblad rows: the same steady state on a truncated Fock space."""
    from sim.population import TruncationError

    if ref.model is not None:
        from sim.lindblad import steady_lindblad
        from sim.population import steady_population

        model = ref.model
        try:
            pop = steady_population(model)
            add("population", f"cutoff {pop.cutoff}", _fluxes(model, pop.N), rel(_NUM_TOL),
                "truncation <= 1e-8 relative")
        except TruncationError as e:  # N_ss too large for the cutoff cap (near threshold)
            add("population", f"cutoff {getattr(e.partial, 'cutoff', '?')}", {}, None, f"not computed: {e}")
        try:
            lin = steady_lindblad(model)
            add("lindblad", f"cutoff {lin.cutoff}", _fluxes(model, lin.N), rel(_NUM_TOL),
                "truncation, solver <= 1e-8 relative")
        except TruncationError as e:
            add("lindblad", f"cutoff {getattr(e.partial, 'cutoff', '?')}", {}, None, f"not computed: {e}")
        return
    from sim.lindblad import steady_lindblad

    system = ref.system
    try:
        lin = steady_lindblad(system)
        add("lindblad", "cutoffs " + "x".join(str(c) for c in lin.cutoffs), _flux_record(system, lin.C),
            rel(_LINDBLAD_MODES_TOL), "truncation, solver <= 1e-6 relative")
    except ValueError as e:
        add("lindblad", "-", {}, None, f"not computed: {e}")


def _trajectory_rows(config: Config, ref: _Reference, add, ntraj, t_end, seed, progress: bool) -> None:
    """Trajectories from the steady state: the exact ssa engine (one mode) or mcsolve (several)."""
    seed = config.run.seed if seed is None else int(seed)
    if ref.model is not None:
        from sim.guards import check_jumps

        ntraj = ntraj or config.run.ntraj
        t_end = t_end or config.run.t_end or 200.0 / ref.width
        check_jumps("the ssa row (--ntraj x --t-end, default t_end = 200/kappa)", ref.model, ntraj, t_end,
                    float(ref.values["N"]))
        tr = _trajectories(config, ref.model, ntraj, t_end, seed, progress)
        level, expected = f"ssa, {ntraj} x T={t_end:.4g}", "within 4 standard errors"
    else:
        ntraj = int(ntraj or DEFAULT_MODES_NTRAJ)
        t_end = float(t_end or config.run.t_end or 20.0 / ref.width)
        level, expected = f"mcsolve, {ntraj} x T={t_end:.4g}", "within 4 standard errors + 3 jumps / (ntraj T)"
        try:
            tr = _mode_trajectories(ref.system, ntraj, t_end, seed)
        except ValueError as e:
            add("trajectories", "mcsolve", {}, None, f"not computed: {e}")
            return
    add("trajectories", level, {q: v for q, (v, _, _) in tr.items()}, lambda q, r: 4 * tr[q][1] + tr[q][2], expected,
        {q: e for q, (_, e, _) in tr.items()})


def _landauer_rows(config: Config, ref: _Reference, add) -> None:
    """Landauer lowest order (against the pinned ``sum_k X_k(n_k)``) and full broadening (against the reference)."""
    per = _per_mode(config)
    several = len(per) > 1
    name = "sum_k X_k(n_k)" if several else "X(n_ph)"
    ratio = max(p["gamma"] / p["omega"] for p in per)
    low = landauer(config, "lowest")
    low_vals = {"J": low.J, "J_ph": low.J, "Ie": low.Ie}
    if ratio <= _LOWEST_MAX:
        pinned = {q: float(sum(p["pinned"][q] for p in per)) for q in QUANTITIES}

        def tol_low(q, r):
            return sum(3 * p["gamma"] / p["omega"] * max(abs(p["pinned"][q]), p["lowest"][q]) for p in per) \
                + _NUM_TOL * abs(r)

        rule = ("each mode's rate fluxes at N_k = n_k (only Lambda_kk enters), within the sum of 3 gamma_k/Omega_k "
                "max(|X_k|, max_w |x_k(w)|)" if several else
                "the rate fluxes with N pinned at n_ph (gap to the rate equation: X(n_ph) - X(N)), "
                "within 3 gamma_ph/Omega max(|X(n_ph)|, max_w |x(w)|)")
        add("landauer", "lowest", low_vals, tol_low, f"= {name}, {rule}", center=pinned)
    else:
        what = "max gamma_k/Omega_k" if several else "gamma_ph/Omega"
        add("landauer", "lowest", low_vals, None,
            f"not comparable: {what} = {ratio:.3g} > {_LOWEST_MAX} (needs gamma_ph << Omega)")
    full = landauer(config, "full")
    full_vals = {"J": full.J, "J_ph": full.J, "Ie": full.Ie}
    om = min(p["omega"] for p in per)
    w = ref.widest
    scale = {q: float(sum(p["full"][q] for p in per)) for q in QUANTITIES}
    wname = "w" if several else "kappa"
    if w / om <= _FULL_MAX:
        add("landauer", "full", full_vals,
            lambda q, r: 3 * w / om * max(abs(r), scale[q]) + _NUM_TOL * abs(r),
            f"narrow resonance: 3 {wname}/Omega max(|X|, max_w |G(w)|/kappa)"
            + (" (w = 2 max Re eig(Y), Omega = min Omega_k)" if several else ""))
    else:
        add("landauer", "full", full_vals, None,
            f"not comparable: {wname}/Omega = {w / om:.3g} > {_FULL_MAX}; the "
            f"{'covariance route' if several else 'rate equation'} is its narrow-resonance limit only")


def _plot_table(report: CrossCheck) -> pd.DataFrame:
    """The rows :func:`plot_crosscheck` draws: every row with a value but the reference, relative to the reference.

    Columns added: ``label`` (route and level), ``rel`` = ``(X - X_ref)/|X_ref|``, ``rel_err``,
    ``lo``/``hi`` = the expected window ``(center -+ tolerance - X_ref)/|X_ref|`` (``NaN`` without a
    tolerance), ``compared`` (a finite tolerance), ``own_center`` (checked against a center other than
    the reference, e.g. Landauer lowest order against ``X(n_ph)``: it differs from the reference by
    construction), ``center_name`` (that center, from ``expected``), ``z`` = deviation / tolerance.
    """
    t = report.table.dropna(subset=["value"])
    t = t[t["route"] != report.reference].copy()
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
    ref = report.reference_label.removeprefix("the ")
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
