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

from sim.counting import JUMP_LABELS, waiting_time_density  # noqa: E402
from sim.io import part_files  # noqa: E402

from .stats import RunStats, chain_from_metadata, waiting_times  # noqa: E402

__all__ = ["plot_sample_trajectories", "plot_cumulants", "plot_waiting_times", "plot_fock_histogram",
           "plot_first_passage", "plot_growth", "stats_figures"]

_PALETTE = dict(zip(("LL", "RR", "LR", "RL", "ph"), sns.color_palette("colorblind", 5), strict=True))


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0] or kw.get("handles"):
        ax.legend(**kw)


def _first_part_rows(run_dir: Path, table: str, n: int) -> pd.DataFrame:
    """Rows of ``table`` with ``traj < n``, read from the first part only (trajectories 0.. are there)."""
    files = part_files(run_dir, table)
    if not files:
        return pd.DataFrame(columns=["traj"])
    return pq.read_table(files[0], filters=[("traj", "<", n)]).to_pandas()


def plot_sample_trajectories(run_dir: Path, path: Path, n: int = 4) -> Path:
    """N(t) of the first ``n`` trajectories as step functions, jumps colored by channel.

    A trajectory stopped at the population cap ends where it stopped, marked with a red
    cross and ``capped at n = ...`` (not drawn on as a flat line).
    """
    from sim.trajectories.stored import has_grid_table, t_grid_of

    if has_grid_table(run_dir):
        g = _first_part_rows(run_dir, "trajectories", n)
        n0_of = dict(zip(g.loc[g["t"] == 0.0, "traj"], g.loc[g["t"] == 0.0, "N"], strict=True))
    else:
        g = _first_part_rows(run_dir, "initial", n)
        n0_of = dict(zip(g["traj"], g["n0"], strict=True))
    t_end = float(t_grid_of(run_dir)[-1])
    jumps = _first_part_rows(run_dir, "jumps", n)
    stops = _first_part_rows(run_dir, "stops", n)
    stop_at = dict(zip(stops["traj"], zip(stops["t_stop"], stops["n"], strict=True), strict=True)) if len(stops) else {}
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.8 * n), sharex=True, squeeze=False)
    for k, ax in enumerate(axes[:, 0]):
        j = jumps[jumps["traj"] == k].reset_index(drop=True)
        n0 = float(n0_of.get(k, 0.0))
        after = n0 + np.cumsum(j["dn"].to_numpy())
        t_last = t_end
        if k in stop_at:
            t_last = float(stop_at[k][0])
        t = np.concatenate([[0.0], j["t"].to_numpy(), [t_last]])
        N = np.concatenate([[n0], after, [after[-1] if len(after) else n0]])
        ax.step(t, N, where="post", color="0.3", lw=0.8)
        for ch, sub in j.groupby("channel", observed=True):
            ax.scatter(sub["t"], after[sub.index.to_numpy()], s=10, color=_PALETTE[str(ch)], label=str(ch), zorder=3)
        if k in stop_at:
            ax.plot([t_last], [N[-1]], "x", color="red", ms=9, mew=2, zorder=4)
            ax.annotate(f"capped at n = {int(stop_at[k][1])}, t = {t_last:.3g}", (t_last, N[-1]), fontsize=7,
                        color="red", xytext=(-4, -4), textcoords="offset points", ha="right", va="top")
        ax.set_ylabel(f"N, traj {k}")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=ch) for ch, c in _PALETTE.items()]
    if stop_at:
        handles.append(plt.Line2D([], [], marker="x", ls="", color="red", label="stopped at the cap"))
    _legend(axes[0, 0], handles=handles, ncol=6, fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("t (1/energy)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_cumulants(stats: RunStats, path: Path) -> Path:
    """Estimated cumulant rates over exact ones, with error bars, per quantity and order."""
    c = stats.cumulants.dropna(subset=["exact"])
    c = c[c["exact"] != 0].assign(ratio=lambda d: d["estimate"] / d["exact"], err=lambda d: d["stderr"] / d["exact"].abs())
    fig, ax = plt.subplots(figsize=(9, 4))
    qs = list(dict.fromkeys(c["quantity"]))
    for k, (order, sub) in enumerate(c.groupby("order")):
        x = np.array([qs.index(q) for q in sub["quantity"]]) + 0.15 * (k - 1.5)
        ax.errorbar(x, sub["ratio"], yerr=sub["err"], fmt="o", ms=4, label=f"order {order}")
    ax.axhline(1.0, color="0.4", lw=0.8)
    ax.set_xticks(range(len(qs)), qs, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("estimate / exact")
    ax.set_ylim(0, 2)
    _legend(ax, fontsize=8)
    ax.set_title(f"cumulant rates, {stats.ntraj} trajectories; {stats.transient}", fontsize=8)
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


def plot_fock_histogram(stats: RunStats, meta: dict, path: Path, fock: pd.DataFrame | None = None) -> Path:
    """Fock histogram of N on the time grid after ``t_min`` against the Bose-Einstein P_n.

    ``fock``: the histogram of :func:`analysis.mode_stats.mode_stats` (read again from the
    run when not given).
    """
    if fock is None:
        from .mode_stats import mode_stats

        fock = mode_stats(stats.run_dir, stats.t_min, progress=False).fock
    nmax = max(len(fock), 5)
    P = np.zeros(nmax)
    P[: len(fock)] = fock["P_n"].to_numpy()
    df = pd.DataFrame({"n": np.arange(nmax), "P_n": P})
    fig, ax = plt.subplots(figsize=(5, 3.5))
    sns.barplot(df, x="n", y="P_n", color=sns.color_palette("colorblind")[0], ax=ax, label="trajectories")
    chain = chain_from_metadata(meta)
    if chain is not None:
        x = chain.a.sum() / chain.b.sum()
        ax.plot(np.arange(nmax), (1 - x) * x ** np.arange(nmax), "ko-", ms=3, label="Bose-Einstein")
    ax.set_yscale("log")
    _legend(ax, fontsize=8)
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
    """Histogram of first-passage times to a population level, exact mean marked."""
    ok = times[np.isfinite(times)]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    sns.histplot(ok, bins=40, stat="density", ax=ax)
    if record.get("exact_mean_from_vacuum") is not None:
        ax.axvline(record["exact_mean_from_vacuum"], color="k", lw=1.2, label="exact mean (birth-death)")
    if ok.size:
        ax.axvline(ok.mean(), color="C3", ls="--", lw=1.2, label="trajectory mean")
    ax.set_xlabel(f"first-passage time to n = {record['level']} (1/energy)")
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
