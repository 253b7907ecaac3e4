"""Trajectory statistics of a seeded run against the exact tilted-generator values."""

from __future__ import annotations

import json

import numpy as np
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
    assert set(rec) == {"quantity", "order", "estimate", "stderr", "exact"}
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


def test_first_passage_to_runaway(tmp_path, capsys, monkeypatch):
    """Above threshold: mean first-passage time from vacuum to n = 20 vs the birth-death formula."""
    import analysis.cli.app as cli
    from analysis.mode_stats import exact_first_passage_mean, first_passage_times

    cfg = make_config(bias={"V": 2.0, "T_e": 0.1})
    out = tmp_path / "runaway"
    run_trajectories(rate_model(cfg), engine="ssa", ntraj=3000, t_end=40.0, n_points=11, seed=3, initial="vacuum",
                     out_dir=out, config=cfg, progress=False)
    fp = first_passage_times(out, 20)
    assert np.all(np.isfinite(fp))  # kappa t_end ~ -33: every trajectory runs away within the window
    exact = exact_first_passage_mean(out, 20)
    assert abs(fp.mean() - exact) < 4 * fp.std(ddof=1) / np.sqrt(fp.size)
    monkeypatch.setattr(cli, "PLUGINS", ("analysis.cli.stats",))
    assert main(["stats", str(out), "--json", "--first-passage", "20", "--out", str(tmp_path / "s")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["first_passage"]["exact_mean_from_vacuum"] == pytest.approx(exact)
    assert d["stable"] is False and (tmp_path / "s" / "first_passage.png").is_file()
