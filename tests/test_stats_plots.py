"""Figures of `ehp stats`: what each figure function draws, checked on the data it plots."""

from __future__ import annotations

import dataclasses

import matplotlib.figure
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.stats import run_stats
from analysis.stats_plots import (
    cumulant_plot_table,
    fock_plot_table,
    plot_cumulants,
    plot_fock_histogram,
    plot_sample_trajectories,
    sample_trajectory_ids,
)
from sim.rate_equation import rate_model
from sim.trajectories import run_trajectories


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory):
    """The user's run: paper_double_dot, N_ss = 0.006, 2000 x t_end = 50 from the steady state.

    Most trajectories never jump, and RL emission (exact rate 7e-9) is never seen.
    """
    from sim.config import load_config

    cfg = load_config("paper_double_dot")
    out = tmp_path_factory.mktemp("plots") / "run"
    run_trajectories(rate_model(cfg), engine="ssa", ntraj=2000, t_end=50.0, n_points=201, seed=1,
                     initial="steady", out_dir=out, config=cfg, progress=False)
    return out, run_stats(out, progress=False)


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save (not written to disk)."""
    figs = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self))
    return figs


def _points(ax):
    """(x, y) of every marker drawn on ``ax`` (lines with markers and scatter collections)."""
    xy = [np.column_stack([ln.get_xdata(), ln.get_ydata()]) for ln in ax.get_lines() if ln.get_marker() not in
          ("None", None, "", " ")]
    xy += [c.get_offsets() for c in ax.collections if hasattr(c, "get_offsets") and len(c.get_offsets())]
    return np.concatenate(xy) if xy else np.zeros((0, 2))


def test_zero_count_cumulants_are_not_drawn_as_zero(quiet_run, figures, tmp_path):
    _, st = quiet_run
    t = cumulant_plot_table(st)
    bad = t[~t["estimable"]]
    # a label never seen: estimate 0 +- 0 is not a measurement
    assert "jumps:RL:emission" in set(bad["quantity"])
    # neither a measured 0 +- 0 nor an order carried by too few trajectories is drawn
    assert (((bad["estimate"] == 0) & (bad["stderr"] == 0)) | ~bad["estimate"].notna()).all()
    assert (t.loc[t["estimable"], "stderr"] > 0).all()
    rl = bad[bad["quantity"] == "jumps:RL:emission"]
    assert rl["expected_events"].iloc[0] == pytest.approx(rl["exact"].iloc[0] * 2000 * 25, rel=1e-12)
    assert rl["expected_events"].iloc[0] < 0.01
    plot_cumulants(st, tmp_path / "c.png")
    (ax,) = figures[0].axes
    xy = _points(ax)
    qs = list(dict.fromkeys(t["quantity"]))
    none = t.groupby("quantity")["estimable"].any()
    for q in set(none[~none].index):  # no marker in a column with no estimable order, a note instead
        assert not np.any(np.abs(xy[:, 0] - qs.index(q)) < 0.4), q
        assert any(abs(tx.get_position()[0] - qs.index(q)) < 1e-9 and "not" in tx.get_text() for tx in ax.texts)
    ok = t[t["estimable"] & (t["off_scale"] == 0)]
    drawn = {(round(x, 9), round(y, 9)) for x, y in xy}
    assert all((round(x, 9), round(y, 9)) in drawn for x, y in zip(ok["x"], ok["ratio"], strict=True))
    assert "not drawn" in ax.get_title()


def test_cumulants_beyond_the_axis_are_drawn_at_its_edge(quiet_run, figures, tmp_path):
    _, st = quiet_run
    c = st.cumulants.copy()
    i = c.index[(c["quantity"] == "charge") & (c["order"] == 1)][0]
    c.loc[i, "estimate"] = 3.5 * c.loc[i, "exact"]
    t = cumulant_plot_table(dataclasses.replace(st, cumulants=c))
    row = t[(t["quantity"] == "charge") & (t["order"] == 1)].iloc[0]
    assert row["off_scale"] == 1 and row["y"] == 2.0 and row["ratio"] == pytest.approx(3.5)
    plot_cumulants(dataclasses.replace(st, cumulants=c), tmp_path / "c.png")
    (ax,) = figures[0].axes
    tri = [coll for coll in ax.collections if len(coll.get_offsets())]
    assert any(np.allclose(coll.get_offsets(), [[row["x"], 2.0]]) for coll in tri)


def test_sample_trajectories_show_jumping_trajectories_with_integer_ticks(quiet_run, figures, tmp_path):
    run, st = quiet_run
    jumps = pd.concat(pq.read_table(f).to_pandas() for f in sorted((run / "jumps.parquet").glob("*.parquet")))
    per = jumps.groupby("traj").size()
    assert not all(k in per.index for k in range(4))  # the situation: some of the first four never jump
    ids, with_jumps = sample_trajectory_ids(run, 4)
    assert with_jumps and ids == sorted(per.index[:4].tolist())
    plot_sample_trajectories(run, tmp_path / "s.png")
    fig = figures[0]
    assert len(fig.axes) == 4
    title = fig._suptitle.get_text()
    assert all(str(k) in title for k in ids) and "at least one jump" in title and "of 2000" in title
    for ax in fig.axes:
        ticks = [v for v in ax.get_yticks() if ax.get_ylim()[0] <= v <= ax.get_ylim()[1]]
        assert len(ticks) >= 2 and np.allclose(ticks, np.round(ticks))
    labels = {h.get_label(): h.get_marker() for h in fig.legends[0].legend_handles}
    seen = jumps[jumps["traj"].isin(ids)]
    assert set(labels) == {f"{c} {d}" for c, d in zip(seen["channel"], seen["direction"], strict=True)}
    assert all(m == ("^" if lab.endswith("emission") else "v") for lab, m in labels.items())


def test_fock_histogram_has_error_bars_from_trajectory_groups(quiet_run, figures, tmp_path):
    from analysis.mode_stats import mode_stats

    run, st = quiet_run
    ms = mode_stats(run, st.t_min, progress=False)
    t = fock_plot_table(st, ms.fock)
    k = len(ms.fock)
    assert np.allclose(t["P_n"][:k], ms.fock["P_n"], rtol=1e-12, atol=0)  # the same histogram, another route
    assert np.allclose(t["bose_einstein"][:k], ms.fock["bose_einstein"], rtol=1e-12)
    assert t["samples"].sum() == 2000 * 201 and len(t) >= 5
    occ = t[t["P_n"] > 0]
    binom = np.sqrt(occ["P_n"] * (1 - occ["P_n"]) / t["samples"].sum())
    # correlated samples within a trajectory: the jackknife is at least the independent-sample error
    assert (occ["P_n_stderr"] >= 0.9 * binom).all()
    top = occ.iloc[-1]  # the highest level seen, a few samples from one or two trajectories
    assert top["samples"] < 100 and top["P_n_stderr"] > 0.3 * top["P_n"]
    plot_fock_histogram(st, {}, tmp_path / "f.png", ms.fock)
    (ax,) = figures[0].axes
    bars = [c for c in ax.containers if hasattr(c, "has_yerr") and c.has_yerr]
    assert len(bars) == 1
    segs = bars[0].lines[2][0].get_segments()
    assert len(segs) == len(occ)
    assert np.allclose([s[1, 1] for s in segs], occ["P_n"] + occ["P_n_stderr"], rtol=1e-12)
    assert "Bose-Einstein" in ax.get_title() and "trajectories" in ax.get_title()
