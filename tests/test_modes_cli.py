"""Several modes through the config and the command line (covariance route, docs/modes.md)."""

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
from sim.conductor import double_dot
from sim.config import ConfigError, load_config, parse_config, to_toml
from sim.covariance import mode_system
from sim.rate_matrices import RateMatrixModel

ROOT = Path(__file__).resolve().parents[1]
WATERWHEEL = ROOT / "runs" / "waterwheel.toml"
M1 = [[-0.1, 0.25], [0.25, 0.05]]
M2 = [[-0.4, -0.1], [-0.1, -0.15]]


def _ww_dict() -> dict:
    d = tomllib.loads(WATERWHEEL.read_text())
    d.pop("study")
    return d


def _write(tmp_path: Path, name: str, d: dict) -> str:
    p = tmp_path / name
    p.write_text(to_toml(d))
    return str(p)


def _one_mode(d: dict, k: int) -> dict:
    """Mode k alone, written by hand (independent of sim.config.one_mode_config)."""
    d = copy.deepcopy(d)
    d["conductor"]["M"] = d["conductor"]["M"][k]
    d["mode"] = {"omega": d["mode"]["omega"][k]}
    return d


def _json(capsys, argv: list[str]) -> tuple[dict, str]:
    assert main(argv) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("ehp: error: ") and err.count("\n") == 1, err
    return err


# --------------------------------------------------------------------------- physics through the CLI

def test_waterwheel_each_mode_alone_stable_the_pair_runs_away(tmp_path, capsys):
    d = _ww_dict()
    pair, err = _json(capsys, ["steady", str(WATERWHEEL), "--json"])  # V = 2 > V_c = 1.697
    assert pair["n_modes"] == 2 and pair["stable"] is False and pair["growth_rate"] > 0
    assert pair["margin"] == -pair["growth_rate"]
    assert pair["N"] is None and pair["J"] is None and all(m["N"] is None for m in pair["modes"])
    assert "unstable" in err and f"{pair['growth_rate']:.6g}" in err and "Lamb shift" in err
    u = np.array([complex(x["re"], x["im"]) for x in pair["unstable_mode"]])
    assert np.linalg.norm(u) == pytest.approx(1.0, rel=1e-12) and np.min(np.abs(u)) > 0.3  # both modes take part
    for k in range(2):
        alone, _ = _json(capsys, ["steady", _write(tmp_path, f"alone{k}.toml", _one_mode(d, k)), "--json"])
        assert alone["stable"] is True and alone["kappa"] > 0.01  # each mode alone relaxes
        assert alone["N"] > 0


def test_threshold_of_two_modes_matches_the_covariance_route(capsys):
    def margin(V):  # independent route: the double dot's conductor with the couplings, no config
        model = RateMatrixModel(double_dot((-0.25, -0.25), 0.5, 0.4, 0.5), np.array([M1, M2]))
        return -mode_system(model, None, [1.0, 1.0], 0.002, 0.05, V / 2, -V / 2, 0.05).growth_rate

    ref = brentq(margin, 1.0, 3.0, xtol=1e-13, rtol=1e-15)
    assert ref == pytest.approx(1.6973, abs=1e-4)
    d, err = _json(capsys, ["threshold", str(WATERWHEEL), "--vary", "bias.V", "--between", "1", "3", "--json"])
    assert abs(d["threshold"] - ref) < 1e-6
    assert d["n_modes"] == 2 and d["slope"] < 0 and d["margin_at_bounds"][0] > 0 > d["margin_at_bounds"][1]
    assert "Lamb shift" in err


def test_uncoupled_mode_sits_at_thermal_population_and_changes_nothing(tmp_path, capsys):
    """M^2 = 0 with quanta 1 and 1.02: the default width (0.07 here) keeps them in one cluster, so every rate and
    the ph-bath occupations are taken at the common frequency w_S = 1.01 (the unified GKLS rule that keeps
    equilibrium exact). Mode 2 then sits at nB(w_S, T_ph) (its T_eff = T_ph Omega_2/w_S), and mode 1 is exactly
    the one-mode model at the quantum w_S (N, Ie, margin), its energy per quantum its own Omega_1 (J, J_ph, J_c
    scaled by Omega_1/w_S)."""
    d = _ww_dict()
    d["conductor"]["M"][1] = [[0.0, 0.0], [0.0, 0.0]]
    d["phonon_bath"] = {"T": 0.3, "gamma": [0.002, 0.01]}
    d["mode"]["omega"] = [1.0, 1.02]
    cfg = _write(tmp_path, "m0.toml", d)
    pair, _ = _json(capsys, ["steady", cfg, "--set", "bias.V=1.2", "--json"])
    assert pair["clusters"] == [[0, 1]] and pair["cluster_frequencies"] == [pytest.approx(1.01, rel=1e-15)]
    assert pair["coherence_width"] > 0.02
    w = pair["cluster_frequencies"][0]
    one = _one_mode(d, 0)
    one["phonon_bath"]["gamma"] = 0.002
    one["mode"]["omega"] = w
    alone, _ = _json(capsys, ["steady", _write(tmp_path, "one.toml", one), "--set", "bias.V=1.2", "--json"])
    n_th = 1 / np.expm1(w / 0.3)
    assert pair["modes"][1]["N"] == pytest.approx(n_th, rel=1e-12)
    assert pair["modes"][1]["T_eff"] == pytest.approx(0.3 * 1.02 / w, rel=1e-10)  # thermal with the ph-bath at w_S
    assert abs(pair["coherences"][0]["re"]) < 1e-15 and abs(pair["coherences"][0]["im"]) < 1e-15
    assert pair["modes"][0]["N"] == pytest.approx(alone["N"], rel=1e-11)
    assert pair["N"] == pytest.approx(alone["N"] + n_th, rel=1e-11)
    f = 1.0 / w
    for k, x in (("J", f), ("J_ph", f), ("Ie", 1.0)):
        assert pair[k] == pytest.approx(x * alone[k], rel=1e-10, abs=1e-16)
    for c in ("LL", "RR", "LR", "RL"):
        assert pair["channels"][c]["J"] == pytest.approx(f * alone["channels"][c]["J"], rel=1e-10, abs=1e-16)
        assert pair["channels"][c]["Ie"] == pytest.approx(alone["channels"][c]["Ie"], rel=1e-10, abs=1e-16)
    assert pair["margin"] == pytest.approx(min(alone["kappa"], 0.01), rel=1e-10)


@pytest.mark.parametrize("width", [0.0, None])
def test_well_separated_modes_are_independent_one_mode_models(tmp_path, capsys, width):
    """Quanta 1 and 1.4 (splitting 8x the largest rate |K_12| = 0.015): with coherence_width = 0, and with the
    default width (sqrt(Gamma_max E) = 0.054 < 0.4), each mode is its own cluster and exactly its one-mode model.
    (The old default kept every mode in one cluster; its geometric-mean rule moved N_k by up to 1e-2 of N.)
    Forced into one cluster (coherence_width = 1) the rates are taken at w_S = 1.2, 4 E away from each quantum:
    a stderr note says so."""
    d = _ww_dict()
    d["mode"]["omega"] = [1.0, 1.4]
    if width is not None:
        d["mode"]["coherence_width"] = width
    pair, err = _json(capsys, ["steady", _write(tmp_path, "sep.toml", d), "--set", "bias.V=1.2", "--json"])
    assert pair["clusters"] == [[0], [1]] and "common frequency" not in err
    assert pair["coherence_width"] == 0.0 if width == 0.0 else 0.04 < pair["coherence_width"] < 0.1
    singles = [_json(capsys, ["steady", _write(tmp_path, f"s{k}.toml", _one_mode(d, k)), "--set", "bias.V=1.2",
                              "--json"])[0] for k in range(2)]
    for k in range(2):
        assert pair["modes"][k]["N"] == pytest.approx(singles[k]["N"], rel=1e-12)
        for q in ("T_eff", "mu_eff"):
            assert pair["modes"][k][q] == pytest.approx(singles[k][q], rel=1e-12)
    for q in ("N", "J", "Ie", "J_ph"):
        assert pair[q] == pytest.approx(singles[0][q] + singles[1][q], rel=1e-12)
    assert pair["margin"] == pytest.approx(min(s["kappa"] for s in singles), rel=1e-12)
    wide, err = _json(capsys, ["steady", _write(tmp_path, "sep.toml", d), "--set", "bias.V=1.2", "--set",
                               "mode.coherence_width=1", "--json"])
    assert wide["clusters"] == [[0, 1]] and wide["cluster_frequencies"] == [pytest.approx(1.2, rel=1e-15)]
    assert err.count("common frequency 1.2") == 1 and "spans 0.4" in err


def test_evolve_rate_several_modes_from_vacuum_to_steady_state(tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evolve", str(WATERWHEEL), "--set", "bias.V=1.2", "--t-end", "800", "--n-points", "41",
                 "--out", str(out)]) == 0  # default method for several modes: rate
    capsys.readouterr()
    t = pd.read_parquet(out / "evolution.parquet")
    assert list(t.columns[:4]) == ["t", "N", "N_0", "N_1"]
    assert t["N"].iloc[0] == 0.0
    np.testing.assert_allclose(t["N"], t["N_0"] + t["N_1"], rtol=1e-14)
    ss, _ = _json(capsys, ["steady", str(WATERWHEEL), "--set", "bias.V=1.2", "--json"])
    # margin 0.036: after t = 800 the transient is e^-29 of the start
    for k in range(2):
        assert t[f"N_{k}"].iloc[-1] == pytest.approx(ss["modes"][k]["N"], rel=1e-10)
    assert t["J"].iloc[-1] == pytest.approx(t["J_ph"].iloc[-1], rel=1e-9)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_modes"] == 2 and summary["stable"] is True


def test_lindblad_on_the_truncated_fock_space_agrees_with_the_covariance(tmp_path, capsys):
    """QuTiP-side routes (sim.lindblad) through the CLI: the steady populations and coherence, and
    N_k(t) from the vacuum, agree with the Lyapunov / closed-form C; the truncation tail is below 1e-9."""
    d, _ = _json(capsys, ["steady", str(WATERWHEEL), "--set", "bias.V=1.2", "--lindblad", "--json"])
    li = d["lindblad"]
    assert max(li["P_top"]) < 1e-9
    for k in range(2):
        assert li["N"][k] == pytest.approx(d["modes"][k]["N"], rel=1e-7)
    c = d["coherences"][0]
    assert complex(li["C_re"][0][1], li["C_im"][0][1]) == pytest.approx(complex(c["re"], c["im"]), rel=1e-7)
    runs = {}
    for method in ("rate", "lindblad"):
        out = tmp_path / method
        assert main(["evolve", str(WATERWHEEL), "--set", "bias.V=1.2", "--method", method, "--t-end", "30",
                     "--n-points", "4", "--out", str(out)]) == 0
        runs[method] = pd.read_parquet(out / "evolution.parquet")
    capsys.readouterr()
    for k in range(2):
        np.testing.assert_allclose(runs["lindblad"][f"N_{k}"], runs["rate"][f"N_{k}"], rtol=1e-6, atol=1e-12)


def test_sweep_and_map_columns_for_several_modes():
    from analysis.maps import InstabilityMap
    from sim.sweep import sweep

    cfg = load_config(WATERWHEEL)
    table = sweep(cfg, {"mode.omega[1]": [1.0, 1.02], "bias.V": "1.5:1.9:3"})
    for col in ("stable", "growth_rate", "margin", "N", "J", "Ie", "N_0", "N_1", "T_eff_1", "LR.Ie"):
        assert col in table.columns
    np.testing.assert_array_equal(table["margin"], -table["growth_rate"])
    assert (table["stable"] == (table["margin"] > 0)).all()
    assert table.loc[table["stable"], "N"].notna().all() and table.loc[~table["stable"], "N"].isna().all()
    m = InstabilityMap.from_table(table, "bias.V", "mode.omega[1]")
    assert m.kappa.shape == (2, 3) and m.stable[0, 0] and not m.stable[0, -1]


# --------------------------------------------------------------------------- one-mode routes refuse

@pytest.mark.parametrize("argv", [
    ["evolve", "{cfg}", "--method", "population", "--t-end", "1", "--out", "{out}"],
])
def test_one_mode_routes_refuse_several_modes(tmp_path, capsys, argv):
    """The population route takes several modes only without cross terms: the waterwheel's degenerate pair is
    one cluster, so it refuses (naming the cluster and the routes that take it) and writes nothing."""
    argv = [a.format(cfg=WATERWHEEL, out=tmp_path / "x") for a in argv]
    err = _error(capsys, argv)
    assert "2 modes" in err and "cross terms" in err and "[[0, 1]]" in err and "--method rate" in err
    assert not (tmp_path / "x").exists()


def test_python_one_mode_api_refuses_several_modes():
    from sim.rate_equation import rate_model, steady_state

    cfg = load_config(WATERWHEEL)
    for f in (rate_model, steady_state, lambda c: c.conductor.build()):
        with pytest.raises(ConfigError, match="K = 2"):
            f(cfg)


def test_steady_landauer_several_modes_same_keys_as_one_mode(tmp_path, capsys):
    """`ehp steady --landauer` for K = 2: the one-mode keys; lowest order = the sum of each mode's one-mode
    Landauer (configs by hand); at V = 2 the pair runs away, so full broadening is flagged invalid with null
    fluxes (never a finite number passed off as valid) and lowest order reports the negative margin."""
    from sim.landauer import landauer

    d = _ww_dict()
    d["bias"]["V"] = 1.3  # below V_c: stable
    cfg = _write(tmp_path, "ww.toml", d)
    one, _ = _json(capsys, ["steady", str(ROOT / "runs" / "paper_double_dot.toml"), "--landauer", "lowest", "--json"])
    two, _ = _json(capsys, ["steady", cfg, "--landauer", "lowest", "--json"])
    assert set(two["landauer"]) == set(one["landauer"]) == {"level", "J", "Ie", "J_err", "Ie_err", "kappa", "valid"}
    assert two["landauer"]["valid"] is True and two["landauer"]["kappa"] == pytest.approx(two["margin"], rel=1e-12)
    J = Ie = 0.0
    for k in range(2):
        low = landauer(load_config(_write(tmp_path, f"one{k}.toml", _one_mode(d, k))), "lowest")
        J, Ie = J + low.J, Ie + low.Ie
    assert two["landauer"]["J"] == pytest.approx(J, rel=1e-9) and two["landauer"]["Ie"] == pytest.approx(Ie, rel=1e-9)
    assert main(["steady", cfg, "--landauer", "lowest"]) == 0
    text = capsys.readouterr().out
    assert sum(line.startswith("landauer ") for line in text.splitlines()) == 1 and "level=lowest" in text
    bad, err = _json(capsys, ["steady", str(WATERWHEEL), "--landauer", "full", "--json"])
    assert bad["stable"] is False and "unstable" in err
    assert bad["landauer"]["valid"] is False and bad["landauer"]["J"] is None and bad["landauer"]["Ie"] is None
    assert bad["landauer"]["kappa"] == pytest.approx(bad["margin"], rel=1e-12) and bad["landauer"]["kappa"] < 0


# --------------------------------------------------------------------------- config

def test_config_round_trip_and_overrides():
    cfg = load_config(WATERWHEEL)
    assert cfg.n_modes == 2 and cfg.mode.omegas == (1.0, 1.0) and cfg.mode.coherence_width is None
    assert parse_config(cfg.to_dict()).to_dict() == cfg.to_dict()
    c2 = cfg.with_value("mode.omega[1]", 1.03).with_value("mode.coherence_width", 0.01)
    assert c2.mode.omegas == (1.0, 1.03) and c2.get("mode.coherence_width") == 0.01
    one = load_config(ROOT / "runs" / "paper_double_dot.toml")
    assert one.n_modes == 1 and "coherence_width" not in one.to_dict()["mode"]


def test_double_dot_with_a_coupling_per_mode_equals_the_matrix_form(tmp_path, capsys):
    d = _ww_dict()
    d["conductor"] = {"kind": "double_dot", "eps": [0.5, -0.5], "hopping": 0.0, "gamma_L": 0.5, "gamma_R": 0.5,
                      "coupling": [0.5, 0.3]}
    dd, _ = _json(capsys, ["steady", _write(tmp_path, "dd.toml", d), "--set", "bias.V=0.6", "--json"])
    d["conductor"] = {"kind": "matrix", "H": [[0.5, 0.0], [0.0, -0.5]], "gamma_L": [[0.5, 0.0], [0.0, 0.0]],
                      "gamma_R": [[0.0, 0.0], [0.0, 0.5]], "M": [[[0.0, 0.5], [0.5, 0.0]], [[0.0, 0.3], [0.3, 0.0]]]}
    mx, _ = _json(capsys, ["steady", _write(tmp_path, "mx.toml", d), "--set", "bias.V=0.6", "--json"])
    assert dd == mx


@pytest.mark.parametrize(("change", "needle"), [
    (lambda d: d["mode"].update(omega=[1.0]), "mode.omega as a list needs K >= 2"),
    (lambda d: d["mode"].update(omega=1.0), "conductor.M describes K = 2 mode(s) but mode.omega gives 1"),
    (lambda d: d["mode"].update(omega=[1.0, 1.0, 1.0]), "conductor.M describes K = 2"),
    (lambda d: d["mode"].update(omega=[1.0, -1.0]), "mode.omega[1] must be > 0"),
    (lambda d: d["mode"].update(coherence_width=-0.1), "mode.coherence_width must be >= 0"),
    (lambda d: d["mode"].update(omega=[1.0, 1e13]), "mode.omega[1] must be 0 or between 1e-12 and 1e+12"),
    (lambda d: d["phonon_bath"].update(gamma=[0.1, 0.1, 0.1]), "phonon_bath.gamma must be one number or a list of K = 2"),
    (lambda d: d["phonon_bath"].update(gamma=[0.1, -0.1]), "phonon_bath.gamma[1] must be >= 0"),
    (lambda d: d["conductor"]["M"].__setitem__(1, [[0.0, 1.0], [0.0, 0.0]]), "conductor.M[1] must be Hermitian"),
    (lambda d: d["conductor"].update(M_imag=[[0.0, 0.1], [-0.1, 0.0]]), "conductor.M_imag must have the form"),
    (lambda d: d["conductor"].update(kind="flat", K_LL=0.1) or [d["conductor"].pop(k) for k in
                                                              ("H", "gamma_L", "gamma_R", "M")],
     "conductor.kind = 'flat' has no orbital couplings"),
])
def test_bad_several_mode_configs(tmp_path, capsys, change, needle):
    d = _ww_dict()
    change(d)
    err = _error(capsys, ["steady", _write(tmp_path, "bad.toml", d)])
    assert needle in err


# --------------------------------------------------------------------------- conductor.file (.npz)

def _npz_dict(tmp_path: Path, arrays: dict, name: str = "model.npz", omega=(1.0, 1.0)) -> str:
    np.savez(tmp_path / name, **arrays)
    d = _ww_dict()
    d["conductor"] = {"kind": "matrix", "file": name}  # relative to the config file's directory
    d["mode"]["omega"] = list(omega) if len(omega) > 1 else omega[0]
    return _write(tmp_path, "file.toml", d)


def _ww_arrays() -> dict:
    return {"H": np.array([[-0.25, 0.5], [0.5, -0.25]]), "gamma_L": np.diag([0.4, 0.0]),
            "gamma_R": np.diag([0.0, 0.5]), "M": np.array([M1, M2])}


def test_npz_model_equals_the_inline_matrices(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the path is resolved against the config's directory, not the working one
    cfg = _npz_dict(tmp_path, _ww_arrays())
    a, _ = _json(capsys, ["steady", cfg, "--set", "bias.V=1.2", "--json"])
    b, _ = _json(capsys, ["steady", str(WATERWHEEL), "--set", "bias.V=1.2", "--json"])
    assert a == b
    one = _ww_arrays()
    one["M"] = one["M"][0] * (1 + 0.5j * 0) + 1j * np.array([[0.0, 0.1], [-0.1, 0.0]])  # complex Hermitian, (n, n)
    c, _ = _json(capsys, ["steady", _npz_dict(tmp_path, one, "one.npz", (1.0,)), "--set", "bias.V=1.2", "--json"])
    d1 = _one_mode(_ww_dict(), 0)
    d1["conductor"]["M_imag"] = [[0.0, 0.1], [-0.1, 0.0]]
    ref, _ = _json(capsys, ["steady", _write(tmp_path, "inline1.toml", d1), "--set", "bias.V=1.2", "--json"])
    assert c == ref


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda a: a.update(M=np.zeros((3, 4, 5))) or a.update(H=np.eye(4), gamma_L=np.eye(4), gamma_R=np.eye(4)),
     "conductor.file model.npz: M must have shape (K, n, n) with n = 4 from H, got (3, 4, 5)"),
    (lambda a: a.update(H=np.array([[0.0, 1.0], [0.0, 0.0]])), "conductor.file model.npz: H must be Hermitian"),
    (lambda a: a.update(gamma_L=np.diag([-0.4, 0.0])), "conductor.file model.npz: gamma_L must be positive semi-definite"),
    (lambda a: a.update(gamma_R=np.diag([np.nan, 0.5])), "conductor.file model.npz: gamma_R must be finite"),
    (lambda a: a.pop("gamma_R"), "conductor.file model.npz: must hold the arrays H, gamma_L, gamma_R, M; missing gamma_R"),
    (lambda a: a.update(extra=np.ones(2)), "unknown extra"),
    (lambda a: a.update(gamma_L=np.eye(3)), "gamma_L must have shape (n, n) with n = 2 from H, got (3, 3)"),
    (lambda a: a.update(M=np.array([M1, M2, M1])),
     "conductor.file model.npz: M describes K = 3 mode(s) but mode.omega gives 2"),
    (lambda a: a.update(H=np.array(["a", "b"])), "H must be a real or complex numeric array"),
])
def test_bad_npz_files(tmp_path, capsys, edit, needle):
    arrays = _ww_arrays()
    edit(arrays)
    err = _error(capsys, ["steady", _npz_dict(tmp_path, arrays)])
    assert needle in err


def test_npz_missing_or_mixed_with_inline_matrices(tmp_path, capsys):
    d = _ww_dict()
    d["conductor"] = {"kind": "matrix", "file": "nowhere.npz"}
    assert "conductor.file" in _error(capsys, ["steady", _write(tmp_path, "a.toml", d)])
    (tmp_path / "junk.npz").write_text("not a zip")
    d["conductor"]["file"] = "junk.npz"
    assert "cannot be read as an .npz file" in _error(capsys, ["steady", _write(tmp_path, "b.toml", d)])
    d["conductor"]["H"] = [[0.0]]
    assert "give either file or the matrices" in _error(capsys, ["steady", _write(tmp_path, "c.toml", d)])


# --------------------------------------------------------------------------- the study

def test_collective_runaway_study_small_grid(tmp_path):
    """The waterwheel study on a coarse grid: the pair's threshold rises with the splitting, the secular
    variant loses the runaway once the quanta split, each mode alone stays stable, the pair grows."""
    from analysis.figures import run_study

    d = tomllib.loads(WATERWHEEL.read_text())
    d["study"].update(grid="1.0:3.0:5", splitting=[0.0, 0.02])
    d["run"] = {"t_end": 300.0, "n_points": 31}
    res = run_study(parse_config(d), "ww", tmp_path / "ww")
    s = res.summary
    assert s["threshold_degenerate"] == pytest.approx(1.6973, abs=1e-4)
    cross, sec = s["threshold_vs_splitting"]["cross terms"], s["threshold_vs_splitting"]["secular"]
    assert cross["0"] == sec["0"] == s["threshold_degenerate"]
    assert cross["0.02"] > cross["0"] and sec["0.02"] is None
    assert s["each_mode_alone_stable_on_grid"] == [True, True]
    n = s["run"]["N_final"]
    assert n["pair"] > 10 * max(n["mode 0 alone"], n["mode 1 alone"])
    assert res.figure_path.stat().st_size > 10_000
    assert set(res.table["variant"]) == {"cross terms", "secular"} and len(res.table) == 2 * 2 * 5


def test_evolve_population_several_modes_without_cross_terms(tmp_path, capsys):
    """Secular waterwheel with split quanta (1.0, 1.3; width 0): `--method population` writes the rate route's
    columns, and both exact routes give the same N_k(t) and fluxes (the population truncation tail is 1e-10)."""
    d = _ww_dict()
    d["mode"]["omega"] = [1.0, 1.3]
    d["mode"]["coherence_width"] = 0.0
    d["bias"]["V"] = 0.8
    cfg = _write(tmp_path, "sec.toml", d)
    tables = {}
    for method in ("population", "rate"):
        capsys.readouterr()
        assert main(["evolve", cfg, "--method", method, "--t-end", "300", "--out", str(tmp_path / method)]) == 0
        out = capsys.readouterr().out
        assert "N(t_end)" in out
        tables[method] = pd.read_parquet(tmp_path / method / "evolution.parquet")
    pop, rate = tables["population"], tables["rate"]
    assert list(pop.columns) == list(rate.columns)
    for col in ("N_0", "N_1", "N", "Ie", "J", "J_ph", "Ie_LR"):
        np.testing.assert_allclose(pop[col], rate[col], rtol=1e-8, atol=1e-14, err_msg=col)
    summary = json.loads((tmp_path / "population" / "summary.json").read_text())
    assert summary["method"] == "population" and len(summary["cutoffs"]) == 2 and summary["truncated"] is False
