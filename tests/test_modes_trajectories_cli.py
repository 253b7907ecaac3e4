"""Several modes through `ehp trajectories`, `ehp stats`, `ehp crosscheck` and `ehp run` without [study]
(docs/modes.md): tables, seeds, refusals, and trajectory estimates against the exact routes."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from analysis.cli import main
from sim.config import load_config, to_toml
from sim.covariance import mode_system_from_config
from sim.io import read_table
from sim.landauer import landauer
from sim.trajectories import read_run as read_mode_run
from sim.trajectories.table import MODE_JUMP_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
WATERWHEEL = ROOT / "runs" / "waterwheel.toml"


def _base() -> dict:
    """The waterwheel pair with couplings x3 at V = 1.3 (below V_c): stable, ~0.6 jumps per unit time."""
    d = tomllib.loads(WATERWHEEL.read_text())
    d.pop("study")
    d["conductor"]["M"] = (3 * np.array(d["conductor"]["M"])).tolist()
    d["bias"]["V"] = 1.3
    d["run"] = {"t_end": 20.0, "n_points": 11, "ntraj": 40, "initial": "steady", "seed": 5}
    return d


def _secular(d: dict) -> dict:
    """Split quanta 1 and 1.3 with coherence_width = 0: every cluster one mode, no cross terms."""
    d = copy.deepcopy(d)
    d["mode"] = {"omega": [1.0, 1.3], "coherence_width": 0.0}
    d["run"].update(ntraj=1000, t_end=100.0, engine="ssa")
    return d


def _write(tmp_path: Path, name: str, d: dict) -> str:
    p = tmp_path / name
    p.write_text(to_toml(d))
    return str(p)


def _ok(capsys, argv):
    assert main(argv) == 0
    return capsys.readouterr()


def _z(est, err, exact):
    return abs(est - exact) / err


# --------------------------------------------------------------------------- trajectories


def test_mcsolve_tables_labels_and_seeds(tmp_path, capsys):
    cfg = _write(tmp_path, "x.toml", _base())
    argv = ["trajectories", cfg, "--engine", "mcsolve", "--ntraj", "12", "--t-end", "8", "--no-progress"]
    _ok(capsys, [*argv, "--out", str(tmp_path / "a")])
    out = _ok(capsys, [*argv, "--out", str(tmp_path / "b"), "--batch-size", "5"]).out
    assert "12  (3 of 3 batches computed)" in out
    jumps, ops = read_table(tmp_path / "a", "jumps"), read_table(tmp_path / "a", "operators")
    assert tuple(jumps.columns) == MODE_JUMP_COLUMNS and len(jumps) > 20
    assert {"channel", "direction", "rate", "mode", "w_0", "w_1", "phi_0", "phi_1"} <= set(ops.columns)
    # one cluster of two degenerate modes: every electronic operator spans both modes (mode -1), ph ones one mode
    e = ops["channel"].astype(str) != "ph"
    assert (ops.loc[e, "mode"] == -1).all() and set(ops.loc[~e, "mode"]) == {0, 1}
    np.testing.assert_allclose(ops["w_0"] ** 2 + ops["w_1"] ** 2, 1.0, rtol=1e-12)
    # jumps.op indexes operators.parquet: its channel, direction and mode are the jump's
    row = ops.set_index("op").loc[jumps["op"].to_numpy()]
    assert (row["channel"].astype(str).to_numpy() == jumps["channel"].astype(str).to_numpy()).all()
    assert (row["direction"].astype(str).to_numpy() == jumps["direction"].astype(str).to_numpy()).all()
    assert (row["mode"].to_numpy() == jumps["mode"].to_numpy()).all()
    # same seed, other batching: the same tables
    a, b = read_mode_run(tmp_path / "a"), read_mode_run(tmp_path / "b")
    pd.testing.assert_frame_equal(a.jumps, b.jumps)
    pd.testing.assert_frame_equal(a.operators, b.operators)
    np.testing.assert_array_equal(a.N, b.N)
    assert a.N.shape == (12, 2, 11) and a.jumps["channel"].dtype == "category"
    # the same command again resumes every batch; another seed into the same directory is refused
    assert "0 of 12 batches computed, 12 resumed" in _ok(capsys, [*argv, "--out", str(tmp_path / "a")]).out
    assert main([*argv, "--out", str(tmp_path / "a"), "--seed", "6"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ehp: error: ") and err.count("\n") == 1
    # the several-mode path reads --scheduler (mode_run's batches run on it): a bad one is refused before any work
    assert main([*argv, "--out", str(tmp_path / "c"), "--scheduler", "bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ehp: error: ") and "--scheduler" in err and "'bogus'" in err and not (tmp_path / "c").exists()


def test_ssa_refused_with_cross_terms_naming_mcsolve(tmp_path, capsys):
    cfg = _write(tmp_path, "x.toml", _base())
    assert main(["trajectories", cfg, "--engine", "ssa", "--out", str(tmp_path / "r")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("ehp: error: ") and err.count("\n") == 1
    assert "mcsolve" in err and "cross terms" in err
    assert not (tmp_path / "r" / "jumps.parquet").exists()


# --------------------------------------------------------------------------- stats


def test_ssa_without_cross_terms_stats_against_the_exact_values(tmp_path, capsys):
    d = _secular(_base())
    cfg = _write(tmp_path, "s.toml", d)
    _ok(capsys, ["trajectories", cfg, "--out", str(tmp_path / "r"), "--no-progress"])
    ops = read_table(tmp_path / "r", "operators")
    assert (ops["mode"] >= 0).all()  # no cross terms: every jump acts on one mode
    st = json.loads(_ok(capsys, ["stats", str(tmp_path / "r"), "--json"]).out)
    assert st["n_modes"] == 2 and st["ntraj"] == 1000 and st["exact_note"] is None
    rates = [r for r in st["rates"] if r["exact"] > 2e-4]
    assert len(rates) >= 6
    for r in rates + [r for r in st["operator_rates"] if r["exact"] > 2e-4]:
        assert _z(r["rate"], r["stderr"], r["exact"]) < 4, r
    ss = mode_system_from_config(load_config(cfg)).steady_state()  # independent: the covariance route
    c1 = {c["quantity"]: c for c in st["cumulants"] if c["order"] == 1}
    assert c1["charge"]["exact"] == pytest.approx(ss.Ie, rel=1e-6)
    assert c1["energy"]["exact"] == pytest.approx(ss.J, rel=1e-6)
    assert _z(c1["charge"]["estimate"], c1["charge"]["stderr"], ss.Ie) < 4
    c2 = next(c for c in st["cumulants"] if c["quantity"] == "charge" and c["order"] == 2)
    assert c2["exact"] > ss.Ie and _z(c2["estimate"], c2["stderr"], c2["exact"]) < 4  # super-Poissonian
    for p in st["populations"]:
        assert p["exact"] == pytest.approx(ss.N[p["mode"]], rel=1e-12)
        assert _z(p["estimate"], p["stderr"], p["exact"]) < 4
    # text and --out through a run directory
    out = _ok(capsys, ["stats", str(tmp_path / "r"), "--out", str(tmp_path / "st")]).out
    assert "per collapse operator" in out and "cumulant rates" in out
    assert len(pd.read_parquet(tmp_path / "st" / "operator_rates.parquet")) == len(ops)
    assert json.loads((tmp_path / "st" / "metadata.json").read_text())["status"] == "complete"


def test_mcsolve_stats_per_label_rates_and_a_too_large_space(tmp_path, capsys):
    cfg = _write(tmp_path, "x.toml", _base())
    _ok(capsys, ["trajectories", cfg, "--engine", "mcsolve", "--out", str(tmp_path / "r"), "--no-progress"])
    st = json.loads(_ok(capsys, ["stats", str(tmp_path / "r"), "--json"]).out)
    labels = [r for r in st["rates"] if r["exact"] > 0.02]
    assert len(labels) == 4  # LL, RR, RL absorption and LR emission
    for r in labels:
        assert _z(r["rate"], r["stderr"], r["exact"]) < 4, r
    assert sum(r["count"] for r in st["operator_rates"]) == sum(r["count"] for r in st["rates"])
    # a sector over the exact route's budget: estimates stay, the exact column says why it is empty
    from analysis.stats_modes import mode_run_stats, system_of_run

    ident = json.loads((tmp_path / "r" / "metadata.json").read_text())["identity"]
    r = read_mode_run(tmp_path / "r")
    jumps, N, ops = r.jumps, r.N, r.operators
    import sim.counting_modes as cm

    orig = cm.mode_counting
    try:
        cm.mode_counting = lambda *a, **k: orig(*a, **{**k, "max_size": 10})
        ms = mode_run_stats(jumps, ops, N, system_of_run(ident), 20.0, 0.0)
    finally:
        cm.mode_counting = orig
    assert ms.exact_note.startswith("exact values: not computed, the truncated space exceeds")
    assert ms.rates["exact"].isna().all() and ms.rates["rate"].notna().all()


# --------------------------------------------------------------------------- crosscheck


def test_crosscheck_two_modes(tmp_path, capsys):
    d = _base()
    cfg = _write(tmp_path, "x.toml", d)
    rep = json.loads(_ok(capsys, ["crosscheck", cfg, "--json", "--ntraj", "20", "--t-end", "10",
                                  "--no-progress"]).out)
    assert rep["stable"] is True
    rows = {(r["route"], r["quantity"]): r for r in rep["rows"] if r["level"] != "full"}
    ss = mode_system_from_config(load_config(cfg)).steady_state()
    assert rows[("covariance", "J")]["value"] == pytest.approx(ss.J, rel=1e-12)
    assert rows[("covariance", "N")]["value"] == pytest.approx(ss.N.sum(), rel=1e-12)
    for route in ("lindblad", "trajectories", "landauer"):
        for q in ("J", "J_ph", "Ie"):
            assert rows[(route, q)]["within"] is True, rows[(route, q)]
    assert rows[("lindblad", "N")]["within"] is True and rows[("trajectories", "N")]["within"] is True
    # several modes now have both Landauer levels, with the one-mode columns
    assert {r["level"] for r in rep["rows"] if r["route"] == "landauer"} == {"lowest", "full"}
    assert {"rate_equation", "center", "deviation", "tolerance", "within"} <= set(rep["rows"][0])
    for r in rep["rows"]:  # every row carries the center it is checked against: within = |value - center| <= tol
        if r["within"] is not None:
            assert r["within"] == (abs(r["value"] - r["center"]) <= r["tolerance"]), r
    untested = sum(r["within"] is None and r["route"] != "covariance" for r in rep["rows"])
    assert (f"({untested} row" in rep["message"]) if untested else "not compared" not in rep["message"]
    # Landauer lowest order with several modes = the sum of each mode's one-mode Landauer (configs by hand)
    J = Ie = 0.0
    for k in range(2):
        one = copy.deepcopy(d)
        one["conductor"]["M"] = d["conductor"]["M"][k]
        one["mode"] = {"omega": d["mode"]["omega"][k]}
        low = landauer(load_config(_write(tmp_path, f"one{k}.toml", one)), "lowest")
        J, Ie = J + low.J, Ie + low.Ie
    assert rows[("landauer", "J")]["value"] == pytest.approx(J, rel=1e-12)
    assert rows[("landauer", "Ie")]["value"] == pytest.approx(Ie, rel=1e-12)


# --------------------------------------------------------------------------- ehp run


def test_run_without_study_several_modes(tmp_path, capsys):
    d = tomllib.loads(WATERWHEEL.read_text())
    d.pop("study")
    cfg = _write(tmp_path, "pair.toml", d)
    res = _ok(capsys, ["run", cfg, "--out", str(tmp_path / "out"), "--no-progress"])
    assert "collective_runaway" in res.err
    thr = pd.read_parquet(tmp_path / "out" / "thresholds.parquet")
    Vc = thr[(thr["variant"] == "cross terms") & (thr["splitting"] == 0)]["threshold"].iloc[0]

    def margin(V):  # independent: the covariance route at that bias
        c = load_config(cfg, [f"bias.V={V}"])
        return -mode_system_from_config(c).growth_rate
    assert Vc == pytest.approx(brentq(margin, 1.0, 3.0, xtol=1e-12), rel=1e-6)
    assert 0 < Vc < 2 * d["bias"]["V"]
