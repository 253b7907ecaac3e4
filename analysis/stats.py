r"""Counting statistics of a trajectory run directory, with exact values beside them.

Reads ``metadata.json`` and the ``jumps.parquet`` parts of an ``ehp trajectories`` run
(one part at a time, so memory stays bounded) and computes, per counted quantity, the
long-time cumulant rates ``c_1 .. c_4`` (charge L -> R, energy into the mode from each
bath ``energy:CHANNEL``, jumps per label; k-statistics of the per-trajectory totals over
``[t_min, t_end]`` divided by the duration, jackknife standard errors) beside the exact
values of the tilted generator (:mod:`sim.counting`), and the waiting-time
statistics between consecutive jumps. A pair starts only at a jump with
``t <= t_end - horizon``, ``horizon = min((t_end - t_min)/2, 20 / escape(n=0))``, so that
waits are not censored by the end of the run (reported as ``waiting_horizon``).

Transient: a run started with ``run.initial = "steady"`` is stationary from ``t = 0``;
otherwise jumps before ``t_min = min(10 / kappa, t_end / 2)`` are discarded (the
distribution has then relaxed to within ``e^-10`` of the steady state), and the output
says so. The constant offsets ``C_n`` of the cumulants (``k_n(T) = c_n T + C_n``) from the
window's edges are removed by differencing the full and the half window
(:func:`analysis.estimators.estimate_cumulant_rates`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from numpy.typing import NDArray
from scipy import linalg

from sim.counting import (
    JUMP_LABELS,
    BirthDeath,
    birth_death,
    cumulant_rates,
    quantity_weights,
    waiting_time_probability,
)
from sim.io import part_files
from sim.model import JumpModel

from .estimators import estimate_cumulant_rates

__all__ = ["RunStats", "run_stats", "chain_from_metadata", "mean_waiting_time"]


@dataclass(frozen=True)
class RunStats:
    """Statistics of one run: tables ``cumulants``, ``waiting``, ``counts`` and the transient policy."""

    run_dir: str
    ntraj: int
    t_min: float
    t_end: float
    transient: str
    stable: bool
    cumulants: pd.DataFrame
    waiting: pd.DataFrame
    counts: pd.DataFrame
    horizon: float
    censored: bool = False
    slowest_wait: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        def records(df):
            return [{k: _none(v) for k, v in r.items()} for r in df.to_dict("records")]

        return {"run": self.run_dir, "ntraj": self.ntraj, "t_min": self.t_min, "t_end": self.t_end,
                "transient": self.transient, "stable": self.stable,
                "waiting_horizon": self.horizon, "waiting_censored": self.censored, "counts": records(self.counts),
                "cumulants": records(self.cumulants), "waiting_times": records(self.waiting)}


def _none(v):
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def chain_from_metadata(meta: dict[str, Any], cutoff: int | None = None, tol: float = 1e-14) -> BirthDeath | None:
    """The birth-death chain of the run's model record; ``None`` if the mode is unstable."""
    model = JumpModel.from_record(meta["identity"]["model"])
    if not bool(model.stable):
        return None
    return birth_death(model, cutoff, tol)


def mean_waiting_time(chain: BirthDeath, first: int, second: int) -> float:
    """``int tau w(tau) dtau / int w dtau`` with ``int tau w = <<1|J_2 (J - L_0)^-2 J_1|rho>> / <<1|J_1 rho>>``."""
    L0 = chain.generator()
    J_all = sum(chain.jump_matrix(l) for l in range(len(JUMP_LABELS)))
    start = chain.jump_matrix(first) @ chain.steady()
    lu = linalg.lu_factor(J_all - L0)
    x = linalg.lu_solve(lu, linalg.lu_solve(lu, start / start.sum()))
    p = waiting_time_probability(chain, first, second)
    return float(np.ones(chain.cutoff) @ chain.jump_matrix(second) @ x) / p


def _iter_jumps(run_dir: Path):
    for f in part_files(run_dir, "jumps"):
        df = pq.read_table(f, columns=["traj", "t", "channel", "direction"]).to_pandas()
        codes = (2 * df["channel"].cat.codes.to_numpy() + df["direction"].cat.codes.to_numpy()).astype(np.int64)
        yield df["traj"].to_numpy(np.int64), df["t"].to_numpy(), codes


def run_stats(run_dir: str | Path, t_min: float | None = None) -> RunStats:
    """Counting statistics of a trajectory run directory (see the module docstring)."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "metadata.json").read_text())
    ident = meta["identity"]
    run = ident["run"]
    ntraj, t_end, omega = int(run["ntraj"]), float(run["t_end"]), float(ident["model"]["omega"])
    chain = chain_from_metadata(meta)
    stable = chain is not None
    kappa = float(chain.b.sum() - chain.a.sum()) if stable else float("nan")
    if t_min is not None:
        transient = f"jumps before t_min = {t_min:g} discarded (given)"
    elif run["initial"] == "steady":
        t_min, transient = 0.0, "stationary from t = 0 (run.initial = steady)"
    elif stable:
        t_min = min(10.0 / kappa, t_end / 2)
        transient = (f"run.initial = {run['initial']}: jumps before t_min = {t_min:.4g} "
                     f"(= min(10/kappa, t_end/2)) discarded as transient")
    else:
        t_min, transient = 0.0, "unstable mode: no steady state; statistics over the whole run, no exact values"
    duration = t_end - t_min
    # waiting times: only jumps at t <= t_end - horizon start a pair, so waits up to the horizon are
    # never cut off by the end of the run (no-jump survival <= exp(-escape(0) * horizon) = e^-20)
    slowest = 1.0 / float(chain.a.sum()) if stable and chain.a.sum() > 0 else float("nan")
    horizon = duration / 2 if not stable else min(duration / 2, 20.0 * slowest)
    censored = bool(stable and horizon < 20.0 * slowest)

    active = [i for i in range(len(JUMP_LABELS)) if stable and (chain.a if i % 2 == 0 else chain.b)[i // 2] > 0]
    labels = [JUMP_LABELS[i] for i in active] if stable else list(JUMP_LABELS)
    baths = list(dict.fromkeys(c for c, _ in labels))
    quantities = (["charge"] + [f"energy:{c}" for c in baths] + [f"jumps:{c}:{d}" for c, d in labels])
    nus = np.array([quantity_weights(q, omega) for q in quantities])  # (nq, labels)
    totals = np.zeros((len(quantities), ntraj))
    halves = np.zeros((len(quantities), ntraj))  # totals over [t_min, t_min + duration/2]
    t_half = t_min + duration / 2
    n_lab = len(JUMP_LABELS)
    pair_n = np.zeros((n_lab, n_lab))
    pair_sum = np.zeros((n_lab, n_lab))
    pair_sq = np.zeros((n_lab, n_lab))
    label_counts = np.zeros(n_lab, dtype=np.int64)
    n_starts = np.zeros(n_lab)  # jumps that may start a pair (t_min <= t <= t_end - horizon)
    for traj, t, code in _iter_jumps(run_dir):
        label_counts += np.bincount(code, minlength=n_lab)
        keep = t >= t_min
        tr, tt, cc = traj[keep], t[keep], code[keep]
        first = tt < t_half
        for q in range(len(quantities)):
            totals[q] += np.bincount(tr, weights=nus[q][cc], minlength=ntraj)[:ntraj]
            halves[q] += np.bincount(tr[first], weights=nus[q][cc[first]], minlength=ntraj)[:ntraj]
        same = (tr[1:] == tr[:-1]) & (tt[:-1] <= t_end - horizon)  # consecutive jumps of one trajectory
        a, b, dt = cc[:-1][same], cc[1:][same], np.diff(tt)[same]
        idx = a * n_lab + b
        n_starts += np.bincount(cc[tt <= t_end - horizon], minlength=n_lab)
        pair_n += np.bincount(idx, minlength=n_lab * n_lab).reshape(n_lab, n_lab)
        pair_sum += np.bincount(idx, weights=dt, minlength=n_lab * n_lab).reshape(n_lab, n_lab)
        pair_sq += np.bincount(idx, weights=dt * dt, minlength=n_lab * n_lab).reshape(n_lab, n_lab)

    rows = []
    for q, name in enumerate(quantities):
        est, err = estimate_cumulant_rates(totals[q], duration, half=halves[q])
        exact = cumulant_rates(chain, nus[q]) if stable else np.full(4, np.nan)
        for k in range(4):
            rows.append({"quantity": name, "order": k + 1, "estimate": est[k], "stderr": err[k], "exact": exact[k]})
    cumulants = pd.DataFrame(rows)

    wrows = []
    n_first = n_starts
    for i in range(n_lab):
        for j in range(n_lab):
            if pair_n[i, j] == 0 and not (stable and i in active and j in active):
                continue
            n = pair_n[i, j]
            p = n / n_first[i] if n_first[i] else np.nan
            mean = pair_sum[i, j] / n if n else np.nan
            var = pair_sq[i, j] / n - mean**2 if n > 1 else np.nan
            ok = stable and i in active and j in active
            wrows.append({
                "first": "{}:{}".format(*JUMP_LABELS[i]), "second": "{}:{}".format(*JUMP_LABELS[j]), "n": int(n),
                "probability": p, "probability_stderr": np.sqrt(p * (1 - p) / n_first[i]) if n_first[i] else np.nan,
                "probability_exact": waiting_time_probability(chain, i, j) if ok else np.nan,
                "mean": mean, "mean_stderr": np.sqrt(var / n) if n > 1 else np.nan,
                "mean_exact": mean_waiting_time(chain, i, j) if ok else np.nan,
            })
    waiting = pd.DataFrame(wrows)
    counts = pd.DataFrame([{"channel": c, "direction": d, "count": int(label_counts[i])}
                           for i, (c, d) in enumerate(JUMP_LABELS)])
    return RunStats(str(run_dir), ntraj, float(t_min), t_end, transient, stable, cumulants, waiting, counts,
                    float(horizon), censored, slowest)


def waiting_times(run_dir: str | Path, first: int, second: int, t_min: float = 0.0, t_last: float = np.inf
                  ) -> NDArray[np.float64]:
    """All waiting times from a ``first`` jump at ``t_min <= t <= t_last`` to the next jump when that is
    ``second`` (for histograms)."""
    out = []
    for traj, t, code in _iter_jumps(Path(run_dir)):
        keep = t >= t_min
        tr, tt, cc = traj[keep], t[keep], code[keep]
        same = (tr[1:] == tr[:-1]) & (cc[:-1] == first) & (cc[1:] == second) & (tt[:-1] <= t_last)
        out.append(np.diff(tt)[same])
    return np.concatenate(out) if out else np.zeros(0)
