"""Time-dependent bias with adiabatic rates (docs/theory.md sec. 10): schedules, rate tables and the
three routes (rate equation, populations, Lindblad) against adiabatic hand calculations.

Tolerances. A step in bias keeps the rates constant inside each segment, so the rate
tables are exact there and N(t) is piecewise the static closed form
``N(t) = N_ss + (N(t_s) - N_ss) exp(-kappa (t - t_s))``: the rate route (solve_ivp,
rtol 1e-10) must match to 1e-9 (1 + N); the population route adds the truncation bound
``up_rate K max P_{K-1} t``; the Lindblad route the mesolve allowance 1e-8 (1 + N) of
tests/test_lindblad.py. A slow ramp is checked against the adiabatic expansion
``N = N_ss - (1/kappa) dN_ss/dt + (1/kappa) d/dt[(1/kappa) dN_ss/dt] - ...``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import qutip

from sim.lindblad import collapse_operators, evolve_lindblad
from sim.population import TruncationError, evolve_population
from sim.rate_equation import rate_model
from sim.timedep import (
    BiasSchedule,
    evolve_lindblad_timedep,
    evolve_population_timedep,
    evolve_rate_timedep,
    rate_table,
    rates_at,
    timedep_collapse_operators,
)

from .conftest import make_config


def config(V: float = 1.0, hopping: float = 0.0):
    return make_config(conductor={"kind": "double_dot", "coupling": 0.3, "hopping": hopping},
                       bias={"V": V, "mu0": 0.0, "T_e": 0.1}, phonon_bath={"T": 0.1, "gamma": 0.1})


def sym(V: float) -> tuple[float, float]:
    return (V / 2, -V / 2)


def test_schedules_interpolate_and_jump():
    s = BiasSchedule.from_table([0.0, 10.0, 10.0, 20.0], [0.0, 1.0, 2.0, 2.0], [0.0, -1.0, -1.0, 0.0])
    L, R = s(np.array([-5.0, 0.0, 5.0, 9.999, 10.0, 15.0, 20.0, 30.0]))
    assert np.allclose(L, [0.0, 0.0, 0.5, 0.9999, 2.0, 2.0, 2.0, 2.0], rtol=0, atol=1e-12)
    assert np.allclose(R, [0.0, 0.0, -0.5, -0.9999, -1.0, -0.5, 0.0, 0.0], rtol=0, atol=1e-12)
    assert s.breakpoints == (0.0, 10.0, 20.0)
    step = BiasSchedule.step(3.0, (0.5, -0.5), (0.6, -0.4))
    assert [float(x) for x in step(2.999)] == [0.5, -0.5] and [float(x) for x in step(3.0)] == [0.6, -0.4]
    f = BiasSchedule.from_functions(lambda t: 0.5 + 0.1 * math.sin(t), lambda t: -0.5)  # scalar-only function
    L, R = f(np.array([0.0, math.pi / 2]))
    assert np.allclose(L, [0.5, 0.6]) and np.allclose(R, [-0.5, -0.5])
    with pytest.raises(ValueError):
        BiasSchedule.from_table([1.0, 0.0], [0, 0], [0, 0])
    with pytest.raises(ValueError):
        BiasSchedule.from_table([0.0, 1.0], [0, 0, 0], [0, 0])


def test_rates_at_matches_static_models_point_by_point():
    cfg = config(hopping=0.1)
    s = BiasSchedule.from_functions(lambda t: 0.5 + 0.2 * np.sin(t), lambda t: -0.3 + 0.1 * np.cos(2 * t))
    t = np.array([0.0, 0.7, 2.5])
    m = rates_at(cfg, s, t)
    assert m.rates.emission.shape == (4, 3)
    for i, ti in enumerate(t):
        mu_L, mu_R = (float(x) for x in s(ti))
        ref = rate_model(cfg.with_value("bias.mu_L", mu_L).with_value("bias.mu_R", mu_R))
        assert np.allclose(m.rates.emission[:, i], ref.rates.emission, rtol=1e-12, atol=1e-15)
        assert np.allclose(m.rates.absorption[:, i], ref.rates.absorption, rtol=1e-12, atol=1e-15)
        assert m.kappa[i] == pytest.approx(float(ref.kappa), rel=1e-12)


def test_rate_table_segments_take_one_sided_limits_at_a_step():
    cfg = config()
    s = BiasSchedule.step(5.0, sym(1.0), sym(1.1))
    segs = rate_table(cfg, s, 0.0, 12.0, n_fine=101)
    assert [(g.t0, g.t1) for g in segs] == [(0.0, 5.0), (5.0, 12.0)]
    k1, k2 = float(rate_model(config(1.0)).kappa), float(rate_model(config(1.1)).kappa)
    assert np.allclose(segs[0].kappa, k1, rtol=1e-12) and np.allclose(segs[1].kappa, k2, rtol=1e-12)


def step_hand_calculation(t, t_s, V1, V2, N0):
    """Piecewise exponential with the two kappa's (static closed forms)."""
    m1, m2 = rate_model(config(V1)), rate_model(config(V2))
    N_s = float(m1.N_t(t_s, N0))
    return np.where(t < t_s, m1.N_t(t, N0), m2.N_t(np.maximum(t - t_s, 0.0), N_s)), m2


def test_step_in_bias_all_routes_against_the_piecewise_exponential():
    t_s, V1, V2 = 8.0, 1.0, 1.05
    t = np.linspace(0.0, 30.0, 61)
    s = BiasSchedule.step(t_s, sym(V1), sym(V2))
    N_hand, m2 = step_hand_calculation(t, t_s, V1, V2, 0.0)
    cfg = config(V1)
    rate = evolve_rate_timedep(cfg, s, t)
    assert np.abs(rate.N - N_hand).max() <= 1e-9 * (1 + N_hand.max())
    assert rate.kappa[-1] == pytest.approx(float(m2.kappa), rel=1e-12)
    pop = evolve_population_timedep(cfg, s, t)
    trunc = max(float(m2.up_rate), float(rate_model(cfg).up_rate)) * pop.cutoff * pop.top_probability * 30.0
    assert pop.stopped_at is None and pop.tail_probability <= 1e-10
    assert np.abs(pop.N - N_hand).max() <= trunc + 1e-9 * (1 + N_hand.max())
    lind = evolve_lindblad_timedep(cfg, s, t, cutoff=pop.cutoff)
    assert np.abs(lind.N - pop.N).max() <= 1e-8 * (1 + N_hand.max())
    assert np.abs(lind.N - N_hand).max() <= trunc + 2e-8 * (1 + N_hand.max())


def test_slow_ramp_tracks_the_instantaneous_steady_state_with_the_adiabatic_lag():
    T = 600.0
    s = BiasSchedule.from_table([0.0, T], [0.45, 0.525], [-0.45, -0.525])  # V: 0.9 -> 1.05
    t = np.linspace(0.0, T, 601)
    cfg = config(0.9)
    N0 = float(rates_at(cfg, s, 0.0).N_ss())
    r = evolve_rate_timedep(cfg, s, t, N0)
    lag = np.gradient(r.N_ss, t, edge_order=2) / r.kappa  # first-order adiabatic correction
    corr2 = np.gradient(lag, t, edge_order=2) / r.kappa  # second order
    sel = t > 100.0  # the start-up transient exp(-int kappa) < e^-8 of the initial lag by then
    assert np.all(r.N[sel] < r.N_ss[sel])  # it lags behind a rising N_ss
    assert np.all(r.N_ss[sel] - r.N[sel] > 0.5 * lag[sel])
    rem1 = np.abs(r.N - r.N_ss + lag)[sel]
    rem2 = np.abs(r.N - r.N_ss + lag - corr2)[sel]
    assert rem1.max() <= 1.5 * np.abs(corr2[sel]).max()  # the remainder is of the size of the next term
    assert rem2.max() <= 0.2 * rem1.max()  # and the expansion converges
    pop = evolve_population_timedep(cfg, s, t[::20], "steady")
    assert np.abs(pop.N - r.N[::20]).max() <= 1e-8


def test_constant_schedule_reproduces_the_static_routes():
    cfg = config(1.0)
    s = BiasSchedule.constant(0.5, -0.5)
    t = np.linspace(0.0, 20.0, 21)
    m = rate_model(cfg)
    assert np.abs(evolve_rate_timedep(cfg, s, t, 2.0).N - m.N_t(t, 2.0)).max() < 1e-9
    p_static = evolve_population(m, t, "fock:2", cutoff=70)
    p = evolve_population_timedep(cfg, s, t, "fock:2", cutoff=70)
    assert np.abs(p.P - p_static.P).max() < 1e-9
    l_static = evolve_lindblad(m, t, "coherent:0.8", cutoff=30)
    lind = evolve_lindblad_timedep(cfg, s, t, "coherent:0.8", cutoff=30)
    assert np.abs(lind.N - l_static.N).max() < 1e-8
    assert abs(qutip.expect(qutip.destroy(30), lind.rho) - qutip.expect(qutip.destroy(30), l_static.rho)) < 1e-8


def test_timedep_collapse_operators_follow_the_rates():
    cfg = config(1.0, hopping=0.1)
    s = BiasSchedule.from_table([0.0, 10.0], [0.4, 0.6], [-0.4, -0.6])
    (seg,) = rate_table(cfg, s, 0.0, 10.0, n_fine=201)
    K = 5
    ops = timedep_collapse_operators(seg, K)
    for tau in (0.0, 3.3, 10.0):
        static = collapse_operators(rates_at(cfg, s, tau), K)
        assert [(c, d) for c, d, _ in ops] == [(c, d) for c, d, _ in static]
        for (_, _, op_t), (_, _, op) in zip(ops, static, strict=True):
            assert (op_t(tau) - op).norm() <= 1e-9 * max(1.0, op.norm())


def test_step_into_instability_stops_at_the_guard():
    t_s = 5.0
    t = np.linspace(0.0, 40.0, 161)
    s = BiasSchedule.step(t_s, sym(1.0), sym(2.0))
    cfg = config(1.0)
    pop = evolve_population_timedep(cfg, s, t, cutoff=60)
    # reference: the static exact propagator, before and after the step
    a = evolve_population(rate_model(config(1.0)), [0.0, t_s], cutoff=60)
    b = evolve_population(rate_model(config(2.0)), np.linspace(t_s, 40.0, 351), a.P[-1], cutoff=60)
    assert pop.stopped_at == pytest.approx(b.stopped_at, rel=1e-4)
    assert "unstable" in pop.message and pop.t[-1] < pop.stopped_at
    lind = evolve_lindblad_timedep(cfg, s, t, cutoff=60)
    assert lind.stopped_at == pytest.approx(b.stopped_at, rel=5e-3)  # top level known to atol ~ 1 %
    with pytest.raises(TruncationError):
        evolve_population_timedep(cfg, s, t, cutoff=60, on_truncation="raise")
