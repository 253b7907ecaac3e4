r"""Cross-check report for several modes (``ehp crosscheck CONFIG`` with K > 1, docs/modes.md).

Rows N (total ``sum_k N_k``), J (e-baths -> modes), J_ph (modes -> ph-bath) and Ie (electrons L -> R)
from every route that exists for several modes, and the difference each should show from the covariance
route (the reference: exact second moments of the quadratic Lindblad equation, Lamb shift neglected):

============================  ===============================================================
route                         expected difference from the covariance route
============================  ===============================================================
Lindblad steady state         truncation and solver: ``<= 1e-6`` relative (tail of each mode's
                              Fock cutoff below 1e-10; fluxes from the truncated ``C``)
trajectories (mcsolve,        statistics: within 4 standard errors (stationary from the
steady)                       Gaussian steady state, no transient) plus the resolution of the
                              run, 3 jumps' worth of the quantity over ``ntraj T`` (a rare
                              label, e.g. ph-bath jumps, may be seen 0 times: stderr 0)
Landauer lowest order         Eq. 13 with several modes uses ``Tr[Lambda^c(w) A_ph(w)]``; with
                              uncoupled ph-baths ``A_ph`` is diagonal, so only ``Lambda^c_kk``
                              enters: the sum over modes of each mode's one-mode lowest-order
                              Landauer (its own ``M^k``, quantum and ``gamma_k``, from
                              ``one_mode_config``). It equals the sum of the pinned one-mode
                              fluxes ``X_k(n_k)`` within the sum of the one-mode tolerances
                              (``3 gamma_k/Omega_k`` times the larger of ``|X_k(n_k)|`` and the
                              largest flux density off resonance); it cannot see the coherences
                              ``C_mn`` or the collective damping, so its gap to the covariance
                              route is physics, not error. Compared only for
                              ``max_k gamma_k/Omega_k <= 0.05``
============================  ===============================================================

Columns as for one mode (:mod:`analysis.crosscheck`) with ``reference`` (the covariance value) in place of
``rate_equation``: ``difference`` = value - covariance,
``deviation`` = value - the row's center, ``within = |deviation| <= tolerance``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from sim.config import Config, ConfigError

from .estimators import estimate_cumulant_rates
from .verdicts import not_compared_note

__all__ = ["crosscheck_modes", "DEFAULT_NTRAJ"]

QUANTITIES = ("N", "J", "J_ph", "Ie")
#: Trajectories of the mcsolve row when ``--ntraj`` is not given (each one solves a tensor Fock space).
DEFAULT_NTRAJ = 40
_LINDBLAD_TOL = 1e-6
_LOWEST_MAX = 0.05


def _flux_record(system, C) -> dict[str, float]:
    f = system.fluxes(C)
    return {"N": float(np.sum(np.diagonal(np.asarray(C)).real)), "J": float(f["J"]), "J_ph": float(f["J_ph"]),
            "Ie": float(f["Ie"])}


def _trajectory_row(system, ntraj: int, t_end: float, seed: int) -> dict[str, tuple[float, float]]:
    """mcsolve from the Gaussian steady state: per-trajectory totals over ``[0, t_end]``, rates with errors."""
    from sim.trajectories.modes import run_mode_trajectories

    jumps, N, ops = run_mode_trajectories(system, "mcsolve", ntraj, t_end, 201, seed, initial="steady", tol=1e-8)
    traj = jumps["traj"].to_numpy(np.intp)
    ph = (jumps["channel"].astype(str) == "ph").to_numpy()
    dE, dQ = jumps["dE"].to_numpy(float), jumps["dQ"].to_numpy(float)

    def tot(w):
        return np.bincount(traj, weights=w, minlength=ntraj)[:ntraj]

    # N: time average of sum_k N_k(t) per trajectory (trapezoid on the grid), times t_end as a "total"
    per_N = np.trapezoid(N.sum(axis=1), dx=t_end / (N.shape[2] - 1), axis=1)
    per = {"N": per_N, "J": tot(np.where(ph, 0.0, dE)), "J_ph": tot(np.where(ph, -dE, 0.0)), "Ie": tot(dQ)}
    # resolution: 3 jumps' worth of the quantity over the whole run (a rare label seen 0 times has stderr 0)
    oph = (ops["channel"].astype(str) == "ph").to_numpy()
    odE = np.abs(ops["dE"].to_numpy(float))
    unit = {"N": 0.0, "J": float(odE[~oph].max(initial=0.0)), "J_ph": float(odE[oph].max(initial=0.0)),
            "Ie": float(np.abs(ops["dQ"].to_numpy(float)).max(initial=0.0))}
    out = {}
    for q, x in per.items():
        est, err = estimate_cumulant_rates(x, t_end, order=1, groups=min(20, ntraj))
        out[q] = (float(est[0]), float(err[0]), 3 * unit[q] / (ntraj * t_end))
    return out


def _landauer_lowest(config: Config, flux_scale: Callable[[Config], dict]):
    """Sum over modes of the one-mode lowest-order Landauer, its pinned center and tolerance."""
    from sim.config import one_mode_config
    from sim.landauer import landauer
    from sim.rate_equation import rate_model

    vals = dict.fromkeys(QUANTITIES, 0.0)
    center = dict.fromkeys(QUANTITIES, 0.0)
    tol = dict.fromkeys(QUANTITIES, 0.0)
    ratio = 0.0
    for k in range(config.n_modes):
        one = one_mode_config(config, k)
        om, g = one.mode.omega, one.phonon_bath.gamma
        ratio = max(ratio, g / om)
        low = landauer(one, "lowest")
        model = rate_model(one)
        f = model.fluxes(float(model.n_ph))
        pinned = {"J": float(f["J"]), "J_ph": float(f["J"]), "Ie": float(f["Ie"])}
        scale = flux_scale(one)["lowest"]
        for q, v in (("J", low.J), ("J_ph", low.J), ("Ie", low.Ie)):
            vals[q] += v
            center[q] += pinned[q]
            tol[q] += 3 * g / om * max(abs(pinned[q]), scale[q]) + 1e-8 * abs(v)
    vals["N"] = center["N"] = np.nan
    return vals, center, tol, ratio


def crosscheck_modes(config: Config, *, flux_scale: Callable[[Config], dict], ntraj: int | None = None,
                     t_end: float | None = None, seed: int | None = None,
                     progress: bool | None = None) -> tuple[pd.DataFrame, bool, str]:
    """The several-mode report (see the module doc): ``(table, stable, message)``, which
    :func:`analysis.crosscheck.crosscheck` wraps in its ``CrossCheck``. ``flux_scale(one_mode_config)`` gives the
    largest off-resonance flux densities of one mode (``analysis.crosscheck._flux_density_scale``) for the
    Landauer tolerances."""
    from sim.covariance import mode_system_from_config
    from sim.lindblad import steady_lindblad_modes

    from .stats import progress_bar

    system = mode_system_from_config(config)
    ss = system.steady_state()
    ref = _flux_record(system, ss.C) if system.stable else None
    rows = []

    def add(route, level, vals, tol_of, expected, errs=None, center=None):
        for q in QUANTITIES:
            v = vals.get(q, np.nan)
            r = ref[q]
            tol = tol_of(q, r) if (tol_of is not None and np.isfinite(v)) else np.nan
            c = (r if center is None else center[q]) if np.isfinite(v) else np.nan
            dev = v - c
            rows.append({"route": route, "level": level, "quantity": q, "value": v,
                         "stderr": (errs or {}).get(q, np.nan), "reference": r, "difference": v - r,
                         "center": c, "deviation": dev, "expected": expected, "tolerance": tol,
                         "within": bool(abs(dev) <= tol) if np.isfinite(tol) else None})

    if not system.stable:
        try:
            low, _, _, _ = _landauer_lowest(config, flux_scale)
            tail = (f"; only the lowest-order Landauer fluxes exist (J = {low['J']:.6g}, Ie = {low['Ie']:.6g}) and they "
                    "cannot see the collective instability")
        except ConfigError:
            low, tail = {}, ""
        msg = f"unstable: the modes run away (growth rate {system.growth_rate:.6g} > 0){tail}"
        table = pd.DataFrame([{"route": "landauer", "level": "lowest (sum over modes)", "quantity": q,
                               "value": low.get(q, np.nan)} for q in QUANTITIES])
        return table, False, msg

    with progress_bar(4, "crosscheck", "route", progress) as bar:
        add("covariance", "reference", ref, None, "reference (exact second moments)")
        bar.update(1)
        try:
            lin = steady_lindblad_modes(system)
            add("lindblad", "cutoffs " + "x".join(str(c) for c in lin.cutoffs), _flux_record(system, lin.C),
                lambda q, r: _LINDBLAD_TOL * abs(r) + 1e-300, "truncation, solver <= 1e-6 relative")
        except ValueError as e:
            add("lindblad", "-", {}, None, f"not computed: {e}")
        bar.update(1)
        margin = -system.growth_rate
        ntraj = int(ntraj or DEFAULT_NTRAJ)
        t_end = float(t_end or config.run.t_end or 20.0 / margin)
        seed = config.run.seed if seed is None else int(seed)
        try:
            tr = _trajectory_row(system, ntraj, t_end, seed)
            add("trajectories", f"mcsolve, {ntraj} x T={t_end:.4g}", {q: v for q, (v, _, _) in tr.items()},
                lambda q, r: 4 * tr[q][1] + tr[q][2], "within 4 standard errors + 3 jumps / (ntraj T)",
                {q: e for q, (_, e, _) in tr.items()})
        except ValueError as e:
            add("trajectories", "mcsolve", {}, None, f"not computed: {e}")
        bar.update(1)
        try:
            vals, center, tol, ratio = _landauer_lowest(config, flux_scale)
            if ratio <= _LOWEST_MAX:
                add("landauer", "lowest (sum over modes)", vals, lambda q, r: tol[q],
                    "= sum_k X_k(n_k), each mode's one-mode pinned fluxes (only Lambda_kk enters), within the sum of "
                    "3 gamma_k/Omega_k max(|X_k|, max_w |x_k(w)|)", center=center)
            else:
                add("landauer", "lowest (sum over modes)", vals, None,
                    f"not comparable: max gamma_k/Omega_k = {ratio:.3g} > {_LOWEST_MAX}")
        except ConfigError as e:
            add("landauer", "lowest", {}, None, f"not computed: {e}")
        bar.update(1)
    table = pd.DataFrame(rows)
    table["within"] = table["within"].astype(object)
    ok = table["within"].dropna().all()
    msg = ("all compared routes agree within their expected differences" if ok else
           "some routes differ more than expected") + f" ({system.K} modes; reference: the covariance route)"
    return table, True, msg + not_compared_note(table, "covariance")
