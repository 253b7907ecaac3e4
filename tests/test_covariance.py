"""Several modes: exact second moments, stability, fluxes (docs/modes.md "Equations")."""

from __future__ import annotations

import numpy as np
import pytest
import qutip
from scipy import integrate
from scipy.optimize import brentq

from sim.conductor import CHANNELS, double_dot
from sim.covariance import clusters, mode_system
from sim.rate_equation import steady_state
from sim.rate_matrices import RateMatrixModel

from .conftest import make_config

# The collective-runaway ("waterwheel") example: a double dot with degenerate dots, real H, Gamma and
# couplings, two degenerate modes (Omega = 1). Found by a random search over double dots; each mode
# alone is stable (K_kk > 0) and Re K is positive definite at every bias up to V = 3, but the pair runs
# away for V > V_c = 1.697 through the imaginary (antisymmetric) part of K: a current-driven,
# non-conservative instability that only the matrix sees.
WW_COND = dict(eps=(-0.25, -0.25), hopping=0.5, gamma_L=0.4, gamma_R=0.5)
WW_M = np.array([[[-0.1, 0.25], [0.25, 0.05]], [[-0.4, -0.1], [-0.1, -0.15]]])
WW = dict(gamma=0.002, T_ph=0.05, T=0.05)


def _ww_system(V, omega=(1.0, 1.0), delta=0.1, M=WW_M):
    model = RateMatrixModel(double_dot(**WW_COND), M)
    return mode_system(model, None, list(omega), WW["gamma"], WW["T_ph"], V / 2, -V / 2, WW["T"], delta=delta)


def _single(cfg):
    b = cfg.bias
    cond = cfg.conductor.build()
    return cond, b


@pytest.mark.parametrize(("mu_L", "mu_R"), [(0.4, -0.4), (-0.3, 0.5), (0.9, -0.9)])
def test_one_mode_equals_rate_equation(mu_L, mu_R):
    """K = 1: every number is the single-mode rate equation's (double dot, docs/theory.md sec. 4)."""
    cfg = make_config(bias={"mu_L": mu_L, "mu_R": mu_R, "T_e": 0.1}, phonon_bath={"T": 0.15, "gamma": 0.05})
    ref = steady_state(cfg)
    cond, b = _single(cfg)
    s = mode_system(cond, cond.M, cfg.mode.omega, cfg.phonon_bath.gamma, cfg.phonon_bath.T, b.mu_L, b.mu_R, b.T_L,
                    b.T_R, T_e=b.T_e)
    r = s.steady_state()
    assert s.growth_rate == pytest.approx(-ref.kappa, rel=1e-12)
    assert r.stable == ref.stable
    if not ref.stable:
        assert np.isnan(r.N).all() and np.isnan(r.J)
        return
    for got, want in [(r.N[0], ref.N), (r.T_eff[0], ref.T_eff), (r.mu_eff[0], ref.mu_eff), (r.J, ref.J),
                      (r.J_ph, ref.J_ph), (r.Ie, ref.Ie)]:
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    np.testing.assert_allclose(r.J_channel, ref.J_channel, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r.Ie_channel, ref.Ie_channel, rtol=1e-12, atol=1e-15)
    rates = ref.model.rates
    np.testing.assert_allclose(r.emission_rate, rates.emission * (ref.N + 1), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r.absorption_rate, rates.absorption * ref.N, rtol=1e-12, atol=1e-15)
    t = np.linspace(0, 30, 7)
    np.testing.assert_allclose(s.covariance(t, [[2.0]])[:, 0, 0].real, ref.model.N_t(t, 2.0), rtol=1e-12)


def test_one_mode_runaway_growth_rate():
    cfg = make_config(bias={"mu_L": 1.5, "mu_R": -1.5, "T_e": 0.1})
    ref = steady_state(cfg)
    cond, b = _single(cfg)
    s = mode_system(cond, cond.M, 1.0, cfg.phonon_bath.gamma, cfg.phonon_bath.T, b.mu_L, b.mu_R, b.T_L)
    assert not ref.stable and not s.stable
    assert s.growth_rate == pytest.approx(ref.growth_rate, rel=1e-12)
    assert np.isnan(s.steady_state().C).all()
    t = np.array([0.0, 5.0, 10.0])
    np.testing.assert_allclose(s.covariance(t)[:, 0, 0].real, ref.model.N_t(t), rtol=1e-11)


def test_clusters():
    assert clusters([1.0, 1.3, 1.0, 1.05], 0.0) == ((0, 2), (3,), (1,))
    assert clusters([1.0, 1.3, 1.0, 1.05], 0.06) == ((0, 2, 3), (1,))
    assert clusters([1.0, 1.1, 1.2], 0.1) == ((0, 1, 2),)  # chained neighbours, spacing = delta up to rounding
    assert clusters([1.0, 1.1, 1.2], 0.0999) == ((0,), (1,), (2,))
    with pytest.raises(ValueError, match="delta"):
        clusters([1.0], -0.1)


@pytest.mark.parametrize("omega", [(1.0, 1.0), (1.0, 1.03)])
def test_uncoupled_mode_sits_at_thermal_population(omega):
    """M^2 = 0: mode 2 at n_2 with no coherence; mode 1 and every total as without mode 2.

    In one cluster of split quanta every rate and ph-bath occupation is taken at the cluster's common
    frequency w_S (the unified GKLS rule): mode 1 is then exactly the one-mode model at the quantum w_S
    (N and Ie equal), except that its energy per quantum is its own Omega_1 (J, J_ph times Omega_1/w_S)."""
    M = np.array([WW_M[0], np.zeros((2, 2))])
    s = _ww_system(1.2, omega, delta=0.1, M=M)
    assert s.clusters == ((0, 1),)
    w = s.cluster_frequencies[0]
    assert w == pytest.approx(np.mean(omega), rel=1e-15)
    one = _ww_system(1.2, (w,), M=M[:1]).steady_state()
    r = s.steady_state()
    assert r.N[1] == pytest.approx(s.n_th[1], rel=1e-12)
    assert abs(r.C[0, 1]) <= 1e-15
    assert r.N[0] == pytest.approx(one.N[0], rel=1e-12)
    assert r.Ie == pytest.approx(one.Ie, rel=1e-12, abs=1e-16)
    f = omega[0] / w
    for k in ("J", "J_ph"):
        assert getattr(r, k) == pytest.approx(f * getattr(one, k), rel=1e-12, abs=1e-16)
    np.testing.assert_allclose(r.J_channel, f * one.J_channel, rtol=1e-12, atol=1e-16)
    assert s.growth_rate == pytest.approx(max(one.growth_rate, -WW["gamma"]), rel=1e-12)


def test_rotation_of_degenerate_modes_changes_no_total():
    """M'^m = sum_n O_mn M^n (O real orthogonal): totals and the eigenvalues of Y are unchanged."""
    th = 0.7
    O = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    Mr = np.einsum("mn,nij->mij", O, WW_M)
    for V in (1.2, 2.5):  # stable, and past the collective threshold
        a, b = _ww_system(V), _ww_system(V, M=Mr)
        np.testing.assert_allclose(np.sort_complex(a.eigenvalues), np.sort_complex(b.eigenvalues), rtol=1e-12, atol=1e-15)
        assert a.growth_rate == pytest.approx(b.growth_rate, rel=1e-12)
        if a.stable:
            ra, rb = a.steady_state(), b.steady_state()
            for k in ("N_total", "J", "Ie", "J_ph"):
                assert getattr(ra, k) == pytest.approx(getattr(rb, k), rel=1e-11)
            np.testing.assert_allclose(ra.Ie_channel, rb.Ie_channel, rtol=1e-11, atol=1e-16)
            np.testing.assert_allclose(O @ ra.C @ O.T, rb.C, rtol=1e-11, atol=1e-15)  # C' = O C O^T


def test_well_separated_modes_are_independent_one_mode_models():
    omega = (1.0, 1.4)
    s = _ww_system(1.2, omega, delta=0.1)
    assert s.clusters == ((0,), (1,))
    r = s.steady_state()
    assert abs(r.C[0, 1]) == 0.0
    singles = [_ww_system(1.2, omega[k:k + 1], M=WW_M[k:k + 1]).steady_state() for k in range(2)]
    for k in range(2):
        assert r.N[k] == pytest.approx(singles[k].N[0], rel=1e-12)
        assert r.T_eff[k] == pytest.approx(singles[k].T_eff[0], rel=1e-12)
    for key in ("J", "Ie", "J_ph"):
        assert getattr(r, key) == pytest.approx(sum(getattr(x, key) for x in singles), rel=1e-12)
    np.testing.assert_allclose(r.emission_rate, singles[0].emission_rate + singles[1].emission_rate, rtol=1e-12)


def test_lyapunov_residual_energy_balance_and_time_evolution():
    s = _ww_system(1.4, (1.0, 1.03), delta=0.1)  # one cluster, cross terms at the common frequency
    assert s.stable
    r = s.steady_state()
    Gc = s.source.conj()
    assert np.max(np.abs(s.Y @ r.C + r.C @ s.Y.conj().T - Gc)) <= 1e-13 * np.max(np.abs(Gc))
    assert np.linalg.eigvalsh(r.C).min() >= -1e-14 * np.max(np.abs(r.C))  # a covariance: PSD
    assert abs(r.C[0, 1]) > 1e-3 * np.max(np.abs(r.C))  # coherences matter here
    assert r.J == pytest.approx(r.J_ph, rel=1e-11)  # energy delivered to the modes = energy to the ph-baths
    # time evolution: eigenbasis route, block-exponential route and a direct ODE solution agree
    C0 = np.array([[0.5, 0.1 + 0.2j], [0.1 - 0.2j, 0.3]])
    t = np.array([0.0, 3.0, 40.0])
    Ce, Cx = s.covariance(t, C0, method="eig"), s.covariance(t, C0, method="expm")
    np.testing.assert_allclose(Ce, Cx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(Ce[0], C0, atol=1e-15)

    def rhs(_, y):
        C = y.reshape(2, 2)
        return (-(s.Y @ C + C @ s.Y.conj().T) + Gc).ravel()

    sol = integrate.solve_ivp(rhs, (0, 40), C0.ravel().astype(complex), t_eval=t, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(Ce, sol.y.T.reshape(-1, 2, 2), atol=1e-9)
    late = s.covariance(2000.0 / s.eigenvalues.real.min() * 0.02)
    np.testing.assert_allclose(late, r.C, atol=1e-12)


def _qutip_liouvillian(s, cutoff, from_ops):
    a = [qutip.tensor(qutip.destroy(cutoff), qutip.qeye(cutoff)), qutip.tensor(qutip.qeye(cutoff), qutip.destroy(cutoff))]
    H = sum(w * x.dag() * x for w, x in zip(s.omega, a, strict=True))
    if from_ops:  # the labelled collapse operators
        c_ops = []
        for op in s.collapse_operators():
            if op.direction == "emission":
                c_ops.append(np.sqrt(op.rate) * sum(v * x.dag() for v, x in zip(op.weights, a, strict=True)))
            else:
                c_ops.append(np.sqrt(op.rate) * sum(np.conj(v) * x for v, x in zip(op.weights, a, strict=True)))
        return qutip.liouvillian(H, c_ops)
    L = qutip.liouvillian(H)  # sec. 7's Lindblad written with the rate matrices
    for c in range(4):
        for m in range(2):
            for n in range(2):
                em, ab = s.emission[c, m, n], s.absorption[c, m, n]
                am, an = a[m].dag(), a[n]
                L += em * (qutip.spre(am) * qutip.spost(an) - 0.5 * qutip.spre(an * am) - 0.5 * qutip.spost(an * am))
                L += ab * (qutip.spre(an) * qutip.spost(am) - 0.5 * qutip.spre(am * an) - 0.5 * qutip.spost(am * an))
    for k in range(2):
        g, nk = s.gamma[k], s.n_th[k]
        L += qutip.lindblad_dissipator(np.sqrt(g * (nk + 1)) * a[k])
        L += qutip.lindblad_dissipator(np.sqrt(g * nk) * a[k].dag())
    return L, a


def test_lyapunov_equals_qutip_steady_state():
    """K = 2 with coherences: the multi-mode Lindblad on a truncated Fock space (N ~ 0.01, cutoff 8).

    The truncation error falls about 70-fold per added level (2.5e-7, 3.8e-9, 5.5e-11, 7.6e-13 of N
    for cutoffs 5-8), so at cutoff 8 it is below the 1e-10 tolerance."""
    model = RateMatrixModel(double_dot(**WW_COND), WW_M)
    s = mode_system(model, None, [1.0, 1.03], 0.01, 0.15, 0.3, -0.3, 0.15, delta=0.1)
    r = s.steady_state()
    assert 1e-3 < r.N.max() < 0.02 and abs(r.C[0, 1]) > 0.5 * r.N.max()
    cutoff = 8
    L, a = _qutip_liouvillian(s, cutoff, from_ops=False)
    # the labelled collapse operators generate the same Liouvillian (compared at a small cutoff)
    L4, _ = _qutip_liouvillian(s, 4, from_ops=False)
    L4_ops = _qutip_liouvillian(s, 4, from_ops=True)
    assert np.max(np.abs((L4 - L4_ops).full())) <= 1e-14 * np.max(np.abs(L4.full()))
    rho = qutip.steadystate(L)
    Cq = np.array([[qutip.expect(a[m].dag() * a[n], rho) for n in range(2)] for m in range(2)])
    np.testing.assert_allclose(Cq, r.C, rtol=0, atol=1e-10 * r.N.max())


def test_collapse_operators_rebuild_the_rate_matrices():
    s = _ww_system(1.4, (1.0, 1.03), delta=0.1)
    ops = s.collapse_operators(include_phonon=False)
    for c, name in enumerate(CHANNELS):
        for direction, T in (("emission", s.emission[c]), ("absorption", s.absorption[c])):
            mine = [o for o in ops if o.channel == name and o.direction == direction]
            R = sum((o.rate * np.outer(o.weights, o.weights.conj()) for o in mine), np.zeros((2, 2)))
            np.testing.assert_allclose(R, T, atol=1e-14 * max(np.max(np.abs(T)), 1e-300))
            assert all(o.rate > 0 and o.cluster == 0 for o in mine)
    ph = [o for o in s.collapse_operators() if o.channel == "ph"]
    assert {(o.j, o.direction) for o in ph} == {(0, "absorption"), (1, "absorption"), (0, "emission"), (1, "emission")}


def test_collective_runaway_of_two_degenerate_modes():
    """Each mode alone stable, Re K positive definite, but lambda_min(K) < 0: the pair runs away."""
    V = 2.5
    s = _ww_system(V)
    K = s.damping_matrix
    assert np.all(np.diagonal(K).real > 0)  # K_11, K_22 > 0
    for k in range(2):  # each mode alone (one-mode model) is stable
        assert _ww_system(V, (1.0,), M=WW_M[k:k + 1]).stable
    assert np.linalg.eigvalsh(K.real).min() > 0  # non-conservative: Re K positive definite
    lam, U = np.linalg.eigh(K)
    assert lam[0] < -0.3 * lam[1] < 0
    assert not s.stable
    assert s.growth_rate == pytest.approx(-lam[0], rel=1e-12)  # degenerate: Re eig(Y) = eig(K)/2
    u = s.unstable_mode  # the runaway collective mode b^+ = sum_m u_m a_m^+: K's lowest eigenvector
    assert abs(np.vdot(U[:, 0], u)) == pytest.approx(1.0, rel=1e-12)
    assert np.min(np.abs(u)) > 0.3 and abs(np.angle(u[1] / u[0])) % np.pi > 0.3  # a complex (rotating) combination
    C = s.covariance(np.array([800.0, 900.0]))  # late: the other terms are e^-22 behind
    ratio = np.trace(C[1]).real / np.trace(C[0]).real
    assert ratio == pytest.approx(np.exp(s.growth_rate * 100.0), rel=1e-6)


def test_collective_runaway_onset_for_split_quanta():
    """Onset where |K_12|^2 = K_11 K_22 [1 + 4 Delta^2/(K_11 + K_22)^2]; splitting the quanta delays it."""
    def Vc(D):
        om = (1.0 - D / 2, 1.0 + D / 2)
        return brentq(lambda V: _ww_system(V, om).growth_rate, 1.0, 3.0, xtol=1e-14, rtol=1e-15)

    V0 = Vc(0.0)
    assert V0 > 1.6 and V0 < 1.8  # the bracket used for brentq holds one onset, near V = 1.70
    for D in (0.01, 0.02):
        V = Vc(D)
        assert V > V0
        K = _ww_system(V, (1.0 - D / 2, 1.0 + D / 2)).damping_matrix
        k11, k22 = K[0, 0].real, K[1, 1].real
        assert abs(K[0, 1]) ** 2 == pytest.approx(k11 * k22 * (1 + 4 * D**2 / (k11 + k22) ** 2), rel=1e-9)
        assert abs(K[0, 1]) ** 2 > k11 * k22 * (1 + 1e-3)  # the split pair needs more than lambda_min(K) = 0


def test_bad_input():
    model = RateMatrixModel(double_dot(**WW_COND), WW_M)
    with pytest.raises(ValueError, match="omega"):
        mode_system(model, None, [1.0, 1.0, 1.0], 0.01, 0.1, 0.1, -0.1, 0.1)
    with pytest.raises(ValueError, match="omega"):
        mode_system(model, None, [1.0, -1.0], 0.01, 0.1, 0.1, -0.1, 0.1)
    with pytest.raises(ValueError, match="delta"):
        mode_system(model, None, [1.0, 1.0], 0.01, 0.1, 0.1, -0.1, 0.1, delta=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        mode_system(model, None, [1.0, 1.0], -0.01, 0.1, 0.1, -0.1, 0.1)
    s = _ww_system(1.2)
    with pytest.raises(ValueError, match="method"):
        s.covariance(1.0, method="rk4")
