r"""Counting statistics of a trajectory run directory, with exact values beside them.

Reads ``metadata.json`` and the ``jumps.parquet`` parts of an ``ehp trajectories`` run
(one part at a time, so memory stays bounded) and computes, per counted quantity, the
long-time cumulant rates ``c_1 .. c_4`` (charge L -> R, energy into the mode from each
bath ``energy:CHANNEL``, jumps per label; k-statistics of the per-trajectory totals over
``[t_min, t_end]`` divided by the duration, jackknife standard errors) beside the exact
values of the tilted generator (:mod:`sim.counting`), and the waiting-time
statistics between consecutive jumps.

Waiting times: after a jump of label ``i`` the next jump is watched for at least
``H_i = min((t_end - t_min)/2, 20/escape_min_i)`` (:func:`waiting_horizons`): only jumps
with ``t <= t_end - H_i`` start a pair. Starts whose next jump falls after ``t_end`` are
censored; their fraction bounds the bias of the pair probabilities, and a pair whose bias
bound exceeds its statistical error is marked ``estimable = False`` (its probability and
mean are NaN, never a biased number). The waiting-time density itself is unbiased for
``tau <= H_i`` (figure). Runs much shorter than the slowest wait ``1/escape(0)`` have
such pairs.

Transient: a run started with ``run.initial = "steady"`` is stationary from ``t = 0``;
otherwise jumps before ``t_min = min(10 / kappa, t_end / 2)`` are discarded (the
distribution has then relaxed to within ``e^-10`` of the steady state), and the output
says so. The constant offsets ``C_n`` of the cumulants (``k_n(T) = c_n T + C_n``) from the
window's edges are removed by differencing the full and the half window
(:func:`analysis.estimators.estimate_cumulant_rates`).
"""

from __future__ import annotations

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
from sim.guards import check_memory
from sim.io import part_files, run_metadata
from sim.model import JumpModel
from sim.progress import progress_bar, progress_enabled

from .estimators import estimate_cumulant_rates

__all__ = ["RunStats", "run_stats", "chain_from_metadata", "mean_waiting_time", "waiting_times", "waiting_horizons",
           "progress_enabled", "progress_bar", "MIN_TAIL_TRAJECTORIES"]


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
    if isinstance(v, bool | np.bool_):
        return bool(v)
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


def _rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _iter_jumps(run_dir: Path, progress: bool | None = False, desc: str = "stats: jumps"):
    files = part_files(run_dir, "jumps")
    with progress_bar(_rows(files), desc, "jump", progress) as bar:
        for f in files:
            df = pq.read_table(f, columns=["traj", "t", "channel", "direction"]).to_pandas()
            codes = (2 * df["channel"].cat.codes.to_numpy() + df["direction"].cat.codes.to_numpy()).astype(np.int64)
            yield df["traj"].to_numpy(np.int64), df["t"].to_numpy(), codes
            bar.update(len(df))


def _rates(meta: dict[str, Any]) -> tuple[float, float]:
    """``A = sum_l a_l`` and ``B = sum_l b_l`` of the run's chain (emission ``A (n+1)``, absorption ``B n``)."""
    m = JumpModel.from_record(meta["identity"]["model"])
    return float(m.up_rate), float(m.down_rate)


def waiting_horizons(A: float, B: float, duration: float) -> NDArray[np.float64]:
    r"""Per first label, the horizon ``H_i`` up to which waits are observed without censoring.

    After an emission the mode holds ``n >= 1``, after an absorption ``n >= 0``; the escape
    rate ``A (n + 1) + B n`` is smallest at the lowest ``n``, so the no-jump survival after
    label ``i`` is at most ``exp(-escape_min_i tau)``. ``H_i = min(duration/2, 20/escape_min_i)``
    (survival ``<= e^-20`` where the run is long enough).
    """
    out = np.empty(len(JUMP_LABELS))
    for i, (_, d) in enumerate(JUMP_LABELS):
        esc = 2 * A + B if d == "emission" else A
        out[i] = min(duration / 2, 20.0 / esc) if esc > 0 else duration / 2
    return out


def run_stats(run_dir: str | Path, t_min: float | None = None, progress: bool | None = None) -> RunStats:
    """Counting statistics of a trajectory run directory (see the module docstring).

    ``progress``: tqdm bars on stderr (``None``: when stderr is a terminal).
    """
    run_dir = Path(run_dir)
    meta = run_metadata(run_dir)
    ident = meta["identity"]
    run = ident["run"]
    ntraj, t_end, omega = int(run["ntraj"]), float(run["t_end"]), float(ident["model"]["omega"])
    A, B = _rates(meta)
    chain = chain_from_metadata(meta)
    stable = chain is not None
    kappa = B - A
    if t_min is not None:
        transient = f"jumps before t_min = {t_min:g} discarded (given)"
    elif run["initial"] == "steady":
        t_min, transient = 0.0, "stationary from t = 0 (run.initial = steady)"
    elif stable:
        t_min = min(10.0 / kappa, t_end / 2)
        transient = (f"run.initial = {run['initial']}: jumps before t_min = {t_min:.4g} "
                     f"(= min(10/kappa, t_end/2)) discarded as transient")
    else:
        t_min, transient = 0.0, (f"unstable mode: kappa = {kappa:.6g} <= 0, N grows at rate -kappa = {-kappa:.6g}; "
                                 "no steady state, so no stationary cumulants, waiting times or mode statistics")
    duration = t_end - t_min
    slowest = 1.0 / A if A > 0 else float("nan")
    horizons = waiting_horizons(A, B, duration)
    n_lab = len(JUMP_LABELS)
    label_counts = np.zeros(n_lab, dtype=np.int64)
    if not stable:
        for _, _, code in _iter_jumps(run_dir, progress):
            label_counts += np.bincount(code, minlength=n_lab)
        return RunStats(str(run_dir), ntraj, float(t_min), t_end, transient, False, _empty_cumulants(),
                        _empty_waiting(), _counts(label_counts), float(horizons.max()), False, slowest)

    active = [i for i in range(n_lab) if (chain.a if i % 2 == 0 else chain.b)[i // 2] > 0]
    labels = [JUMP_LABELS[i] for i in active]
    baths = list(dict.fromkeys(c for c, _ in labels))
    quantities = (["charge"] + [f"energy:{c}" for c in baths] + [f"jumps:{c}:{d}" for c, d in labels])
    nus = np.array([quantity_weights(q, omega) for q in quantities])  # (nq, labels)
    check_memory(f"ehp stats on {ntraj} trajectories (per-trajectory totals of {len(quantities)} quantities)",
                 ntraj * STATS_BYTES_PER_QUANTITY * (n_lab + len(quantities)),
                 "analyse a run of fewer trajectories (runs with different seeds are independent samples)")
    per_label = np.zeros((ntraj, n_lab))  # jumps per trajectory and label over [t_min, t_end]
    per_label_half = np.zeros((ntraj, n_lab))  # ... over [t_min, t_min + duration/2]
    t_half = t_min + duration / 2
    pair_n = np.zeros((n_lab, n_lab))
    pair_sum = np.zeros((n_lab, n_lab))
    pair_sq = np.zeros((n_lab, n_lab))
    n_starts = np.zeros(n_lab)  # jumps that may start a pair (t_min <= t <= t_end - H_label)
    for traj, t, code in _iter_jumps(run_dir, progress):
        label_counts += np.bincount(code, minlength=n_lab)
        keep = t >= t_min
        tr, tt, cc = traj[keep], t[keep], code[keep]
        first = tt < t_half
        per_label += np.bincount(tr * n_lab + cc, minlength=ntraj * n_lab)[: ntraj * n_lab].reshape(ntraj, n_lab)
        per_label_half += np.bincount(tr[first] * n_lab + cc[first],
                                      minlength=ntraj * n_lab)[: ntraj * n_lab].reshape(ntraj, n_lab)
        starts = tt <= t_end - horizons[cc]  # waits up to H_label after this jump are inside the run
        same = (tr[1:] == tr[:-1]) & starts[:-1]  # consecutive jumps of one trajectory
        a, b, dt = cc[:-1][same], cc[1:][same], np.diff(tt)[same]
        idx = a * n_lab + b
        n_starts += np.bincount(cc[starts], minlength=n_lab)
        pair_n += np.bincount(idx, minlength=n_lab * n_lab).reshape(n_lab, n_lab)
        pair_sum += np.bincount(idx, weights=dt, minlength=n_lab * n_lab).reshape(n_lab, n_lab)
        pair_sq += np.bincount(idx, weights=dt * dt, minlength=n_lab * n_lab).reshape(n_lab, n_lab)

    est, err = estimate_cumulant_rates((per_label @ nus.T).T, duration, half=(per_label_half @ nus.T).T)
    # trajectories with at least k jumps that count towards each quantity (its tail for order k)
    jumps_q = per_label @ (nus != 0).T  # (ntraj, nq)
    rows = []
    for q, name in enumerate(quantities):
        exact = cumulant_rates(chain, nus[q])
        for k in range(4):
            tail = int(np.count_nonzero(jumps_q[:, q] >= k + 1))
            ok = tail >= MIN_TAIL_TRAJECTORIES
            rows.append({"quantity": name, "order": k + 1, "estimate": est[q, k] if ok else np.nan,
                         "stderr": err[q, k] if ok else np.nan, "exact": exact[k], "estimable": ok,
                         "tail_trajectories": tail})
    cumulants = pd.DataFrame(rows)
    waiting = _waiting_table(chain, active, pair_n, pair_sum, pair_sq, n_starts, horizons)
    censored = bool((~waiting["estimable"]).any()) if len(waiting) else False
    return RunStats(str(run_dir), ntraj, float(t_min), t_end, transient, True, cumulants, waiting,
                    _counts(label_counts), float(horizons.max()), censored, slowest)


def _counts(label_counts: NDArray[np.int64]) -> pd.DataFrame:
    return pd.DataFrame([{"channel": c, "direction": d, "count": int(label_counts[i])}
                         for i, (c, d) in enumerate(JUMP_LABELS)])


_CUMULANT_COLUMNS = ["quantity", "order", "estimate", "stderr", "exact", "estimable", "tail_trajectories"]

#: Bytes per trajectory and per label or quantity that the estimators hold at once (totals over the
#: whole and half window, their products for the k-statistics and jackknife groups); measured peak
#: about 1.1 kB per trajectory for 10 labels and 15 quantities at 10^6 trajectories, so 64 is
#: conservative by about 1.5x.
STATS_BYTES_PER_QUANTITY = 64

#: Trajectories with at least ``k`` counted jumps needed to estimate an order-``k`` cumulant rate.
#: When jumps are rare the order-``k`` sample cumulant is carried by the few trajectories with
#: ``k`` or more of them; with fewer than this many its sampling distribution is far from
#: normal (the tail itself is known to no better than 1/sqrt(30) ~ 20%, and skewed), so an
#: estimate +- jackknife error would mislead: such rows are ``estimable = false``, shown as ``-``.
MIN_TAIL_TRAJECTORIES = 30
_WAITING_COLUMNS = ["first", "second", "n", "n_first", "horizon", "censored", "estimable", "probability",
                    "probability_stderr", "probability_exact", "mean", "mean_stderr", "mean_exact"]


def _empty_cumulants() -> pd.DataFrame:
    types = {"quantity": object, "estimable": bool, "tail_trajectories": np.int64}
    return pd.DataFrame({c: pd.Series(dtype=types.get(c, float)) for c in _CUMULANT_COLUMNS})


def _empty_waiting() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c in ("first", "second") else float) for c in _WAITING_COLUMNS})


def _waiting_table(chain: BirthDeath, active: list[int], pair_n, pair_sum, pair_sq, n_starts, horizons
                   ) -> pd.DataFrame:
    r"""One row per pair of labels: probability and mean wait, or NaN where censoring would bias them.

    ``censored``: the fraction of starts after label ``i`` with no next jump before the run's
    end (all were observed for at least ``H_i``). It bounds the bias of every ``p_ij`` (the
    missing waits could all be pair ``ij``), so a pair is ``estimable`` when that fraction is
    zero or below both the standard error of ``p_ij`` and ``p_ij / 10`` (at most a tenth of
    the pair's waits missing).
    """
    n_lab = len(JUMP_LABELS)
    rho = chain.steady()  # a label that never fires in the steady state (T = 0: no absorption from the vacuum)
    fires = [i for i in active if float((chain.jump_matrix(i) @ rho).sum()) > 0]  # has no exact waits
    wrows = []
    for i in range(n_lab):
        n_first = n_starts[i]
        cens = 1.0 - pair_n[i].sum() / n_first if n_first else np.nan
        for j in range(n_lab):
            ok = i in fires and j in fires
            if pair_n[i, j] == 0 and not ok:
                continue
            n = pair_n[i, j]
            p = n / n_first if n_first else np.nan
            p_err = np.sqrt(p * (1 - p) / n_first) if n_first else np.nan
            mean = pair_sum[i, j] / n if n else np.nan
            var = pair_sq[i, j] / n - mean**2 if n > 1 else np.nan
            estimable = bool(n_first > 0 and (cens == 0 or (cens <= p_err and cens <= 0.1 * p)))
            wrows.append({
                "first": "{}:{}".format(*JUMP_LABELS[i]), "second": "{}:{}".format(*JUMP_LABELS[j]), "n": int(n),
                "n_first": int(n_first), "horizon": float(horizons[i]), "censored": cens, "estimable": estimable,
                "probability": p if estimable else np.nan, "probability_stderr": p_err if estimable else np.nan,
                "probability_exact": waiting_time_probability(chain, i, j) if ok else np.nan,
                "mean": mean if estimable else np.nan,
                "mean_stderr": np.sqrt(var / n) if estimable and n > 1 else np.nan,
                "mean_exact": mean_waiting_time(chain, i, j) if ok else np.nan,
            })
    return pd.DataFrame(wrows, columns=_WAITING_COLUMNS) if wrows else _empty_waiting()


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
