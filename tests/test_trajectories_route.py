"""One trajectory route for every K: initial states (thermal:T=), the K = 1 fast path against the labelled
path, separated modes against one-mode runs, the run readers, and the command line's refusals."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.config import one_mode_config, parse_config
from sim.covariance import mode_system_of
from sim.initial import InitialSpec
from sim.special import bose
from sim.system import System
from sim.trajectories import read_run, run_trajectories

from .conftest import make_config

# --------------------------------------------------------------------------- thermal:T=


@pytest.mark.parametrize("T", [0.0, 0.3, 2.0])
def test_thermal_by_temperature_is_thermal_by_its_bose_mean(T):
    """thermal:T=<T> is the Bose-Einstein state of mean nB(Omega, T): the same populations, cutoffs and
    evolution as thermal:N with that N (one mode), and nB(Omega_k, T) per mode for several quanta."""
    from sim.model import rate_model
    from sim.routes import evolve

    cfg = make_config(omega=0.8)
    m = rate_model(cfg)
    by_T, by_N = InitialSpec.parse(f"thermal:T={T}"), InitialSpec.parse(f"thermal:N={float(bose(0.8, T))!r}")
    assert by_T.T == T and by_T.value is None and by_N == InitialSpec.parse(f"thermal:{float(bose(0.8, T))!r}")
    assert by_T.mean(m) == by_N.mean(m) == pytest.approx(1 / np.expm1(0.8 / T) if T else 0.0, rel=1e-14)
    np.testing.assert_array_equal(by_T.populations(30, m), by_N.populations(30, m))
    assert by_T.min_cutoff(1e-10, m) == by_N.min_cutoff(1e-10, m)
    t = np.linspace(0.0, 5.0, 6)
    a, b = evolve(cfg, t, "population", by_T.text), evolve(cfg, t, "population", by_N.text)
    np.testing.assert_array_equal(a.N, b.N)
    np.testing.assert_allclose(by_T.means([0.5, 1.0, 2.0]), bose(np.array([0.5, 1.0, 2.0]), T), rtol=1e-15)
    with pytest.raises(ValueError, match="quantum"):
        by_T.mean(None)


@pytest.mark.parametrize("text", ["thermal:T=-1", "thermal:T=nan", "thermal:T=", "thermal:N=-0.5", "thermal:T=x"])
def test_bad_thermal_states_are_refused(text):
    with pytest.raises(ValueError, match="thermal:T=<temperature>"):
        InitialSpec.parse(text)


# --------------------------------------------------------------------------- one route for every K

WATERWHEEL = Path(__file__).resolve().parents[1] / "runs" / "waterwheel.toml"
LABEL_COLS = ("traj", "channel", "direction", "dn", "dQ")


def _pair(secular: bool = True, V: float = 1.3) -> dict:
    """The waterwheel pair with couplings x3 below V_c; split quanta 1 and 1.3 without cross terms (secular)."""
    d = tomllib.loads(WATERWHEEL.read_text())
    d.pop("study")
    d["conductor"]["M"] = (3 * np.array(d["conductor"]["M"])).tolist()
    d["bias"]["V"] = V
    d["run"] = {"t_end": 30.0, "n_points": 7, "ntraj": 40, "seed": 5}
    if secular:
        d["mode"] = {"omega": [1.0, 1.3], "coherence_width": 0.0}
    return d


def _one_mode() -> dict:
    return {"conductor": {"kind": "flat", "K_LL": 0.6, "K_RR": 0.4, "K_LR": 0.5, "K_RL": 0.3},
            "mode": {"omega": 1.0}, "bias": {"V": 2.0, "T_e": 0.5}, "phonon_bath": {"T": 0.3, "gamma": 0.05},
            "run": {"t_end": 15.0, "n_points": 6, "ntraj": 300, "seed": 11}}


def _z(a, b):
    """z-scores of the mean difference of two independent samples (rows: trajectories)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    se = np.sqrt(a.var(axis=0, ddof=1) / len(a) + b.var(axis=0, ddof=1) / len(b))
    return np.abs(a.mean(axis=0) - b.mean(axis=0)) / np.where(se > 0, se, np.inf)


def _per_label(jumps: pd.DataFrame, ntraj: int) -> np.ndarray:
    lab = 2 * jumps["channel"].cat.codes.to_numpy(np.int64) + jumps["direction"].cat.codes.to_numpy(np.int64)
    return np.bincount(jumps["traj"].to_numpy(np.int64) * 10 + lab, minlength=10 * ntraj).reshape(ntraj, 10)


@pytest.mark.parametrize("initial", ["vacuum", "steady", "fock:2", "thermal:T=0.6"])
def test_one_mode_general_path_is_the_fast_path_seed_for_seed(initial):
    """A one-mode System runs on its birth-death chain; the same mode as a 1 x 1 ModeSystem runs the labelled path
    of every K. Seeded identically (mode 0 draws trajectory i's stream), the ssa jumps and populations are the same."""
    cfg = parse_config(_one_mode())
    s = System(cfg)
    fast = run_trajectories(s, initial=initial, progress=False)
    general = run_trajectories(mode_system_of(s.jump_model()), initial=initial, ntraj=300, t_end=15.0, n_points=6,
                               seed=11, progress=False)
    assert not fast.labelled and general.labelled and fast.K == general.K == 1
    a, b = fast.jumps, general.jumps
    assert len(a) == len(b) > 1000
    for col in LABEL_COLS:
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())
    np.testing.assert_allclose(a["t"], b["t"], rtol=1e-12)
    assert (b["mode"] == 0).all()
    np.testing.assert_array_equal(fast.populations(), general.populations())
    np.testing.assert_array_equal(fast.N_sum, general.N_sum)
    np.testing.assert_array_equal(fast.mode_sum, general.mode_sum)
    pd.testing.assert_frame_equal(fast.counts, general.counts)
    sa, sb = fast.summary(), general.summary()
    for key in ("n_jumps", "counts", "N_final", "N_final_sem", "modes", "n_modes", "stable"):
        assert sa[key] == sb[key], key
    assert sa["kappa"] == pytest.approx(sb["kappa"], rel=1e-12)


def test_one_mode_general_path_mcsolve_agrees_with_the_fast_path():
    """mcsolve: the labelled 1 x 1 system (tensor-space route, Gaussian start by its normal modes) against the fast
    path's Fock ladder; independent randomness (different initial draws), so 4 standard errors per label."""
    cfg = parse_config({**_one_mode(), "run": {"t_end": 6.0, "n_points": 4, "ntraj": 150, "seed": 2,
                                               "engine": "mcsolve"}})
    s = System(cfg)
    fast = run_trajectories(s, initial="thermal:0.8", cutoff=25, progress=False)
    general = run_trajectories(mode_system_of(s.jump_model()), engine="mcsolve", initial="thermal:0.8", ntraj=150,
                               t_end=6.0, n_points=4, seed=3, tol=1e-8, progress=False)
    za = _z(_per_label(fast.jumps, 150), _per_label(general.jumps, 150))
    assert np.all(za[np.isfinite(za)] < 4), za
    zN = _z(fast.populations()[:, 0, 1:], general.populations()[:, 0, 1:])
    assert np.all(zN < 4), zN


def test_two_separated_modes_are_two_one_mode_runs():
    """Without cross terms (secular clusters) two modes are two independent chains: mode 0 of the K = 2 run is the
    one-mode run of mode 0 alone seed for seed (same stream); mode 1 (its own stream) agrees in law with the one-mode
    run of mode 1 (jump counts per label and populations within 4 standard errors)."""
    cfg = parse_config(_pair())
    pair = run_trajectories(System(cfg), engine="ssa", ntraj=1500, t_end=200.0, progress=False)
    assert pair.K == 2 and pair.labelled
    jumps = pair.jumps
    for k in (0, 1):
        one = run_trajectories(System(one_mode_config(cfg, k)), engine="ssa", ntraj=1500, t_end=200.0,
                               seed=5 if k == 0 else 6, progress=False)
        mine = jumps[jumps["mode"] == k].reset_index(drop=True)
        assert len(mine) > 2000
        if k == 0:
            ref = one.jumps
            assert len(mine) == len(ref)
            for col in LABEL_COLS:
                np.testing.assert_array_equal(mine[col].to_numpy(), ref[col].to_numpy())
            np.testing.assert_allclose(mine["t"], ref["t"], rtol=1e-9)
            np.testing.assert_allclose(mine["dE"], ref["dE"], rtol=1e-14)
            np.testing.assert_array_equal(pair.populations()[:, 0, :], one.populations()[:, 0, :])
        else:
            z = _z(_per_label(mine, 1500), _per_label(one.jumps, 1500))
            assert np.all(z[np.isfinite(z)] < 4), z
            zN = _z(pair.populations()[:, 1, 1:], one.populations()[:, 0, 1:])
            assert np.all(zN < 4), zN
    # the totals: N is the sum of the modes, its mean the sum of theirs
    np.testing.assert_allclose(pair.N_mean, pair.mode_mean.sum(axis=0), rtol=1e-12)


def test_thermal_by_temperature_starts_each_mode_at_its_own_bose_mean():
    """thermal:T= equals thermal:N with N = nB(Omega, T), seed for seed: one mode (fast path), and each mode of a
    separated pair against the one-mode system of that mode started from thermal:N = nB(Omega_k, T)."""
    T = 0.9
    cfg = parse_config(_one_mode())
    N = float(bose(1.0, T))
    a = run_trajectories(System(cfg), initial=f"thermal:T={T}", progress=False)
    b = run_trajectories(System(cfg), initial=f"thermal:N={N!r}", progress=False)
    pd.testing.assert_frame_equal(a.jumps, b.jumps)
    np.testing.assert_array_equal(a.populations(), b.populations())
    pair = parse_config(_pair())
    s = System(pair).modes()
    res = run_trajectories(s, initial=f"thermal:T={T}", ntraj=4000, t_end=1e-9, n_points=2, seed=4, progress=False)
    N0 = res.populations()[:, :, 0]
    want = bose(s.omega, T)
    assert np.all(np.abs(N0.mean(axis=0) - want) < 4 * N0.std(axis=0) / np.sqrt(4000)), (N0.mean(axis=0), want)
    from sim.covariance import ModeSystem

    one = ModeSystem(s.omega[:1], s.gamma[:1], s.n_th[:1], s.emission[:, :1, :1], s.absorption[:, :1, :1],
                     s.damping[:, :1, :1], s.mu, ((0,),), s.T_e)
    ref = run_trajectories(one, initial=f"thermal:N={float(want[0])!r}", ntraj=4000, t_end=1e-9, n_points=2, seed=4,
                           progress=False)
    np.testing.assert_array_equal(N0[:, 0], ref.populations()[:, 0, 0])


# --------------------------------------------------------------------------- read_run


def _check_tables(tab, res):
    """read_run's tables against the runner's own aggregates (an independent path through the data)."""
    K = res.K
    assert tab.n_modes == K and tab.ntraj == res.ntraj
    assert list(tab.jumps.columns) == ["traj", "t", "channel", "direction", "dn", "dQ", "dE", "mode", "op"]
    assert list(tab.populations.columns) == ["traj", "t", "mode", "N"]
    assert list(tab.mean.columns[:4]) == ["t", "N", "N_sem", "count"]
    assert [c for c in tab.mean.columns if c.startswith("N_") and not c.endswith("sem")] == [f"N_{k}" for k in range(K)]
    assert {"op", "channel", "direction", "mode", "rate", "dn", "dQ", "dE"} <= set(tab.operators.columns)
    np.testing.assert_array_equal(tab.N, res.populations())
    ok = res.N_count > 1
    np.testing.assert_allclose(tab.mean["N"].to_numpy()[ok], res.N_mean[ok], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(tab.mean["N_sem"].to_numpy()[ok], res.N_sem[ok], rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(tab.mean["count"], res.N_count)
    for k in range(K):
        np.testing.assert_allclose(tab.mean[f"N_{k}"], res.mode_mean[k], rtol=1e-10, atol=1e-14)
    # totals: per-trajectory sums of the jump table; dn is the change of the total population (ssa, no stops)
    tot = tab.totals
    assert len(tot) == res.ntraj and tot["n_jumps"].sum() == len(tab.jumps) == res.n_jumps
    assert tot["Q"].sum() == pytest.approx(tab.jumps["dQ"].sum(), abs=1e-9)
    assert tot["E"].sum() + tot["E_ph"].sum() == pytest.approx(tab.jumps["dE"].sum(), rel=1e-12, abs=1e-9)
    np.testing.assert_allclose(tot[["E_LL", "E_RR", "E_LR", "E_RL"]].sum(axis=1), tot["E"], atol=1e-9)
    ops = tab.operators.set_index("op").loc[tab.jumps["op"].to_numpy()]
    assert (ops["channel"].astype(str).to_numpy() == tab.jumps["channel"].astype(str).to_numpy()).all()
    assert (ops["mode"].to_numpy() == tab.jumps["mode"].to_numpy()).all()
    assert tab.to_frame() is tab.totals and tab.provenance()["route"] == "trajectories"


@pytest.mark.parametrize("which", ["one-ssa", "one-mcsolve", "pair-ssa", "pair-mcsolve"])
def test_read_run_gives_the_same_tables_for_every_K(tmp_path, which):
    kind, engine = which.split("-")
    d = _one_mode() if kind == "one" else _pair(secular=engine == "ssa")
    d["run"].update(engine=engine, ntraj=60 if engine == "ssa" else 8, t_end=8.0 if engine == "mcsolve" else 15.0)
    cfg = parse_config(d)
    kw = {"cutoff": 20} if which == "one-mcsolve" else {}
    res = run_trajectories(System(cfg), out_dir=tmp_path / "r", batch_size=25 if engine == "ssa" else 3,
                           progress=False, **kw)
    tab = read_run(tmp_path / "r")
    _check_tables(tab, res)
    if engine == "ssa":
        N = tab.N.sum(axis=1)
        np.testing.assert_array_equal(N[:, -1] - N[:, 0], tab.totals["dn"])
    # the same reader as sim.read_run, and the summary's per-mode means are the reader's
    import sim

    pd.testing.assert_frame_equal(sim.read_run(tmp_path / "r").mean, tab.mean)
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["n_modes"] == res.K and len(s["modes"]) == res.K
    np.testing.assert_allclose([m["N_final"] for m in s["modes"]],
                               [tab.mean[f"N_{k}"].iloc[-1] for k in range(res.K)], rtol=1e-10)


def test_read_run_refuses_incomplete_and_damaged_runs(tmp_path):
    from sim.io import RunIncomplete

    cfg = parse_config(_pair())
    run_trajectories(System(cfg), out_dir=tmp_path / "r", batch_size=10, progress=False)
    assert read_run(tmp_path / "r").ntraj == 40
    part = tmp_path / "r" / "trajectories.parquet" / "part-00002.parquet"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, another sha256
    part.write_bytes(bytes(data))
    with pytest.raises(RunIncomplete, match="damaged"):
        read_run(tmp_path / "r")
    part.unlink()
    with pytest.raises(RunIncomplete, match="missing"):
        read_run(tmp_path / "r")
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    meta["status"] = "running"
    other = tmp_path / "s"
    run_trajectories(System(cfg), out_dir=other, batch_size=10, progress=False)
    (other / "metadata.json").write_text(json.dumps({**json.loads((other / "metadata.json").read_text()),
                                                     "status": "running"}))
    with pytest.raises(RunIncomplete, match="status is 'running'"):
        read_run(other)


# --------------------------------------------------------------------------- ehp trajectories --initial


def _cli(capsys, argv):
    from analysis.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _toml(tmp_path, d, name="c.toml"):
    from sim.config import to_toml

    p = tmp_path / name
    p.write_text(to_toml(d))
    return str(p)


@pytest.mark.parametrize(("cfg", "argv", "words"), [
    ("one", ["--engine", "ssa", "--initial", "coherent:1.0"], ["coherent", "mcsolve"]),
    ("pair", ["--engine", "ssa", "--initial", "coherent:0.5"], ["coherent", "mcsolve"]),
    ("cross", ["--engine", "ssa"], ["cross terms", "mcsolve"]),
    ("unstable", ["--engine", "mcsolve", "--initial", "steady"], ["steady", "growth rate"]),
    ("pair", ["--initial", "thermal:T=-1"], ["run.initial", "thermal:T=<temperature>"]),
    ("pair", ["--initial", "bogus"], ["run.initial", "'bogus'"]),
])
def test_initial_refusals_are_one_line_exit_2(tmp_path, capsys, cfg, argv, words):
    d = {"one": _one_mode(), "pair": _pair(), "cross": _pair(secular=False), "unstable": _pair(secular=False, V=3.0)}[cfg]
    path = _toml(tmp_path, d)
    code, out, err = _cli(capsys, ["trajectories", path, "--out", str(tmp_path / "r"), "--no-progress", *argv])
    assert code == 2 and out == "" and err.startswith("ehp: error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, (w, err)
    assert not (tmp_path / "r" / "jumps.parquet").exists()


@pytest.mark.parametrize(("engine", "initial"), [("ssa", "fock:2"), ("ssa", "thermal:T=0.8"),
                                                 ("mcsolve", "coherent:0.6"), ("mcsolve", "thermal:N=0.3")])
def test_initial_flag_for_several_modes(tmp_path, capsys, engine, initial):
    """--initial reaches every engine for K = 2: the populations at t = 0 are those of the product state."""
    from sim.initial import InitialSpec

    d = _pair(secular=engine == "ssa")
    d["run"].update(ntraj=400 if engine == "ssa" else 6, t_end=2.0, n_points=3)
    path = _toml(tmp_path, d)
    code, out, err = _cli(capsys, ["trajectories", path, "--engine", engine, "--initial", initial, "--out",
                                   str(tmp_path / "r"), "--no-progress"])
    assert code == 0, err
    assert f"initial {initial}" in out and "N_1(t_end)" in out
    tab = read_run(tmp_path / "r")
    assert tab.identity["run"]["initial"] == initial
    N0 = tab.N[:, :, 0]
    want = InitialSpec.parse(initial).means(tab.omega)
    if initial.startswith(("fock", "coherent")):  # every trajectory starts in the product state
        np.testing.assert_allclose(N0, np.broadcast_to(want, N0.shape), rtol=1e-3 if "coherent" in initial else 0)
    else:
        assert np.all(np.abs(N0.mean(axis=0) - want) < 4 * N0.std(axis=0) / np.sqrt(len(N0)) + 1e-12)


def test_fock_start_of_several_modes_on_mcsolve():
    """fock:1 in both modes with cross terms: every trajectory starts with N_k = 1 exactly, and the mean N_k(t)
    follows the covariance route from C0 = 1 (its second moments obey the same linear equation)."""
    s = System(parse_config(_pair(secular=False))).modes()
    res = run_trajectories(s, engine="mcsolve", initial="fock:1", ntraj=60, t_end=20.0, n_points=3, seed=1, tol=1e-4,
                           progress=False)
    N = res.populations()
    np.testing.assert_allclose(N[:, :, 0], 1.0, rtol=1e-12)
    want = np.diagonal(s.covariance(res.t, np.eye(2)), axis1=1, axis2=2).real
    mean, sem = N.mean(axis=0).T, N.std(axis=0, ddof=1).T / np.sqrt(60)
    assert np.all(np.abs(mean - want)[1:] < 4 * sem[1:] + 1e-3), (mean, want, sem)


def test_registry_declares_what_the_trajectory_engines_take():
    from sim.registry import SUPPORT
    from sim.trajectories import ENGINES

    assert ENGINES["ssa"].support is SUPPORT["ssa"] and ENGINES["qutip"].support is SUPPORT["mcsolve"]
    for K in (1, 3):
        assert ENGINES["mcsolve"].refusal(K, cross_terms=True, initial="coherent") is None
        assert ENGINES["ssa"].refusal(K, initial="thermal") is None
        assert "mcsolve" in ENGINES["ssa"].refusal(K, initial="coherent")
    assert "cross terms" in ENGINES["ssa"].refusal(2, cross_terms=True)
    assert ENGINES["ssa"].refusal(1, cross_terms=True) is None  # one mode has no cross terms


def test_a_config_runs_through_the_one_runner_with_its_run_keys(tmp_path):
    """run_trajectories(config) takes [run] (engine, ntraj, t_end, seed, initial) and records the config."""
    d = copy.deepcopy(_pair())
    d["run"].update(initial="fock:1", ntraj=5)
    cfg = parse_config(d)
    res = run_trajectories(cfg, out_dir=tmp_path / "r", progress=False)
    assert res.ntraj == 5 and res.K == 2 and res.options["initial"] == "fock:1"
    meta = json.loads((tmp_path / "r" / "metadata.json").read_text())
    assert meta["config"]["run"]["initial"] == "fock:1" and meta["n_modes"] == 2
    assert meta["identity"]["layout"] == {"batch_size": res.batch_size} and "modes" in meta["identity"]
    assert res.provenance()["model"]["omega"] == [1.0, 1.3]
