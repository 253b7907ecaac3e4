"""The Lamb shift of the modes (``mode.lamb_shift``, docs/modes.md).

``L = PV int dw/2pi sum_c Lambda^c(w)/(w_S - w)`` per cluster; ``Y = conj(K/2 + i(diag(Omega) + L))``.
Checked against an independent principal value (QUADPACK's Cauchy weight on a finite interval plus
the two tails, entry by entry), a closed form (the double dot at large bias), its symmetries and
scalings, the Lindblad route on the truncated Fock space, and the default (off: bit-identical numbers).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import integrate

import sim
from sim.conductor import double_dot
from sim.config import ConfigError, load_config, one_mode_config, parse_config
from sim.covariance import mode_system, mode_system_from_config
from sim.rate_matrices import LAMB_EPSREL, RateMatrixModel

WATERWHEEL_M = np.array([[[-0.1, 0.25], [0.25, 0.05]], [[-0.4, -0.1], [-0.1, -0.15]]])


def _waterwheel_model(M=WATERWHEEL_M) -> RateMatrixModel:
    cfg = load_config("waterwheel")
    cond, _ = cfg.conductor.build_modes()
    return RateMatrixModel(cond, M)


def _cauchy_lamb(model: RateMatrixModel, w_bar: float, mu_L: float, mu_R: float, T: float, A: float = 40.0,
                 T_R: float | None = None):
    """Independent route: ``PV int_{w_bar-A}^{w_bar+A} F(w)/(w_bar - w)`` with QUADPACK's Cauchy weight
    (``quad(weight='cauchy')`` gives ``PV int f(w)/(w - c)``), plus the two tails by ordinary quadrature;
    every entry (real and imaginary part) separately, without folding or symmetrising."""
    K = model.K
    out = np.zeros((K, K), dtype=complex)
    for i in range(K):
        for j in range(K):
            for part, unit in ((np.real, 1.0), (np.imag, 1j)):
                def f(w, i=i, j=j, part=part):
                    return float(part(model.total_damping(w, mu_L, mu_R, T, T_R)[i, j]))

                pv, _ = integrate.quad(f, w_bar - A, w_bar + A, weight="cauchy", wvar=w_bar, limit=2000,
                                       epsabs=1e-13, epsrel=1e-11)
                hi, _ = integrate.quad(lambda w, f=f: f(w) / (w_bar - w), w_bar + A, np.inf, limit=2000, epsabs=1e-14)
                lo, _ = integrate.quad(lambda w, f=f: f(w) / (w_bar - w), -np.inf, w_bar - A, limit=2000,
                                       epsabs=1e-14)
                out[i, j] += unit * (-pv + hi + lo) / (2 * np.pi)
    return out


@pytest.mark.parametrize(("V", "T_L", "T_R"), [(1.7, 0.05, None), (2.5, 0.0, 0.2)])
def test_lamb_shift_agrees_with_cauchy_principal_value(V, T_L, T_R):
    """K = 2 (a complex, non-symmetric damping under bias; unequal electrode temperatures, one of them 0) against
    the independent route, whose damping comes from :meth:`total_damping` one frequency at a time (the scalar
    path of :meth:`rates`; the quadrature integrates the vectorised one). Both quadratures are
    run to relative 1e-9 (LAMB_EPSREL) or better, so 1e-8 of the largest entry is the tolerance."""
    m = _waterwheel_model()
    L = m.lamb_shift(1.0, V / 2, -V / 2, T_L, T_R)
    ref = _cauchy_lamb(m, 1.0, V / 2, -V / 2, T_L, T_R=T_R)
    scale = np.abs(ref).max()
    assert scale > 1e-3  # a shift of the size of the rates, not a trivial zero
    assert np.abs(L - ref).max() <= 10 * LAMB_EPSREL * scale
    # Hermiticity of the independent (unsymmetrised) route, and hence of the physics, not of the code's final step
    assert np.abs(ref - ref.conj().T).max() <= 10 * LAMB_EPSREL * scale
    if V > 0:  # under bias the off-diagonal entry is complex (the Berry-like part of the shift)
        assert abs(ref[0, 1].imag) > 0.1 * scale


def test_total_damping_grid_is_the_summed_damping_of_rates():
    """The vectorised damping the quadrature integrates equals :meth:`rates` summed over channels at every w, across
    confluent-pole frequencies and unequal temperatures."""
    m = _waterwheel_model()
    w = np.concatenate([np.linspace(-40.0, 40.0, 41), [0.0, 1.0, 1.7, -1.7]])
    for T_L, T_R in ((0.05, None), (0.0, 0.3)):
        grid = m.total_damping_grid(w, 0.85, -0.85, T_L, T_R, modes=[1, 0])
        for j, x in enumerate(w):
            ref = m.rates(float(x), 0.85, -0.85, T_L, T_R, modes=[1, 0]).damping.sum(axis=0)
            assert np.abs(grid[j] - ref).max() <= 1e-12 * max(np.abs(ref).max(), 1e-3)


def test_one_mode_lamb_shift_is_the_diagonal_and_agrees_with_cauchy():
    """K = 1 (one mode of the pair, its own quantum): the same number as that entry of the K = 2 matrix at the same
    frequency, and the independent route."""
    m = _waterwheel_model()
    L2 = m.lamb_shift(1.0, 0.6, -0.6, 0.05)
    for k in range(2):
        L1 = m.lamb_shift(1.0, 0.6, -0.6, 0.05, modes=[k])
        assert L1.shape == (1, 1)
        assert L1[0, 0] == pytest.approx(L2[k, k], rel=10 * LAMB_EPSREL, abs=1e-15)
        one = RateMatrixModel(m.conductor, WATERWHEEL_M[k])
        ref = _cauchy_lamb(one, 1.0, 0.6, -0.6, 0.05)
        assert L1[0, 0] == pytest.approx(ref[0, 0], rel=10 * LAMB_EPSREL)


def test_lamb_shift_closed_form_of_the_double_dot_at_large_bias():
    """Double dot, t = 0, T = 0, mu_L = -mu_R = B: for |w| << B only LR and RL are open and each is a Lorentzian,
    ``sum_c Lambda^c = m^2 g [1/((w + D)^2 + g^2/4) - 1/((w - D)^2 + g^2/4)]`` (D = eps_1 - eps_2,
    g = gamma_L + gamma_R), whose principal value is closed: ``L = m^2 [(W + D)/((W + D)^2 + g^2/4) - (W - D)/
    ((W - D)^2 + g^2/4)]``. The Fermi windows cut the Lorentzians' tails at |e| ~ B: the gap must fall like 1/B."""
    eps, gl, gr, mm, W = (0.5, -0.5), 0.5, 0.5, 0.5, 1.0
    D, g = eps[0] - eps[1], gl + gr
    exact = mm**2 * ((W + D) / ((W + D) ** 2 + g**2 / 4) - (W - D) / ((W - D) ** 2 + g**2 / 4))
    cond = double_dot(eps, 0.0, gl, gr, 0.0)
    model = RateMatrixModel(cond, np.array([[[0.0, mm], [mm, 0.0]]]))
    gaps = []
    for B in (50.0, 500.0):
        L = model.lamb_shift(W, B, -B, 0.0)
        gaps.append(abs(L[0, 0].real - exact))
    assert abs(exact) > 0.1
    assert gaps[1] < 0.2 * gaps[0] + 1e-9  # 1/B convergence (a factor 10 in B: at least 5 in the gap)
    assert gaps[1] < 1e-2 * abs(exact)


def test_lamb_shift_zero_at_zero_coupling_and_quadratic_in_it():
    m = _waterwheel_model()
    L = m.lamb_shift(1.0, 0.85, -0.85, 0.05)
    # scaling every coupling by s scales every rate, hence L, by s^2
    s = 0.37
    Ls = _waterwheel_model(s * WATERWHEEL_M).lamb_shift(1.0, 0.85, -0.85, 0.05)
    assert np.abs(Ls - s**2 * L).max() <= 10 * LAMB_EPSREL * np.abs(L).max()
    # a mode with M^k = 0 has no shift and no cross term; the other mode's entry is unchanged
    M = WATERWHEEL_M.copy()
    M[1] = 0.0
    L0 = _waterwheel_model(M).lamb_shift(1.0, 0.85, -0.85, 0.05)
    assert np.all(L0[1, :] == 0) and np.all(L0[:, 1] == 0)
    assert L0[0, 0] == pytest.approx(L[0, 0], rel=10 * LAMB_EPSREL)
    assert np.all(_waterwheel_model(0 * WATERWHEEL_M).lamb_shift(1.0, 0.85, -0.85, 0.05) == 0)


def test_drift_matrix_with_the_lamb_shift_and_equilibrium():
    """Y = conj(K/2 + i(diag(Omega) + L)); at zero bias with one temperature the Gibbs state stays the steady state
    (L commutes with C = nB 1) and every flux vanishes."""
    cfg = load_config("waterwheel", ["bias.V=0.0", "mode.lamb_shift=true"])
    s = mode_system_from_config(cfg)
    assert s.lamb_shift and s.lamb.shape == (2, 2)
    Kmat = s.damping_matrix
    assert np.array_equal(s.Y, (Kmat / 2 + 1j * (np.diag(s.omega) + s.lamb)).conj())
    assert np.abs(s.lamb).max() > 1e-3
    C = s.steady_covariance()
    nB = float(sim.special.bose(1.0, 0.05))
    assert np.abs(C - nB * np.eye(2)).max() <= 1e-10 * max(nB, 1e-30) + 1e-15
    f = s.fluxes(C)
    assert abs(f["Ie"]) < 1e-12 and abs(f["J"]) < 1e-12
    plain = mode_system_from_config(load_config("waterwheel", ["bias.V=0.0"]))
    assert plain.lamb is None
    assert np.array_equal(s.damping, plain.damping) and np.array_equal(s.emission, plain.emission)


def test_lamb_shift_moves_the_collective_threshold():
    """Degenerate pair: the margin with L differs from the margin without (the shift couples the modes), by a
    fraction of the rates, and the Lamb-shifted system is exactly the plain one with the Hamiltonian changed."""
    on = mode_system_from_config(load_config("waterwheel", ["bias.V=1.7", "mode.lamb_shift=true"]))
    off = mode_system_from_config(load_config("waterwheel", ["bias.V=1.7"]))
    assert on.margin != off.margin
    assert abs(on.margin - off.margin) < np.abs(on.damping_matrix).max()
    assert off.stable is False and on.stable is True  # just above V_c = 1.697 without L, below V_c with it


def test_lindblad_route_includes_the_lamb_shift():
    """The truncated Fock space with H + sum L_mn a_m^+ a_n agrees with the Lyapunov C of Y with L (the sign and the
    index order of L in both), and differs from the Lyapunov C without L by more than the tolerance."""
    from sim.lindblad import steady_lindblad

    cfg = load_config("waterwheel", ["bias.V=1.4", "mode.lamb_shift=true", "phonon_bath.T=0.3", "bias.T_e=0.3"])
    s = mode_system_from_config(cfg)
    assert s.stable
    C = s.steady_covariance()
    li = steady_lindblad(s, cutoffs=[14, 14])
    # truncation at 14 levels per mode (top-level probability ~2e-7) leaves ~1e-5 in C (1e-8 at 20 levels)
    assert max(li.P_top) < 1e-6
    assert np.abs(li.C - C).max() <= 5e-5 * np.abs(C).max()
    plain = mode_system_from_config(cfg.with_value("mode.lamb_shift", False))
    assert np.abs(plain.steady_covariance() - C).max() > 0.05 * np.abs(C).max()  # L matters here, ~30 %


def test_one_mode_shift_changes_no_population_flux_or_verdict():
    """K = 1: the shift renormalises Omega only. ``ehp steady --json`` equals the default record except for the two
    Lamb-shift keys; the covariance route of the same mode gives the same N and margin with and without L."""
    on = sim.system(load_config("paper_double_dot", ["mode.lamb_shift=true"])).steady_state().to_dict()
    off = sim.system(load_config("paper_double_dot")).steady_state().to_dict()
    assert on["lamb_shift"] is True and "lamb_shift" not in off and "lamb_shift_matrix" not in off
    L = np.array(on["lamb_shift_matrix"]["re"]) + 1j * np.array(on["lamb_shift_matrix"]["im"])
    assert L.shape == (1, 1) and L[0, 0].imag == 0 and abs(L[0, 0]) > 1e-3
    strip = {"lamb_shift", "lamb_shift_matrix"}
    assert {k: v for k, v in on.items() if k not in strip} == {k: v for k, v in off.items() if k not in strip}
    s_on = sim.system(load_config("paper_double_dot", ["mode.lamb_shift=true"]))
    m_on, m_off = s_on.modes(), sim.system(load_config("paper_double_dot")).modes()
    assert m_on.lamb[0, 0] == pytest.approx(L[0, 0], rel=1e-12)
    assert m_on.steady_covariance()[0, 0].real == pytest.approx(m_off.steady_covariance()[0, 0].real, rel=1e-13)
    assert m_on.margin == pytest.approx(m_off.margin, rel=1e-13)


def test_default_off_is_bit_identical():
    """``mode.lamb_shift = false`` (or absent) builds exactly the system of before: no L, Y by the old formula (bit
    for bit), the same resolved config (the key is left out), the same steady-state numbers."""
    base = load_config("waterwheel", ["bias.V=1.2"])
    off = load_config("waterwheel", ["bias.V=1.2", "mode.lamb_shift=false"])
    assert base.to_dict() == off.to_dict() and "lamb_shift" not in off.to_dict()["mode"]
    s0, s1 = mode_system_from_config(base), mode_system_from_config(off)
    assert s1.lamb is None and "lamb_re" not in s1.record()
    assert np.array_equal(s1.Y, s1.damping_matrix.conj() / 2 - 1j * np.diag(s1.omega))
    assert np.array_equal(s0.Y, s1.Y)
    assert np.array_equal(s0.steady_covariance(), s1.steady_covariance())
    d0 = sim.system(base).steady_state().to_dict()
    d1 = sim.system(off).steady_state().to_dict()
    assert json.dumps(d0) == json.dumps(d1)
    # a mode_system built without the argument is the same as with lamb_shift=False
    m = _waterwheel_model()
    a = mode_system(m, None, [1.0, 1.0], 0.002, 0.05, 0.6, -0.6, 0.05)
    b = mode_system(m, None, [1.0, 1.0], 0.002, 0.05, 0.6, -0.6, 0.05, lamb_shift=False)
    assert np.array_equal(a.Y, b.Y) and b.lamb is None


def test_config_validation_and_record():
    with pytest.raises(ConfigError, match=r"mode\.lamb_shift must be true or false.*got 1"):
        load_config("waterwheel", ["mode.lamb_shift=1"])
    with pytest.raises(ConfigError, match=r"mode\.lamb_shift must be true or false.*got 'yes'"):
        load_config("paper_double_dot", ["mode.lamb_shift=yes"])
    flat = {"conductor": {"kind": "flat", "K_LR": 3.0, "K_RL": 3.0}, "mode": {"omega": 1.0, "lamb_shift": True},
            "bias": {"V": 0.0, "mu0": 0.0, "T_e": 0.25}}
    with pytest.raises(ConfigError, match=r"mode\.lamb_shift = true needs orbital couplings.*flat.*diverges"):
        parse_config(flat)
    flat["mode"]["lamb_shift"] = False
    assert "lamb_shift" not in parse_config(flat).to_dict()["mode"]
    cfg = load_config("waterwheel", ["mode.lamb_shift=true"])
    d = cfg.to_dict()
    assert d["mode"]["lamb_shift"] is True
    assert parse_config(d).mode.lamb_shift is True  # round trip
    assert one_mode_config(cfg, 1).mode.lamb_shift is True
    rec = mode_system_from_config(cfg).record()
    assert "lamb_re" in rec and "lamb_im" in rec


def _cli(capsys, *argv):
    from analysis.cli import main

    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_threshold_and_steady_record_the_lamb_shift(capsys):
    th_args = ("threshold", "paper_double_dot", "--vary", "bias.V", "--between", "0", "2")
    code, out, _ = _cli(capsys, *th_args)
    assert code == 0 and "Lamb shift neglected (mode.lamb_shift = false)" in out
    code, out, _ = _cli(capsys, *th_args, "--set", "mode.lamb_shift=true")
    assert code == 0 and "Lamb shift included (mode.lamb_shift = true)" in out
    code, out, _ = _cli(capsys, *th_args, "--json", "--set", "mode.lamb_shift=true")
    on = json.loads(out)
    code, out, _ = _cli(capsys, *th_args, "--json")
    off = json.loads(out)
    assert on["lamb_shift"] is True and off["lamb_shift"] is False
    assert on["threshold"] == off["threshold"]  # one mode: the shift moves the quantum, never kappa
    code, out, err = _cli(capsys, "steady", "waterwheel", "--json", "--set", "mode.lamb_shift=true", "--set", "bias.V=1.0")
    assert code == 0
    d = json.loads(out)
    assert d["lamb_shift"] is True and len(d["lamb_shift_matrix"]["re"]) == 2
    assert "neglect the Lamb shift" not in err
    code, out, err = _cli(capsys, "steady", "waterwheel", "--json", "--set", "bias.V=1.0")
    assert code == 0 and "lamb_shift" not in json.loads(out) and "neglect the Lamb shift" in err
    code, out, _ = _cli(capsys, "steady", "paper_double_dot", "--set", "mode.lamb_shift=true")
    assert code == 0 and "lamb_shift        L = [[-0.2" in out
    code, out, _ = _cli(capsys, "steady", "paper_double_dot")
    assert code == 0 and "lamb_shift" not in out
    code, _, err = _cli(capsys, "steady", "waterwheel", "--set", "mode.lamb_shift=2")
    assert code == 2 and "mode.lamb_shift must be true or false" in err and err.strip().count("\n") == 0


def test_cli_threshold_of_several_modes_with_the_lamb_shift(capsys):
    """The waterwheel pair: the onset moves by a few percent with L (docs/modes.md), and the text says it is included."""
    code, out, _ = _cli(capsys, "threshold", "waterwheel", "--vary", "bias.V", "--between", "1", "3", "--json",
                        "--set", "mode.lamb_shift=true")
    assert code == 0
    on = json.loads(out)
    code, out, _ = _cli(capsys, "threshold", "waterwheel", "--vary", "bias.V", "--between", "1", "3", "--json")
    off = json.loads(out)
    assert on["lamb_shift"] is True and off["lamb_shift"] is False
    assert 0.005 < abs(on["threshold"] / off["threshold"] - 1) < 0.1
