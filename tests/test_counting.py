"""Exact counting statistics, waiting times and first passage (docs/theory.md sec. 9)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from analysis.estimators import estimate_cumulant_rates
from sim.counting import (
    JUMP_LABELS,
    birth_death,
    cumulant_rates,
    g2_from_distribution,
    mean_first_passage,
    mean_first_passage_recursion,
    quantity_weights,
    waiting_time_density,
    waiting_time_probability,
)
from sim.rate_equation import rate_model, steady_state

from .conftest import make_config


def _cfg(**ph):
    return make_config(conductor={"kind": "double_dot", "hopping": 0.1, "coupling": 0.3},
                       bias={"V": 0.6, "T_e": 0.2}, phonon_bath={"T": 0.1, "gamma": 0.1, **ph})


def test_first_cumulants_are_the_rate_equation_fluxes():
    cfg = _cfg()
    m, ss = rate_model(cfg), steady_state(cfg)
    chain = birth_death(m)
    assert cumulant_rates(chain, quantity_weights("charge", m.omega))[0] == pytest.approx(ss.Ie, rel=1e-10)
    assert cumulant_rates(chain, quantity_weights("energy:ph", m.omega))[0] == pytest.approx(-ss.J_ph, rel=1e-10)
    for i, c in enumerate(("LL", "RR", "LR", "RL")):
        em = cumulant_rates(chain, quantity_weights(f"jumps:{c}:emission", m.omega), order=1)[0]
        assert em == pytest.approx(m.rates.emission[i] * (ss.N + 1), rel=1e-10)
        ab = cumulant_rates(chain, quantity_weights(f"jumps:{c}:absorption", m.omega), order=1)[0]
        assert ab == pytest.approx(m.rates.absorption[i] * ss.N, rel=1e-10)


def test_pinned_mode_gives_poisson_counting():
    """gamma_ph >> all EHP rates: N is pinned at n_ph and each label's jumps are Poissonian
    (all cumulants equal); corrections are O(tau / gamma_ph)."""
    for g, tol in ((1e2, 3e-3), (1e4, 3e-5)):
        m = rate_model(_cfg(gamma=g))
        c = cumulant_rates(birth_death(m), quantity_weights("jumps:LR:emission", m.omega))
        assert c[0] == pytest.approx(m.rates.emission[2] * (float(m.N_ss()) + 1), rel=1e-9)
        # N - n_ph = (E - Gamma_e n_ph)/kappa: pinned to within E/gamma_ph
        assert abs(float(m.N_ss()) - float(m.n_ph)) < 2 * float(m.emission_total) / g
        np.testing.assert_allclose(c / c[0], 1.0, atol=tol)


def test_fano_factor_exceeds_one_for_a_free_mode():
    """Without pinning the mode's population fluctuations bunch the jumps (super-Poissonian)."""
    m = rate_model(_cfg(gamma=0.01))
    c = cumulant_rates(birth_death(m), quantity_weights("jumps:LR:emission", m.omega), order=2)
    assert c[1] / c[0] > 1.0


def test_waiting_time_density_is_normalised_and_matches_its_integral():
    m = rate_model(_cfg(gamma=0.3))
    chain = birth_death(m)
    first = JUMP_LABELS.index(("ph", "absorption"))
    probs = [waiting_time_probability(chain, first, s) for s in range(len(JUMP_LABELS))]
    assert sum(probs) == pytest.approx(1.0, abs=1e-12)
    second = JUMP_LABELS.index(("ph", "emission"))
    w = waiting_time_density(chain, first, second, np.geomspace(1e-3, 1e5, 200))
    assert np.all(w >= -1e-12)
    integral, _ = quad(lambda t: waiting_time_density(chain, first, second, np.array([t]))[0], 0, np.inf,
                       epsabs=1e-13, limit=500)
    assert integral == pytest.approx(probs[second], rel=1e-8)


def test_first_passage_mean_matches_birth_death_recursion():
    m = rate_model(make_config(bias={"V": 2.0, "T_e": 0.1}))  # unstable: time to runaway
    assert not m.stable
    for n0, level in ((0, 5), (2, 40)):
        assert mean_first_passage(m, n0, level) == pytest.approx(mean_first_passage_recursion(m, n0, level), rel=1e-10)


def test_g2_of_bose_einstein_is_two():
    N = 0.7
    n = np.arange(400)
    P = (1 / (N + 1)) * (N / (N + 1)) ** n
    assert g2_from_distribution(P) == pytest.approx(2.0, rel=1e-12)
    assert g2_from_distribution(birth_death(rate_model(_cfg())).steady()) == pytest.approx(2.0, rel=1e-9)


def test_estimator_recovers_poisson_cumulants():
    rng = np.random.default_rng(7)
    duration, rate = 50.0, 0.8
    x = rng.poisson(rate * duration, size=40000)
    est, err = estimate_cumulant_rates(x, duration)
    assert np.all(np.abs(est - rate) < 4 * err)
    assert np.all(err > 0)


def test_unknown_quantity_and_unstable_chain_are_errors():
    with pytest.raises(ValueError, match="quantity must be"):
        quantity_weights("jumps:XX:emission", 1.0)
    with pytest.raises(ValueError, match="unstable"):
        birth_death(rate_model(make_config(bias={"V": 2.0, "T_e": 0.1})))


def test_first_passage_exact_analytic_limits():
    """Level 1 from vacuum: T is exponential with rate up(0) = A; geometric starts average the per-n0 means."""
    from sim.counting import first_passage_exact, first_passage_mean

    A, B = 0.3, 1.1
    for t in (0.5, 2.0, 10.0):
        mean, p = first_passage_exact(A, B, [1.0], 1, t)
        assert mean == pytest.approx(1 / A, rel=1e-12) and p == pytest.approx(-np.expm1(-A * t), rel=1e-12)
    x = 0.4
    p0 = (1 - x) * x ** np.arange(30)
    mean, p = first_passage_exact(A, B, p0, 5, 1e4)
    direct = sum(p0[n] * first_passage_mean(A, B, n, 5) for n in range(5))
    assert mean == pytest.approx(direct, rel=1e-10) and p == pytest.approx(1.0, abs=1e-12)
    assert first_passage_exact(A, B, p0, 5, 0.0)[1] == pytest.approx(x**5, rel=1e-12)  # P(n0 >= 5): there at t = 0
