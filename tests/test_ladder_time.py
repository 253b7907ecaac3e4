"""Time domain on ladders of levels (docs/ladder_time.md): population, Lindblad and ssa routes, rupture statistics.

Checks that could fail: the survival's decay rate and integral against the elimination route of
sim.rupture (an independent algorithm), the Lindblad route against the exact propagator, the harmonic
ladder against the birth-death routes level by level, the Gibbs state at zero bias, the ssa rupture
times against the exact MFPT (4 standard errors) and the exact survival (Kolmogorov-Smirnov), and
bad input in one line with exit code 2.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.cli import main
from sim.config import ConfigError, parse_config
from sim.ladder import harmonic_ladder
from sim.ladder_time import (
    evolve_ladder,
    evolve_ladder_lindblad,
    exact_mfpt,
    ladder_chain,
    ladder_initial,
    mfpt_from,
    restricted_mean,
    survival,
)
from sim.level_chain import level_chain
from sim.model import rate_model
from sim.registry import SUPPORT, ladder_support_table
from sim.rupture import escape
from sim.system import System
from sim.trajectories import run_trajectories

TRUNC = {
    "conductor": {"kind": "flat", "K_LL": 0.0, "K_RR": 1.0, "K_LR": 0.2, "K_RL": 0.2},
    "mode": {"omega": 1.0, "potential": {"kind": "truncated", "bound": 3}},
    "bias": {"V": 1.5, "T_e": 0.1},
    "phonon_bath": {"T": 0.1, "gamma": 0.02},
}
MORSE = {
    "conductor": {"kind": "flat", "K_LL": 0.0, "K_RR": 1.0, "K_LR": 0.3, "K_RL": 0.3},
    "mode": {"omega": 1.0, "potential": {"kind": "morse", "D": 1.5}},
    "bias": {"V": 2.0, "T_e": 0.05},
    "phonon_bath": {"T": 0.05, "gamma": 0.01},
}
HARMONIC = {
    "conductor": {"kind": "double_dot", "eps": [0.5, -0.5], "hopping": 0.0, "gamma_L": 0.5, "gamma_R": 0.5,
                  "coupling": 0.5},
    "mode": {"omega": 1.0},
    "bias": {"V": 0.6, "T_e": 0.1},
    "phonon_bath": {"T": 0.1, "gamma": 0.05},
}


def _cfg(base, **sets):
    c = parse_config(json.loads(json.dumps(base)))
    for k, v in sets.items():
        c = c.with_value(k.replace("__", "."), v)
    return c


def _harmonic_chain(cfg, cutoff):
    b = cfg.bias
    return level_chain(harmonic_ladder(cfg.mode.omega, cutoff), cfg.conductor.build(), b.mu_L, b.mu_R, b.T_L, b.T_R,
                       cfg.phonon_bath.gamma, cfg.phonon_bath.T)


def _toml(path, base, **run):
    lines = []

    def emit(prefix, d):
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {json.dumps(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                emit(f"{prefix}.{k}" if prefix else k, v)

    emit("", {**json.loads(json.dumps(base)), "run": run})
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# --------------------------------------------------------------------------- population route against the rupture rate


@pytest.mark.parametrize("base", [TRUNC, MORSE], ids=["truncated", "morse"])
def test_survival_decays_at_the_escape_eigenvalue_and_integrates_to_the_mfpt(base):
    ch = ladder_chain(_cfg(base))
    e = escape(ch)
    assert e.eigen_rate is not None
    T = e.mfpt[0]
    t = np.linspace(0.0, 40 * T, 4001)
    r = evolve_ladder(ch, t)
    # probability is conserved over all levels (absorbing ones keep what reaches them)
    assert np.allclose(r.P.sum(axis=1), 1.0, rtol=0, atol=1e-11)
    assert r.S[0] == 1.0 and np.all(np.diff(r.S) <= 1e-15)
    # -d ln S/dt = F/S tends to lambda_1 (the decay rate of the slowest transient eigenmode)
    assert r.hazard[-1] == pytest.approx(e.eigen_rate, rel=1e-6)
    # -dS/dt = F: S(t_k) - S(t_{k+1}) against the trapezoid of F over the step (second order in dt)
    dS = -np.diff(r.S)[20:]  # after the first rise of F from 0 (the climb from level 0), which a step does not resolve
    trap = (0.5 * (r.escape_flux[1:] + r.escape_flux[:-1]) * np.diff(t))[20:]
    assert np.max(np.abs(dS - trap)) < 1e-3 * np.max(dS)
    # MFPT = int_0^inf S dt: the exact integral (Van Loan) and the elimination of sim.rupture agree
    # (the exponential of ||G|| 60 T ~ 1e5 by scaling and squaring loses ~2^17 eps of relative precision)
    assert restricted_mean(ch, r.p0, 60 * T) == pytest.approx(e.mfpt[0], rel=1e-7)
    assert mfpt_from(ch, r.p0) == pytest.approx(e.mfpt[0], rel=1e-9)
    assert np.trapezoid(r.S, t) == pytest.approx(e.mfpt[0], rel=1e-5)
    # survival at arbitrary (unsorted) times is the same propagator
    pick = np.array([t[1000], t[10], t[3000]])
    assert np.allclose(survival(ch, pick), r.S[[1000, 10, 3000]], rtol=1e-9, atol=0)


def test_population_table_and_level_initial_states():
    ch = ladder_chain(_cfg(TRUNC))
    t = np.linspace(0.0, 500.0, 11)
    r = evolve_ladder(ch, t, "fock:2")
    df = r.to_frame()
    for c in ("t", "N", "S", "hazard", "escape_flux", "E_mode", "J", "J_ph", "Ie", "P_0", "P_1", "P_2", "P_absorbed"):
        assert c in df.columns
    assert df["N"].iloc[0] == 2.0 and df["E_mode"].iloc[0] == pytest.approx(2.5)
    assert np.allclose(df[["P_0", "P_1", "P_2", "P_absorbed"]].sum(axis=1), 1.0, atol=1e-12)
    # thermal:T= is Boltzmann over the bound levels; the MFPT from it is the weighted MFPT of every level
    p = ladder_initial("thermal:T=0.7", ch)
    E = ch.ladder.E[:3]
    assert np.allclose(p[:3], np.exp(-(E - E[0]) / 0.7) / np.exp(-(E - E[0]) / 0.7).sum()) and p[3] == 0
    assert exact_mfpt(ch, p) == pytest.approx(mfpt_from(ch, p), rel=1e-9)


# --------------------------------------------------------------------------- Lindblad route


@pytest.mark.parametrize("base", [TRUNC, MORSE], ids=["truncated", "morse"])
def test_lindblad_collapse_operators_give_the_population_route(base):
    ch = ladder_chain(_cfg(base))
    T = escape(ch).mfpt[0]
    t = np.linspace(0.0, 3 * T, 31)
    a = evolve_ladder(ch, t, "vacuum")
    b = evolve_ladder_lindblad(ch, t, "vacuum")
    # mesolve runs at atol 1e-12, rtol 1e-10 per step; over the run the populations agree to ~1e-8
    assert np.max(np.abs(a.P - b.P)) < 1e-7
    assert np.max(np.abs(a.S - b.S)) < 1e-7


def test_evolve_dispatches_on_the_ladder():
    from sim.routes import evolve

    cfg = _cfg(TRUNC)
    t = np.linspace(0.0, 200.0, 5)
    a = evolve(cfg, t, "population", "vacuum")
    b = evolve(cfg, t, "lindblad", "vacuum")
    assert a.route == "population" and b.route == "lindblad"
    assert np.allclose(a.S, b.S, atol=1e-8)
    assert a.provenance()["model"]["ladder"]["kind"] == "truncated"
    with pytest.raises(ConfigError, match="closed form"):
        evolve(cfg, t, "rate", "vacuum")


# --------------------------------------------------------------------------- harmonic limit and equilibrium


def test_harmonic_ladder_is_the_birth_death_population_route():
    from sim.population import evolve_population
    from sim.results import evolution_frame

    cfg = _cfg(HARMONIC)
    model = rate_model(cfg)
    cut = 40
    ch = _harmonic_chain(cfg, cut)
    t = np.linspace(0.0, 60.0, 61)
    a = evolve_ladder(ch, t, "fock:2")
    b = evolve_population(model, t, "fock:2", cut)
    assert np.max(np.abs(a.P - b.P)) < 1e-10
    assert np.allclose(a.N, b.N, rtol=1e-9, atol=1e-12)
    assert np.all(a.S == pytest.approx(1.0, abs=1e-12))  # nothing absorbs
    fa, fb = a.to_frame(), evolution_frame(model, t, b.N)
    for c in ("J", "J_ph", "Ie", "J_LR", "Ie_RL"):
        assert np.allclose(fa[c], fb[c], rtol=1e-8, atol=1e-12), c


def test_zero_bias_relaxes_to_gibbs_populations_and_stays_there():
    cfg = _cfg(HARMONIC, bias__V=0.0)  # one temperature everywhere: T_e = T_ph = 0.1
    ch = _harmonic_chain(cfg, 12)
    E = ch.ladder.E
    gibbs = np.exp(-(E - E[0]) / 0.1)
    gibbs /= gibbs.sum()
    r = evolve_ladder(ch, np.linspace(0.0, 400.0, 5), "fock:3")
    assert np.max(np.abs(r.P[-1] - gibbs)) < 1e-9
    s = evolve_ladder(ch, np.linspace(0.0, 50.0, 6), "steady")
    assert np.allclose(s.P[0], gibbs, rtol=1e-9) and np.max(np.abs(s.P - s.P[0])) < 1e-12
    assert np.max(np.abs(s.to_frame()["Ie"])) < 1e-12  # no current at zero bias


def test_harmonic_ssa_no_rupture_and_the_birth_death_mean():
    cfg = _cfg(HARMONIC, bias__V=0.0, bias__T_e=0.5, phonon_bath__T=0.5)  # equilibrium, n_ph = 1/(e^2 - 1)
    ch = _harmonic_chain(cfg, 30)
    res = run_trajectories(ch, engine="ssa", ntraj=4000, t_end=40.0, n_points=21, seed=11, initial="fock:2")
    assert res.n_stopped == 0 and len(res.stop_table()) == 0
    N_exact = evolve_ladder(ch, res.t, "fock:2").N
    z = (res.N_mean - N_exact)[1:] / res.N_sem[1:]
    assert np.max(np.abs(z)) < 4.5  # 20 grid points at 4.5 sigma: a false alarm below 1e-4
    assert res.N_mean[-1] == pytest.approx(float(rate_model(cfg).n_ph), abs=4 * res.N_sem[-1])


# --------------------------------------------------------------------------- ssa: rupture times


@pytest.mark.parametrize("base", [TRUNC, MORSE], ids=["truncated", "morse"])
def test_ssa_mean_rupture_time_is_the_exact_mfpt(base):
    cfg = _cfg(base)
    ch = ladder_chain(cfg)
    T = escape(ch).mfpt[0]
    res = run_trajectories(System(cfg), engine="ssa", ntraj=6000, t_end=40 * T, n_points=101, seed=5)
    r = res.summary()["rupture"]
    assert r["n_ruptured"] == 6000 and r["exact_fraction"] > 1 - 1e-12
    # the standard error of a mean of 6000 first-passage times; 4 se: a false alarm at 6e-5
    assert abs(r["mean_time"] - T) < 4 * r["se"]
    assert r["mfpt"] == pytest.approx(T, rel=1e-10)
    # the fraction not ruptured on the grid estimates S(t): binomial errors, 4 sigma everywhere
    S = evolve_ladder(ch, res.t).S
    S_hat = res.N_count / res.ntraj
    se = np.sqrt(np.maximum(S * (1 - S), 1e-300) / res.ntraj)
    assert np.max(np.abs(S_hat - S) / se) < 4.5


def test_ssa_from_a_thermal_start_gives_the_weighted_mfpt():
    cfg = _cfg(TRUNC)
    ch = ladder_chain(cfg)
    p0 = ladder_initial("thermal:T=0.8", ch)
    T = exact_mfpt(ch, p0)
    res = run_trajectories(System(cfg), engine="ssa", ntraj=4000, t_end=40 * T, n_points=11, seed=17,
                           initial="thermal:T=0.8")
    levels = res.initial_table()["n0"].to_numpy()
    # the initial levels follow p0 (chi-square with 2 degrees of freedom below its 0.1% point, 13.8)
    counts = np.bincount(levels, minlength=3)[:3]
    chi2 = float((((counts - 4000 * p0[:3]) ** 2) / (4000 * p0[:3])).sum())
    assert chi2 < 13.8
    r = res.summary()["rupture"]
    assert r["mfpt"] == pytest.approx(T, rel=1e-10) and abs(r["mean_time"] - T) < 4 * r["se"]


def test_ssa_rupture_time_distribution_against_the_exact_survival(tmp_path):
    """KS with a fixed seed. Under the null the scaled distance sqrt(n) D has the Kolmogorov law; we require D
    below its 1% critical value (kstwo.isf(0.01, n)). Censoring at t_end only lowers D (a supremum over a
    smaller range), so the test is conservative; for a fixed seed it is deterministic."""
    from analysis.rupture_stats import rupture_stats

    cfg = _cfg(MORSE)
    T = escape(ladder_chain(cfg)).mfpt[0]
    run_trajectories(System(cfg), engine="ssa", ntraj=3000, t_end=3 * T, n_points=61, seed=2024,
                     out_dir=tmp_path / "r")
    st = rupture_stats(tmp_path / "r")
    assert 0 < st.ks["censored"] < 3000  # t_end = 3 MFPT: some trajectories survive (about e^-3)
    assert st.ks["D"] < sps.kstwo.isf(0.01, 3000)
    r = st.rupture
    assert abs(r["mean_time"] - r["exact_mean_time"]) < 4 * r["se"]
    rm = r["restricted_mean"]
    assert abs(rm["value"] - rm["exact"]) < 4 * rm["se"]
    assert r["fraction"] == pytest.approx(r["exact_fraction"], abs=4 * math.sqrt(0.05 / 3000))
    # the exact survival of the stats table is the population route on the run's grid
    assert np.allclose(st.table["S_exact"], evolve_ladder(ladder_chain(cfg), st.table["t"].to_numpy()).S, atol=1e-12)


def test_ssa_jump_labels_seeds_and_run_directory(tmp_path):
    from sim import read_run

    cfg = _cfg(TRUNC)
    ch = ladder_chain(cfg)
    kw = {"engine": "ssa", "ntraj": 300, "t_end": 2000.0, "n_points": 41, "seed": 9}
    a = run_trajectories(System(cfg), **kw)
    b = run_trajectories(System(cfg), batch_size=37, **kw)
    c = run_trajectories(System(cfg), out_dir=tmp_path / "run", batch_size=100, **kw)
    assert c.n_jumps == a.n_jumps
    ja, jb = a.jump_table(), b.jump_table()
    pd.testing.assert_frame_equal(ja, jb)  # independent of the batch size
    E = ch.ladder.E
    assert np.allclose(ja["dE"], E[ja["to"]] - E[ja["from"]])
    assert np.array_equal(ja["dn"], ja["to"] - ja["from"])
    sign = ja["channel"].map({"LL": 0.0, "RR": 0.0, "LR": 1.0, "RL": -1.0, "ph": 0.0}).astype(float)
    assert np.allclose(ja["dQ"], sign * np.where(ja["dE"] >= 0, 1.0, -1.0))
    # a trajectory's levels chain: each jump starts where the previous one ended; the last enters an absorbing level
    for _, g in ja.groupby("traj"):
        assert g["from"].iloc[0] == 0 and np.array_equal(g["from"].to_numpy()[1:], g["to"].to_numpy()[:-1])
    st = a.stop_table()
    last = ja.groupby("traj").tail(1).set_index("traj")
    assert np.array_equal(st["n"].to_numpy(), last.loc[st["traj"], "to"].to_numpy())
    assert np.all(ch.ladder.absorbing[st["n"]]) and np.allclose(st["t_stop"], last.loc[st["traj"], "t"])
    rt = read_run(tmp_path / "run")
    assert {"from", "to", "op", "mode"} <= set(rt.jumps.columns) and len(rt.jumps) == len(ja)
    N = rt.N[:, 0, :]
    ruptured = dict(zip(st["traj"], st["t_stop"], strict=True))
    for i in (0, 1, 2):
        ts = ruptured.get(i, np.inf)
        assert np.all(np.isnan(N[i, rt.t >= ts])) and np.all(np.isfinite(N[i, rt.t < ts]))
    assert np.allclose(rt.mean["count"], a.N_count)
    assert rt.operators["absorbing"].any()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["rupture"]["n_ruptured"] == len(st)


def test_mcsolve_on_a_ladder_gives_the_exact_mfpt():
    cfg = _cfg(MORSE)
    ch = ladder_chain(cfg)
    T = escape(ch).mfpt[0]
    res = run_trajectories(System(cfg), engine="mcsolve", ntraj=150, t_end=40 * T, n_points=21, seed=8)
    r = res.summary()["rupture"]
    assert r["n_ruptured"] == 150
    assert abs(r["mean_time"] - T) < 4 * r["se"]  # 4 standard errors of 150 first-passage times
    j = res.jump_table()
    for _, g in j.groupby("traj"):
        assert g["from"].iloc[0] == 0 and np.array_equal(g["from"].to_numpy()[1:], g["to"].to_numpy()[:-1])
    st = res.stop_table()
    assert np.all(ch.ladder.absorbing[st["n"]]) and np.allclose(st["t_stop"], j.groupby("traj")["t"].max())


# --------------------------------------------------------------------------- command line and bad input


def test_cli_evolve_trajectories_and_stats(tmp_path, capsys):
    cfg = _cfg(TRUNC)
    T = escape(ladder_chain(cfg)).mfpt[0]
    path = _toml(tmp_path / "c.toml", TRUNC, t_end=10 * T, n_points=51, ntraj=500, seed=1)
    assert main(["evolve", path, "--out", str(tmp_path / "ev")]) == 0
    ev = pd.read_parquet(tmp_path / "ev" / "evolution.parquet")
    s = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert s["mfpt"] == pytest.approx(T, rel=1e-10) and s["S_final"] == pytest.approx(ev["S"].iloc[-1])
    assert main(["evolve", path, "--method", "lindblad", "--n-points", "11", "--out", str(tmp_path / "ev2")]) == 0
    assert main(["trajectories", path, "--out", str(tmp_path / "tr"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["stats", str(tmp_path / "tr"), "--json", "--out", str(tmp_path / "st")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert set(d["rupture"]) >= {"fraction", "mean_time", "se", "exact_mean_time"}
    assert d["rupture"]["exact_mean_time"] == pytest.approx(T, rel=1e-3)
    tab = pd.read_parquet(tmp_path / "st" / "rupture.parquet")
    assert list(tab.columns[:4]) == ["t", "S_estimate", "S_stderr", "S_exact"]
    assert (tmp_path / "st" / "rupture.png").stat().st_size > 0


@pytest.mark.parametrize("argv, match", [
    (["evolve", "--method", "rate"], "closed form"),
    (["evolve", "--initial", "coherent:1"], "ladder of levels starts from"),
    (["evolve", "--initial", "thermal:2"], "thermal:T="),
    (["evolve", "--initial", "fock:3"], "3 levels that do not absorb"),
    (["evolve", "--initial", "steady"], "no steady state"),
    (["evolve", "--cutoff", "10"], "Fock cutoff"),
    (["trajectories", "--store-grid"], "store_grid"),
    (["trajectories", "--initial", "coherent:0.5"], "ladder of levels starts from"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, match):
    path = _toml(tmp_path / "c.toml", TRUNC, t_end=100.0, n_points=11, ntraj=10)
    code = main([argv[0], path, *argv[1:], "--out", str(tmp_path / "o"),
                 *(["--no-progress"] if argv[0] == "trajectories" else [])])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and match in err, err


def test_registry_and_docs_declare_the_ladder_routes():
    from pathlib import Path

    assert SUPPORT["population"].refusal(1, initial="vacuum", ladder=True) is None
    assert SUPPORT["mcsolve"].refusal(1, initial="fock", ladder=True) is None
    assert "does not take a ladder" in SUPPORT["landauer"].refusal(1, ladder=True)
    assert "does not take a ladder" in SUPPORT["rate"].refusal(1, initial="vacuum", ladder=True)
    assert "constant bias" in SUPPORT["ssa"].refusal(1, initial="vacuum", ladder=True, bias_table=True)
    doc = (Path(__file__).parent.parent / "docs" / "ladder_time.md").read_text()
    assert ladder_support_table() in doc
