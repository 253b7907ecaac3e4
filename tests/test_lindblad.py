"""QuTiP Lindblad model of the mode (docs/theory.md sec. 4) against the population and rate routes.

Tolerances. In the truncated space a^dagger|K-1> = 0, so the Lindblad populations obey
exactly the reflecting birth-death chain of sim.population: the two routes differ only
by the integrator error. mesolve runs at rtol = 1e-10, atol = 1e-12 (sim.lindblad
defaults); allowing the global error to be 100 x the local rtol over the run gives
``1e-8 (1 + max N)``. Against the rate equation the truncation bound
``up_rate K max_t P_{K-1} t_end`` (see tests/test_population.py) is added.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import qutip

from sim.lindblad import (
    LABELS,
    collapse_operators,
    evolve_lindblad,
    initial_state,
    label_rates,
    steady_lindblad,
)
from sim.population import TruncationError, evolve_population, steady_population

from .test_population import model

SOLVER = 1e-8


def test_collapse_operators_are_labelled_and_ordered():
    m = model(1.0, hopping=0.1)  # hopping != 0: LL and RR are on
    K = 6
    ops = collapse_operators(m, K)
    rates = {(c, d): float(r) for c, d, r in label_rates(m)}
    assert [(c, d) for c, d, _ in ops] == [lab for lab in LABELS if rates[lab] > 0]
    assert len(ops) == 10
    a = qutip.destroy(K)
    for c, d, op in ops:
        ref = math.sqrt(rates[(c, d)]) * (a.dag() if d == "emission" else a)
        assert (op - ref).norm() < 1e-14
    assert rates[("ph", "emission")] == pytest.approx(m.gamma_ph * float(m.n_ph), rel=1e-15)
    assert rates[("ph", "absorption")] == pytest.approx(m.gamma_ph * (float(m.n_ph) + 1), rel=1e-15)
    # rates add up to the birth-death coefficients
    assert sum(r for (c, d), r in rates.items() if d == "emission") == pytest.approx(float(m.up_rate), rel=1e-13)
    assert sum(r for (c, d), r in rates.items() if d == "absorption") == pytest.approx(float(m.down_rate), rel=1e-13)
    # t = 0 double dot: no LL, RR; no ph-bath at gamma = 0
    labels = [(c, d) for c, d, _ in collapse_operators(model(1.0, gamma=0.0), K)]
    assert all(c in ("LR", "RL") for c, _ in labels) and len(labels) == 4


@pytest.mark.parametrize("initial", ["vacuum", "thermal:1", "fock:2"])
def test_lindblad_population_and_rate_equation_agree(initial):
    m = model(1.0)
    t = np.linspace(0.0, 40.0, 81)
    lind = evolve_lindblad(m, t, initial)
    pop = evolve_population(m, t, initial, cutoff=lind.cutoff)
    N0 = pop.N[0]
    assert lind.stopped_at is None and lind.rho is not None and lind.rho.tr() == pytest.approx(1.0, abs=1e-10)
    tol = SOLVER * (1 + pop.N.max())
    assert np.abs(lind.N - pop.N).max() <= tol
    assert np.abs(lind.P_top - pop.P[:, -1]).max() <= 1e-11  # atol-level
    trunc = float(m.up_rate) * lind.cutoff * pop.top_probability * 40.0
    assert np.abs(lind.N - m.N_t(t, N0)).max() <= tol + trunc
    assert np.abs(np.real(lind.rho.diag()) - pop.P[-1]).max() <= SOLVER


def test_steady_lindblad_is_bose_einstein():
    m = model(1.1)
    ss = steady_lindblad(m)
    pop = steady_population(m, ss.cutoff)
    N = float(m.N_ss())
    x = N / (N + 1)
    K = ss.cutoff
    assert ss.stable and ss.message is None
    assert ss.N == pytest.approx(pop.N, abs=1e-10)
    assert ss.N == pytest.approx(N, abs=2 * K * x ** (K - 1) + 1e-10)
    assert ss.tail_probability == pytest.approx(pop.top_probability, rel=1e-6)
    assert ss.tail_probability <= 1e-10
    assert np.abs(np.real(ss.rho.diag()) - pop.P).max() < 1e-12
    assert np.abs(ss.rho.full() - np.diag(np.diag(ss.rho.full()))).max() < 1e-12  # no coherences
    assert ss.to_dict() == {"N": ss.N, "cutoff": K, "tail_probability": ss.tail_probability}


def test_unstable_mode_has_no_lindblad_steady_state_and_its_evolution_stops():
    m = model(2.0)
    ss = steady_lindblad(m)
    assert not ss.stable and math.isnan(ss.N) and ss.rho is None
    assert "unstable" in ss.message and "0.211985" in ss.message
    assert ss.to_dict() == {"N": None, "cutoff": None, "tail_probability": None}
    t = np.linspace(0.0, 20.0, 101)
    lind = evolve_lindblad(m, t, cutoff=40)
    pop = evolve_population(m, t, cutoff=40)
    assert lind.rho is None and "unstable" in lind.message
    # the top-level probability ~1e-10 is known to ~atol = 1e-12, i.e. 1 %: the stop time to 1 %/(dlnP/dt)
    assert lind.stopped_at == pytest.approx(pop.stopped_at, rel=5e-3)
    n = min(lind.t.size, pop.t.size)
    assert np.abs(lind.N[:n] - pop.N[:n]).max() <= SOLVER * (1 + pop.N.max())


def test_stable_mode_with_too_small_a_cutoff_raises():
    with pytest.raises(TruncationError) as exc:
        evolve_lindblad(model(1.0), np.linspace(0, 20, 41), "fock:3", cutoff=8)
    assert 0 < exc.value.t_stop < 20 and np.all(exc.value.partial.t < exc.value.t_stop)
    with pytest.raises(TruncationError):
        steady_lindblad(model(1.0), cutoff=4)


def test_coherent_state_mean_relaxes_like_the_rate_equation():
    """N(0) = |alpha|^2; N(t) obeys the same linear ODE as the rate equation, and
    <a>(t) = alpha exp(-i Omega t - kappa t / 2) (D[a^dag] adds up/2, D[a] removes down/2)."""
    m = model(1.0)
    alpha = 1 + 0.5j
    t = np.linspace(0.0, 20.0, 41)
    lind = evolve_lindblad(m, t, f"coherent:{alpha}")
    K = lind.cutoff
    assert lind.N[0] == pytest.approx(abs(alpha) ** 2, abs=1e-12)
    assert np.abs(lind.N - m.N_t(t, abs(alpha) ** 2)).max() <= SOLVER * (1 + abs(alpha) ** 2)
    a_end = qutip.expect(qutip.destroy(K), lind.rho)
    ref = alpha * np.exp(-1j * m.omega * 20.0 - float(m.kappa) * 10.0)
    assert abs(a_end - ref) <= SOLVER


def test_initial_states():
    m = model(1.0)
    K = 70  # thermal:1.5 leaves x^K = 0.6^70 ~ 3e-16 outside
    num = qutip.num(K)
    for spec, N in [("vacuum", 0.0), ("fock:3", 3.0), ("thermal:1.5", 1.5), ("coherent:-1.2j", 1.44),
                    ("steady", float(m.N_ss()))]:
        rho = initial_state(spec, K, m)
        assert rho.isherm and rho.tr() == pytest.approx(1.0, abs=1e-14)
        assert qutip.expect(num, rho) == pytest.approx(N, abs=1e-9)
    psi = initial_state("coherent:0.7+0.2j", K)
    assert qutip.expect(qutip.destroy(K), psi) == pytest.approx(0.7 + 0.2j, abs=1e-12)
    assert (psi * psi).tr() == pytest.approx(1.0, abs=1e-12)  # pure
    with pytest.raises(ValueError, match="no steady state"):
        initial_state("steady", K, model(2.0))
    with pytest.raises(ValueError):
        initial_state("fock:3", 1)
