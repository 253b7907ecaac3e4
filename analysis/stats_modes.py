r"""Counting statistics of a several-mode trajectory run (``ehp stats DIR`` for K > 1, docs/modes.md).

From the jump table of ``ehp trajectories`` (columns ``channel, direction, dQ, dE, mode, op``) over the
window ``[t_min, t_end]`` (duration ``T``):

* per-label jump rates, per (channel, direction) and per collapse operator ``op``: the mean
  per-trajectory count over ``T``, standard error ``std(count) / (sqrt(ntraj) T)`` (trajectories are
  independent);
* charge (``dQ``, electrons L -> R) and energy (``dE`` of the electron-bath jumps: energy from the
  electrons into the modes, mean ``J``; the energy into the modes from every bath is bounded, its
  cumulant rates vanish) cumulant rates ``c_1, c_2`` from the per-trajectory totals with
  :func:`analysis.estimators.estimate_cumulant_rates` (the ``(k_n(T) - k_n(T/2)) / (T/2)`` form, free of
  the initial-state offset; delete-a-group jackknife errors);
* the mean population of each mode on the grid (``t >= t_min``).

Exact values beside: per-operator stationary rates ``Tr[L_l rho_ss L_l^+]`` and the cumulant rates of
the tilted Liouvillian (:func:`sim.counting_modes.mode_counting`) where the truncated zero-charge sector
fits (:data:`sim.lindblad_modes.MAX_SECTOR`); otherwise a note says why they were not computed. The
populations' exact values are the covariance route's ``N_k = C_kk``.

Units: rates per unit time (energy units, hbar = 1); energy cumulants in energy^n per unit time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim.conductor import CHANNELS
from sim.covariance import ModeSystem

from .estimators import estimate_cumulant_rates

__all__ = ["ModeRunStats", "mode_run_stats", "system_of_run", "default_t_min"]

#: Cumulant orders estimated (higher orders need far more trajectories than a several-mode mcsolve run has).
ORDER = 2
#: Tail tolerance of the exact route's cutoffs (its truncation error, ~tol relative, is far below any
#: trajectory error bar; 1e-12 would make the sector several times larger for nothing).
EXACT_TOL = 1e-8


def _electron_energy(ops: pd.DataFrame) -> np.ndarray:
    """``nu_l``: the energy a jump brings into the modes from the electron baths (``dE``; 0 for ph jumps)."""
    return np.where(ops["channel"].astype(str) != "ph", ops["dE"].to_numpy(float), 0.0)


def system_of_run(identity: dict) -> ModeSystem:
    """The :class:`ModeSystem` of a several-mode run, from its stored record (``identity["modes"]``,
    :meth:`sim.covariance.ModeSystem.record`); the damping matrices (which the jump statistics do not
    use) are rebuilt from the run's config where it still loads, else set to ``T_abs - T_em``."""
    r = identity["modes"]
    em = np.asarray(r["emission_re"]) + 1j * np.asarray(r["emission_im"])
    ab = np.asarray(r["absorption_re"]) + 1j * np.asarray(r["absorption_im"])
    damping = ab - em
    try:
        from sim.config import parse_config
        from sim.covariance import mode_system_from_config

        s = mode_system_from_config(parse_config(identity["config"]))
        if np.allclose(s.emission, em, rtol=1e-12, atol=0) and np.allclose(s.absorption, ab, rtol=1e-12, atol=0):
            damping = s.damping
    except Exception:  # noqa: BLE001 - a moved conductor.file: the record alone suffices
        pass
    lamb = np.asarray(r["lamb_re"]) + 1j * np.asarray(r["lamb_im"]) if "lamb_re" in r else None
    return ModeSystem(np.asarray(r["omega"], float), np.asarray(r["gamma"], float), np.asarray(r["n_th"], float),
                      em, ab, damping, np.asarray(r["mu"], float), tuple(tuple(S) for S in r["clusters"]),
                      float(r["T_e"]), lamb=lamb)


def default_t_min(system: ModeSystem, initial: str, t_end: float) -> float:
    """0 from the steady state; else ``min(10 / margin, t_end / 2)`` (``margin = 2 min Re eig(Y)``, the slowest
    relaxation rate of the second moments) so that the transient from the vacuum is discarded."""
    if initial == "steady" or not system.stable:
        return 0.0
    return float(min(10.0 / -system.growth_rate, t_end / 2))


@dataclass(frozen=True, eq=False)
class ModeRunStats:
    """Result of :func:`mode_run_stats` (tables described in the module doc; ``exact`` columns NaN where not
    computed, ``exact_note`` then says why)."""

    ntraj: int
    K: int
    t_min: float
    t_end: float
    stable: bool
    growth_rate: float
    rates: pd.DataFrame
    operator_rates: pd.DataFrame
    cumulants: pd.DataFrame
    populations: pd.DataFrame
    exact_note: str | None = None
    cutoffs: tuple[int, ...] | None = field(default=None)

    def to_dict(self) -> dict:
        """JSON-ready record (non-finite numbers -> None)."""
        from sim.model import clean

        def rows(df: pd.DataFrame) -> list[dict]:
            return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in df.to_dict("records")]

        return clean({"n_modes": self.K, "ntraj": self.ntraj, "t_min": self.t_min, "t_end": self.t_end,
                      "stable": self.stable, "growth_rate": self.growth_rate, "rates": rows(self.rates),
                      "operator_rates": rows(self.operator_rates), "cumulants": rows(self.cumulants),
                      "populations": rows(self.populations), "exact_note": self.exact_note,
                      "cutoffs": None if self.cutoffs is None else list(self.cutoffs)})


def _per_traj(values: np.ndarray, traj: np.ndarray, ntraj: int) -> np.ndarray:
    return np.bincount(traj, weights=values, minlength=ntraj)[:ntraj]


def mode_run_stats(jumps: pd.DataFrame, ops: pd.DataFrame, N: np.ndarray, system: ModeSystem, t_end: float,
                   t_min: float, *, exact: bool = True) -> ModeRunStats:
    """Statistics of a several-mode run (see the module doc).

    Parameters
    ----------
    jumps, ops, N
        The run's tables (:func:`sim.trajectories.read_run`); ``N`` shape (ntraj, K, n_points).
    system
        The run's modes (:func:`system_of_run`).
    t_end, t_min
        The window ``[t_min, t_end]`` (1/energy).
    exact
        Compute the exact values (:func:`sim.counting_modes.mode_counting`) where the sector fits.
    """
    ntraj, K, npts = N.shape
    T = float(t_end - t_min)
    sel = jumps[jumps["t"] >= t_min]
    traj = sel["traj"].to_numpy(np.intp)
    opi = sel["op"].to_numpy(np.intp)
    n_ops = len(ops)
    counts = np.zeros((n_ops, ntraj))
    np.add.at(counts, (opi, traj), 1.0)
    exact_rates = np.full(n_ops, np.nan)
    exact_cum = {"charge": np.full(ORDER, np.nan), "energy": np.full(ORDER, np.nan)}
    note, cut = None, None
    if not system.stable:
        note = (f"exact values: not computed, the modes are unstable (growth rate {system.growth_rate:.6g} > 0): "
                "no stationary statistics")
    elif exact:
        from sim.counting_modes import mode_counting

        same = [(o.channel, o.direction) for o in system.collapse_operators()] == list(
            zip(ops["channel"].astype(str), ops["direction"].astype(str), strict=True))
        try:
            for q, nu in (("charge", "charge"), ("energy", _electron_energy(ops))):
                mc = mode_counting(system, nu, ORDER, tol=EXACT_TOL)
                exact_cum[q] = mc.cumulants
            if same:
                exact_rates = mc.rates
            cut = mc.cutoffs
        except ValueError as exc:
            note = f"exact values: not computed, the truncated space exceeds the exact route's limit ({exc})"
    # per operator
    rate = counts.mean(axis=1) / T
    err = counts.std(axis=1, ddof=1) / np.sqrt(ntraj) / T if ntraj > 1 else np.full(n_ops, np.nan)
    op_rates = pd.DataFrame({"op": ops["op"].to_numpy(), "channel": ops["channel"].astype(str).to_numpy(),
                             "direction": ops["direction"].astype(str).to_numpy(), "mode": ops["mode"].to_numpy(),
                             "count": counts.sum(axis=1).astype(np.int64), "rate": rate, "stderr": err,
                             "exact": exact_rates})
    # per (channel, direction)
    labels = [(c, d) for c in (*CHANNELS, "ph") for d in ("emission", "absorption")]
    rows = []
    for c, d in labels:
        m = ((ops["channel"].astype(str) == c) & (ops["direction"].astype(str) == d)).to_numpy()
        if not m.any():
            continue
        x = counts[m].sum(axis=0)
        rows.append({"channel": c, "direction": d, "count": int(x.sum()), "rate": x.mean() / T,
                     "stderr": x.std(ddof=1) / np.sqrt(ntraj) / T if ntraj > 1 else np.nan,
                     "exact": float(exact_rates[m].sum())})
    rates = pd.DataFrame(rows)
    # cumulants of charge and energy
    half = sel["t"].to_numpy() < t_min + T / 2
    cum_rows = []
    e_bath = (sel["channel"].astype(str) != "ph").to_numpy()
    for q, w in (("charge", sel["dQ"].to_numpy(float)), ("energy", np.where(e_bath, sel["dE"].to_numpy(float), 0.0))):
        tot = _per_traj(w, traj, ntraj)
        tot_half = _per_traj(np.where(half, w, 0.0), traj, ntraj)
        est, se = estimate_cumulant_rates(tot, T, order=ORDER, groups=min(20, ntraj), half=tot_half)
        for n in range(ORDER):
            cum_rows.append({"quantity": q, "order": n + 1, "estimate": est[n], "stderr": se[n],
                             "exact": exact_cum[q][n]})
    cumulants = pd.DataFrame(cum_rows)
    # populations on the grid
    grid = np.linspace(0.0, float(t_end), npts)
    g = grid >= t_min
    pops = []
    N_exact = system.steady_state().N if system.stable else np.full(K, np.nan)
    for k in range(K):
        per = np.nanmean(N[:, k, g], axis=1)
        pops.append({"mode": k, "estimate": float(np.nanmean(per)),
                     "stderr": float(np.nanstd(per, ddof=1) / np.sqrt(ntraj)) if ntraj > 1 else np.nan,
                     "exact": float(N_exact[k])})
    return ModeRunStats(ntraj, K, float(t_min), float(t_end), system.stable, system.growth_rate, rates, op_rates,
                        cumulants, pd.DataFrame(pops), note, cut)


def stats_of_run_dir(data: Path, identity: dict, t_min: float | None) -> ModeRunStats:
    """:func:`mode_run_stats` of a run directory (tables verified by :func:`sim.io.read_table`)."""
    from sim.trajectories import read_run

    tables = read_run(data)
    jumps, N, ops = tables.jumps, tables.N, tables.operators
    system = system_of_run(identity)
    run = identity["run"]
    t_end = float(run["t_end"])
    if t_min is None:
        t_min = default_t_min(system, run["initial"], t_end)
    return mode_run_stats(jumps, ops, N, system, t_end, t_min)
