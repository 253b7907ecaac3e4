"""The ``ehp`` command line contract (README "Command line", docs/config.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAPER = str(ROOT / "runs" / "paper_double_dot.toml")
KEYS = {"channels", "gamma_e", "emission_total", "kappa", "kappa_over_omega", "stable", "near_threshold", "growth_rate", "N",
        "T_eff", "mu_eff", "J", "J_ph", "Ie", "eta", "n_ph", "n_modes", "margin", "modes"}


def _json(capsys, argv):
    assert main(argv) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


def test_steady_json_keys(capsys):
    d, _ = _json(capsys, ["steady", PAPER, "--json"])
    assert set(d) == KEYS
    assert set(d["channels"]) == {"LL", "RR", "LR", "RL"}
    for rec in d["channels"].values():
        assert set(rec) == {"mu", "emission", "absorption", "damping", "J", "Ie"}
    assert d["stable"] is True and d["N"] > 0
    assert d["J"] == pytest.approx(d["J_ph"], rel=1e-10)
    assert d["channels"]["LR"]["mu"] == pytest.approx(0.5)


def test_steady_unstable_is_an_answer(capsys):
    d, err = _json(capsys, ["steady", PAPER, "--set", "bias.V=2.0", "--json"])
    assert d["stable"] is False and d["N"] is None and d["J"] is None and d["eta"] is None
    assert d["growth_rate"] > 0 and d["kappa"] == pytest.approx(-d["growth_rate"])
    assert "unstable" in err and "growth rate" in err


def test_steady_with_landauer(capsys):
    d, _ = _json(capsys, ["steady", PAPER, "--landauer", "full", "--json"])
    assert d["landauer"]["level"] == "full"
    assert d["landauer"]["J"] > 0 and d["landauer"]["J_err"] < 1e-8


def test_threshold_json_and_no_sign_change(capsys):
    d, _ = _json(capsys, ["threshold", PAPER, "--vary", "bias.V", "--between", "0", "2", "--json"])
    assert 0 < d["threshold"] < 2 and d["slope"] < 0
    assert main(["threshold", PAPER, "--vary", "bias.V", "--between", "0", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "does not change sign" in err and "kappa(0)" in err and "kappa(0.5)" in err


def test_human_readable_output(capsys):
    assert main(["steady", PAPER]) == 0
    out = capsys.readouterr().out
    assert "kappa" in out and "LR" in out and "stable" in out


def test_config_command_prints_resolved_toml(capsys):
    import tomllib

    assert main(["config", PAPER, "--set", "bias.mu_L=0.4"]) == 0
    d = tomllib.loads(capsys.readouterr().out)
    assert d["bias"]["mu_L"] == 0.4 and d["bias"]["mu_R"] == -0.25


def test_console_script_version_and_exit_codes():
    r = subprocess.run([sys.executable, "-m", "analysis.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("ehp ")
    r = subprocess.run([sys.executable, "-m", "analysis.cli", "steady", PAPER, "--set", "mode.omega=-1"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "mode.omega must be > 0, got -1" in r.stderr and "Traceback" not in r.stderr


def test_steady_lindblad_record(capsys):
    d, _ = _json(capsys, ["steady", PAPER, "--lindblad", "--json"])
    assert d["lindblad"]["N"] == pytest.approx(d["N"], rel=1e-8)
    assert d["lindblad"]["tail_probability"] < 1e-10
    d, _ = _json(capsys, ["steady", PAPER, "--lindblad", "--json", "--set", "bias.V=2"])
    assert d["lindblad"] == {"N": None, "cutoff": None, "tail_probability": None}


@pytest.mark.parametrize("method", ["rate", "population", "lindblad"])
def test_evolve_writes_table_and_resumes(tmp_path, capsys, method):
    import pandas as pd

    out = tmp_path / method
    assert main(["evolve", PAPER, "--t-end", "10", "--n-points", "21", "--method", method, "--out", str(out)]) == 0
    tab = pd.read_parquet(out / "evolution.parquet")
    assert list(tab.columns[:5]) == ["t", "N", "J", "J_ph", "Ie"] and len(tab) == 21
    assert (out / "metadata.json").is_file() and (out / "summary.json").is_file()
    ss = json.loads(json.dumps(__import__("sim").steady_state(__import__("sim").load_config(PAPER)).to_dict()))
    assert tab["N"].iloc[-1] == pytest.approx(ss["N"], rel=1e-3)  # kappa t_end = 7.4: e^-7.4 < 1e-3
    capsys.readouterr()
    assert main(["evolve", PAPER, "--t-end", "10", "--n-points", "21", "--method", method, "--out", str(out)]) == 0
    assert "nothing recomputed" in capsys.readouterr().out
    assert main(["evolve", PAPER, "--t-end", "12", "--n-points", "21", "--method", method, "--out", str(out)]) == 2
    assert main(["evolve", PAPER, "--t-end", "12", "--n-points", "21", "--method", method, "--out", str(out),
                 "--overwrite"]) == 0


def test_evolve_unstable_stops_with_time(tmp_path, capsys):
    out = tmp_path / "u"
    assert main(["evolve", PAPER, "--set", "bias.V=2", "--t-end", "50", "--method", "population",
                 "--cutoff", "200", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["stable"] is False and 0 < s["stopped_at"] < 50
    assert "unstable" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["evolve", PAPER, "--t-end", "5", "--set", "run.initial=fock:-1", "--out", "{tmp}/a"],
    ["evolve", PAPER, "--t-end", "5", "--set", "run.initial=thermal:abc", "--out", "{tmp}/a"],
    ["evolve", PAPER, "--t-end", "5", "--cutoff", "0", "--out", "{tmp}/a"],
    ["evolve", PAPER, "--t-end", "5", "--cutoff", "2", "--set", "run.initial=fock:5", "--out", "{tmp}/a"],
    ["sweep", PAPER, "--grid", "bias.V=0:1:3", "--scheduler", "tcp://nohost", "--out", "{tmp}/b"],
    ["trajectories", PAPER, "--ntraj", "10", "--t-end", "5", "--scheduler", "tcp://nohost", "--out", "{tmp}/c"],
    ["stats", "{tmp}"],
    ["evolve", PAPER, "--t-end", "5"],
    ["steady", PAPER, "--landauer", "middle"],
])
def test_bad_command_lines_exit_2_with_one_line(tmp_path, capsys, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors exit from parse_args
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().count("\n") == 0 and "error" in err


def test_steady_lindblad_beyond_its_cutoff_cap_is_null_not_a_crash(capsys):
    """Near threshold N ~ 14 needs ~340 Fock levels; the Lindblad solver's cap is 150."""
    d, err = _json(capsys, ["steady", PAPER, "--set", "bias.V=1.045", "--lindblad", "--json"])
    assert d["stable"] is True and d["N"] > 10
    assert d["lindblad"]["N"] is None and d["lindblad"]["tail_probability"] > 1e-10
    assert "lindblad: truncation" in err


@pytest.mark.parametrize("method", ["rate", "population"])
def test_evolve_with_a_bias_step_table(tmp_path, method):
    """A step V: 0 -> 0.5 at t = 20: N(t) is the piecewise exponential with the two kappa's."""
    import pandas as pd

    import sim

    csv = tmp_path / "step.csv"
    csv.write_text("t,mu_L,mu_R\n0,0.0,0.0\n20,0.0,0.0\n20,0.25,-0.25\n60,0.25,-0.25\n")
    out = tmp_path / method
    assert main(["evolve", PAPER, "--t-end", "30", "--n-points", "31", "--method", method,
                 "--bias-table", str(csv), "--out", str(out)]) == 0
    tab = pd.read_parquet(out / "evolution.parquet")
    cfg = sim.load_config(PAPER)
    m1 = sim.rate_model(cfg.with_value("bias.V", 0.0))
    m2 = sim.rate_model(cfg.with_value("bias.V", 0.5))
    N20 = float(m1.N_t(20.0, 0.0))
    expect = np.where(tab["t"] <= 20, m1.N_t(tab["t"], 0.0), m2.N_t(tab["t"] - 20, N20))
    np.testing.assert_allclose(tab["N"], expect, rtol=1e-6, atol=1e-12)
    assert list(tab["mu_L"].iloc[[0, -1]]) == [0.0, 0.25]


def test_evolve_rejects_a_bad_bias_table(tmp_path, capsys):
    csv = tmp_path / "bad.csv"
    csv.write_text("t,muL,mu_R\n0,0,0\n")
    assert main(["evolve", PAPER, "--t-end", "5", "--bias-table", str(csv), "--out", str(tmp_path / "o")]) == 2
    assert "columns t, mu_L, mu_R" in capsys.readouterr().err


def test_stats_on_a_missing_directory_says_it_does_not_exist(capsys, tmp_path):
    assert main(["stats", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "nope" in err[0]
