"""Trajectory statistics of a seeded run against the exact tilted-generator values."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.cli import main
from analysis.stats import run_stats
from sim.rate_equation import rate_model
from sim.trajectories import run_trajectories

from .conftest import make_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Frequent jumps on all channels: hopping on, moderate bias, warm electrons."""
    cfg = make_config(conductor={"kind": "double_dot", "hopping": 0.2, "coupling": 0.3},
                      bias={"V": 0.6, "T_e": 0.4}, phonon_bath={"T": 0.3, "gamma": 0.2})
    out = tmp_path_factory.mktemp("stats") / "run"
    run_trajectories(rate_model(cfg), engine="ssa", ntraj=1000, t_end=1000.0, n_points=51, seed=11,
                     initial="steady", out_dir=out, config=cfg, progress=False)
    return out


def test_cumulant_estimates_within_four_standard_errors(run_dir):
    st = run_stats(run_dir)
    assert st.transient.startswith("stationary")
    c = st.cumulants
    frequent = c[(c["order"] <= 2) | (c["quantity"] == "charge")]
    frequent = frequent[frequent["exact"].abs() * 1000 * 1000 > 2000]  # > 2000 expected events in the run
    assert len(frequent) >= 10
    z = (frequent["estimate"] - frequent["exact"]) / frequent["stderr"]
    assert np.all(np.abs(z) < 4), frequent.assign(z=z)


def test_waiting_time_probabilities_within_errors(run_dir):
    w = run_stats(run_dir).waiting
    w = w[w["n"] > 500]
    assert len(w) >= 5
    zp = (w["probability"] - w["probability_exact"]) / w["probability_stderr"]
    zm = (w["mean"] - w["mean_exact"]) / w["mean_stderr"]
    assert np.all(np.abs(zp) < 4) and np.all(np.abs(zm) < 4)


def test_transient_is_discarded_when_not_stationary(tmp_path):
    cfg = make_config(conductor={"kind": "double_dot", "hopping": 0.2, "coupling": 0.3},
                      bias={"V": 0.6, "T_e": 0.4}, phonon_bath={"T": 0.3, "gamma": 0.2})
    m = rate_model(cfg)
    out = tmp_path / "vac"
    run_trajectories(m, engine="ssa", ntraj=200, t_end=100.0, n_points=11, seed=1, initial="vacuum",
                     out_dir=out, config=cfg, progress=False)
    st = run_stats(out)
    assert st.t_min == pytest.approx(min(10 / float(m.kappa), 50.0))
    assert "transient" in st.transient


def test_stats_cli_json_and_outputs(run_dir, tmp_path, capsys, monkeypatch):
    import analysis.cli.app as cli

    monkeypatch.setattr(cli, "PLUGINS", ("analysis.cli.stats",))
    assert main(["stats", str(run_dir), "--json", "--out", str(tmp_path / "s")]) == 0
    d = json.loads(capsys.readouterr().out)
    rec = d["cumulants"][0]
    assert set(rec) == {"quantity", "order", "estimate", "stderr", "exact", "estimable", "tail_trajectories"}
    for r in d["cumulants"]:  # an estimate only where enough trajectories carry the order-k tail
        assert r["estimable"] == (r["tail_trajectories"] >= 30) == (r["estimate"] is not None)
    assert {r["quantity"] for r in d["cumulants"]} >= {"charge", "jumps:LR:emission", "jumps:ph:absorption"}
    assert {r["order"] for r in d["cumulants"]} == {1, 2, 3, 4}
    for name in ("stats.parquet", "waiting_times.parquet", "cumulants.png", "waiting_times.png",
                 "fock_histogram.png", "sample_trajectories.png"):
        assert (tmp_path / "s" / name).is_file()
    assert main(["stats", str(run_dir), "--json", "--out", str(tmp_path / "s")]) == 0  # the same result: reused
    capsys.readouterr()
    assert main(["stats", str(run_dir), "--t-min", "5", "--out", str(tmp_path / "s")]) == 2  # a different one
    assert "--overwrite" in capsys.readouterr().err
    assert main(["stats", str(tmp_path)]) == 2


def test_mode_statistics_match_bose_einstein(run_dir):
    from analysis.mode_stats import mode_stats

    ms = mode_stats(run_dir)
    for est, err, exact in (ms.N, ms.g2, ms.T_eff, ms.mu_eff):
        assert err > 0 and abs(est - exact) < 4 * err, (est, err, exact)
    assert ms.g2[2] == 2.0
    assert ms.fock["P_n"].sum() == pytest.approx(1.0)


@pytest.fixture(scope="module")
def runaway(tmp_path_factory):
    """Above threshold (kappa = -0.82): every trajectory runs away to the cap n = 999 by t ~ 18."""
    cfg = make_config(bias={"V": 2.0, "T_e": 0.1})
    out = tmp_path_factory.mktemp("runaway") / "run"
    res = run_trajectories(rate_model(cfg), engine="ssa", ntraj=3000, t_end=40.0, n_points=41, seed=3,
                           initial="vacuum", out_dir=out, config=cfg, progress=False)
    return out, res, float(rate_model(cfg).kappa)


def test_first_passage_to_runaway(runaway, tmp_path, capsys, monkeypatch):
    """Above threshold: mean first-passage time from vacuum to n = 20 vs the birth-death formula."""
    import analysis.cli.app as cli
    from analysis.mode_stats import exact_first_passage_mean, first_passage_times

    out = runaway[0]
    fp = first_passage_times(out, 20)
    assert np.all(np.isfinite(fp))  # kappa t_end ~ -33: every trajectory runs away within the window
    exact = exact_first_passage_mean(out, 20)
    assert abs(fp.mean() - exact) < 4 * fp.std(ddof=1) / np.sqrt(fp.size)
    monkeypatch.setattr(cli, "PLUGINS", ("analysis.cli.stats",))
    assert main(["stats", str(out), "--json", "--first-passage", "20", "--out", str(tmp_path / "s")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["first_passage"]["exact_mean_from_vacuum"] == pytest.approx(exact)
    assert d["stable"] is False and (tmp_path / "s" / "first_passage.png").is_file()


def _kstat_reference(x, duration, half, groups=20):
    """The former implementation: scipy k-statistics, jackknife by deleting each group and recomputing."""
    from scipy.stats import kstat

    def est(idx):
        return np.array([(kstat(x[idx], k) - kstat(half[idx], k)) / (duration / 2) for k in (1, 2, 3, 4)])

    everything = np.arange(len(x))
    parts = np.array_split(everything, groups)
    loo = np.array([est(np.delete(everything, p)) for p in parts])
    return est(everything), np.sqrt((groups - 1) / groups * ((loo - loo.mean(axis=0)) ** 2).sum(axis=0))


def test_vectorised_estimators_match_the_reference_implementation(run_dir):
    """Power-sum k-statistics and group jackknife = scipy.stats.kstat with explicit deletion, to rounding."""
    from analysis.estimators import estimate_cumulant_rates, totals_per_trajectory
    from sim.io import read_table

    jumps = read_table(run_dir, "jumps")
    x = np.stack([totals_per_trajectory(jumps, q, 1.0, 1000) for q in ("charge", "jumps:LR:emission")])
    h = np.stack([totals_per_trajectory(jumps[jumps["t"] < 500.0], q, 1.0, 1000)
                  for q in ("charge", "jumps:LR:emission")])
    est, err = estimate_cumulant_rates(x, 1000.0, half=h)
    for q in range(2):
        ref_est, ref_err = _kstat_reference(x[q], 1000.0, h[q])
        np.testing.assert_allclose(est[q], ref_est, rtol=1e-9, atol=1e-12 * np.abs(ref_est).max())
        np.testing.assert_allclose(err[q], ref_err, rtol=1e-9)
    # run_stats uses the same estimator on the same totals
    c = run_stats(run_dir, progress=False).cumulants
    row = c[c["quantity"] == "charge"].sort_values("order")
    np.testing.assert_allclose(row["estimate"], est[0], rtol=1e-9)


def test_mode_statistics_match_the_reference_implementation(run_dir):
    """Vectorised sums and group jackknife of N, g2 = concatenating per-trajectory samples and recomputing.

    The samples of the reference are N(t_k) = n0 + (sum of dn over the jumps with t <= t_k), built here
    with pandas from the initial and jump tables, independently of the rebuild the estimator reads.
    """
    from analysis.mode_stats import mode_stats
    from sim.io import read_table
    from sim.trajectories.stored import t_grid_of

    n0 = read_table(run_dir, "initial").set_index("traj")["n0"]
    jumps = read_table(run_dir, "jumps")
    assert read_table(run_dir, "stops").empty
    tk = t_grid_of(run_dir)
    per = []
    by_traj = dict(list(jumps.groupby("traj")[["t", "dn"]]))
    for tr, start in n0.items():
        j = by_traj.get(tr, jumps.iloc[:0])
        steps = np.concatenate([[0], np.cumsum(j["dn"].to_numpy())])
        per.append(start + steps[np.searchsorted(j["t"].to_numpy(), tk, side="right")].astype(float))

    def jack(stat):
        parts = np.array_split(np.arange(len(per)), 20)
        loo = np.array([stat(np.concatenate([v for i, v in enumerate(per) if not (p[0] <= i <= p[-1])]))
                        for p in parts])
        return stat(np.concatenate(per)), np.sqrt(19 / 20 * ((loo - loo.mean()) ** 2).sum())

    ms = mode_stats(run_dir, progress=False)
    for got, stat in ((ms.N, np.mean), (ms.g2, lambda v: np.mean(v * (v - 1)) / np.mean(v) ** 2)):
        ref = jack(stat)
        assert got[0] == pytest.approx(ref[0], rel=1e-12) and got[1] == pytest.approx(ref[1], rel=1e-9)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """The README's run (paper_double_dot, t_end = 200, steady start), fewer trajectories: 1/escape(0) = 219 > t_end."""
    from pathlib import Path

    from sim.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "runs" / "paper_double_dot.toml")
    out = tmp_path_factory.mktemp("readme") / "traj"
    run_trajectories(rate_model(cfg), engine="ssa", ntraj=20000, t_end=200.0, n_points=11, seed=1,
                     initial="steady", out_dir=out, config=cfg, progress=False)
    return out


def test_waiting_times_of_the_readme_run_agree_or_are_marked_not_estimable(readme_run, capsys, monkeypatch):
    import analysis.cli.app as cli

    st = run_stats(readme_run, progress=False)
    w = st.waiting
    ok = w[w["estimable"]]
    bad = w[~w["estimable"] & (w["n_first"] > 0)]
    # after an absorption the mode is mostly empty and waits ~ 1/escape(0) = 219 > t_end: not estimable,
    # and no number is printed for them
    assert set(bad["first"]) == {"LR:absorption", "RL:absorption", "ph:absorption"}
    assert (bad["censored"] > 0.3).all() and bad[["probability", "mean"]].isna().all().all()
    # after an emission (n >= 1, escape >= 0.77) every wait is seen: estimates agree with the exact ones
    assert set(ok["first"]) >= {"LR:emission"} and (ok["censored"] <= ok["probability_stderr"]).all()
    big = ok[ok["n"] > 100]
    assert len(big) >= 4
    zp = (big["probability"] - big["probability_exact"]) / big["probability_stderr"]
    zm = (big["mean"] - big["mean_exact"]) / big["mean_stderr"]
    assert np.all(np.abs(zp) < 4) and np.all(np.abs(zm) < 4), big.assign(zp=zp, zm=zm)
    monkeypatch.setattr(cli, "PLUGINS", ("analysis.cli.stats",))
    assert main(["stats", str(readme_run), "--json", "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out)
    rec = [r for r in d["waiting_times"] if r["first"] == "LR:absorption" and r["second"] == "LR:emission"][0]
    assert rec["estimable"] is False and rec["probability"] is None and rec["probability_exact"] > 0.98


def test_unstable_run_has_no_stationary_statistics_and_fits_the_growth_rate(runaway, tmp_path, capsys, monkeypatch):
    import analysis.cli.app as cli
    from analysis.mode_stats import growth_stats

    out, res, kappa = runaway
    s = res.summary()
    assert s["stable"] is False and s["growth_rate"] == pytest.approx(-kappa)
    assert s["N_final"] is None and "cap" in s["N_final_note"]  # not the mean of the few below the cap
    st = run_stats(out, progress=False)
    assert not st.stable and st.cumulants.empty and st.waiting.empty
    g = growth_stats(out, progress=False)
    lam, err, exact = g.growth_rate
    assert exact == pytest.approx(-kappa) and 0 < err < 0.05 * exact
    assert abs(lam - exact) < 4 * err, (lam, err, exact)
    fp_mean, fp_err, fp_exact = g.first_passage
    assert g.cap == 999 and g.n_capped == 3000 and abs(fp_mean - fp_exact) < 4 * fp_err
    monkeypatch.setattr(cli, "PLUGINS", ("analysis.cli.stats",))
    assert main(["stats", str(out), "--no-progress", "--out", str(tmp_path / "s")]) == 0
    text = capsys.readouterr().out
    assert "unstable" in text and "growth rate" in text and "g2" not in text and "cumulant rates (per" not in text
    assert (tmp_path / "s" / "growth.png").is_file() and not (tmp_path / "s" / "cumulants.png").exists()
    assert main(["stats", str(out), "--json", "--no-progress"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["cumulants"] == [] and "mode" not in d
    assert d["growth"]["growth_rate"]["exact"] == pytest.approx(-kappa)


@pytest.mark.parametrize(("V", "initial", "cutoff"), [(0.6, "thermal:0.4", None), (1.5, "fock:1", 14)])
def test_readers_give_the_same_numbers_from_the_grid_table_and_from_the_jumps(tmp_path, V, initial, cutoff):
    """A run that stores every N(t) row and one that keeps only n0 and the jumps: identical statistics.

    The first path reads the kernel's rows; the second rebuilds the samples as runs of equal values
    (sim.trajectories.table.grid_segments). Stable and runaway (with stops at the cap) runs.
    """
    from analysis.mode_stats import first_passage_times, growth_stats, mode_stats

    cfg = make_config(conductor={"kind": "double_dot", "hopping": 0.2, "coupling": 0.3},
                      bias={"V": V, "T_e": 0.4}, phonon_bath={"T": 0.3, "gamma": 0.2})
    m = rate_model(cfg)
    kw = dict(engine="ssa", ntraj=600, t_end=40.0, n_points=33, seed=2, initial=initial, cutoff=cutoff,
              batch_size=250, config=cfg, progress=False)
    a = run_trajectories(m, **kw, out_dir=tmp_path / "grid", store_grid=True)
    b = run_trajectories(m, **kw, out_dir=tmp_path / "jumps")
    assert (tmp_path / "grid" / "trajectories.parquet").is_dir()
    assert not (tmp_path / "jumps" / "trajectories.parquet").exists()
    assert (a.n_stopped > 0) == (V > 1) and a.n_stopped == b.n_stopped and a.n_jumps == b.n_jumps
    for t_min in (0.0, 7.3):
        x, y = mode_stats(tmp_path / "grid", t_min, progress=False), mode_stats(tmp_path / "jumps", t_min, progress=False)
        assert x.to_dict() == y.to_dict()
        pd.testing.assert_frame_equal(x.fock, y.fock)
    np.testing.assert_array_equal(first_passage_times(tmp_path / "grid", 3), first_passage_times(tmp_path / "jumps", 3))
    if V > 1:
        g1, g2 = growth_stats(tmp_path / "grid", progress=False), growth_stats(tmp_path / "jumps", progress=False)
        assert g1.growth_rate == g2.growth_rate
        pd.testing.assert_frame_equal(g1.curve, g2.curve)


def test_first_passage_reports_a_mean_only_when_every_trajectory_arrived(tmp_path, capsys, monkeypatch):
    """Stable mode, steady start, level 1: many never arrive by t_end, so no mean; the fraction matches the exact one."""
    import analysis.cli.app as cli

    cfg = make_config(bias={"V": 0.5, "T_e": 0.1})
    out = tmp_path / "run"
    run_trajectories(rate_model(cfg), engine="ssa", ntraj=4000, t_end=50.0, n_points=11, seed=5, initial="steady",
                     out_dir=out, config=cfg, progress=False)
    monkeypatch.setattr(cli, "PLUGINS", ("analysis.cli.stats",))
    assert main(["stats", str(out), "--json", "--first-passage", "1", "--no-progress"]) == 0
    f = json.loads(capsys.readouterr().out)["first_passage"]
    assert 0 < f["n_reached"] < f["ntraj"] and f["mean"] is None and "not estimable" in f["note"]
    assert abs(f["probability_reached"] - f["probability_reached_exact"]) < 4 * f["probability_reached_stderr"]
    assert f["exact_mean"] > 0


def test_stats_refuses_a_run_too_big_for_the_memory_budget(run_dir, monkeypatch, capsys):
    """The per-trajectory totals are sized before they are allocated: exit 2 naming the size, not an OOM kill."""
    import sim.guards

    monkeypatch.setattr(sim.guards, "MEMORY_BUDGET", 1000 * 64 * 10)  # below what 1000 trajectories x 10 labels need
    assert main(["stats", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ehp stats on 1000 trajectories" in err[0] and "fewer trajectories" in err[0]
    monkeypatch.setattr(sim.guards, "MEMORY_BUDGET", 1000 * 64 * 100)  # room for 10 labels and 90 quantities
    assert main(["stats", str(run_dir), "--no-progress"]) == 0
