"""Landauer-like fluxes (Eqs. 13-14) and their limits (docs/theory.md sec. 8, docs/approximations.md)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from sim.landauer import a_ph, a_ph_weight, landauer
from sim.rate_equation import rate_model, steady_state

from .conftest import make_config


def _cfg(coupling, gamma, V=0.5, T=0.2):
    return make_config(conductor={"kind": "double_dot", "coupling": coupling}, bias={"V": V, "T_e": T},
                       phonon_bath={"T": T, "gamma": gamma})


def _pinned(cfg):
    """J with N held at n_ph: Omega sum_c Lambda_c (n_c - n_ph) = Omega sum_c (tau_em_c - Lambda_c n_ph)."""
    m = rate_model(cfg)
    return float(m.omega * (m.rates.emission - m.rates.damping * m.n_ph).sum())


@pytest.mark.parametrize("gamma", [0.01, 0.3, 1.0])
def test_a_ph_weight_closed_form(gamma):
    num, _ = quad(lambda w: a_ph(w, 1.0, gamma) / (2 * np.pi), 0, np.inf, points=None, limit=500, epsabs=1e-13)
    assert a_ph_weight(1.0, gamma) == pytest.approx(num, rel=1e-9)
    assert a_ph_weight(1.0, gamma) == pytest.approx(1 - gamma / np.pi, abs=gamma**2)


def test_lowest_order_tends_to_pinned_formula_linearly_in_gamma():
    """gamma_ph << Omega: lowest order = pinned formula + O(gamma/Omega)."""
    gaps = []
    for g in (1e-2, 1e-3):
        cfg = _cfg(0.0063, g)
        gaps.append(landauer(cfg, "lowest").J / _pinned(cfg) - 1)
    assert abs(gaps[0]) < 2 * 1e-2
    assert abs(gaps[1]) < 2 * 1e-3
    assert gaps[0] / gaps[1] == pytest.approx(10, rel=0.1)


@pytest.mark.parametrize("coupling", [0.02, 0.0063])
def test_lowest_order_vs_rate_equation_gap_is_gamma_e_over_gamma(coupling):
    """J_rate = J_pinned gamma/kappa, so lowest/rate - 1 = Gamma_e/gamma + O(gamma/Omega)."""
    g = 1e-3
    cfg = _cfg(coupling, g)
    m = rate_model(cfg)
    ratio = float(m.gamma_e) / g
    gap = landauer(cfg, "lowest").J / steady_state(cfg).J - 1
    assert gap == pytest.approx(ratio, abs=2 * g * (1 + ratio))


def test_full_broadening_tends_to_rate_equation_for_narrow_resonances():
    """Scale Gamma_e and gamma_ph down together (Gamma_e/gamma ~ 0.67 fixed): the gap is O(kappa/Omega)."""
    gaps_J, gaps_I, kappas = [], [], []
    for s in (1.0, 0.1):
        cfg = _cfg(0.1 * np.sqrt(s), 0.03 * s)
        ss = steady_state(cfg)
        full = landauer(cfg, "full")
        assert full.valid and full.J_err < 1e-8 * abs(full.J)
        kappas.append(ss.kappa)
        gaps_J.append(full.J / ss.J - 1)
        gaps_I.append(full.Ie / ss.Ie - 1)
    for k, gJ, gI in zip(kappas, gaps_J, gaps_I, strict=True):
        assert abs(gJ) < k and abs(gI) < k
    assert gaps_J[0] / gaps_J[1] == pytest.approx(10, rel=0.2)


def test_full_broadening_refuses_unstable_and_lowest_flags_it():
    cfg = _cfg(0.5, 0.05, V=2.0, T=0.1)
    full = landauer(cfg, "full")
    assert not full.valid and np.isnan(full.J) and full.kappa < 0
    low = landauer(cfg, "lowest")
    assert low.valid and np.isfinite(low.J) and low.kappa == pytest.approx(full.kappa)
    assert low.to_dict()["kappa"] < 0 and full.to_dict()["J"] is None


def test_integration_error_is_controlled_at_w_equal_mu_c():
    """Bias V = Omega puts the LR Bose pole inside the resonance; the result is smooth in V."""
    Js = []
    for V in (1.0 - 1e-6, 1.0, 1.0 + 1e-6):
        res = landauer(_cfg(0.1, 0.05, V=V, T=0.1), "lowest")
        assert res.J_err < 1e-9 * abs(res.J)
        Js.append(res.J)
    assert abs(Js[1] - 0.5 * (Js[0] + Js[2])) < 1e-9 * abs(Js[1])


def test_mirror_flips_landauer_particle_current():
    a = make_config(conductor={"kind": "double_dot", "eps": [0.4, -0.3], "gamma_L": 0.3, "gamma_R": 0.6,
                               "coupling": 0.2}, bias={"mu_L": 0.3, "mu_R": -0.2, "T_e": 0.1})
    b = make_config(conductor={"kind": "double_dot", "eps": [-0.3, 0.4], "gamma_L": 0.6, "gamma_R": 0.3,
                               "coupling": 0.2}, bias={"mu_L": -0.2, "mu_R": 0.3, "T_e": 0.1})
    for level in ("lowest", "full"):
        ra, rb = landauer(a, level), landauer(b, level)
        assert rb.Ie == pytest.approx(-ra.Ie, rel=1e-8)
        assert rb.J == pytest.approx(ra.J, rel=1e-8)


def test_breakpoint_one_ulp_from_another_converges_and_agrees():
    """V = 0.9500000000000001 puts the breakpoint w = mu_LR one ulp above Omega - gamma_ph = 0.95.

    scipy's cubature with both points used to refine the wrong pieces and stop at
    max_subdivisions (15-40 s); each piece is now integrated on its own. The result must
    agree with V = 0.95 to the error estimates (dJ/dV dV is ~1e-16 here).
    """
    import time

    cfgs = [_cfg(0.5, 0.05, V=V, T=0.1) for V in (0.95, 0.9500000000000001)]
    t0 = time.perf_counter()
    a, b = (landauer(c, "lowest") for c in cfgs)
    assert time.perf_counter() - t0 < 20  # was 15-40 s for b alone
    for r in (a, b):
        assert r.J_err <= 1e-10 * abs(r.J) and r.Ie_err <= 1e-10 * abs(r.Ie)
    assert abs(a.J - b.J) <= a.J_err + b.J_err and abs(a.Ie - b.Ie) <= a.Ie_err + b.Ie_err
