"""Several-mode rate matrices (docs/modes.md "Equations") against scipy.integrate.quad and the single-mode rates."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.special import expit

from sim.channels import _DELTA, channel_rates, kernel_weight
from sim.conductor import CHANNELS, ELECTRODES, Conductor, double_dot
from sim.rate_matrices import RateMatrixModel, _by_quad, rate_matrices
from sim.special import bose, fermi

from .conftest import random_conductor

TOL = 1e-8  # accuracy goal: 1e-8 of the channel's largest entry


def _herm(rng, n, scale=0.4):
    A = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
    return scale * (A + A.conj().T) / 2


def _couplings(rng, n, K):
    return np.array([_herm(rng, n) for _ in range(K)])


def _dd_couplings(m1=0.5, m2=0.3):
    """Double dot: M^1 assists hopping (the paper's), M^2 a breathing (level-shift) coupling."""
    return np.array([[[0, m1], [m1, 0]], [[m2, 0], [0, -m2]]], dtype=complex)


def _reference(cond, M, c, w, mu_a, mu_b, T_a, T_b):
    """tau_em and Lambda of one channel, entry by entry with scipy.integrate.quad.

    The kernel is built from matrix inverses at each energy (no poles); both integrands
    vanish exponentially outside the Fermi window (e^-40 at 40 T).
    """
    a, b = ELECTRODES[c]
    cache = {}
    heff, ga, gb, eye = cond.h_eff, cond.gamma(a), cond.gamma(b), np.eye(cond.n)
    K, d = M.shape[:2]

    def kmat(e):
        if e not in cache:
            Ga, Gb = np.linalg.inv(e * eye - heff), np.linalg.inv((e - w) * eye - heff)
            P = M @ (Ga @ ga @ Ga.conj().T)
            Q = M @ (Gb @ gb @ Gb.conj().T)
            cache[e] = P.reshape(K, d * d) @ Q.transpose(0, 2, 1).reshape(K, d * d).T
        return cache[e]

    Tm = max(T_a, T_b)
    lo, hi = min(mu_a, mu_b + w) - 40 * Tm, max(mu_a, mu_b + w) + 40 * Tm
    z = np.linalg.eigvals(cond.h_eff)
    pts = sorted({p for p in [*z.real, *(z.real + w), mu_a, mu_b + w] if lo < p < hi}) or None
    # floor of the tolerance where a channel vanishes: max_m int de/2pi K^mm (checked against
    # sim.channels.kernel_weight in test_total_weight_matches_single_mode)
    scale = float(np.max(np.abs(np.diagonal(RateMatrixModel(cond, M)._factors(c, w, None).total_weight()))))

    def f_(x, T):
        return float(fermi(x, T)) if T == 0 else expit(-x / T)

    windows = {
        "emission": lambda e: f_(e - mu_a, T_a) * (1 - f_(e - w - mu_b, T_b)),
        "damping": lambda e: f_(e - w - mu_b, T_b) - f_(e - mu_a, T_a),
    }
    out = {}
    for key, f in windows.items():
        R = np.zeros((K, K), dtype=complex)
        for m in range(K):
            for n in range(m, K):
                for part in (np.real, np.imag) if n > m else (np.real,):
                    val, _ = integrate.quad(lambda e, m=m, n=n, part=part, f=f: part(kmat(e)[m, n]) * f(e), lo, hi,
                                            points=pts, limit=1000, epsabs=1e-11 * 2 * np.pi * scale, epsrel=1e-10)
                    R[m, n] += val / (2 * np.pi) * (1j if part is np.imag else 1)
        out[key] = np.triu(R) + np.triu(R, 1).conj().T
    out["absorption"] = out["emission"] + out["damping"]
    return out, scale


def _check(cond, M, w, mu_L, mu_R, T_L, T_R=None, model=None):
    T_R = T_L if T_R is None else T_R
    r = (model or RateMatrixModel(cond, M)).rates(w, mu_L, mu_R, T_L, T_R)
    mu, T = {"L": mu_L, "R": mu_R}, {"L": T_L, "R": T_R}
    for i, c in enumerate(CHANNELS):
        a, b = ELECTRODES[c]
        ref, scale = _reference(cond, M, c, w, mu[a], mu[b], T[a], T[b])
        s = max(max(np.max(np.abs(ref[k])) for k in ref), 1e-4 * scale)
        for k in ("emission", "absorption", "damping"):
            err = np.max(np.abs(getattr(r, k)[i] - ref[k]))
            assert err <= TOL * s, (c, k, err, s)


@pytest.mark.parametrize(
    ("n", "K", "args"),
    [
        (2, 2, (0.8, 0.2, -0.3, 0.1)),
        (3, 3, (0.8, 0.2, -0.3, 0.1)),
        (4, 2, (0.6, 0.5, -0.4, 0.0)),  # T = 0
        (3, 2, (0.7, 0.4, -0.3, 0.2, 0.05)),  # T_L != T_R: emission by quadrature
    ],
)
def test_random_models_match_quadrature(rng, n, K, args):
    _check(random_conductor(rng, n, rank_L=max(1, n - 1)), _couplings(rng, n, K), *args)


@pytest.mark.parametrize(
    "args",
    [
        (1.0, 0.3, -0.4, 0.1),  # confluent poles at w = eps_1 - eps_2
        (1.0, 0.5, -0.5, 0.2),  # w = mu_LR exactly: interpolation across the Bose pole
    ],
)
def test_double_dot_matches_quadrature(args):
    _check(double_dot(hopping=0.15), _dd_couplings(), *args)


def test_confluent_poles_match_quadrature(rng):
    """The paper's double dot (t = 0) at w = eps_1 - eps_2: the pole pairs z_1 = w + z_2 coincide."""
    cond = double_dot()
    M = np.concatenate([_dd_couplings(), _couplings(rng, 2, 1)])
    model = RateMatrixModel(cond, M)
    assert model._factors("LR", 1.0, None).mid.size > 0  # the confluent branch is used
    _check(cond, M, 1.0, 0.3, -0.4, 0.1, model=model)
    _check(cond, M, 1.0, 0.3, -0.4, 0.0, model=model)
    r = model.rates(1.0, 0.3, -0.4, 0.1)
    for k in range(3):
        s = channel_rates(Conductor(cond.H, cond.gamma_L, cond.gamma_R, M[k]), 1.0, 0.3, -0.4, 0.1)
        scale = np.max(np.abs(s.absorption))
        assert np.max(np.abs(r.emission[:, k, k] - s.emission)) <= 1e-12 * scale
        assert np.max(np.abs(r.damping[:, k, k] - s.damping)) <= 1e-12 * scale


@pytest.mark.parametrize(
    ("cond_seed", "args"),
    [
        (None, (1.0, 0.3, -0.4, 0.1)),
        (None, (0.7, 0.3, -0.4, 0.0)),
        (None, (1.0, 0.5, -0.5, 0.2)),
        (3, (0.7, 0.5, -0.2, 0.2)),
        (4, (1.3, 0.1, -0.9, 0.0)),
    ],
)
def test_diagonal_equals_single_mode_rates(rng, cond_seed, args):
    """tau^c_kk(w) is the single-mode rate of M^k, to 1e-12 of the channel's largest rate."""
    if cond_seed is None:
        cond, M = double_dot(hopping=0.2), np.concatenate([_dd_couplings(), _couplings(rng, 2, 1)])
    else:
        cond, M = random_conductor(rng, cond_seed), _couplings(rng, cond_seed, 3)
    model = RateMatrixModel(cond, M)
    r = model.rates(*args)
    tol = 1e-12
    weights = np.array([np.diagonal(model._factors(c, args[0], None).total_weight()).real for c in CHANNELS])
    floor = np.zeros_like(weights)
    if abs(args[0] - (args[1] - args[2])) < 1e-12:  # w = mu_LR up to the rounding of mu_L - mu_R
        # w = mu_LR: both routes interpolate nB Lambda from Fermi integrals S at mu +- delta, delta =
        # _DELTA min(T, width); nB(delta) ~ T/delta multiplies the rounding eps |S| of each S, and
        # |S| <= |weight| |I| with the pole integral |I| = |psi + log 2 pi T| of order a few, so the two
        # routes differ by up to about 2 * 8 eps / _DELTA |weight| (measured: 5.7e-12 |weight|, 20x below)
        tol = 1e-10
        floor = 16 * np.finfo(float).eps / _DELTA * np.abs(weights)
    for k in range(M.shape[0]):
        s = channel_rates(Conductor(cond.H, cond.gamma_L, cond.gamma_R, M[k]), *args)
        for key in ("emission", "absorption", "damping"):
            got = getattr(r, key)[:, k, k]
            ref = getattr(s, key)
            scale = np.maximum(np.max(np.abs([s.emission, s.absorption, s.damping]), axis=0), 1e-4 * weights[:, k])
            assert np.all(np.abs(got.imag) <= 1e-14 * scale)
            assert np.all(np.abs(got.real - ref) <= np.maximum(tol * scale, floor[:, k])), (k, key, got.real, ref)


@pytest.mark.parametrize("T", [0.0, 0.05, 0.3])
def test_hermitian_psd_and_detailed_balance(rng, T):
    cond, M = random_conductor(rng, 4), _couplings(rng, 4, 3)
    model = RateMatrixModel(cond, M)
    for w, mu_L, mu_R in [(0.8, 0.6, -0.5), (0.4, -0.2, 0.3), (1.1, 0.55, -0.55)]:
        r = model.rates(w, mu_L, mu_R, T)
        for i in range(4):
            em, ab, lam = r.emission[i], r.absorption[i], r.damping[i]
            scale = max(np.max(np.abs(em)), np.max(np.abs(ab)), 1e-300)
            for X in (em, ab, lam):
                np.testing.assert_array_equal(X, X.conj().T)
            assert np.linalg.eigvalsh(em).min() >= -1e-12 * scale
            assert np.linalg.eigvalsh(ab).min() >= -1e-12 * scale
            x = w - r.mu[i]
            if T > 0 and x != 0:  # Eq. 4 entry by entry: tau_em = nB(x) Lambda, tau_abs = e^(x/T) tau_em
                np.testing.assert_allclose(em, bose(x, T) * lam, rtol=1e-10, atol=1e-14 * scale)
                np.testing.assert_allclose(ab * np.exp(-x / T), em, rtol=1e-10, atol=1e-14 * scale)


def test_unbiased_real_model_imaginary_parts_cancel_in_the_sum_only():
    """Real H, Gamma, M: without bias sum_c Im Lambda^c = 0 (not channel by channel); under bias it is not."""
    cond = double_dot(hopping=0.15, eps=(0.3, -0.2), gamma_L=0.4, gamma_R=0.6)
    model = RateMatrixModel(cond, _dd_couplings())
    r0 = model.rates(0.9, 0.1, 0.1, 0.2)
    scale = np.max(np.abs(r0.damping))
    assert np.max(np.abs(r0.damping.sum(axis=0).imag)) < 1e-13 * scale
    assert np.max(np.abs(r0.damping.imag)) > 1e-4 * scale
    r1 = model.rates(0.9, 0.6, -0.4, 0.2)
    assert np.max(np.abs(r1.damping.sum(axis=0).imag)) > 1e-4 * scale


def test_mode_subset_is_the_sub_block(rng):
    cond, M = random_conductor(rng, 3), _couplings(rng, 3, 4)
    model = RateMatrixModel(cond, M)
    full = model.rates(0.8, 0.3, -0.3, 0.1)
    sub = model.rates(0.8, 0.3, -0.3, 0.1, modes=[3, 1])
    np.testing.assert_allclose(sub.emission, full.emission[:, [3, 1]][:, :, [3, 1]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(sub.damping, full.damping[:, [3, 1]][:, :, [3, 1]], rtol=0, atol=1e-15)


def test_total_weight_matches_single_mode(rng):
    cond, M = random_conductor(rng, 3), _couplings(rng, 3, 2)
    model = RateMatrixModel(cond, M)
    for c in ("LR",):
        tw = model._factors(c, 0.7, None).total_weight()
        for k in range(1):
            ref = kernel_weight(Conductor(cond.H, cond.gamma_L, cond.gamma_R, M[k]), c, 0.7)
            assert tw[k, k].real == pytest.approx(ref, rel=1e-9)


def test_quadrature_fallback_matches_exact_route():
    """The route for defective (exceptional-point) models, on a regular one (LR channel, confluent poles)."""
    cond, M = double_dot(hopping=0.15), _dd_couplings()
    exact = RateMatrixModel(cond, M).rates(1.0, 0.3, -0.4, 0.1).channel("LR")
    em, lam = _by_quad(cond, M, "LR", 1.0, 0.3, -0.4, 0.1, 0.1)
    scale = max(np.max(np.abs(exact["emission"])), np.max(np.abs(exact["absorption"])))
    assert np.max(np.abs(em - exact["emission"])) <= TOL * scale
    assert np.max(np.abs(lam - exact["damping"])) <= TOL * scale


def test_bad_input_raises(rng):
    cond = double_dot()
    with pytest.raises(ValueError, match="Hermitian"):
        RateMatrixModel(cond, np.array([[[0, 1], [0, 0]]]))
    with pytest.raises(ValueError, match="shape"):
        RateMatrixModel(cond, np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="temperatures"):
        rate_matrices(cond, _dd_couplings(), 1.0, 0.0, 0.0, -0.1)
    with pytest.raises(ValueError, match="finite"):
        rate_matrices(cond, _dd_couplings(), np.nan, 0.0, 0.0, 0.1)


@pytest.mark.parametrize("bias", [(0.65, -0.65, 0.05), (0.5, -0.5, 0.0), (0.0, 0.0, 0.05)])
def test_rates_grid_equals_rates_at_each_frequency(bias):
    """The vectorised grid (factors independent of w formed once) gives :meth:`rates` at every w, including a w on
    the interpolation window w = mu_LR and T = 0; unequal temperatures fall back to :meth:`rates` itself."""
    from pathlib import Path

    from sim.config import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "runs" / "waterwheel.toml")
    m = RateMatrixModel(*cfg.conductor.build_modes())
    mu_L, mu_R, T = bias
    w = np.concatenate([np.linspace(0.0, 3.0, 61), [mu_L - mu_R, mu_L - mu_R + 1e-7]])
    em, lam = m.rates_grid(w, mu_L, mu_R, T, T)
    for i, x in enumerate(w):
        r = m.rates(float(x), mu_L, mu_R, T, T)
        scale = np.abs(r.damping).max() + np.abs(r.emission).max()
        np.testing.assert_allclose(em[i], r.emission, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(lam[i], r.damping, rtol=0, atol=1e-12 * scale)
    em2, lam2 = m.rates_grid(w[:5], mu_L, mu_R, T, 2 * T + 0.01)
    r = m.rates(float(w[3]), mu_L, mu_R, T, 2 * T + 0.01)
    np.testing.assert_array_equal(em2[3], r.emission)
    np.testing.assert_array_equal(lam2[3], r.damping)
