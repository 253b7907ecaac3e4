"""Figures of a trajectory run's statistics (seaborn, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from sim.counting import JUMP_LABELS, waiting_time_density  # noqa: E402
from sim.io import read_table  # noqa: E402

from .stats import RunStats, chain_from_metadata, waiting_times  # noqa: E402

__all__ = ["plot_sample_trajectories", "plot_cumulants", "plot_waiting_times", "plot_fock_histogram",
           "plot_first_passage", "stats_figures"]

_PALETTE = dict(zip(("LL", "RR", "LR", "RL", "ph"), sns.color_palette("colorblind", 5), strict=True))


def _legend(ax, **kw) -> None:
    if ax.get_legend_handles_labels()[0] or kw.get("handles"):
        ax.legend(**kw)


def plot_sample_trajectories(run_dir: Path, path: Path, n: int = 4) -> Path:
    """N(t) of the first ``n`` trajectories as step functions, jumps colored by channel."""
    grid = read_table(run_dir, "trajectories")
    jumps = read_table(run_dir, "jumps")
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.8 * n), sharex=True, squeeze=False)
    for k, ax in enumerate(axes[:, 0]):
        g = grid[grid["traj"] == k]
        j = jumps[jumps["traj"] == k]
        n0 = float(g["N"].iloc[0]) if len(g) else 0.0
        t = np.concatenate([[0.0], j["t"].to_numpy(), [float(g["t"].max()) if len(g) else 0.0]])
        N = n0 + np.concatenate([[0], np.cumsum(j["dn"].to_numpy()), [j["dn"].sum()]])
        ax.step(t, N, where="post", color="0.3", lw=0.8)
        for ch, sub in j.groupby("channel", observed=True):
            after = n0 + np.cumsum(j["dn"].to_numpy())[j.index.get_indexer(sub.index)]
            ax.scatter(sub["t"], after, s=10, color=_PALETTE[str(ch)], label=str(ch), zorder=3)
        ax.set_ylabel(f"N, traj {k}")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=ch) for ch, c in _PALETTE.items()]
    _legend(axes[0, 0], handles=handles, ncol=5, fontsize=8, loc="upper left")
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
    """Histograms of the most frequent waiting-time pairs against the exact densities."""
    chain = chain_from_metadata(meta)
    top = stats.waiting.sort_values("n", ascending=False).head(pairs)
    fig, axes = plt.subplots(1, len(top), figsize=(3.2 * len(top), 3), squeeze=False)
    names = ["{}:{}".format(*lab) for lab in JUMP_LABELS]
    for ax, (_, row) in zip(axes[0], top.iterrows(), strict=False):
        i, j = names.index(row["first"]), names.index(row["second"])
        w = waiting_times(stats.run_dir, i, j, stats.t_min, stats.t_end - stats.horizon)
        if len(w) == 0 or not row["probability"] > 0:
            continue
        n_first = row["n"] / row["probability"]  # jumps that could start a pair
        hi = np.quantile(w, 0.99)
        bins = np.linspace(0, hi, 40)
        h, edges = np.histogram(w, bins=bins)
        ax.bar(edges[:-1], h / (n_first * np.diff(edges)), width=np.diff(edges), align="edge", alpha=0.5,
               label="trajectories")
        if chain is not None:
            tau = np.linspace(0, hi, 300)
            ax.plot(tau, waiting_time_density(chain, i, j, tau), color="k", lw=1.2, label="exact")
        ax.set_title(f"{row['first']} -> {row['second']}", fontsize=8)
        ax.set_xlabel("tau (1/energy)")
    axes[0, 0].set_ylabel("w(tau)")
    _legend(axes[0, 0], fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_fock_histogram(stats: RunStats, meta: dict, path: Path) -> Path:
    """Fock histogram of N on the time grid after ``t_min`` against the Bose-Einstein P_n."""
    grid = read_table(stats.run_dir, "trajectories")
    late = grid[(grid["t"] >= stats.t_min) & grid["N"].notna()]
    n = late["N"].to_numpy().astype(int)
    nmax = max(int(n.max()) + 1, 5)
    P = np.bincount(n, minlength=nmax) / len(n)
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


def stats_figures(stats: RunStats, meta: dict, out: Path) -> list[Path]:
    run = Path(stats.run_dir)
    return [
        plot_sample_trajectories(run, out / "sample_trajectories.png"),
        plot_cumulants(stats, out / "cumulants.png"),
        plot_waiting_times(stats, meta, out / "waiting_times.png"),
        plot_fock_histogram(stats, meta, out / "fock_histogram.png"),
    ]
