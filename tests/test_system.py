"""The one system object (sim.system): K >= 1 modes built once, the bias passed at solve time.

Checks: the batch over bias points gives the numbers of a config re-parsed at every point
(bit for bit for one mode: the same elementwise formulas), the K = 1 fast path and the
covariance route of the same system agree, the steady-state record has the same ``modes``
keys for every K, sweeps and thresholds on the built system equal the per-point route, and bad
parameters are refused in one line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import sim
from analysis.cli import main
from analysis.threshold import find_threshold
from sim.config import ConfigError, load_config, parse_config
from sim.rate_equation import steady_state
from sim.sweep import Grid, SteadyPoint, evaluate_chunk
from sim.system import MODE_KEYS, SOLVE_TIME_KEYS, System

PAPER = load_config("paper_double_dot")
PAIR = load_config("waterwheel")
FLAT = parse_config({"conductor": {"kind": "flat", "K_LR": 3.0, "K_RL": 3.0, "K_LL": 1.0, "K_RR": 0.5},
                     "mode": {"omega": 1.0}, "bias": {"mu_L": 0.4, "mu_R": -0.3, "T_e": 0.1},
                     "phonon_bath": {"gamma": 0.05, "T": 0.1}})


def _mu_form(cfg):
    d = cfg.to_dict()
    b = cfg.bias
    d["bias"] = {"mu_L": b.mu_L, "mu_R": b.mu_R, "T_e": b.T_e}
    return parse_config(d)


@pytest.mark.parametrize("cfg", [PAPER, _mu_form(PAPER), FLAT], ids=["V-form", "mu-form", "flat"])
def test_one_mode_batch_equals_reparsed_configs(cfg):
    V = np.linspace(-1.5, 2.5, 41)
    batch = System(cfg).steady_states({"bias.V": V})
    cols = System(cfg).steady_columns({"bias.V": V})
    for i, (v, st) in enumerate(zip(V, batch, strict=True)):
        ref = steady_state(cfg.with_value("bias.V", float(v)))
        got = st.one
        # the same elementwise formulas: equal up to the last ulps a vectorised libm loop may differ by
        assert got.kappa == pytest.approx(ref.kappa, rel=1e-13, abs=float(ref.model.kappa_roundoff))
        assert got.stable == ref.stable and bool(cols["stable"][i]) == ref.stable
        if ref.stable:
            for q in ("N", "J", "Ie", "J_ph", "T_eff"):
                assert getattr(got, q) == pytest.approx(getattr(ref, q), rel=1e-13)
                assert cols[q][i] == pytest.approx(getattr(ref, q), rel=1e-13)
        else:
            assert np.isnan(cols["N"][i]) and np.isnan(cols["J"][i])


def test_several_modes_on_the_built_system_equal_reparsed_configs():
    s = System(PAIR)
    for v in (0.5, 1.2, 2.0):
        a = s.steady_state({"bias.V": v}).to_dict()
        b = System(PAIR.with_value("bias.V", v)).steady_state().to_dict()
        assert a["margin"] == pytest.approx(b["margin"], rel=1e-12, abs=1e-15)
        assert a["stable"] == b["stable"]
        if b["stable"]:
            assert a["N"] == pytest.approx(b["N"], rel=1e-12)


def test_margins_batch_matches_points():
    V = np.array([0.5, 1.0, 1.7, 2.4])
    for cfg in (PAPER, PAIR):
        m, r = System(cfg).margins({"bias.V": V})
        assert m.shape == V.shape and np.all(r > 0)
        for v, mi in zip(V, m, strict=True):
            assert mi == pytest.approx(System(cfg.with_value("bias.V", float(v))).steady_state().margin, rel=1e-12)


@pytest.mark.parametrize("cfg", [PAPER, FLAT], ids=["orbital", "flat"])
def test_covariance_route_of_one_mode_is_the_rate_equation(cfg):
    """Two routes on one system: the 1 x 1 Lyapunov covariance and Eq. 9. The flat 1 x 1 system has the
    same rates (round-off); the orbital one computes them through the rate matrices (quadrature of the
    same integrals by another factorisation: 1e-9)."""
    s = System(cfg)
    ss = s.steady_state().one
    cov = s.modes().steady_state()
    tol = 1e-12 if cfg is FLAT else 1e-9
    assert s.modes().margin == pytest.approx(ss.kappa, rel=tol)
    assert cov.N[0] == pytest.approx(ss.N, rel=tol)
    assert cov.J == pytest.approx(ss.J, rel=tol)
    assert cov.Ie == pytest.approx(ss.Ie, rel=tol, abs=1e-14)


def test_mean_population_rate_route_every_K():
    t = np.linspace(0.0, 50.0, 11)
    N, Nk = System(PAPER).mean_population(t)
    assert np.array_equal(N, sim.rate_model(PAPER).N_t(t))
    assert Nk.shape == (11, 1)
    N2, Nk2 = System(PAIR).mean_population(t, {"bias.V": 1.0})
    C = System(PAIR).modes({"bias.V": 1.0}).covariance(t)
    assert np.allclose(Nk2, np.real(np.diagonal(C, axis1=-2, axis2=-1)), rtol=1e-14, atol=0)
    assert np.allclose(N2, Nk2.sum(axis=1), rtol=1e-14)
    with pytest.raises(ConfigError, match="vacuum"):
        System(PAIR).mean_population(t, N0=1.0)


def test_steady_json_has_the_same_mode_keys_for_every_K(capsys):
    recs = []
    for name in ("paper_double_dot", "waterwheel"):
        assert main(["steady", name, "--json"]) == 0
        recs.append(json.loads(capsys.readouterr().out))
    one, two = recs
    assert one["n_modes"] == len(one["modes"]) == 1 and two["n_modes"] == len(two["modes"]) == 2
    for d in recs:
        for m in d["modes"]:
            assert tuple(m) == MODE_KEYS
        assert {"stable", "near_threshold", "growth_rate", "margin", "N", "J", "J_ph", "Ie"} <= set(d)
    assert one["margin"] == one["kappa"] == -one["growth_rate"]
    assert one["modes"][0]["N"] == one["N"] and one["modes"][0]["n_th"] == one["n_ph"]


def test_sweep_chunk_on_the_built_system_equals_point_by_point():
    grid = Grid.parse(["bias.V=0:2.5:26"]).validate(PAPER)
    pts = grid.points()
    fast = evaluate_chunk((PAPER, grid.keys, pts, SteadyPoint()))
    slow = evaluate_chunk((PAPER, grid.keys, pts, lambda c: SteadyPoint()(c)))  # no batch: per point
    assert list(fast.columns) == list(slow.columns)
    assert list(fast.dtypes) == list(slow.dtypes)
    assert fast["stable"].any() and not fast["stable"].all()  # both sides of the threshold
    np.testing.assert_allclose(fast.to_numpy(dtype=float), slow.to_numpy(dtype=float), rtol=1e-13, atol=0,
                               equal_nan=True)


def test_threshold_on_the_built_system_matches_reparsed_root():
    from scipy import optimize

    th = find_threshold(PAPER, "bias.V", (0.5, 3.0))
    root = optimize.brentq(lambda v: float(sim.rate_model(PAPER.with_value("bias.V", v)).kappa), 0.5, 3.0, xtol=1e-14)
    assert th.threshold == pytest.approx(root, abs=1e-11)


@pytest.mark.parametrize(("params", "match"), [
    ({"mode.omega": 1.0}, r"mode.omega is not a solve-time parameter"),
    ({"bias.V": 1.0, "bias.mu_L": 0.2}, "not both"),
    ({"bias.V": float("nan")}, "bias.V must be finite"),
    ({"bias.V": "x"}, "bias.V must be a number"),
    ({"bias.mu_L": True}, "bias.mu_L must be finite numbers"),
])
def test_bad_parameters_refused(params, match):
    with pytest.raises(ConfigError, match=match):
        System(PAPER).steady_state(params)


def test_jump_model_of_several_modes_refused_and_keys_listed():
    with pytest.raises(ConfigError, match="K = 2"):
        System(PAIR).jump_model()
    with pytest.raises(ConfigError, match="one bias point"):
        System(PAIR).modes({"bias.V": [1.0, 2.0]})
    assert set(SOLVE_TIME_KEYS) == {"bias.V", "bias.mu0", "bias.mu_L", "bias.mu_R"}
