"""EHP channel rates against the adaptive-quadrature reference and closed forms (docs/theory.md sec. 3)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.channels import channel_rates, kernel_weight, rates_by_quadrature
from sim.conductor import CHANNELS, ELECTRODES, Conductor, FlatConductor, double_dot
from sim.special import bose, x_bose

from .conftest import random_conductor

# accuracy goal of the issue: 1e-8 of the channel's largest rate
TOL = 1e-8


def _check_against_quad(cond, w, mu_L, mu_R, T_L, T_R=None):
    r = channel_rates(cond, w, mu_L, mu_R, T_L, T_R)
    mu = {"L": mu_L, "R": mu_R}
    T = {"L": T_L, "R": T_L if T_R is None else T_R}
    for i, c in enumerate(CHANNELS):
        a, b = ELECTRODES[c]
        ref = rates_by_quadrature(cond, c, w, mu[a], mu[b], T[a], T[b])
        largest = max(ref["emission"], ref["absorption"], abs(ref["damping"]))
        # a channel whose rates all vanish (or are exponentially small) is compared on the
        # scale of its kernel weight int de/2pi K, the bound of every rate of the channel
        scale = largest if largest > 1e-6 * ref["scale"] else ref["scale"]
        for k in ("emission", "absorption", "damping"):
            got = getattr(r, k)[i]
            assert abs(got - ref[k]) <= TOL * scale + 1e-300, (c, k, got, ref[k], scale)


@pytest.mark.parametrize(
    ("cond", "w", "mu_L", "mu_R", "T"),
    [
        (double_dot(), 1.0, 0.3, -0.4, 0.1),  # paper model, confluent poles at w = eps_1 - eps_2
        (double_dot(), 0.6, 0.5, -0.5, 0.2),
        (double_dot(hopping=0.2), 0.7, 0.3, -0.4, 0.1),
        (double_dot(hopping=0.2), 0.7, 0.3, -0.4, 0.0),  # T = 0
        (double_dot(hopping=0.3, eps=(0.2, 0.1), gamma_L=0.1, gamma_R=0.8), 1.1, 1.3, -0.4, 0.05),
        (double_dot(hopping=0.1), 1.0, 0.5, -0.5, 0.2),  # w = mu_LR exactly: the Bose factor's pole
        (double_dot(hopping=0.1), 1.0 + 1e-9, 0.5, -0.5, 0.2),  # just beside it
        (double_dot(gamma_L=0.02, gamma_R=0.03), 0.95, 0.6, -0.6, 0.01),  # narrow levels, near-confluent
        (double_dot(), 3.0, 2.0, -2.0, 1.5),
    ],
)
def test_rates_match_adaptive_quadrature(cond, w, mu_L, mu_R, T):
    _check_against_quad(cond, w, mu_L, mu_R, T)


@pytest.mark.parametrize("n", [1, 3, 4])
def test_random_matrix_models_match_quadrature(rng, n):
    cond = random_conductor(rng, n, rank_L=max(1, n - 1))
    _check_against_quad(cond, 0.8, 0.2, -0.3, 0.1)
    _check_against_quad(cond, 0.8, 0.2, -0.3, 0.0)


def test_separate_electrode_temperatures_match_quadrature(rng):
    _check_against_quad(double_dot(hopping=0.1), 1.0, 0.4, -0.3, 0.2, 0.05)
    _check_against_quad(random_conductor(rng, 3), 0.8, 0.2, -0.3, 0.1, 0.3)
    _check_against_quad(double_dot(hopping=0.1), 0.9, 0.4, -0.3, 0.0, 0.1)


@pytest.mark.parametrize("T", [0.05, 0.3])
def test_detailed_balance_per_channel(T):
    """Eq. 4: tau_em / tau_abs = exp(-(w - mu_c)/T_e) when T_L = T_R."""
    cond = double_dot(hopping=0.2)
    w = np.linspace(0.2, 2.0, 7)
    r = channel_rates(cond, w, 0.4, -0.3, T)
    for i in range(4):
        x = w - r.mu[i]
        np.testing.assert_allclose(r.emission[i], r.absorption[i] * np.exp(-x / T), rtol=1e-9)
        np.testing.assert_allclose(r.emission[i], bose(x, T) * r.damping[i], rtol=1e-9)


def test_flat_band_closed_form():
    """Lambda = K0 (w - mu_c)/2pi, tau_em = K0 (w - mu_c) nB(w - mu_c)/2pi; at T = 0 a threshold."""
    K = FlatConductor(K_LL=0.3, K_RR=0.2, K_LR=0.5, K_RL=0.7)
    w = np.linspace(0.1, 3.0, 30)
    for T in (0.0, 0.2):
        r = channel_rates(K, w, 0.8, -0.7, T)
        for i, c in enumerate(CHANNELS):
            K0 = K.kernel(c)
            x = w - r.mu[i]
            np.testing.assert_allclose(r.damping[i], K0 * x / (2 * np.pi), rtol=1e-14, atol=1e-16)
            np.testing.assert_allclose(r.emission[i], K0 * x_bose(x, T) / (2 * np.pi), rtol=1e-14, atol=1e-16)
        if T == 0.0:
            lr = r.channel("LR")
            expect = np.where(1.5 > w, 0.5 * (1.5 - w) / (2 * np.pi), 0.0)
            np.testing.assert_allclose(lr["emission"], expect, rtol=1e-14, atol=1e-16)


def test_flat_band_unequal_temperatures_integral():
    """With T_L != T_R: tau_em - tau_abs = -Lambda still equals -K0 (w - mu_c)/2pi exactly."""
    K = FlatConductor(K_LL=0.3, K_RR=0.2, K_LR=0.5, K_RL=0.7)
    r = channel_rates(K, 1.0, 0.8, -0.7, 0.1, 0.3)
    for i, c in enumerate(CHANNELS):
        assert r.absorption[i] - r.emission[i] == pytest.approx(K.kernel(c) * (1.0 - r.mu[i]) / (2 * np.pi), rel=1e-9)


def _lorentz_weight(m, eps1, eps2, gL, gR, w):
    return m**2 * (gL + gR) / ((eps1 - eps2 - w) ** 2 + (gL + gR) ** 2 / 4)


@pytest.mark.parametrize("w", [0.5, 1.0, 1.7])
def test_double_dot_lorentzian_closed_form(w):
    """t = 0: int de/2pi K_LR = m^2 (gL + gR)/((eps1 - eps2 - w)^2 + (gL + gR)^2/4)."""
    m, eps, gL, gR = 0.4, (0.5, -0.5), 0.3, 0.6
    cond = double_dot(eps, 0.0, gL, gR, m)
    weight = _lorentz_weight(m, *eps, gL, gR, w)
    assert kernel_weight(cond, "LR", w) == pytest.approx(weight, rel=1e-9)
    # T -> 0 with a bias far beyond levels and widths: tau_em_LR -> the weight
    # (the Lorentzian tails outside the window [mu_R + w, mu_L] are O((width/1e3)^3))
    r = channel_rates(cond, w, 1e3, -1e3, 0.0)
    assert r.channel("LR")["emission"] == pytest.approx(weight, rel=1e-8)
    # T -> infinity: f -> 1/2 and tau_em + tau_abs -> weight / 2 (corrections O((scale/T)^2))
    r = channel_rates(cond, w, 0.2, -0.2, 1e4)
    lr = r.channel("LR")
    assert lr["emission"] + lr["absorption"] == pytest.approx(weight / 2, rel=1e-6)


def test_intra_electrode_channels_vanish_only_without_hopping():
    r0 = channel_rates(double_dot(hopping=0.0), 1.0, 0.3, -0.3, 0.1)
    r1 = channel_rates(double_dot(hopping=0.2), 1.0, 0.3, -0.3, 0.1)
    for c in ("LL", "RR"):
        for k in ("emission", "absorption", "damping"):
            assert r0.channel(c)[k] == 0.0
        assert r1.channel(c)["damping"] > 1e-3
        assert r1.channel(c)["emission"] > 0


def test_mirror_symmetry_swaps_LR_and_RL(rng):
    for cond in (double_dot(eps=(0.4, -0.6), hopping=0.15, gamma_L=0.3, gamma_R=0.7), random_conductor(rng, 3)):
        r = channel_rates(cond, 0.9, 0.35, -0.2, 0.1)
        m = channel_rates(cond.mirrored(), 0.9, -0.2, 0.35, 0.1)
        for k in ("emission", "absorption", "damping", "mu"):
            a, b = getattr(r, k), getattr(m, k)
            np.testing.assert_allclose(a[[0, 1, 2, 3]], b[[1, 0, 3, 2]], rtol=1e-10, atol=1e-14)


def test_vectorised_over_w_and_bias_points():
    cond = double_dot(hopping=0.1)
    w = np.array([[0.5], [1.0], [1.5]])
    V = np.linspace(-2, 2, 5)
    r = channel_rates(cond, w, V / 2, -V / 2, 0.1)
    assert r.emission.shape == (4, 3, 5)
    for i in range(3):
        for j in range(5):
            s = channel_rates(cond, float(w[i, 0]), V[j] / 2, -V[j] / 2, 0.1)
            np.testing.assert_allclose(r.emission[:, i, j], s.emission, rtol=1e-13, atol=1e-300)
            np.testing.assert_allclose(r.damping[:, i, j], s.damping, rtol=1e-13, atol=1e-17)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="temperatures"):
        channel_rates(double_dot(), 1.0, 0.0, 0.0, -0.1)
    with pytest.raises(ValueError, match="must be finite"):
        channel_rates(double_dot(), np.nan, 0.0, 0.0, 0.1)


def _hermitian(draw, n, scale):
    re = draw(st.lists(st.floats(-1, 1), min_size=n * n, max_size=n * n))
    im = draw(st.lists(st.floats(-1, 1), min_size=n * n, max_size=n * n))
    A = scale * (np.array(re) + 1j * np.array(im)).reshape(n, n)
    return A + A.conj().T


@st.composite
def models(draw):
    n = draw(st.integers(1, 4))
    H = _hermitian(draw, n, 1.0)
    M = _hermitian(draw, n, 0.5)
    gams = []
    for _ in range(2):
        rank = draw(st.integers(1, n))
        re = draw(st.lists(st.floats(-1, 1), min_size=n * rank, max_size=n * rank))
        B = np.array(re).reshape(n, rank)
        gams.append(0.05 * np.eye(n) + B @ B.T)
    return Conductor(H, gams[0], gams[1], M)


@settings(max_examples=60, deadline=None)
@given(
    cond=models(),
    w=st.floats(0.05, 3.0),
    mu_L=st.floats(-2, 2),
    mu_R=st.floats(-2, 2),
    T=st.one_of(st.just(0.0), st.floats(1e-3, 2.0)),
)
def test_emission_and_absorption_are_non_negative(cond, w, mu_L, mu_R, T):
    r = channel_rates(cond, w, mu_L, mu_R, T)
    scale = max(1e-300, float(np.max(np.abs([r.emission, r.absorption, r.damping]))))
    assert np.all(r.emission >= -1e-12 * scale)
    assert np.all(r.absorption >= -1e-12 * scale)
