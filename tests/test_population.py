"""Birth-death master equation for P_n(t) (docs/theory.md sec. 4): generator, steady state, cutoff, guard.

Tolerances. The propagators exp(G dt) are exact up to round-off (~1e-13 here), so the
only error of N(t) against the rate equation is the reflecting truncation:
``|dN/dt - dN_rate/dt| = up_rate K P_{K-1}(t)``, hence
``|N - N_rate| <= up_rate K max_t P_{K-1} (t - t_0)``; the tests add 1e-12 (1 + N) for round-off.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from sim.population import (
    InitialSpec,
    TruncationError,
    birth_death_parts,
    choose_cutoff,
    evolve_population,
    generator,
    geometric_cutoff,
    initial_distribution,
    steady_population,
)
from sim.rate_equation import rate_model

from .conftest import make_config


def model(V: float, gamma: float = 0.1, coupling: float = 0.3, T: float = 0.1, hopping: float = 0.0):
    """Double dot (levels +-0.5, widths 0.5), Omega = 1; V = 1 gives kappa ~ 0.11, N_ss ~ 0.52;
    V = 2 is unstable (kappa ~ -0.21)."""
    return rate_model(make_config(
        conductor={"kind": "double_dot", "coupling": coupling, "hopping": hopping},
        bias={"V": V, "mu0": 0.0, "T_e": T}, phonon_bath={"T": T, "gamma": gamma}))


def truncation_bound(m, r, t_span: float) -> float:
    return float(m.up_rate) * r.cutoff * r.top_probability * t_span + 1e-12 * (1 + float(np.max(r.N)))


def test_generator_is_the_birth_death_chain():
    m = model(1.0)
    K = 12
    G = generator(m, K).toarray()
    n = np.arange(K)
    u, d = float(m.up_rate), float(m.down_rate)
    assert np.allclose(np.diag(G, -1), u * (n[:-1] + 1), rtol=1e-15, atol=0)
    assert np.allclose(np.diag(G, 1), d * n[1:], rtol=1e-15, atol=0)
    assert np.abs(G.sum(axis=0)).max() < 1e-15  # probability conserved, top level reflecting
    assert G[K - 1, K - 1] == pytest.approx(-d * (K - 1), rel=1e-15)  # no birth out of the top level
    assert np.count_nonzero(np.triu(G, 2)) == 0 and np.count_nonzero(np.tril(G, -2)) == 0
    A, B = birth_death_parts(K)
    assert np.allclose((u * A + d * B).toarray(), G, rtol=0, atol=1e-16)


@pytest.mark.parametrize("V,gamma", [(0.5, 0.1), (1.0, 0.1), (1.1, 0.05), (1.0, 0.0)])
def test_steady_state_is_bose_einstein(V, gamma):
    """P_n = (1 - x) x^n, x = N/(N+1); truncation renormalises by 1/(1 - x^K)."""
    m = model(V, gamma=gamma)
    ss = steady_population(m)
    N = float(m.N_ss())
    x = N / (N + 1)
    K = ss.cutoff
    n = np.arange(K)
    be = (1 - x) * x**n
    assert ss.stable and ss.residual < 1e-14
    assert np.abs(ss.P - be).max() <= 1.01 * x**K + 1e-15
    assert ss.N == pytest.approx(N, abs=2 * K * x ** (K - 1) + 1e-14)
    assert ss.tail_probability == pytest.approx(x ** (K - 1), rel=1e-9)
    assert ss.tail_probability <= 1e-10 < x ** (K - 2)  # the smallest such cutoff
    assert ss.top_probability == pytest.approx(be[-1] / (1 - x**K), rel=1e-9)


def test_steady_state_of_unstable_mode_is_a_verdict_not_a_number():
    ss = steady_population(model(2.0))
    assert not ss.stable and ss.P is None and math.isnan(ss.N)
    assert "unstable" in ss.message and "grows at rate 0.21" in ss.message


@pytest.mark.parametrize("initial", ["vacuum", "fock:3", "thermal:2", "coherent:1+0.5j", "steady"])
def test_N_t_follows_the_rate_equation(initial):
    m = model(1.0)
    t = np.linspace(0.0, 60.0, 301)
    r = evolve_population(m, t, initial)
    N0 = InitialSpec.parse(initial).mean(m)
    assert r.stopped_at is None and r.message is None
    assert r.N[0] == pytest.approx(N0, abs=(r.cutoff + N0) * r.tail_probability + 1e-14)  # renormalised truncation
    assert np.abs(r.P.sum(axis=1) - 1).max() < 1e-12
    assert r.P.min() > -1e-15
    assert r.top_probability <= 1e-10 and r.tail_probability <= 1e-10
    assert np.abs(r.N - m.N_t(t, N0)).max() <= truncation_bound(m, r, 60.0)


def test_relaxation_to_bose_einstein_from_a_fock_state():
    m = model(1.1)
    r = evolve_population(m, [0.0, 600.0], "fock:4")  # kappa t ~ 34: relaxed to ~1e-14
    ss = steady_population(m, r.cutoff)
    assert np.abs(r.P[-1] - ss.P).max() < 1e-8


def test_non_uniform_grid_and_large_space_agree_with_dense_uniform():
    m = model(1.0)
    rng = np.random.default_rng(7)
    t = np.concatenate([[0.0], np.sort(rng.uniform(0, 30, 40))])
    dense = evolve_population(m, t, "fock:2", cutoff=60)
    sparse = evolve_population(m, t, "fock:2", cutoff=700)  # expm_multiply route
    assert np.abs(dense.N - m.N_t(t, 2.0)).max() <= truncation_bound(m, dense, 30.0)
    assert np.abs(sparse.N - dense.N).max() < 1e-11
    # a user cutoff still reports the predicted tail: geometric of mean max(N0 = 2, N_ss) at level 59
    assert dense.tail_probability == pytest.approx((2 / 3) ** 59, rel=1e-12)


def test_automatic_cutoff_uses_the_largest_of_N_ss_N0_and_the_initial_tail():
    m = model(1.0)
    N_ss = float(m.N_ss())
    assert choose_cutoff(m, "vacuum")[0] == geometric_cutoff(N_ss)
    K, tail = choose_cutoff(m, "thermal:3")  # N0 = 3 > N_ss
    assert K == geometric_cutoff(3.0) and tail == pytest.approx((3 / 4) ** (K - 1), rel=1e-12)
    K, tail = choose_cutoff(m, "coherent:4")  # Poisson(16) tail is narrower than a geometric of mean 16
    assert K == geometric_cutoff(16.0) and tail <= 1e-10
    K, _ = choose_cutoff(m, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    assert K == geometric_cutoff(5.0)
    assert geometric_cutoff(N_ss, 1e-6) < geometric_cutoff(N_ss, 1e-10)
    K, _ = choose_cutoff(model(2.0), "vacuum", np.linspace(0, 10, 11))  # unstable: sized by N_rate(t_end)
    assert K == geometric_cutoff(float(model(2.0).N_t(10.0)))
    with pytest.raises(ValueError, match="unstable"):
        choose_cutoff(model(2.0), "vacuum")


def test_guard_stops_an_unstable_mode_between_the_predicted_bounds():
    """From vacuum the untruncated distribution stays geometric, x(t) = N(t)/(N(t)+1).

    The reflecting top level is stochastically below the untruncated tail, so
    P_{K-1}(t) <= x^(K-1): the stop is no earlier than t_tail (x^(K-1) = tol). It holds
    at least the untruncated (1 - x) x^(K-1), so the stop is no later than t_top.
    """
    m = model(2.0)
    K, tol = 60, 1e-10
    r = evolve_population(m, np.linspace(0.0, 40.0, 401), cutoff=K, tol=tol)

    def log_ratio(t, top):
        N = float(m.N_t(t, 0.0))
        return (K - 1) * math.log(N / (N + 1)) - top * math.log(N + 1) - math.log(tol)

    t_tail = brentq(log_ratio, 1e-3, 40.0, args=(0,))
    t_top = brentq(log_ratio, 1e-3, 40.0, args=(1,))
    assert t_tail <= r.stopped_at <= t_top
    assert r.stopped_at == pytest.approx(t_tail, rel=0.02)
    assert r.t[-1] < r.stopped_at and r.top_probability <= tol
    assert "unstable" in r.message and "0.211985" in r.message and "cutoff 60" in r.message
    # growth at rate -kappa until the stop, as the rate equation says
    assert np.abs(r.N - m.N_t(r.t, 0.0)).max() <= truncation_bound(m, r, r.t[-1])
    assert r.N[-1] > 5 * r.N[5]


def test_guard_raises_for_a_stable_mode_with_too_small_a_cutoff():
    m = model(1.0)
    with pytest.raises(TruncationError, match="raise the cutoff") as exc:
        evolve_population(m, np.linspace(0, 20, 101), "fock:3", cutoff=8)
    err = exc.value
    part = err.partial
    assert 0 < err.t_stop < 20 and part.stopped_at == err.t_stop
    assert np.all(part.t < err.t_stop) and part.top_probability <= 1e-10
    assert np.abs(part.N - m.N_t(part.t, 3.0)).max() < 1e-8
    with pytest.raises(TruncationError):
        steady_population(m, cutoff=5)
    returned = evolve_population(m, np.linspace(0, 20, 101), "fock:3", cutoff=8, on_truncation="return")
    assert returned.stopped_at == pytest.approx(err.t_stop, rel=1e-12)


def test_initial_specs():
    assert InitialSpec.parse("coherent:1+0.5j") == InitialSpec("coherent", 1 + 0.5j)
    assert InitialSpec.parse("coherent:1.5").mean() == pytest.approx(2.25)
    assert InitialSpec.parse("thermal:2").value == 2.0
    assert InitialSpec.parse("fock:4").value == 4
    p = initial_distribution("thermal:1.5", 80)
    assert p @ np.arange(80) == pytest.approx(1.5, rel=1e-10)
    p = initial_distribution("coherent:2j", 60)
    assert p @ np.arange(60) == pytest.approx(4.0, rel=1e-12)
    for bad in ("fock:-1", "fock:1.5", "thermal:-2", "coherent:x", "squeezed:1", "thermal"):
        with pytest.raises(ValueError):
            InitialSpec.parse(bad)
    with pytest.raises(ValueError, match="no steady state"):
        initial_distribution("steady", 10, model(2.0))
    with pytest.raises(ValueError, match="does not fit"):
        initial_distribution("fock:10", 10)


# --------------------------------------------------------------------------- several modes (one chain per mode)

def _modes(V: float, omega=(0.7, 1.3), width: float | None = 0.0, T: float = 0.05, gamma: float = 0.001):
    """The 3-orbital model of tests/test_equilibrium.py: quanta 0.7 and 1.3 secular (width 0) by default;
    V = 1 stable, V = 3 mode 0 runs away (growth rate 0.0216) while mode 1 stays stable."""
    from sim.covariance import mode_system

    from .test_equilibrium import COND, M

    return mode_system(COND, M[:len(omega)], list(omega), gamma, T, V / 2, -V / 2, T, delta=width)


@pytest.mark.parametrize("V", [0.0, 1.0])
def test_modes_population_mean_is_the_covariance_diagonal(V):
    """Without cross terms C(t) from the vacuum stays diagonal, and each mode's chain has <n_k>(t) = C_kk(t):
    two exact routes (propagators of P, the closed-form covariance); the truncation bound above plus round-off."""
    s = _modes(V)
    t = np.linspace(0.0, 400.0, 41)
    res = evolve_population(s, t, "vacuum")
    C = s.covariance(t)
    Ck = np.diagonal(C, axis1=1, axis2=2).real
    assert np.abs(C - np.einsum("tk,kl->tkl", Ck, np.eye(2))).max() <= 1e-15  # diagonal: no cross terms
    up = max(float(s.mode_model(k).up_rate) for k in range(2))
    bound = up * max(res.cutoffs) * res.top_probability * t[-1] + 1e-12 * (1 + Ck.max())
    assert np.abs(res.N_modes - Ck).max() <= bound
    np.testing.assert_allclose(res.N, res.N_modes.sum(axis=1), rtol=1e-15)
    for P in res.P:  # each marginal a probability distribution at every time
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-13)
        assert P.min() >= -1e-15


def test_modes_population_of_one_mode_is_the_fast_path():
    """K = 1 as a ModeSystem: the chain of mode_model(0) is the one-mode chain of the same system's JumpModel
    (the channel route of the conductor and the rate-matrix route agree to round-off, 1e-13 relative)."""
    import sim
    from sim.config import load_config

    cfg = load_config("waterwheel", ["mode.omega=1.0", "conductor.M=[[-0.1, 0.25], [0.25, 0.05]]", "bias.V=0.8"])
    system = sim.system(cfg)
    t = np.linspace(0.0, 300.0, 31)
    one = evolve_population(system.jump_model(), t, "thermal:T=0.3")
    many = evolve_population(system.modes(), t, "thermal:T=0.3")
    assert many.cutoffs == (one.cutoff,)
    np.testing.assert_allclose(many.P[0], one.P, rtol=0, atol=1e-13)
    np.testing.assert_allclose(many.N, one.N, rtol=1e-12)
    import dataclasses

    f1, fk = dataclasses.replace(one, model=system.jump_model()).to_frame(), many.to_frame()  # same fluxes
    for col in ("J", "J_ph", "Ie", "Ie_LR"):
        np.testing.assert_allclose(fk[col], f1[col], rtol=1e-10, atol=1e-16)


def test_modes_population_at_equilibrium_is_gibbs_with_no_flux():
    """V = 0, one temperature: from the steady (= Gibbs) start each marginal stays geometric at nB(Omega_k) and
    every flux vanishes to round-off; from the vacuum the chains relax to the same Gibbs state."""
    from sim.special import bose

    T = 0.2
    s = _modes(0.0, T=T, gamma=0.01)
    t = np.linspace(0.0, 3000.0, 31)
    nb = bose(s.omega, T)
    res = evolve_population(s, t, "steady")
    # the truncated Gibbs state: its mean misses sum_{n >= cutoff} n P_n <= 2 cutoff x tail (x = nB/(nB+1) < 1)
    trunc = 2 * max(res.cutoffs) * res.tail_probability
    np.testing.assert_allclose(res.N_modes, np.broadcast_to(nb, res.N_modes.shape), rtol=1e-13, atol=trunc)
    frame = res.to_frame()
    scale = max(np.abs(s.emission).max(), s.gamma.max()) * s.omega.max()
    for col in ("J", "J_ph", "Ie", "Ie_LR", "Ie_RL", "J_LL"):
        assert np.abs(frame[col]).max() <= 1e-10 * scale, col
    relax = evolve_population(s, t, "vacuum")
    np.testing.assert_allclose(relax.N_modes[-1], nb, rtol=1e-6)  # e^{-kappa t}: kappa t_end > 25


def test_modes_population_runaway_stops_at_the_guard():
    """V = 3: mode 0 runs away; the table ends where its top Fock level fills, for both modes, with the reason."""
    s = _modes(3.0)
    assert not s.stable and not s.mode_model(0).stable and s.mode_model(1).stable
    t = np.linspace(0.0, 2000.0, 201)
    res = evolve_population(s, t, "vacuum")
    assert res.stopped_at is not None and res.stopped_at < t[-1]
    assert res.message.startswith("mode 0:")
    assert res.t.size == res.N_modes.shape[0] == res.P[1].shape[0] < t.size
    assert np.all(np.diff(res.N_modes[:, 0]) > 0)  # the runaway mode only grows


def test_modes_population_refusals():
    """Cross terms (a cluster of two modes) and a steady start of a runaway system."""
    with pytest.raises(ValueError, match=r"without cross terms .* \[\[0, 1\]\]"):
        evolve_population(_modes(1.0, omega=(1.0, 1.0)), [0.0, 1.0], "vacuum")
    with pytest.raises(ValueError, match=r"initial 'steady' needs stable modes; mode\(s\) \[0\]"):
        evolve_population(_modes(3.0), [0.0, 1.0], "steady")
