r"""Rupture statistics of a ladder trajectory run (``ehp stats`` on a run of a ``[mode.potential]`` config).

The exact chain is rebuilt from the run's own operator table (``from``, ``to``, ``rate`` of every
label: the rates the trajectories ran with) and its initial distribution, so the comparison does
not depend on the code that made the rates. Reported (:func:`rupture_stats`):

- ``rupture``: :func:`sim.ladder_time.rupture_summary`: ``fraction`` ruptured by ``t_end``, ``mean_time`` of
  the ruptured ones with its standard error ``se``, ``exact_mean_time = E[T | T <= t_end]`` (the MFPT
  where the survival at ``t_end`` is negligible), the exact ``mfpt``, and the restricted mean
  ``mean(min(T_i, t_end))`` against ``int_0^T S dt``;
- ``ks``: the Kolmogorov-Smirnov distance ``D = sup_t |F_n(t) - F(t)|`` between the empirical rupture-time
  distribution (``F_n(t)`` = fraction of all trajectories ruptured by ``t``) and the exact
  ``F = 1 - S`` over ``[0, t_end]``, with the p-value of the exact finite-``n`` Kolmogorov distribution
  (``scipy.stats.kstwo``). Trajectories not ruptured by ``t_end`` are censored there; the supremum over
  ``[0, t_end]`` is at most the supremum over all times, so the p-value is conservative;
- ``table`` (``rupture.parquet``): on the run's grid ``t``: ``S_estimate`` (fraction not ruptured by ``t``), its
  standard error ``sqrt(S (1 - S) / n)``, ``S_exact``, the exact density ``f = -dS/dt`` and hazard ``f/S``.

Units: times 1/energy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["RuptureStats", "rupture_stats", "chain_from_operators", "exact_cdf", "plot_rupture"]


def chain_from_operators(operators: pd.DataFrame, ladder: dict[str, Any]):
    """The :class:`sim.level_chain.LevelChain` of a ladder run, from its operator table and its ladder record.

    The rates ``k[b, r, j]`` are those of the table; the coordinate elements, which only made the rates, are
    not stored, so the ladder carries the pattern of transitions in their place (``x_ij = 1`` where a rate is).
    """
    from sim.ladder import Ladder
    from sim.level_chain import LevelChain
    from sim.model import BATHS

    E = np.asarray(ladder["E"], dtype=float)
    ab = np.asarray(ladder["absorbing"], dtype=bool)
    n = E.size
    frm, to = operators["from"].to_numpy(np.intp), operators["to"].to_numpy(np.intp)
    x = np.zeros((n, n))
    x[frm, to] = x[to, frm] = 1.0
    lad = Ladder(str(ladder["kind"]), float(ladder["omega"]), E, x, ab, threshold=float(ladder.get("threshold") or
                                                                                        math.nan))
    row = np.full(n, -1, dtype=np.intp)
    row[lad.transient] = np.arange(lad.n_bound)
    b = np.array([BATHS.index(str(c)) for c in operators["channel"].astype(str)], dtype=np.intp)
    k = np.zeros((len(BATHS), lad.n_bound, n))
    np.add.at(k, (b, row[frm], to), operators["rate"].to_numpy(float))
    return LevelChain(lad, k)


def exact_cdf(chain, p0: NDArray[np.float64], t: NDArray[np.float64]) -> NDArray[np.float64]:
    """``F(t) = 1 - S(t)`` at any times: by the eigen-decomposition of the transient block where it reproduces the
    exact propagator to 1e-10 at test points, else by stepping the propagator (:func:`sim.ladder_time.survival`)."""
    from scipy import linalg

    from sim.ladder_time import _transient_block, survival

    t = np.asarray(t, dtype=float)
    A = _transient_block(chain)
    p = np.asarray(p0, dtype=float)[chain.ladder.transient]
    try:
        w, V = linalg.eig(A)
        c = (np.ones(A.shape[0]) @ V) * linalg.solve(V, p.astype(complex))
        probe = np.quantile(t, [0.0, 0.25, 0.5, 0.75, 1.0]) if t.size else np.zeros(0)
        ok = np.allclose(np.real(np.exp(np.outer(probe, w)) @ c), survival(chain, probe, p0), rtol=0, atol=1e-10)
    except (linalg.LinAlgError, ValueError):
        ok = False
    if ok:
        S = np.real(np.exp(np.outer(t.ravel(), w)) @ c).reshape(t.shape)
        return 1.0 - np.clip(S, 0.0, 1.0)
    return 1.0 - survival(chain, t, p0)


@dataclass(frozen=True)
class RuptureStats:
    """Rupture statistics of a ladder run (module docstring): ``rupture``, ``ks``, ``table``, counts."""

    run: Path
    ntraj: int
    n_jumps: int
    rupture: dict[str, Any]
    ks: dict[str, Any]
    table: pd.DataFrame
    rates: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        from sim.model import clean

        return clean({"run": str(self.run), "ntraj": self.ntraj, "n_jumps": self.n_jumps, "ladder": True,
                      "rupture": self.rupture, "ks": self.ks,
                      "rates": self.rates.to_dict(orient="records")})


def rupture_stats(run_dir: str | Path) -> RuptureStats:
    """The statistics of a complete ladder run of ``ehp trajectories`` (verified by :func:`sim.read_run`)."""
    from scipy import stats as sps

    from sim import read_run
    from sim.ladder_time import evolve_ladder, rupture_summary

    rt = read_run(run_dir)
    ident = rt.identity
    chain = chain_from_operators(rt.operators, ident["ladder"])
    p0 = np.asarray(ident["initial_distribution"], dtype=float)
    t_end = float(ident["run"]["t_end"])
    N = rt.ntraj
    times = np.sort(rt.stops["t_stop"].to_numpy(float))
    rupture = rupture_summary(times, N, chain, p0, t_end)
    n = times.size
    F = exact_cdf(chain, p0, times)
    i = np.arange(1, n + 1)
    F_end = float(exact_cdf(chain, p0, np.array([t_end]))[0])
    D = max(float(np.max(i / N - F, initial=0.0)), float(np.max(F - (i - 1) / N, initial=0.0)), abs(n / N - F_end))
    ks = {"D": D, "n": N, "p_value": float(sps.kstwo.sf(D, N)), "critical_1pct": float(sps.kstwo.isf(0.01, N)),
          "censored": N - n, "note": "censored at t_end: the p-value is conservative"}
    grid = rt.t
    ev = evolve_ladder(chain, grid, p0[chain.ladder.transient])
    S_hat = 1.0 - np.searchsorted(times, grid, side="right") / N
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame({"t": grid, "S_estimate": S_hat, "S_stderr": np.sqrt(S_hat * (1 - S_hat) / N),
                              "S_exact": ev.S, "density_exact": ev.escape_flux, "hazard_exact": ev.hazard})
    span = t_end * N
    counts = rt.jumps.groupby(["channel", "direction"], observed=False).size().rename("count").reset_index()
    counts["rate"] = counts["count"] / span
    return RuptureStats(Path(run_dir), N, len(rt.jumps), rupture, ks, table, counts)


def plot_rupture(st: RuptureStats, path: Path) -> Path:
    """Survival (estimate with a 2-standard-error band, exact) on a log scale, and the rupture-time density."""
    from analysis.stats_plots import plt

    tab = st.table
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    t = tab["t"].to_numpy()
    S, se = tab["S_estimate"].to_numpy(), tab["S_stderr"].to_numpy()
    floor = 0.5 / st.ntraj  # below one trajectory in 2N the estimate is 0: the axis stops there
    a.fill_between(t, np.maximum(S - 2 * se, floor), np.minimum(S + 2 * se, 1.0), step="post", alpha=0.3,
                   label="estimate +- 2 se")
    a.step(t, S, where="post", label=f"estimate ({st.ntraj} trajectories)")
    a.plot(t, tab["S_exact"], "k--", label="exact exp(G t)")
    a.set_yscale("log")
    a.set_ylim(max(min(floor, float(tab["S_exact"].min())), 1e-12), 1.2)
    a.set_xlabel("t")
    a.set_ylabel("survival S(t)")
    a.legend(fontsize=8)
    r = st.rupture
    a.set_title(f"mean {r['mean_time']:.4g} +- {r['se'] or 0:.2g}, exact {r['exact_mean_time']:.4g}", fontsize=9)
    from sim.io import read_table

    times = read_table(st.run, "stops")["t_stop"].to_numpy(float)
    if times.size:
        b.hist(times, bins=min(60, max(10, times.size // 50)), range=(0, t[-1]), density=True, alpha=0.5,
               label="rupture times")
        b.plot(t, tab["density_exact"] / st.rupture["exact_fraction"], "k--",
               label="exact density (given rupture by t_end)")
    b.set_xlabel("t")
    b.set_ylabel("density")
    b.set_title(f"KS D = {st.ks['D']:.3g}, p = {st.ks['p_value']:.3g}", fontsize=9)
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def cmd_ladder_stats(args, run: Path, source: dict, check) -> int:
    """``ehp stats`` of a ladder run: the rupture report (text or ``--json``); ``--out`` writes ``rupture.parquet``,
    ``rates.parquet`` and ``rupture.png``."""
    import json

    from sim.config import ConfigError

    if args.first_passage is not None or args.partial:
        raise ConfigError("--first-passage and --partial are for runs of the harmonic mode; a ladder run reports its "
                          "rupture times")
    if not check.complete:
        raise ConfigError(f"{str(run)!r} is not a complete run: {check.problem()}; resume it by running the same "
                          "`ehp trajectories` command again")
    st = rupture_stats(run)
    if args.out:
        from sim.io import RunDirectory

        rd = RunDirectory.open(args.out, {"command": "stats", "source": source["identity"]}, overwrite=args.overwrite,
                               inputs=(run,), metadata={"command": "stats", "source_dir": str(run.resolve())})
        with rd:
            st.table.to_parquet(rd.path / "rupture.parquet")
            st.rates.to_parquet(rd.path / "rates.parquet")
            plot_rupture(st, rd.path / "rupture.png")
            rd.record(*(rd.path / f for f in ("rupture.parquet", "rates.parquet", "rupture.png")))
            rd.write_summary(st.to_dict())
            rd.finish()
    if args.json:
        print(json.dumps(st.to_dict(), indent=2, allow_nan=False))
        return 0
    r, ks = st.rupture, st.ks

    def f(v):
        return "-" if v is None else f"{v:.6g}"

    print(f"run {run}: {st.ntraj} trajectories of a ladder, {st.n_jumps} jumps, t_end = {r['t_end']:g}")
    print(f"ruptured       {r['n_ruptured']} ({f(r['fraction'])}; exact {f(r['exact_fraction'])})")
    print(f"mean time      {f(r['mean_time'])} +- {f(r['se'])}  (exact E[T | T <= t_end] = {f(r['exact_mean_time'])}; "
          f"MFPT {f(r['mfpt'])})")
    rm = r["restricted_mean"]
    print(f"mean min(T, t_end)  {f(rm['value'])} +- {f(rm['se'])}  (exact {f(rm['exact'])})")
    print(f"KS             D = {ks['D']:.4g}, p = {ks['p_value']:.3g} (1% critical D = {ks['critical_1pct']:.4g}; "
          f"{ks['censored']} censored at t_end)")
    print("\njump rates per (channel, direction) (per trajectory and unit time):")
    print(st.rates.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    return 0
