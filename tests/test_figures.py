"""Studies behind ``ehp run`` (analysis.figures), instability maps (analysis.maps) and the figures' shapes.

Each test checks what docs/figures.md says a figure must show, on the run's own TOML
(reduced grids via ``--set`` where the full one is slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis.cli.app as cli
from analysis.figures import cooling_window, run_study
from analysis.maps import confirm_runs, fitted_kappa, instability_map, threshold_curve, zero_crossing
from sim.config import ConfigError, load_config
from sim.rate_equation import rate_model

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs"


_main = cli.main  # the sweep plugin is registered in analysis.cli.PLUGINS


def _run(name, out, *sets, extra=()):
    argv = ["run", str(RUNS / f"{name}.toml"), "--out", str(out), "--scheduler", "serial", "--no-progress", *extra]
    for s in sets:
        argv += ["--set", s]
    return _main(argv)


@pytest.mark.parametrize("name", ["fig3_rectification", "fig4_thermoelectric", "fig5_cooling", "transient",
                                  "instability_map"])
def test_every_run_toml_is_a_valid_study(name):
    cfg = load_config(RUNS / f"{name}.toml")
    assert cfg.study["kind"] in ("rectification", "thermoelectric", "cooling", "transient", "instability_map")


# --------------------------------------------------------------------------- Fig. 5

def test_fig5_cooling_window_at_negative_bias_widens_with_T(tmp_path, capsys):
    out = tmp_path / "fig5"
    assert _run("fig5_cooling", out) == 0
    t = pd.read_parquet(out / "fig5_cooling.parquet")
    assert (out / "fig5_cooling.png").stat().st_size > 10_000
    temps = sorted(t["T"].unique())
    assert len(temps) >= 2
    widths = []
    for T in temps:
        s = t[t["T"] == T].sort_values("mu_LR")
        neg = s[(s["mu_LR"] < 0) & (s["J"] < 0)]
        assert len(neg) > 0, f"no J < 0 at negative bias for T = {T}"
        assert (s.loc[s["mu_LR"] > 0, "J"] > 0).all()  # heating at positive bias
        lo, up, open_ = cooling_window(s["mu_LR"].to_numpy(), s["J"].to_numpy())
        assert not open_ and up == pytest.approx(0.0, abs=1e-9)
        widths.append(up - lo)
    assert all(b > a for a, b in zip(widths, widths[1:], strict=False)), widths
    # kappa <= 0 points are flagged (mu_LR >~ Omega) and carry no rate-equation J
    bad = t[~t["stable"]]
    assert len(bad) > 0 and (bad["mu_LR"] > 1.0).all() and bad["J_rate"].isna().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cooling_window"][f"{temps[0]:g}"]["width"] == pytest.approx(widths[0])

    # the same run again: resumed, nothing recomputed; a different one: refused (exit 2)
    assert _run("fig5_cooling", out) == 0
    assert "resumed" in capsys.readouterr().err
    assert _run("fig5_cooling", out, "study.temperatures=[0.1, 0.3]") == 2
    assert "refusing to write" in capsys.readouterr().err


def test_cooling_window_edges():
    V = np.array([-2.0, -1.0, 0.0, 1.0])
    lo, up, open_ = cooling_window(V, np.array([1.0, -1.0, 0.0, 2.0]))
    assert (lo, up, open_) == (-1.5, 0.0, False)
    assert cooling_window(V, np.array([-1.0, -1.0, 0.0, 1.0]))[2] is True
    assert np.isnan(cooling_window(V, np.array([1.0, 1.0, 0.0, 1.0]))[0])


# --------------------------------------------------------------------------- Fig. 3 and 4

def test_fig3_rectification_flat_dos_is_exactly_reciprocal(tmp_path):
    out = tmp_path / "fig3"
    assert _run("fig3_rectification", out, 'study.curves={ "bias.mu0" = [0.0, 1.0] }', 'study.x="-0.4:0.4:4"') == 0
    t = pd.read_parquet(out / "fig3_rectification.parquet")
    assert set(t["dos"]) == {"lorentzian", "flat"}
    lor, flat = t[t["dos"] == "lorentzian"], t[t["dos"] == "flat"]
    assert flat["rho"].notna().sum() == 4 and np.abs(flat["rho"]).max() < 1e-8
    assert np.abs(lor["rho"]).min() > 0.05  # Lorentzian DOS: J(dT) != J(-dT) with temperatures exchanged
    # dT/T_ph axis: T_ph fixed, T_e = T_ph (1 + x)
    assert np.allclose(lor["bias.T_e"], lor["phonon_bath.T"] * (1 + lor["dT_over_T_ph"]))
    assert (np.sign(lor["J"]) == np.sign(lor["dT_over_T_ph"])).all()  # heat flows from hot to cold


def test_fig4_eta_largest_with_mu_between_the_levels(tmp_path):
    out = tmp_path / "fig4"
    assert _run("fig4_thermoelectric", out, 'study.curves={ "bias.mu0" = [0.0, 0.5, 1.0] }',
                'study.x="-0.4:0.4:4"') == 0
    t = pd.read_parquet(out / "fig4_thermoelectric.parquet")
    eta = t.groupby("bias.mu0")["eta"].min()
    assert eta[0.0] > eta[0.5] > eta[1.0]  # at every dT, mu between the levels (0) is best
    assert (t.groupby("dT_over_T_ph")["eta"].idxmax().map(t["bias.mu0"]) == 0.0).all()
    # electricity from heating (dT > 0) and from cooling (dT < 0) the ph-bath: eta > 0 both ways
    assert (t.loc[t["bias.mu0"] == 0.0, "eta"] > 0.5).all()
    assert (np.sign(t["Ie"]) == np.sign(t["dT_over_T_ph"])).all()


# --------------------------------------------------------------------------- maps, thresholds, transients

def test_map_threshold_equals_root_finder():
    cfg = load_config(RUNS / "paper_double_dot.toml")
    m = instability_map(cfg, ("bias.V", "0.5:2.0:31"), ("bias.T_e", "[0.05, 0.1, 0.3]"))
    assert m.kappa.shape == (3, 31)
    dx = 1.5 / 30
    curve = threshold_curve(cfg, "bias.V", (0.5, 2.0), "bias.T_e", m.y).merge(m.boundary(), on="bias.T_e")
    assert curve["threshold"].notna().all()
    assert np.abs(curve["threshold_grid"] - curve["threshold"]).max() < dx / 10
    # and the map's kappa changes sign exactly across the root finder's threshold
    for yv, th in zip(curve["bias.T_e"], curve["threshold"], strict=True):
        row = m.kappa[list(m.y).index(yv)]
        assert (row[m.x < th] > 0).all() and (row[m.x > th] <= 0).all()


def test_zero_crossing():
    assert zero_crossing([0, 1, 2], [1.0, -1.0, -3.0]) == 0.5
    assert zero_crossing([0, 1, 2], [1.0, 0.0, -3.0]) == 1.0
    assert np.isnan(zero_crossing([0, 1], [1.0, 2.0]))


@pytest.mark.parametrize("method", ["rate", "population"])
def test_runs_either_side_relax_or_grow_at_rate_minus_kappa(method):
    if method == "population":
        pytest.importorskip("sim.population")
    cfg = load_config(RUNS / "paper_double_dot.toml")
    t = np.linspace(0, 20, 401)
    series, rates = confirm_runs(cfg, "bias.V", [0.95, 1.15], t, N0=0.0, method=method)
    below, above = rates.iloc[0], rates.iloc[1]
    assert below["stable"] and below["relaxes"] and not above["stable"] and not above["relaxes"]
    for r in (below, above):
        assert r["fitted_kappa"] == pytest.approx(r["kappa"], rel=2e-3)
    assert above["growth_rate"] == pytest.approx(-float(rate_model(cfg.with_value("bias.V", 1.15)).kappa))


def test_fitted_kappa_exact_exponential():
    t = np.linspace(0, 5, 2001)
    assert fitted_kappa(t, 3.0 - 2.0 * np.exp(-0.7 * t)) == pytest.approx(0.7, rel=1e-5)
    assert fitted_kappa(t, np.exp(0.4 * t)) == pytest.approx(-0.4, rel=1e-5)


def test_transient_and_map_runs(tmp_path):
    assert _run("transient", tmp_path / "tr") == 0
    s = json.loads((tmp_path / "tr" / "summary.json").read_text())
    assert [r["stable"] for r in s["runs"]] == [True, True, False, False]
    assert all(r["fitted_kappa"] == pytest.approx(r["kappa"], rel=1e-3) for r in s["runs"])
    series = pd.read_parquet(tmp_path / "tr" / "transient.parquet")
    assert {"bias.V", "relative", "kappa", "t", "N"} <= set(series.columns)

    out = tmp_path / "map"
    assert _run("instability_map", out, 'study.x={ key = "bias.V", grid = "0.5:2.0:16" }',
                'study.y={ key = "bias.T_e", grid = "0.05:0.3:3" }') == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["max_abs_grid_minus_root"] < s["grid_step_x"]
    conf = s["confirm"]
    assert conf[0]["kappa"] > 0 > conf[1]["kappa"] and conf[0]["relaxes"] and not conf[1]["relaxes"]
    assert (out / "instability_map.png").stat().st_size > 10_000
    assert len(pd.read_parquet(out / "instability_map.parquet")) == 48


@pytest.mark.parametrize("sets, match", [
    (["study.kind=nope"], "study.kind must be one of"),
    (["study.colour=1"], "study.colour is not a known key"),
    (["study.level=middle"], "study.level must be"),
    (['study.curves={ "bias.mu0" = "x" }'], "cannot read"),
])
def test_bad_study_exit_2(tmp_path, capsys, sets, match):
    assert _run("fig4_thermoelectric", tmp_path / "bad", *sets) == 2
    assert match in capsys.readouterr().err


def test_run_study_api_refuses_a_config_without_study(tmp_path):
    with pytest.raises(ConfigError, match="no \\[study\\] table"):
        run_study(load_config(RUNS / "paper_double_dot.toml"), "x", tmp_path / "x")


def test_unstable_band_starts_at_the_threshold():
    """The kappa <= 0 band of the default bias sweep starts at V_c (root finder, else the interpolated
    kappa = 0 crossing), not at the next grid point."""
    from analysis.figures import unstable_intervals
    from analysis.threshold import find_threshold

    V = np.linspace(0.0, 2.0, 21)
    lin = 1 - V / 1.054  # linear kappa: the interpolated crossing is exact
    assert unstable_intervals(V, lin, lin > 0) == [(pytest.approx(1.054, rel=1e-12), 2.0)]
    two = (V - 0.55) * (V - 1.45)  # unstable inside (0.55, 1.45), grid points 0.6 .. 1.4
    (a, b), = unstable_intervals(V, two, two > 0)
    assert 0.5 < a < 0.6 and 1.4 < b < 1.5  # chords of the parabola, inside the grid gaps
    assert unstable_intervals(V, two, two > 0, [0.55, 1.45]) == [(0.55, 1.45)]
    assert unstable_intervals(V, -np.ones_like(V), np.zeros_like(V, bool)) == [(0.0, 2.0)]
    assert unstable_intervals(V, np.ones_like(V), np.ones_like(V, bool)) == []
    cfg = load_config("paper_double_dot")
    Vg = np.linspace(-2.0, 2.0, 41)
    kap = np.array([float(rate_model(cfg.with_value("bias.V", float(v))).kappa) for v in Vg])
    root = find_threshold(cfg, "bias.V", (1.0, 1.1)).threshold
    (a, b), = unstable_intervals(Vg, kap, kap > 0)
    assert abs(a - root) < 0.005 and 1.0 < a < 1.1 and b == 2.0  # interpolated crossing, not the grid point 1.1
    assert unstable_intervals(Vg, kap, kap > 0, [root]) == [(root, 2.0)]


def test_bias_sweep_figure_titles_and_band(tmp_path, monkeypatch):
    import matplotlib.figure

    from analysis.figures import _plot_bias_sweep

    V = np.linspace(-2.0, 2.0, 41)
    kap = 1 - V / 1.054
    ok = kap > 0
    table = pd.DataFrame({"bias.V": V, "kappa": kap, "stable": ok, "N": np.where(ok, 0.1, np.nan),
                          "J": np.where(ok, 0.01, np.nan), "Ie": np.where(ok, 0.02, np.nan)})
    figs = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self))
    _plot_bias_sweep(table, tmp_path / "b.png", [1.054])
    (fig,) = figs
    assert [ax.get_title()[:3] for ax in fig.axes] == ["(a)", "(b)", "(c)"]
    for ax in fig.axes:
        (band,) = [p for p in ax.patches if p.get_facecolor()[0] > 0.7]  # the red band
        xs = band.get_transform().transform(band.get_path().vertices)[:, 0]
        data_x = ax.transData.inverted().transform(np.column_stack([xs, xs * 0]))[:, 0]
        assert data_x.min() == pytest.approx(1.054, rel=1e-9) and data_x.max() == pytest.approx(2.0, rel=1e-9)
    assert any("1.054" in t for t in fig.axes[2].get_legend_handles_labels()[1])


def test_cooling_figure_band_starts_at_the_lowest_threshold(monkeypatch, tmp_path):
    """Two temperatures whose kappa crosses 0 at mu_LR = 1.03 and 1.07: the band starts at 1.03, both dashed."""
    import numpy as np
    import pandas as pd

    import analysis.plots as plots

    mu = np.linspace(-1.0, 1.5, 26)
    rows = []
    for T, mu_c in ((0.1, 1.07), (0.2, 1.03)):
        kappa = 0.5 * (mu_c - mu)
        rows.append(pd.DataFrame({"T": T, "mu_LR": mu, "J": 0.01 * mu, "kappa": kappa, "stable": kappa > 0}))
    seen = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: seen.setdefault("fig", fig))
    plots.plot_cooling(pd.concat(rows, ignore_index=True), tmp_path / "c.png")
    a = seen["fig"].axes[0]
    dashed = sorted(round(line.get_xdata()[0], 9) for line in a.get_lines() if line.get_linestyle() == "--")
    assert dashed == [1.03, 1.07]
    band = [p for p in a.patches if p.get_facecolor()[0] > 0.5 and p.get_facecolor()[2] < 0.5]  # the red band
    assert band and min(p.get_x() for p in band) == pytest.approx(1.03, abs=1e-9)
