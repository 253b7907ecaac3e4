"""Figures of a trajectory run's statistics (seaborn, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from sim.counting import JUMP_LABELS, waiting_time_density  # noqa: E402
from sim.io import part_files, run_metadata  # noqa: E402

from .estimators import jackknife_error  # noqa: E402
from .stats import RunStats, chain_from_metadata, waiting_times  # noqa: E402

__all__ = ["plot_sample_trajectories", "sample_trajectory_ids", "plot_cumulants", "cumulant_plot_table",
           "plot_waiting_times", "plot_fock_histogram", "fock_plot_table", "plot_first_passage", "plot_growth",
           "stats_figures"]

_PALETTE = dict(zip(("LL", "RR", "LR", "RL", "ph"), sns.color_palette("colorblind", 5), strict=True))


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0] or kw.get("handles"):
        ax.legend(**kw)


def _first_part_rows(run_dir: Path, table: str, n: int | list[int]) -> pd.DataFrame:
    """Rows of ``table`` with ``traj < n`` (or ``traj`` in the list ``n``), read from the first part only."""
    files = part_files(run_dir, table)
    if not files:
        return pd.DataFrame(columns=["traj"])
    flt = [("traj", "in", [int(k) for k in n])] if isinstance(n, list) else [("traj", "<", n)]
    return pq.read_table(files[0], filters=flt).to_pandas()


def sample_trajectory_ids(run_dir: Path, n: int = 4) -> tuple[list[int], bool]:
    """The trajectories ``sample_trajectories.png`` shows: ``(ids, with_jumps)``.

    The first ``n`` of the run when each of them jumps at least once; otherwise (in a steady
    state with ``N << 1`` most trajectories never jump) the first ``n`` that do jump
    (``with_jumps`` True), topped up with the first ones without jumps if the first part of the
    run has fewer. Only the first part's jump table is read (its ``traj`` column).
    """
    files = part_files(run_dir, "jumps")
    jumping = np.unique(pq.read_table(files[0], columns=["traj"])["traj"].to_numpy()) if files else np.zeros(0, int)
    first = list(range(n))
    if np.isin(first, jumping).all():
        return first, False
    ids = [int(k) for k in jumping[:n]]
    ids += [k for k in range(n + len(ids)) if k not in set(ids)][: n - len(ids)]
    return sorted(ids), bool(len(jumping))


def plot_sample_trajectories(run_dir: Path, path: Path, n: int = 4) -> Path:
    """N(t) of ``n`` trajectories as step functions, jumps marked by channel (color) and direction.

    The first ``n`` trajectories, or the first ``n`` with at least one jump when some of the
    first ones never jump (:func:`sample_trajectory_ids`; the title says which). Emissions into
    the mode (``n -> n+1``) are up triangles, absorptions (``n -> n-1``) down triangles; the legend
    lists the (channel, direction) pairs drawn. ``N`` axes have integer ticks. A trajectory stopped
    at the population cap ends where it stopped, marked with a red cross and ``capped at n = ...``
    (not drawn on as a flat line).
    """
    from sim.trajectories.stored import has_grid_table, t_grid_of

    run_dir = Path(run_dir)
    ids, with_jumps = sample_trajectory_ids(run_dir, n)
    if has_grid_table(run_dir):
        g = _first_part_rows(run_dir, "trajectories", ids)
        n0_of = dict(zip(g.loc[g["t"] == 0.0, "traj"], g.loc[g["t"] == 0.0, "N"], strict=True))
    else:
        g = _first_part_rows(run_dir, "initial", ids)
        n0_of = dict(zip(g["traj"], g["n0"], strict=True))
    t_end = float(t_grid_of(run_dir)[-1])
    ntraj = int(run_metadata(run_dir)["identity"]["run"]["ntraj"])
    jumps = _first_part_rows(run_dir, "jumps", ids)
    stops = _first_part_rows(run_dir, "stops", ids)
    stop_at = dict(zip(stops["traj"], zip(stops["t_stop"], stops["n"], strict=True), strict=True)) if len(stops) else {}
    fig, axes = plt.subplots(len(ids), 1, figsize=(8, 1.5 * len(ids) + 1.0), sharex=True, squeeze=False,
                             layout="constrained")
    seen: dict[tuple[str, str], tuple] = {}
    for k, ax in zip(ids, axes[:, 0], strict=True):
        j = jumps[jumps["traj"] == k].sort_values("t", kind="stable").reset_index(drop=True)
        n0 = float(n0_of.get(k, 0.0))
        after = n0 + np.cumsum(j["dn"].to_numpy())
        t_last = t_end
        if k in stop_at:
            t_last = float(stop_at[k][0])
        t = np.concatenate([[0.0], j["t"].to_numpy(), [t_last]])
        N = np.concatenate([[n0], after, [after[-1] if len(after) else n0]])
        ax.step(t, N, where="post", color="0.3", lw=0.8)
        for (ch, d), sub in j.groupby(["channel", "direction"], observed=True):
            style = {"marker": "^" if d == "emission" else "v", "color": _PALETTE.get(str(ch), "k")}
            ax.scatter(sub["t"], after[sub.index.to_numpy()], s=18, zorder=3, **style)
            seen[(str(ch), str(d))] = style
        if k in stop_at:
            ax.plot([t_last], [N[-1]], "x", color="red", ms=9, mew=2, zorder=4)
            ax.annotate(f"capped at n = {int(stop_at[k][1])}, t = {t_last:.3g}", (t_last, N[-1]), fontsize=7,
                        color="red", xytext=(-4, -4), textcoords="offset points", ha="right", va="top")
        lo, hi = float(np.min(N)), float(np.max(N))
        ax.set_ylim(lo - 0.3, max(hi, lo + 1) + 0.3)  # at least two integer levels, no +-0.05 ticks
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        ax.set_ylabel(f"N, traj {k}" + ("" if len(j) else "\n(no jumps)"), fontsize=9)
    order = {c: i for i, c in enumerate(_PALETTE)}
    handles = [plt.Line2D([], [], ls="", label=f"{ch} {d}", **st)
               for (ch, d), st in sorted(seen.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1] != "emission"))]
    if stop_at:
        handles.append(plt.Line2D([], [], marker="x", ls="", color="red", label="stopped at the cap"))
    if handles:
        fig.legend(handles=handles, ncol=min(6, len(handles)), fontsize=7.5, loc="outside lower center")
    axes[-1, 0].set_xlabel("t (1/energy)")
    if with_jumps:
        which = (f"trajectories {', '.join(map(str, ids))} of {ntraj}: the first {len(ids)} with at least one jump "
                 f"({len(ids)} of the first {max(ids) + 1} jump at all)")
    else:
        which = f"the first {len(ids)} of {ntraj} trajectories"
    fig.suptitle(f"N(t) of {which}, t in [0, {t_end:.4g}]\n"
                 "jumps: \u25b2 emission into the mode (n -> n+1), \u25bc absorption (n -> n-1); color: the bath",
                 fontsize=8.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


_RATIO_LIM = (0.0, 2.0)  # y range of cumulants.png; points beyond are drawn at the edge as triangles


def cumulant_plot_table(stats: RunStats) -> pd.DataFrame:
    """The points of ``cumulants.png``: one row per quantity and order with a nonzero exact rate.

    Columns added to ``stats.cumulants``: ``ratio`` = estimate/exact and ``err`` = stderr/|exact|;
    ``estimable``: False where :func:`analysis.stats.run_stats` marks the row not estimable (fewer than
    ``MIN_TAIL_TRAJECTORIES`` trajectories carry the order) or the run gives no spread across
    trajectories (``stderr`` 0 or missing: estimate 0 +- 0 is not a measurement and is not drawn as 0).
    The estimates are differences ``(k_n(T) - k_n(T/2))/(T/2)`` over the window ``T = t_end - t_min``
    (:func:`analysis.estimators.estimate_cumulant_rates`), so a label with no jumps in the second half
    of the window is not estimable even if it jumped earlier. ``expected_events``: the exact mean number
    of jumps of a ``jumps:`` label in that second half, ``c_1 ntraj T/2``; ``x`` (position); ``y`` = ratio
    clipped to the axis and ``off_scale`` (``+1`` above, ``-1`` below, 0 inside).
    """
    c = stats.cumulants.dropna(subset=["exact"])
    c = c[c["exact"] != 0].reset_index(drop=True)
    qs = list(dict.fromkeys(c["quantity"]))
    orders = sorted(c["order"].unique()) if len(c) else []
    err = c["stderr"].to_numpy(float)
    ratio = (c["estimate"] / c["exact"]).to_numpy(float)
    first = c[c["order"] == 1].set_index("quantity")["exact"]
    window = stats.ntraj * max(stats.t_end - stats.t_min, 0.0) / 2  # the second half: what the estimator sees
    expected = np.where(c["quantity"].str.startswith("jumps:"), c["quantity"].map(first).to_numpy(float) * window,
                        np.nan)
    lo, hi = _RATIO_LIM
    return c.assign(
        ratio=ratio, err=err / c["exact"].abs().to_numpy(float),
        estimable=np.isfinite(err) & (err > 0) & (c["estimable"].to_numpy(bool) if "estimable" in c else True),
        expected_events=expected,
        x=np.array([qs.index(q) for q in c["quantity"]], dtype=float)
        + 0.15 * (np.array([orders.index(o) for o in c["order"]], dtype=float) - (len(orders) - 1) / 2),
        y=np.clip(ratio, lo, hi), off_scale=np.where(ratio > hi, 1, np.where(ratio < lo, -1, 0)))


def plot_cumulants(stats: RunStats, path: Path) -> Path:
    """Estimated cumulant rates over exact ones, with error bars, per quantity and order.

    Rows the run cannot estimate (:func:`cumulant_plot_table`) are not drawn: a quantity with no
    estimable order has its column greyed and marked "not estimable" with the expected number of
    events; a missing order in another column is explained in the title. Points beyond the axis
    are drawn at its edge as triangles.
    """
    t = cumulant_plot_table(stats)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    qs = list(dict.fromkeys(t["quantity"]))
    lo, hi = _RATIO_LIM
    for k, (order, sub) in enumerate(t[t["estimable"]].groupby("order")):
        col = f"C{k}"
        inside = sub[sub["off_scale"] == 0]
        ax.errorbar(inside["x"], inside["y"], yerr=inside["err"], fmt="o", ms=4, color=col, label=f"order {order}")
        out = sub[sub["off_scale"] != 0]
        if len(out):
            ax.scatter(out["x"], out["y"], marker="^", s=30, color=col, clip_on=False, zorder=3)
            ax.scatter(out["x"][out["off_scale"] < 0], out["y"][out["off_scale"] < 0], marker="v", s=30, color=col,
                       clip_on=False, zorder=3)
    none = t.groupby("quantity", sort=False)["estimable"].any()
    bad = t[t["quantity"].isin(none[~none].index)].groupby("quantity", sort=False)["expected_events"].first()
    for q, n_exp in bad.items():
        x = qs.index(q)
        ax.axvspan(x - 0.4, x + 0.4, color="0.9", zorder=0)
        ax.text(x, 1.0, "not\nestimable" + (f"\n(expected\n{n_exp:.2g} events)" if np.isfinite(n_exp) else ""),
                ha="center", va="center", fontsize=6.5, color="0.3")
    if t["off_scale"][t["estimable"]].any():
        ax.scatter([], [], marker="^", color="0.4", label=f"beyond {hi:g} (at the edge)")
    ax.axhline(1.0, color="0.4", lw=0.8)
    ax.set_xticks(range(len(qs)), qs, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(qs) - 0.4)
    ax.set_ylabel("estimate / exact")
    ax.set_ylim(lo, hi)
    _legend(ax, fontsize=8)
    title = f"cumulant rates, {stats.ntraj} trajectories; {stats.transient}"
    if not t["estimable"].all():
        title += ("\nnot drawn: orders carried by fewer than 30 trajectories (grey: no order of that quantity); "
                  "a longer or larger run is needed, not a failure")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_waiting_times(stats: RunStats, meta: dict, path: Path, pairs: int = 4) -> Path:
    """Histograms of the most frequent waiting-time pairs against the exact densities.

    The density ``w_ij(tau)`` (per start of label ``i``) is unbiased for ``tau <= H_i``, the
    window every start was watched for; waits beyond it are cut off by the end of the run.
    The histogram stops at ``H_i`` and, for pairs that are not estimable (censored), the
    panel says so instead of quoting a biased probability.
    """
    chain = chain_from_metadata(meta)
    top = stats.waiting[stats.waiting["n"] > 0].sort_values("n", ascending=False).head(pairs)
    fig, axes = plt.subplots(1, max(1, len(top)), figsize=(3.4 * max(1, len(top)), 3.2), squeeze=False)
    names = ["{}:{}".format(*lab) for lab in JUMP_LABELS]
    for ax, (_, row) in zip(axes[0], top.iterrows(), strict=False):
        i, j = names.index(row["first"]), names.index(row["second"])
        H = float(row["horizon"])
        w = waiting_times(stats.run_dir, i, j, stats.t_min, stats.t_end - H)
        if len(w) == 0 or not row["n_first"] > 0:
            continue
        hi = min(float(np.quantile(w, 0.99)), H)
        bins = np.linspace(0, hi, 40)
        h, edges = np.histogram(w, bins=bins)
        ax.stairs(h / (row["n_first"] * np.diff(edges)), edges, fill=True, alpha=0.5, label="trajectories")
        if chain is not None:
            tau = np.linspace(0, hi, 300)
            ax.plot(tau, waiting_time_density(chain, i, j, tau), color="k", lw=1.2, label="exact")
        title = f"{row['first']} -> {row['second']}"
        if row["estimable"]:
            title += (f"\nP = {row['probability']:.3g} +- {row['probability_stderr']:.2g} "
                      f"(exact {row['probability_exact']:.3g})")
        else:
            title += (f"\nP not estimable: {100 * row['censored']:.0f}% of waits > H = {H:.3g}\n"
                      f"cut off by t_end (exact P = {row['probability_exact']:.3g})")
            ax.set_facecolor("0.95")
        ax.set_title(title, fontsize=7)
        ax.set_xlabel("tau (1/energy)")
    axes[0, 0].set_ylabel("w(tau) per start")
    _legend(axes[0, 0], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fock_plot_table(stats: RunStats, fock: pd.DataFrame | None = None, groups: int = 20) -> pd.DataFrame:
    """The bars of ``fock_histogram.png``: ``n``, ``samples``, ``P_n``, ``P_n_stderr``, ``bose_einstein``.

    ``P_n`` is the fraction of the samples ``N(t_k)`` (grid points ``t_k >= t_min``, all
    trajectories) equal to ``n``. Samples within one trajectory are correlated, so the error is
    the delete-a-group jackknife over ``groups`` contiguous groups of trajectories (as for N and
    g2 in :func:`analysis.mode_stats.mode_stats`), not the binomial error of independent
    samples; a bar made of ~1 sample gets an error of the size of the bar or larger.
    ``bose_einstein``: ``(1 - x) x^n``, ``x = N_ss/(N_ss + 1)``, from ``fock`` (or the run's
    model); rows run to ``n = 4`` at least.
    """
    from sim.model import JumpModel
    from sim.trajectories.stored import grid_samples

    run = Path(stats.run_dir)
    G = max(1, min(groups, stats.ntraj))
    H = np.zeros((G, 1))
    for tr, n, w in grid_samples(run, stats.t_min):
        if not n.size:
            continue
        g = np.minimum(tr.astype(np.int64) * G // stats.ntraj, G - 1)
        nmax = int(n.max()) + 1
        if nmax > H.shape[1]:
            H = np.pad(H, ((0, 0), (0, nmax - H.shape[1])))
        H += np.bincount(g * H.shape[1] + n.astype(np.int64), weights=w, minlength=G * H.shape[1]).reshape(G, -1)
    rows = max(H.shape[1], 5, len(fock) if fock is not None else 0)
    H = np.pad(H, ((0, 0), (0, rows - H.shape[1])))
    total = H.sum(axis=0)
    S = total.sum()
    P = total / max(S, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = (total[:, None] - H.T) / (S - H.sum(axis=1))  # (n, groups): P_n without group k
        err = jackknife_error(loo) if G > 1 else np.full(rows, np.nan)
    if fock is not None and "bose_einstein" in fock and len(fock):
        x = float(fock["bose_einstein"].iloc[1] / fock["bose_einstein"].iloc[0]) if len(fock) > 1 else np.nan
    else:
        meta = run_metadata(run)
        N = float(JumpModel.from_record(meta["identity"]["model"]).N_ss())
        x = N / (N + 1) if np.isfinite(N) else np.nan
    n = np.arange(rows)
    return pd.DataFrame({"n": n, "samples": total, "P_n": P, "P_n_stderr": err, "bose_einstein": (1 - x) * x ** n})


def plot_fock_histogram(stats: RunStats, meta: dict, path: Path, fock: pd.DataFrame | None = None) -> Path:
    """Fock histogram of N on the time grid after ``t_min`` against the Bose-Einstein P_n.

    Bars (one ``stairs`` artist) with jackknife error bars over groups of trajectories
    (:func:`fock_plot_table`); a bar whose error reaches 0 has its lower whisker run to the
    bottom of the log axis. Levels ``n`` with no sample are marked ``0`` at the bottom.
    ``fock``: the histogram of :func:`analysis.mode_stats.mode_stats` (its Bose-Einstein column
    is used; the samples are read again for the error bars).
    """
    t = fock_plot_table(stats, fock)
    x = t["n"].to_numpy()
    P, err, be = t["P_n"].to_numpy(), t["P_n_stderr"].to_numpy(), t["bose_einstein"].to_numpy()
    pos = np.concatenate([P[P > 0], be[np.isfinite(be) & (be > 0)]])
    bottom = 10 ** np.floor(np.log10(pos.min()) - 1) if pos.size else 1e-12
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    col = sns.color_palette("colorblind")[0]
    ax.stairs(np.maximum(P, bottom), np.arange(len(P) + 1) - 0.5, baseline=bottom, fill=True, color=col, alpha=0.55,
              label="trajectories")
    has = P > 0
    lower = np.where(np.isfinite(err), np.minimum(err, P - bottom), 0)
    ax.errorbar(x[has], P[has], yerr=[lower[has], np.where(np.isfinite(err), err, 0)[has]], fmt="none", ecolor="k",
                capsize=3, lw=1, label="jackknife error (trajectory groups)")
    if (~has).any():
        ax.plot(x[~has], np.full((~has).sum(), bottom * 1.6), "x", color=col, ms=6, label="no sample")
    if np.isfinite(be).any():
        ax.plot(x, be, "ko-", ms=3, lw=1, label="Bose-Einstein")
    ax.set_yscale("log")
    ax.set_ylim(bottom, 2.0)
    # plain '1e-04' labels: mathtext 10^k labels cost most of the figure's time (text layout)
    ax.yaxis.set_major_locator(LogLocator(numticks=7))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"1e{np.log10(v):.0f}" if v > 0 else ""))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(x)
    ax.set_xlabel("n")
    ax.set_ylabel("P_n")
    N_ss = be[1] / be[0] / (1 - be[1] / be[0]) if len(be) > 1 and be[0] > 0 else np.nan
    ax.set_title(f"samples of N on the grid, t >= t_min = {stats.t_min:.4g} ({t['samples'].sum():.3g} from "
                 f"{stats.ntraj} trajectories)\nvs Bose-Einstein with N_ss = {N_ss:.4g}; errors: jackknife over "
                 "groups of trajectories\n(samples within one trajectory are correlated)", fontsize=7.5)
    _legend(ax, fontsize=7.5, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_growth(growth, path: Path) -> Path:
    """Unstable run: mean N(t) (error bars) and the fitted growth against ``e^{-kappa t}``, log scale."""
    c = growth.curve
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    ok = c["N"] > 0
    ax.errorbar(c["t"][ok], c["N"][ok], yerr=c["N_sem"][ok], fmt="o", ms=4, label="trajectories (mean)")
    lam, err, exact = growth.growth_rate
    if np.isfinite(lam):
        tt = np.linspace(c["t"].min(), c["t"].max(), 200)
        n0 = float(c["N"].iloc[0])
        S = growth.source[0]
        e = np.expm1(lam * tt)
        ax.plot(tt, n0 * (1 + e) + S * e / lam, "k-", lw=1.2,
                label=f"fit: growth rate {lam:.4g} +- {err:.2g}\n(-kappa = {exact:.4g})")
    ax.set_yscale("log")
    ax.set_xlabel("t (1/energy)")
    ax.set_ylabel("N(t), before any trajectory reached the cap")
    ax.set_title(f"unstable mode: no steady state; cap n = {growth.cap}, reached by {growth.n_capped} of "
                 f"{growth.ntraj}", fontsize=8)
    _legend(ax, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_first_passage(times: np.ndarray, record: dict, path: Path) -> Path:
    """Histogram of the first-passage times to a population level, with what the run can say about them.

    The histogram is of the trajectories that arrived by ``t_end`` (a density per trajectory of
    the run, so its area is the fraction that arrived). The mean time is marked only when every
    trajectory arrived (``record["mean"]``); the exact mean from the run's initial state is
    marked where it is known, and the title gives the fraction arrived against its exact value.
    """
    ok = times[np.isfinite(times)]
    n = max(int(record.get("ntraj") or times.size), 1)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    if ok.size:
        h, edges = np.histogram(ok, bins=40)
        ax.stairs(h / (n * np.diff(edges)), edges, fill=True, alpha=0.6, label=f"arrived by t_end ({ok.size} of {n})")
    exact = record.get("exact_mean", record.get("exact_mean_from_vacuum"))
    if exact is not None and np.isfinite(exact):
        ax.axvline(exact, color="k", lw=1.2, label=f"exact mean {exact:.4g} (birth-death)")
    if record.get("mean") is not None:
        ax.axvline(record["mean"], color="C3", ls="--", lw=1.2, label=f"trajectory mean {record['mean']:.4g}")
    ax.set_xlabel(f"first-passage time to n = {record['level']} (1/energy)")
    ax.set_ylabel("density per trajectory")
    title = f"first passage to n = {record['level']}"
    p, px = record.get("probability_reached"), record.get("probability_reached_exact")
    if p is not None:
        title += f": P(by t_end) = {p:.3g}" + (f" (exact {px:.3g})" if px is not None else "")
    if record.get("mean") is None and ok.size < n:
        title += "\nmean time not estimable: not every trajectory arrived by t_end"
    ax.set_title(title, fontsize=8)
    _legend(ax, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stats_figures(stats: RunStats, meta: dict, out: Path, fock: pd.DataFrame | None = None, growth=None
                  ) -> list[Path]:
    """The figures of ``ehp stats --out``: stationary ones for a stable run, growth ones for an unstable one."""
    run = Path(stats.run_dir)
    paths = [plot_sample_trajectories(run, out / "sample_trajectories.png")]
    if not stats.stable:
        return paths + ([plot_growth(growth, out / "growth.png")] if growth is not None else [])
    return paths + [
        plot_cumulants(stats, out / "cumulants.png"),
        plot_waiting_times(stats, meta, out / "waiting_times.png"),
        plot_fock_histogram(stats, meta, out / "fock_histogram.png", fock),
    ]
