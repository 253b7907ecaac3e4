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


# --------------------------------------------------------------------------- several modes (docs/modes.md)
#
# The waterwheel double dot (runs/waterwheel.toml) with couplings scaled by sqrt(s) and gamma_ph by s: every
# rate and width scales with s, so s -> 0 is the weak-coupling, narrow-resonance limit at fixed Gamma_e/gamma_ph.

_H = [[-0.25, 0.5], [0.5, -0.25]]
_GL = [[0.4, 0.0], [0.0, 0.0]]
_GR = [[0.0, 0.0], [0.0, 0.5]]
_M = np.array([[[-0.1, 0.25], [0.25, 0.05]], [[-0.4, -0.1], [-0.1, -0.15]]])


def _modes_dict(s=0.1, omega=(1.0, 1.0), V=1.3, gamma=None, M=_M, H=_H, GL=_GL, GR=_GR):
    return {"conductor": {"kind": "matrix", "H": H, "gamma_L": GL, "gamma_R": GR, "M": (np.sqrt(s) * M).tolist()},
            "mode": {"omega": list(omega)}, "bias": {"V": V, "T_e": 0.05},
            "phonon_bath": {"T": 0.05, "gamma": 0.002 * s if gamma is None else gamma}}


def _cfg_modes(**kw):
    from sim.config import parse_config

    return parse_config(_modes_dict(**kw))


def _one_mode_cfgs(d):
    """Each mode alone, as its own config written by hand (its M^k, Omega_k, gamma_k)."""
    from sim.config import parse_config

    out = []
    for k in range(len(d["mode"]["omega"])):
        e = {**d, "conductor": {**d["conductor"], "M": d["conductor"]["M"][k]}, "mode": {"omega": d["mode"]["omega"][k]}}
        out.append(parse_config(e))
    return out


def _covariance(cfg):
    from sim.covariance import mode_system_from_config

    return mode_system_from_config(cfg).steady_state()


def test_matrix_propagator_at_one_mode_is_the_scalar_formula():
    """The K x K integrand (D = 2 Omega^1/2 [w^2 - Omega^2 + i w Gamma_ph + i Omega^1/2 Gamma_e Omega^1/2]^-1 Omega^1/2,
    multi-terminal traces) at K = 1 equals the one-mode fast path point by point, across and off the resonance."""
    import dataclasses
    import importlib

    from sim.rate_matrices import RateMatrixModel

    L = importlib.import_module("sim.landauer")
    cfg = _one_mode_cfgs(_modes_dict(s=1.0, V=1.5))[1]
    md = L._modes(cfg)
    cond, M = cfg.conductor.build_modes()
    mdm = dataclasses.replace(md, matrices=RateMatrixModel(cond, M))
    w = np.array([0.05, 0.5, 0.97, 1.0, 1.02, 1.5, 2.5])
    for a, b in zip(L._full_scalar_integrand(cfg, md)(w), L._full_matrix_integrand(cfg, mdm)(w), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=0)


def test_two_independent_modes_are_the_sum_of_one_mode_results_exactly():
    """Two copies of the double dot side by side, mode k on copy k: A(e) is block diagonal, so Lambda^c_12(w) = 0 at
    every w and D(w) is diagonal. Both levels then equal the sum of the one-mode results to quadrature accuracy."""
    Z = np.zeros((2, 2))
    H = np.block([[np.array(_H), Z], [Z, np.array(_H) + 0.1]])
    GL, GR = np.block([[np.array(_GL), Z], [Z, np.array(_GL)]]), np.block([[np.array(_GR), Z], [Z, np.array(_GR)]])
    M = np.zeros((2, 4, 4))
    M[0, :2, :2], M[1, 2:, 2:] = _M[0], _M[1]
    d = _modes_dict(s=0.3, omega=(0.8, 1.1), V=1.2, M=M, H=H.tolist(), GL=GL.tolist(), GR=GR.tolist())
    cfg = _cfg_modes(s=0.3, omega=(0.8, 1.1), V=1.2, M=M, H=H.tolist(), GL=GL.tolist(), GR=GR.tolist())
    for level in ("lowest", "full"):
        two = landauer(cfg, level)
        ones = [landauer(c, level) for c in _one_mode_cfgs(d)]
        assert two.valid and all(o.valid for o in ones)
        for q in ("J", "Ie"):
            ref = sum(getattr(o, q) for o in ones)
            err = getattr(two, f"{q}_err") + sum(getattr(o, f"{q}_err") for o in ones)
            assert abs(getattr(two, q) - ref) <= 1e-9 * abs(ref) + 10 * err, (level, q)


def test_well_separated_modes_sharing_a_conductor():
    """Quanta 0.7 and 1.3 on one double dot (cross terms Lambda_12 != 0). Lowest order sums each mode's one-mode
    formula exactly. Full broadening couples the modes through the off-diagonal Gamma_e,12(w), which matters only
    off resonance where the propagator weighs O(w/Omega) of its resonant weight: the gap to the sum of the one-mode
    results must lie within the crosscheck's full-broadening tolerance 3 (w/Omega) max(|X|, max_w |G(w)|/kappa)
    (w = 2 max Re eig(Y), Omega = min Omega_k) and be far from zero (the cross terms do something)."""
    from analysis.crosscheck import _flux_density_scale
    from sim.covariance import mode_system_from_config

    d = _modes_dict(s=0.1, omega=(0.7, 1.3), V=1.0)
    cfg = _cfg_modes(s=0.1, omega=(0.7, 1.3), V=1.0)
    ones = {lv: [landauer(c, lv) for c in _one_mode_cfgs(d)] for lv in ("lowest", "full")}
    low = landauer(cfg, "lowest")
    for q in ("J", "Ie"):
        assert getattr(low, q) == pytest.approx(sum(getattr(o, q) for o in ones["lowest"]), rel=1e-9)
    full = landauer(cfg, "full")
    w = 2 * float(mode_system_from_config(cfg).eigenvalues.real.max())
    scale = _flux_density_scale(cfg)["full"]
    for q in ("J", "Ie"):
        ref = sum(getattr(o, q) for o in ones["full"])
        gap = abs(getattr(full, q) - ref)
        assert gap <= 3 * w / 0.7 * max(abs(ref), scale[q]), q
    assert abs(full.Ie - sum(o.Ie for o in ones["full"])) > 1e-3 * abs(full.Ie)


def test_full_broadening_tends_to_the_covariance_route_at_weak_coupling():
    """Degenerate pair with complex cross terms (the waterwheel, Re K positive definite, Im K_12 ~ K_11/2). Narrow
    resonances: int dw/2pi D S D^+ solves the Lyapunov equation of C^T, so full broadening -> the covariance fluxes
    with a gap O(w/Omega) (sec. 5 limits). Checked: within the crosscheck's 3 (w/Omega) max(|X|, max_w |G|/kappa) at
    two couplings, shrinking linearly (s = 0.1 -> 0.01: ratio 10), while the covariance route differs from the modes
    taken alone (no cross terms) by far more than the gap; and with gamma_ph >> |Gamma_e| as well."""
    from analysis.crosscheck import _flux_density_scale
    from sim.covariance import mode_system_from_config
    from sim.rate_equation import steady_state

    gaps = []
    for s in (0.1, 0.01):
        d = _modes_dict(s=s)
        cfg = _cfg_modes(s=s)
        ss = _covariance(cfg)
        full = landauer(cfg, "full")
        w = 2 * float(mode_system_from_config(cfg).eigenvalues.real.max())
        scale = _flux_density_scale(cfg)["full"]
        assert full.valid and w < 0.02
        g = {}
        for q in ("J", "Ie"):
            ref = getattr(ss, q)
            tol = 3 * w * max(abs(ref), scale[q])
            g[q] = getattr(full, q) - ref
            assert abs(g[q]) <= tol, (s, q, g[q], tol)
            if s < 0.1:  # the cross terms matter: the modes alone are far off, the check is not trivial
                alone = sum(getattr(steady_state(c), q) for c in _one_mode_cfgs(d))
                assert abs(alone - ref) > 10 * abs(g[q]), (q, alone, ref, g[q])
        gaps.append({q: g[q] / getattr(ss, q) for q in g})  # relative: the fluxes themselves scale with s
    for q in ("J", "Ie"):
        assert gaps[0][q] / gaps[1][q] == pytest.approx(10, rel=0.2), q
    # gamma_ph >> |Gamma_e|: N_k stays near n_k, J -> gamma_ph sum_k Omega_k (N_k - n_k), still the covariance value
    cfg = _cfg_modes(s=0.01, gamma=0.01)
    ss, full = _covariance(cfg), landauer(cfg, "full")
    w = 2 * float(mode_system_from_config(cfg).eigenvalues.real.max())
    scale = _flux_density_scale(cfg)["full"]
    for q in ("J", "Ie"):
        assert abs(getattr(full, q) - getattr(ss, q)) <= 3 * w * max(abs(getattr(ss, q)), scale[q]), q


@pytest.mark.parametrize("omega", [(1.0, 1.0), (0.7, 1.3)])
def test_zero_bias_one_temperature_gives_zero_fluxes(omega):
    """V = 0, T_L = T_R = T_ph: tau_em^c = nB(w) Lambda^c and the ph-bath source is nB Gamma_ph, so every term of
    both levels cancels point by point: J = Ie = 0 (to round-off against the fluxes at V = 1.3)."""
    cfg0, cfg1 = _cfg_modes(s=0.3, omega=omega, V=0.0), _cfg_modes(s=0.3, omega=omega, V=1.3)
    for level in ("lowest", "full"):
        r0, r1 = landauer(cfg0, level), landauer(cfg1, level)
        assert r0.valid and r1.valid
        assert abs(r0.J) <= 1e-10 * abs(r1.J) and abs(r0.Ie) <= 1e-10 * abs(r1.Ie), (level, r0.J, r0.Ie)


def test_rotation_of_degenerate_modes_leaves_fluxes_unchanged():
    """M'^m = sum_n O_mn M^n (real orthogonal O, degenerate quanta, one gamma_ph): Gamma' = O Gamma O^T, D' = O D O^T,
    so the traces J, Ie are unchanged at both levels; the margin (eigenvalues of Y) too."""
    th = 0.7
    O = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]])
    a = _cfg_modes(s=0.1)
    b = _cfg_modes(s=0.1, M=np.einsum("mn,nij->mij", O, _M))
    for level in ("lowest", "full"):
        ra, rb = landauer(a, level), landauer(b, level)
        assert rb.J == pytest.approx(ra.J, rel=1e-8) and rb.Ie == pytest.approx(ra.Ie, rel=1e-8), level
        assert rb.kappa == pytest.approx(ra.kappa, rel=1e-9)


def test_unstable_pair_is_flagged_never_a_valid_number():
    """V = 2 > V_c = 1.697: each mode alone is stable but the pair runs away (margin < 0). Full broadening returns
    valid = False with NaN fluxes; lowest order (which cannot see it) is finite and reports the negative margin."""
    from sim.covariance import mode_system_from_config

    cfg = _cfg_modes(s=1.0, V=2.0)
    margin = mode_system_from_config(cfg).margin
    assert margin < 0 and all(landauer(c, "lowest").kappa > 0 for c in _one_mode_cfgs(_modes_dict(s=1.0, V=2.0)))
    full = landauer(cfg, "full")
    assert not full.valid and np.isnan(full.J) and np.isnan(full.Ie) and full.kappa == pytest.approx(margin)
    assert full.to_dict()["J"] is None and full.to_dict()["valid"] is False
    low = landauer(cfg, "lowest")
    assert low.valid and np.isfinite(low.J) and low.kappa == pytest.approx(margin) and low.to_dict()["kappa"] < 0
