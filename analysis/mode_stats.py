r"""Mode statistics of a trajectory run: Fock distribution, g2(0), T_eff, mu_eff, first passage.

In the steady state the Fock distribution is Bose-Einstein, ``P_n = (1 - x) x^n`` with
``x = N/(N+1)``, so ``g2(0) = <n(n-1)>/<n>^2 = 2``; the maximum-likelihood geometric fit
to samples of ``n`` is ``N_hat = mean(n)``, giving (Eqs. 10-11)
``T_eff = Omega / ln(1 + 1/N_hat)`` and ``mu_eff = Omega - T_e ln(1 + 1/N_hat)``.
Samples are the grid values ``N(t)`` of each trajectory at ``t >= t_min``; errors by the
delete-a-group jackknife over trajectories (samples within a trajectory are correlated).

Above threshold (``kappa <= 0``) there is no steady state: :func:`growth_stats` fits the
growth rate of the mean population (against the exact ``-kappa``) and reads the first
passage to the population cap from the stops table. The first-passage time to a
population ``level`` (the time to runaway) is read from the jump table (``n0`` from the grid at t = 0 plus the running sum of
``dn``); its mean is compared with the exact birth-death value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from numpy.typing import NDArray
from scipy import optimize

from sim.counting import first_passage_mean
from sim.io import part_files, read_table, run_metadata
from sim.model import JumpModel

from .estimators import group_sums, jackknife_error
from .stats import progress_bar

__all__ = ["ModeStats", "mode_stats", "first_passage_times", "exact_first_passage_mean", "exact_first_passage",
           "GrowthStats", "growth_stats"]


@dataclass(frozen=True)
class ModeStats:
    """``g2``, ``N``, ``T_eff``, ``mu_eff``: (estimate, stderr, exact) each; ``P_n`` histogram vs BE."""

    N: tuple[float, float, float]
    g2: tuple[float, float, float]
    T_eff: tuple[float, float, float]
    mu_eff: tuple[float, float, float]
    fock: pd.DataFrame

    def to_dict(self) -> dict:
        def rec(v):
            return {k: (float(x) if np.isfinite(x) else None) for k, x in zip(("estimate", "stderr", "exact"), v,
                                                                              strict=True)}

        return {"N": rec(self.N), "g2": rec(self.g2), "T_eff": rec(self.T_eff), "mu_eff": rec(self.mu_eff)}


def _grid_parts(run_dir: Path, progress: bool | None, desc: str = "stats: grid"):
    """``(traj, t, N)`` arrays of the grid table, a slice at a time (tqdm over samples).

    Read, or rebuilt from the initial populations and the jumps (:mod:`sim.trajectories.stored`).
    """
    from sim.trajectories.stored import grid_chunks, t_grid_of

    run = run_metadata(run_dir)["identity"]["run"]
    total = int(run["ntraj"]) * t_grid_of(run_dir).size
    with progress_bar(total, desc, "sample", progress) as bar:
        for tr, t, N in grid_chunks(run_dir):
            yield tr, t, N
            bar.update(int(tr.size))


def _progress(chunks, ntraj: int, progress: bool | None, desc: str = "stats: mode"):
    """Pass ``(traj, ...)`` chunks through, with a tqdm bar over trajectories (the last one seen)."""
    with progress_bar(ntraj, desc, "traj", progress) as bar:
        for chunk in chunks:
            yield chunk
            if chunk[0].size:
                bar.update(max(0, int(chunk[0][-1]) + 1 - bar.n))


def mode_stats(run_dir: str | Path, t_min: float = 0.0, progress: bool | None = None, groups: int = 20) -> ModeStats:
    """Fock histogram, g2(0) and the effective T and mu of a run (samples at ``t >= t_min``).

    Per trajectory the sums of ``n``, ``n(n-1)`` and the number of samples are accumulated one
    part at a time; the statistics are ratios of these sums, and their delete-a-group
    jackknife errors (``groups`` contiguous groups of trajectories) use the group sums.
    """
    run_dir = Path(run_dir)
    meta = run_metadata(run_dir)
    m = meta["identity"]["model"]
    ntraj = int(meta["identity"]["run"]["ntraj"])
    om, Te = float(m["omega"]), float(m["T_e"])
    from sim.trajectories.stored import grid_samples

    sums = np.zeros((3, ntraj))  # per trajectory: samples, sum n, sum n(n-1)
    hist = np.zeros(1, dtype=np.int64)
    for tr, n, w in _progress(grid_samples(run_dir, t_min), ntraj, progress):
        sums += np.stack([np.bincount(tr, weights=w, minlength=ntraj)[:ntraj],
                          np.bincount(tr, weights=w * n, minlength=ntraj)[:ntraj],
                          np.bincount(tr, weights=w * n * (n - 1), minlength=ntraj)[:ntraj]])
        h = np.bincount(n.astype(np.int64), weights=w).astype(np.int64) if n.size else np.zeros(1, dtype=np.int64)
        if len(h) > len(hist):
            hist = np.pad(hist, (0, len(h) - len(hist)))
        hist[: len(h)] += h
    N_ex = float(JumpModel.from_record(m).N_ss())

    def stats_of(S):  # S: (3, ...) sums -> (4, ...) N, g2, T_eff, mu_eff
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = S[1] / S[0]
            g2 = np.where(mean > 0, S[2] / S[0] / mean**2, np.nan)
            L = np.log1p(1 / mean)
            return np.stack([mean, g2, om / L, om - Te * L])

    have = sums[0] > 0  # trajectories with samples after t_min (groups over these, as before)
    G = group_sums(sums[:, have], groups)
    total = G.sum(axis=-1)
    est = stats_of(total)
    err = jackknife_error(stats_of(total[:, None] - G)) if G.shape[-1] > 1 else np.full(4, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):  # N = 0 (T = 0): T_eff = 0, mu_eff undefined (NaN)
        inv = 1 / np.float64(N_ex)
        exact = [N_ex, 2.0 if np.isfinite(N_ex) else np.nan, float(om / np.log1p(inv)), float(om - Te * np.log1p(inv))]
    nmax = len(hist)
    P = hist / max(1, hist.sum())
    x = N_ex / (N_ex + 1) if np.isfinite(N_ex) else np.nan
    fock = pd.DataFrame({"n": np.arange(nmax), "P_n": P, "bose_einstein": (1 - x) * x ** np.arange(nmax)})
    return ModeStats(*((float(est[k]), float(err[k]), float(exact[k])) for k in range(4)), fock)


@dataclass(frozen=True)
class GrowthStats:
    r"""Non-stationary statistics of an unstable run (``kappa <= 0``).

    ``growth_rate``: ``lambda`` fitted to the mean population on the grid,
    ``N(t) = N_0 e^{lambda t} + (S/lambda)(e^{lambda t} - 1)`` (the exact mean of the linear
    birth-death chain, ``dN/dt = S + lambda N``, ``lambda = -kappa``), over the grid times
    before any trajectory stopped at the cap; estimate, jackknife error and the exact
    ``-kappa`` (energy units). ``first_passage``: times to the population cap from the
    stops table (mean, stderr, exact birth-death mean from vacuum where the run started
    there). ``curve``: ``t, N, N_sem, fit`` on the fitted window.
    """

    growth_rate: tuple[float, float, float]
    source: tuple[float, float]
    window: tuple[float, float]
    n_points: int
    cap: int | None
    n_capped: int
    ntraj: int
    first_passage: tuple[float, float, float]
    curve: pd.DataFrame
    note: str = ""

    def to_dict(self) -> dict:
        def f(v):
            return float(v) if v is not None and np.isfinite(v) else None

        return {"growth_rate": {"estimate": f(self.growth_rate[0]), "stderr": f(self.growth_rate[1]),
                                "exact": f(self.growth_rate[2])},
                "source": {"estimate": f(self.source[0]), "stderr": f(self.source[1])},
                "fit_window": [f(self.window[0]), f(self.window[1])], "fit_points": self.n_points,
                "cap": self.cap, "n_capped": self.n_capped, "ntraj": self.ntraj,
                "first_passage_to_cap": {"mean": f(self.first_passage[0]), "stderr": f(self.first_passage[1]),
                                         "exact_mean_from_vacuum": f(self.first_passage[2])},
                "note": self.note}


def _fit_growth(t: NDArray[np.float64], N: NDArray[np.float64], N0: float) -> tuple[float, float]:
    """``(lambda, S)`` of ``N(t) = N0 e^{lambda t} + (S/lambda)(e^{lambda t} - 1)`` by least squares."""

    def model(tt, lam, S):
        e = np.expm1(lam * tt)
        return N0 * (1 + e) + S * np.where(abs(lam) > 1e-12, e / np.where(lam == 0, 1, lam), tt)

    late = N > max(N0, 0) + 1e-12
    lam0 = 0.1 / max(t[-1] - t[0], 1e-12)
    if late.sum() >= 2:
        lam0 = max(float(np.polyfit(t[late], np.log(N[late] + 1e-300), 1)[0]), lam0)
    scale = np.maximum(np.abs(N), 1e-3 * max(np.abs(N).max(), 1e-12))  # relative residuals: growth spans decades
    try:
        (lam, S), _ = optimize.curve_fit(model, t, N, p0=(lam0, max(N[1] / max(t[1] - t[0], 1e-12), 1e-12)),
                                         sigma=scale, maxfev=20000)
    except (RuntimeError, ValueError, optimize.OptimizeWarning):
        return float("nan"), float("nan")
    return float(lam), float(S)


def growth_stats(run_dir: str | Path, progress: bool | None = None, groups: int = 20) -> GrowthStats:
    """Fitted growth rate and first passage to the cap of an unstable run (see :class:`GrowthStats`)."""
    run_dir = Path(run_dir)
    meta = run_metadata(run_dir)
    ident = meta["identity"]
    ntraj = int(ident["run"]["ntraj"])
    m = ident["model"]
    jm = JumpModel.from_record(m)
    A, B = float(jm.up_rate), float(jm.down_rate)
    g = max(1, min(groups, ntraj))
    bounds = np.array_split(np.arange(ntraj), g)
    group_of = np.empty(ntraj, dtype=np.int64)
    for k, b in enumerate(bounds):
        group_of[b] = k
    tgrid = np.linspace(0.0, float(ident["run"]["t_end"]), int(ident["run"]["n_points"]))
    nt = len(tgrid)
    S1 = np.zeros((g, nt))
    S2 = np.zeros((g, nt))
    C = np.zeros((g, nt))
    for tr, t, N in _grid_parts(run_dir, progress):
        k = np.clip(np.searchsorted(tgrid, t - 1e-9 * max(tgrid[-1], 1.0)), 0, nt - 1)
        ok = np.isfinite(N)
        idx = group_of[tr[ok]] * nt + k[ok]
        S1 += np.bincount(idx, weights=N[ok], minlength=g * nt).reshape(g, nt)
        S2 += np.bincount(idx, weights=N[ok] ** 2, minlength=g * nt).reshape(g, nt)
        C += np.bincount(idx, minlength=g * nt).reshape(g, nt)
    full = C.sum(axis=0) == ntraj  # no trajectory stopped yet
    w = np.flatnonzero(full)
    w = w[: np.argmax(np.diff(np.append(w, -1)) != 1) + 1] if w.size else w  # leading run of full points
    stops = read_table(run_dir, "stops") if part_files(run_dir, "stops") else pd.DataFrame({"t_stop": [], "n": []})
    cap = int(stops["n"].iloc[0]) if len(stops) else None
    fp = stops["t_stop"].to_numpy()
    init = ident["run"]["initial"]
    fp_exact = first_passage_mean(A, B, 0, cap) if cap is not None and init == "vacuum" else np.nan
    fp_stats = (float(fp.mean()) if fp.size else np.nan,
                float(fp.std(ddof=1) / np.sqrt(fp.size)) if fp.size > 1 else np.nan, float(fp_exact))
    note = ""
    if len(stops) < ntraj and len(stops):
        note = (f"first passage over the {len(stops)} of {ntraj} trajectories that reached the cap before t_end "
                "(biased low)")
    tot1, tot2, totc = S1.sum(axis=0), S2.sum(axis=0), C.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = tot1 / totc
        sem = np.sqrt(np.maximum(tot2 / totc - mean**2, 0) / np.maximum(totc - 1, 1))
    if w.size < 3:
        curve = pd.DataFrame({"t": tgrid[w], "N": mean[w], "N_sem": sem[w], "fit": np.nan})
        msg = (f"growth rate not fitted: {w.size} grid points before the first trajectory reached the cap "
               "(need 3; use more --n-points or a larger --cutoff)")
        return GrowthStats((np.nan, np.nan, -(B - A)), (np.nan, np.nan), (np.nan, np.nan), int(w.size), cap,
                           len(stops), ntraj, fp_stats, curve, "; ".join(x for x in (msg, note) if x))
    t_w = tgrid[w]
    lam, S = _fit_growth(t_w, mean[w], float(mean[w][0]))
    loo = []
    for k in range(g):
        c = totc[w] - C[k, w]
        mk = (tot1[w] - S1[k, w]) / c
        loo.append(_fit_growth(t_w, mk, float(mk[0])))
    loo = np.array(loo).T  # (2, g)
    err = jackknife_error(loo) if g > 1 else np.full(2, np.nan)
    e = np.expm1(lam * t_w)
    curve = pd.DataFrame({"t": t_w, "N": mean[w], "N_sem": sem[w], "fit": mean[w][0] * (1 + e) + S * e / lam})
    return GrowthStats((lam, float(err[0]), -(B - A)), (S, float(err[1])), (float(t_w[0]), float(t_w[-1])),
                       int(w.size), cap, len(stops), ntraj, fp_stats, curve, note)


def first_passage_times(run_dir: str | Path, level: int) -> NDArray[np.float64]:
    """Per trajectory, the first time the population reaches ``level`` (NaN if it never does)."""
    run_dir = Path(run_dir)
    from sim.trajectories.stored import initial_populations_of

    ntraj = int(run_metadata(run_dir)["identity"]["run"]["ntraj"])
    out = np.full(ntraj, np.nan)
    start = initial_populations_of(run_dir)
    if start.size != ntraj:
        raise ValueError(f"{str(run_dir)!r}: {start.size} initial populations for {ntraj} trajectories")
    out[start >= level] = 0.0
    for f in part_files(run_dir, "jumps"):
        df = pq.read_table(f, columns=["traj", "t", "dn"]).to_pandas()
        tr = df["traj"].to_numpy()
        n = start[tr] + df.groupby("traj")["dn"].cumsum().to_numpy()
        hit = n >= level
        first = pd.Series(df["t"].to_numpy()[hit]).groupby(tr[hit]).min()
        idx = first.index.to_numpy()
        out[idx] = np.fmin(out[idx], first.to_numpy())  # fmin ignores NaN
    return out


def exact_first_passage(run_dir: str | Path, level: int) -> tuple[float, float] | None:
    """``(E[T], P(T <= t_end))`` to ``level`` from the run's initial state (:func:`sim.counting.first_passage_exact`).

    ``None`` for a coherent initial state (not a mixture of Fock states: no birth-death start).
    """
    from sim.counting import first_passage_exact
    from sim.initial import InitialSpec

    ident = run_metadata(Path(run_dir))["identity"]
    m = JumpModel.from_record(ident["model"])
    spec = InitialSpec.parse(ident["run"]["initial"])
    n = np.arange(level)
    if spec.kind in ("vacuum", "fock"):
        p0 = (n == (0 if spec.kind == "vacuum" else int(spec.value))).astype(float)
    elif spec.kind in ("steady", "thermal"):
        N0 = spec.mean(m)
        p0 = (n == 0).astype(float) if N0 == 0 else (1.0 / (N0 + 1.0)) * (N0 / (N0 + 1.0)) ** n
    else:
        return None
    return first_passage_exact(float(m.up_rate), float(m.down_rate), p0, level, float(ident["run"]["t_end"]))


def exact_first_passage_mean(run_dir: str | Path, level: int, n0: int = 0) -> float:
    """Mean first-passage time from ``n0`` to ``level`` of the run's birth-death chain."""
    m = JumpModel.from_record(run_metadata(Path(run_dir))["identity"]["model"])
    return first_passage_mean(float(m.up_rate), float(m.down_rate), n0, level)
