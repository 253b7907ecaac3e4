"""Rate equation: steady state, fluxes, stability, effective parameters (docs/theory.md secs. 4-7)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from sim.rate_equation import (
    effective_chemical_potential,
    effective_temperature,
    rate_model,
    steady_state,
)

from .conftest import make_config


def test_energy_balance_in_steady_state():
    """J_e (e-bath -> mode) = J_ph (mode -> ph-bath) when dN/dt = 0."""
    for V in (0.0, 0.3, 0.8, -0.6):
        cfg = make_config(bias={"V": V, "T_e": 0.15}, phonon_bath={"T": 0.05, "gamma": 0.1},
                          conductor={"kind": "double_dot", "hopping": 0.1})
        ss = steady_state(cfg)
        assert ss.stable
        assert ss.J == pytest.approx(ss.J_ph, rel=1e-10, abs=1e-16)
        assert ss.J == pytest.approx(ss.J_channel.sum(), rel=1e-12)


def test_steady_state_is_the_fixed_point_of_eq8():
    cfg = make_config(bias={"V": 0.4, "T_e": 0.2})
    m = rate_model(cfg)
    N = float(m.N_ss())
    r = m.rates
    dNdt = (r.emission * (N + 1) - r.absorption * N).sum() + m.gamma_ph * (m.n_ph - N)
    assert abs(dNdt) < 1e-14 * (r.emission.sum() + r.absorption.sum())
    # Eq. 9 (no ph-bath): N = 1/(sum tau_abs / sum tau_em - 1)
    m0 = rate_model(cfg.with_value("phonon_bath.gamma", 0.0))
    assert float(m0.N_ss()) == pytest.approx(1 / (m0.absorption_total / m0.emission_total - 1), rel=1e-12)


def test_equilibrium_gives_bose_einstein():
    """mu_L = mu_R and T_e = T_ph: N = nB(Omega, T)."""
    cfg = make_config(bias={"mu_L": 0.1, "mu_R": 0.1, "T_e": 0.3}, phonon_bath={"T": 0.3, "gamma": 0.2},
                      conductor={"kind": "double_dot", "hopping": 0.2})
    assert steady_state(cfg).N == pytest.approx(1 / np.expm1(1 / 0.3), rel=1e-10)


@pytest.mark.parametrize("N0", [0.0, 3.0])
def test_N_of_t_against_numerical_integration(N0):
    cfg = make_config(bias={"V": 0.6, "T_e": 0.1})
    m = rate_model(cfg)
    t = np.linspace(0, 8 / float(m.kappa), 50)
    sol = solve_ivp(lambda _t, y: m.source - m.kappa * y, (0, t[-1]), [N0], t_eval=t, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(m.N_t(t, N0), sol.y[0], rtol=1e-8, atol=1e-12)
    assert m.N_t(t[-1] * 10, N0) == pytest.approx(float(m.N_ss()), rel=1e-12)


def test_effective_parameters_eqs_10_to_12():
    cfg = make_config(bias={"V": 0.5, "T_e": 0.2})
    ss = steady_state(cfg)
    om, Te = cfg.mode.omega, cfg.bias.T_e
    assert ss.T_eff == pytest.approx(Te / (1 - ss.mu_eff / om), rel=1e-12)  # Eq. 12
    assert ss.N == pytest.approx(1 / np.expm1(om / ss.T_eff), rel=1e-12)  # Eq. 10 inverted
    assert ss.N == pytest.approx(1 / np.expm1((om - ss.mu_eff) / Te), rel=1e-12)  # Eq. 11 inverted
    # heating <=> 0 < mu_eff < Omega; cooling <=> mu_eff < 0 (docs/theory.md sec. 6: we follow Eq. 12)
    for N in (0.01, 0.5, 5.0):
        T_eff = effective_temperature(N, om)
        mu_eff = effective_chemical_potential(N, om, Te)
        assert (T_eff > Te) == (0 < mu_eff < om)
        assert (T_eff < Te) == (mu_eff < 0)


def test_mu_eff_tends_to_omega_at_threshold():
    from analysis.threshold import find_threshold

    cfg = make_config(bias={"V": 0.5, "T_e": 0.1})
    th = find_threshold(cfg, "bias.V", (0.0, 2.0)).threshold
    prev = -np.inf
    for eps in (1e-1, 1e-2, 1e-3, 1e-4):
        ss = steady_state(cfg.with_value("bias.V", th - eps))
        assert ss.stable and ss.mu_eff > prev
        prev = ss.mu_eff
    assert prev == pytest.approx(cfg.mode.omega, abs=1e-3)


def test_instability_reported_above_threshold():
    cfg = make_config(bias={"V": 2.0, "T_e": 0.1})
    ss = steady_state(cfg)
    assert not ss.stable
    assert ss.kappa < 0 and ss.growth_rate == pytest.approx(-ss.kappa)
    d = ss.to_dict()
    assert d["stable"] is False and d["N"] is None and d["J"] is None and d["T_eff"] is None
    assert d["growth_rate"] > 0
    m = rate_model(cfg)
    assert np.isnan(m.N_ss())
    # the population runs away: N(t) - source/kappa grows exactly like exp(-kappa t)
    t = np.array([10.0, 20.0])
    excess = m.N_t(t, 0.0) - m.source / m.kappa
    assert np.log(excess[1] / excess[0]) / 10.0 == pytest.approx(-ss.kappa, rel=1e-10)


def test_mirror_flips_particle_current():
    """L <-> R (dots, broadenings, chemical potentials): Ie -> -Ie, J unchanged."""
    a = make_config(conductor={"kind": "double_dot", "eps": [0.4, -0.3], "hopping": 0.1, "gamma_L": 0.3,
                               "gamma_R": 0.6}, bias={"mu_L": 0.3, "mu_R": -0.2, "T_e": 0.1})
    b = make_config(conductor={"kind": "double_dot", "eps": [-0.3, 0.4], "hopping": 0.1, "gamma_L": 0.6,
                               "gamma_R": 0.3}, bias={"mu_L": -0.2, "mu_R": 0.3, "T_e": 0.1})
    sa, sb = steady_state(a), steady_state(b)
    assert abs(sa.Ie) > 1e-6
    assert sb.Ie == pytest.approx(-sa.Ie, rel=1e-9)
    assert sb.J == pytest.approx(sa.J, rel=1e-9)
    assert sb.N == pytest.approx(sa.N, rel=1e-9)
