r"""Mode statistics of a trajectory run: Fock distribution, g2(0), T_eff, mu_eff, first passage.

In the steady state the Fock distribution is Bose-Einstein, ``P_n = (1 - x) x^n`` with
``x = N/(N+1)``, so ``g2(0) = <n(n-1)>/<n>^2 = 2``; the maximum-likelihood geometric fit
to samples of ``n`` is ``N_hat = mean(n)``, giving (Eqs. 10-11)
``T_eff = Omega / ln(1 + 1/N_hat)`` and ``mu_eff = Omega - T_e ln(1 + 1/N_hat)``.
Samples are the grid values ``N(t)`` of each trajectory at ``t >= t_min``; errors by the
delete-a-group jackknife over trajectories (samples within a trajectory are correlated).

Above threshold the first-passage time to a population ``level`` (the time to runaway)
is read from the jump table (``n0`` from the grid at t = 0 plus the running sum of
``dn``); its mean is compared with the exact birth-death value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from numpy.typing import NDArray

from sim.counting import first_passage_mean
from sim.io import part_files, read_table
from sim.model import JumpModel

__all__ = ["ModeStats", "mode_stats", "first_passage_times", "exact_first_passage_mean"]


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


def _jackknife(values_per_traj: list[NDArray[np.float64]], stat, groups: int = 20) -> tuple[float, float]:
    allv = np.concatenate(values_per_traj)
    est = stat(allv)
    g = min(groups, len(values_per_traj))
    parts = np.array_split(np.arange(len(values_per_traj)), g)
    loo = []
    for p in parts:
        keep = np.ones(len(values_per_traj), bool)
        keep[p] = False
        loo.append(stat(np.concatenate([v for v, k in zip(values_per_traj, keep, strict=True) if k])))
    loo = np.array(loo)
    return float(est), float(np.sqrt((g - 1) / g * ((loo - loo.mean()) ** 2).sum()))


def mode_stats(run_dir: str | Path, t_min: float = 0.0) -> ModeStats:
    """Fock histogram, g2(0) and the effective T and mu of a run (samples at ``t >= t_min``)."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "metadata.json").read_text())
    m = meta["identity"]["model"]
    om, Te = float(m["omega"]), float(m["T_e"])
    grid = read_table(run_dir, "trajectories")
    late = grid[(grid["t"] >= t_min) & grid["N"].notna()]
    per = [g.to_numpy() for _, g in late.groupby("traj")["N"]]
    N_ex = float(JumpModel.from_record(m).N_ss())

    def g2(v):
        return float(np.mean(v * (v - 1)) / np.mean(v) ** 2) if np.mean(v) > 0 else np.nan

    def T_eff(v):
        return om / np.log1p(1 / np.mean(v))

    def mu_eff(v):
        return om - Te * np.log1p(1 / np.mean(v))

    with np.errstate(divide="ignore"):
        stats = {f.__name__: _jackknife(per, f) for f in (np.mean, g2, T_eff, mu_eff)}
        exact = {"mean": N_ex, "g2": 2.0 if np.isfinite(N_ex) else np.nan,
                 "T_eff": om / np.log1p(1 / N_ex), "mu_eff": om - Te * np.log1p(1 / N_ex)}
    n = late["N"].to_numpy().astype(int)
    nmax = int(n.max()) + 1 if len(n) else 1
    P = np.bincount(n, minlength=nmax) / max(1, len(n))
    x = N_ex / (N_ex + 1) if np.isfinite(N_ex) else np.nan
    fock = pd.DataFrame({"n": np.arange(nmax), "P_n": P, "bose_einstein": (1 - x) * x ** np.arange(nmax)})
    return ModeStats(*((*stats[k], exact[k]) for k in ("mean", "g2", "T_eff", "mu_eff")), fock)


def first_passage_times(run_dir: str | Path, level: int) -> NDArray[np.float64]:
    """Per trajectory, the first time the population reaches ``level`` (NaN if it never does)."""
    run_dir = Path(run_dir)
    grid = read_table(run_dir, "trajectories")
    n0 = grid[grid["t"] == 0.0].set_index("traj")["N"]
    ntraj = int(json.loads((run_dir / "metadata.json").read_text())["identity"]["run"]["ntraj"])
    out = np.full(ntraj, np.nan)
    start = n0.reindex(range(ntraj)).to_numpy()
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


def exact_first_passage_mean(run_dir: str | Path, level: int, n0: int = 0) -> float:
    """Mean first-passage time from ``n0`` to ``level`` of the run's birth-death chain."""
    m = JumpModel.from_record(json.loads((Path(run_dir) / "metadata.json").read_text())["identity"]["model"])
    return first_passage_mean(float(m.up_rate), float(m.down_rate), n0, level)
