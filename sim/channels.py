r"""EHP channel rates: emission, absorption and net damping (docs/theory.md).

For a channel ``c = (a, b)`` (electron in electrode ``a``, hole in ``b``) and a
mode quantum ``w``::

    tau_em_c(w)  = int de/2pi K_c(e, w) f_a(e) [1 - f_b(e - w)]
    tau_abs_c(w) = int de/2pi K_c(e, w) [1 - f_a(e)] f_b(e - w)
    Lambda_c(w)  = tau_abs_c - tau_em_c = int de/2pi K_c [f_b(e - w) - f_a(e)]

with ``K_c(e, w) = Tr[M A_a(e) M A_b(e - w)]``. Units: rates in the energy unit
of the config (hbar = 1).

Method (exact, no quadrature)
-----------------------------
With ``H_eff = H - i Gamma/2 = V diag(z) V^-1`` the kernel is a rational function
of ``e``::

    K_c(e, w) = sum_klmn C_klmn / ((e - z_k)(e - z*_l)(e - w - z_m)(e - w - z*_n)),
    C_klmn = Gt_a[k, l] Mt[l, m] Gt_b[m, n] Mt[n, k],
    Gt_a = V^-1 Gamma_a V^-dagger,  Mt = V^dagger M V.

For one Fermi function, ``int de f((e - mu)/T) / (e - p)`` (regularised; the
cut-off cancels since ``K = O(e^-4)``) is, for ``Im p < 0``,
``I(p) = psi(1/2 + (mu - p)/(2 pi i T)) + log(2 pi T) - i pi/2`` and
``log(mu - p) - i pi`` at ``T = 0``; for ``Im p > 0`` its complex conjugate at
``p*``. Each term is split into its lower- and upper-half-plane parts,
``(Q I)[z_k, w + z_m] + (P I)[z*_l, w + z*_n]`` (first divided differences), and a
pair of nearly coincident poles (``z_k = w + z_m``, which happens for the paper's
double dot at ``w = eps_1 - eps_2``) is evaluated through the derivative
(trigamma) at its midpoint, so the result stays exact at confluence.
With equal electrode temperatures ``tau_em = nB(w - mu_c) Lambda_c`` (Eq. 4); near
``w = mu_c`` the smooth product is interpolated across ``|w - mu_c| < delta``.
Unequal electrode temperatures have no closed form for ``tau_em``: it is then
integrated adaptively (``scipy.integrate.quad``), ``Lambda`` staying exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import integrate

from .conductor import CHANNELS, ELECTRODES, Conductor, FlatConductor
from .special import bose, digamma, fermi, trigamma, x_bose

__all__ = ["ChannelRates", "channel_rates", "kernel", "rates_by_quadrature", "KernelModel", "elastic_current"]

_CONFLUENT = 1e-5  # |a - c| / |Im| below which a pole pair is treated as confluent
_DELTA = 3e-5  # half-width of the interpolation window around w = mu_c, in min(T, width)


@dataclass(frozen=True)
class ChannelRates:
    """Rates of the four channels on a common broadcast shape ``S``.

    Attributes ``mu``, ``emission``, ``absorption``, ``damping`` have shape
    ``(4,) + S`` in the order of :data:`CHANNELS`; ``w`` has shape ``S``.
    """

    w: NDArray[np.float64]
    mu: NDArray[np.float64]
    emission: NDArray[np.float64]
    absorption: NDArray[np.float64]
    damping: NDArray[np.float64]

    def channel(self, name: str) -> dict[str, NDArray[np.float64]]:
        """``{mu, emission, absorption, damping}`` of one channel."""
        i = CHANNELS.index(name)
        return {k: getattr(self, k)[i] for k in ("mu", "emission", "absorption", "damping")}


class KernelModel:
    """Pole data of a wide-band conductor, computed once (w- and bias-independent)."""

    def __init__(self, conductor: Conductor) -> None:
        z, V = np.linalg.eig(conductor.h_eff)
        self.n = conductor.n
        self.z = z
        self.width = float(np.min(np.abs(z.imag))) if z.size else 0.0
        cond = np.linalg.cond(V)
        self.defective = bool(not np.isfinite(cond) or cond > 1e7 or self.width <= 0)
        Vi = np.linalg.inv(V)
        Gt = {a: Vi @ conductor.gamma(a) @ Vi.conj().T for a in ("L", "R")}
        Mt = V.conj().T @ conductor.M @ V
        self.conductor = conductor
        self.C = {
            c: np.einsum("kl,lm,mn,nk->klmn", Gt[ELECTRODES[c][0]], Mt, Gt[ELECTRODES[c][1]], Mt)
            for c in CHANNELS
        }

    def weights(self, channel: str, w: NDArray[np.float64]):
        """Lower-half-plane points ``p`` and weights so that, for ``T`` and ``mu``,
        ``int de/2pi K_c(e, w) f((e - mu)/T) = Re sum_p [W_p I(p) + W1_p I'(p)] / 2pi``.

        Returns arrays of shape ``(len(w), 2n + n^2)``.
        """
        C = self.C[channel]
        z = self.z
        nw = w.shape[0]
        a = np.broadcast_to(z, (nw, self.n))
        c = w[:, None] + z[None, :]
        b, d = a.conj(), c.conj()
        diff = a[:, :, None] - c[:, None, :]  # (w, k, m)
        mid = 0.5 * (a[:, :, None] + c[:, None, :])
        conf = np.abs(diff) < _CONFLUENT * np.abs(mid.imag)
        inv = np.where(conf, 0.0, 1.0 / np.where(conf, 1.0, diff))

        def q_at(e):  # 1/((e - b_l)(e - d_n)) at points e (w, x) -> (w, x, l, n)
            return 1.0 / ((e[:, :, None, None] - b[:, None, :, None]) * (e[:, :, None, None] - d[:, None, None, :]))

        def p_at(e):  # 1/((e - a_k)(e - c_m)) -> (w, x, k, m)
            return 1.0 / ((e[:, :, None, None] - a[:, None, :, None]) * (e[:, :, None, None] - c[:, None, None, :]))

        # lower half plane: (Q I)[a_k, c_m]
        W_a = np.einsum("klmn,wkln,wkm->wk", C, q_at(a), inv)
        W_c = -np.einsum("klmn,wmln,wkm->wm", C, q_at(c), inv)
        # upper half plane: (P I)[b_l, d_n]; its pair (l, n) mirrors the (k, m) pair
        invU = inv.conj()
        W_b = np.einsum("klmn,wlkm,wln->wl", C, p_at(b), invU)
        W_d = -np.einsum("klmn,wnkm,wln->wn", C, p_at(d), invU)
        midf = mid.reshape(nw, -1)
        Wm = np.zeros((nw, self.n * self.n), dtype=complex)
        W1m = np.zeros_like(Wm)
        if conf.any():
            cm = conf.astype(float)
            Qm = q_at(midf).reshape(nw, self.n, self.n, self.n, self.n)  # (w, k, m, l, n)
            mk = mid[:, :, :, None, None]
            dQm = -Qm * (1.0 / (mk - b[:, None, None, :, None]) + 1.0 / (mk - d[:, None, None, None, :]))
            Wm += np.einsum("klmn,wkmln,wkm->wkm", C, dQm, cm).reshape(nw, -1)
            W1m += np.einsum("klmn,wkmln,wkm->wkm", C, Qm, cm).reshape(nw, -1)
            midU = midf.conj()
            Pm = p_at(midU).reshape(nw, self.n, self.n, self.n, self.n)  # (w, l, n, k, m)
            mu_ = midU.reshape(nw, self.n, self.n)[:, :, :, None, None]
            dPm = -Pm * (1.0 / (mu_ - a[:, None, None, :, None]) + 1.0 / (mu_ - c[:, None, None, None, :]))
            Wm += np.einsum("klmn,wlnkm,wln->wln", C, dPm, cm).conj().reshape(nw, -1)
            W1m += np.einsum("klmn,wlnkm,wln->wln", C, Pm, cm).conj().reshape(nw, -1)
        pts = np.concatenate([a, c, midf], axis=1)
        W = np.concatenate([W_a + W_b.conj(), W_c + W_d.conj(), Wm], axis=1)
        W1 = np.concatenate([np.zeros((nw, 2 * self.n), dtype=complex), W1m], axis=1)
        return pts, W, W1


def fermi_pole_integral(p, mu, T):
    """``I(p) = int de f((e - mu)/T)/(e - p)`` for ``Im p < 0`` (regularised: the real
    cut-off term is dropped; it cancels in any kernel decaying faster than 1/e).

    ``psi(1/2 + (mu - p)/(2 pi i T)) + log(2 pi T) - i pi/2``; at ``T = 0``
    ``log(mu - p) - i pi``. Arguments broadcast.
    """
    hot = T > 0
    Ts = np.where(hot, T, 1.0)
    u = 0.5 + (mu - p) / (2j * np.pi * Ts)
    I_hot = digamma(u) + np.log(2 * np.pi * Ts) - 0.5j * np.pi
    if np.all(hot):
        return I_hot
    return np.where(hot, I_hot, np.log(mu - p) - 1j * np.pi)


def fermi_pole_integral_derivative(p, mu, T):
    """``dI/dp`` of :func:`fermi_pole_integral` (trigamma; ``-1/(mu - p)`` at ``T = 0``)."""
    hot = T > 0
    Ts = np.where(hot, T, 1.0)
    u = 0.5 + (mu - p) / (2j * np.pi * Ts)
    return np.where(hot, trigamma(u) * (1j / (2 * np.pi * Ts)), -1.0 / (mu - p))


def _fermi_integral(pts, W, W1, mu, T):
    """``int de/2pi K(e) f((e - mu)/T)`` from pole weights; arrays (N, P), mu/T (N,)."""
    keep = np.any(W != 0, axis=0) | np.any(W1 != 0, axis=0)
    if not keep.any():
        return np.zeros(mu.shape)
    pts, W, W1 = pts[:, keep], W[:, keep], W1[:, keep]
    mu = mu[:, None]
    T = T[:, None]
    total = W * fermi_pole_integral(pts, mu, T)
    used = np.any(W1 != 0, axis=0)  # confluent pole pairs: I'(p) at their midpoints
    if used.any():
        total[:, used] += W1[:, used] * fermi_pole_integral_derivative(pts[:, used], mu, T)
    return total.sum(axis=1).real / (2 * np.pi)


@lru_cache(maxsize=64)
def _model(conductor: Conductor) -> KernelModel:
    return KernelModel(conductor)


def kernel(conductor: Conductor, channel: str, e: ArrayLike, w: float) -> NDArray[np.float64]:
    """``K_c(e, w) = Tr[M A_a(e) M A_b(e - w)]`` (the kernel of Eqs. 5-7, energy^0 x 1/energy^0 units of M^2/energy^2)
    by direct matrix algebra (reference route)."""
    a, b = ELECTRODES[channel]
    Aa = conductor.spectral(e, a)
    Ab = conductor.spectral(np.asarray(e) - w, b)
    return np.einsum("ij,...jk,kl,...li->...", conductor.M, Aa, conductor.M, Ab).real


def _broadcast(w, mu_L, mu_R, T_L, T_R):
    arrs = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (w, mu_L, mu_R, T_L, T_R)))
    for name, x in zip(("w", "mu_L", "mu_R", "T_L", "T_R"), arrs, strict=True):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} must be finite, got {x[~np.isfinite(x)][:3].tolist()}")
    if np.any(arrs[3] < 0) or np.any(arrs[4] < 0):
        raise ValueError("temperatures T_L, T_R must be >= 0")
    return arrs


def channel_rates(
    conductor: Conductor | FlatConductor,
    w: ArrayLike,
    mu_L: ArrayLike,
    mu_R: ArrayLike,
    T_L: ArrayLike,
    T_R: ArrayLike | None = None,
) -> ChannelRates:
    """Emission, absorption and damping of LL, RR, LR, RL at quanta ``w`` (Eqs. 5 and 7; energy units).

    ``tau_em_c(w) = int de/2pi K_c(e, w) f_a(e) [1 - f_b(e - w)]``, ``tau_abs_c`` with
    ``[1 - f_a(e)] f_b(e - w)``, ``Lambda_c = tau_abs_c - tau_em_c`` (docs/theory.md).

    All arguments broadcast against each other (vectorised over ``w`` and bias
    points). ``T_R`` defaults to ``T_L``. ``T = 0`` is allowed.

    Returns
    -------
    ChannelRates
        Arrays of shape ``(4,) + S`` (rates per unit time, energy units).
    """
    if T_R is None:
        T_R = T_L
    w, mu_L, mu_R, T_L, T_R = _broadcast(w, mu_L, mu_R, T_L, T_R)
    shape = w.shape
    flat = [x.ravel() for x in (w, mu_L, mu_R, T_L, T_R)]
    mu = {"L": flat[1], "R": flat[2]}
    T = {"L": flat[3], "R": flat[4]}
    out = {k: np.empty((4, flat[0].size)) for k in ("mu", "emission", "absorption", "damping")}
    model = None if isinstance(conductor, FlatConductor) else _model(conductor)
    if model is not None and model.defective:
        model = None  # exceptional point or undamped orbital: use the quadrature route
    for i, c in enumerate(CHANNELS):
        a, b = ELECTRODES[c]
        mu_c = mu[a] - mu[b]
        ab = None
        if isinstance(conductor, FlatConductor):
            em, lam = _flat(conductor.kernel(c), flat[0], mu[a], mu[b], T[a], T[b])
        elif model is None:
            em, lam = _by_quad(conductor, c, flat[0], mu[a], mu[b], T[a], T[b])
        else:
            em, lam, ab = _exact(model, c, flat[0], mu[a], mu[b], T[a], T[b])
        out["mu"][i] = mu_c
        out["emission"][i] = em
        out["damping"][i] = lam
        out["absorption"][i] = em + lam if ab is None else ab
    return ChannelRates(w=w, **{k: v.reshape((4,) + shape) for k, v in out.items()})


def _exact(model: KernelModel, c, w, mu_a, mu_b, T_a, T_b):
    wu, inv = np.unique(w, return_inverse=True)
    pts, W, W1 = (x[inv] for x in model.weights(c, wu))

    def S(m, T):
        return _fermi_integral(pts, W, W1, m, T)

    x = w - (mu_a - mu_b)
    S_a = S(mu_a, T_a)
    lam = S(mu_b + w, T_b) - S_a
    equal = T_a == T_b
    em = np.empty_like(lam)
    ratio = _safe_div(lam, x)
    em[equal] = (x_bose(x, T_a) * ratio)[equal]
    # absorption = em + Lambda = Lambda (1 + n_B(x)) = x n_B(-x) (-Lambda/x): no cancellation where
    # em ~ -Lambda (x << -T, a strongly biased channel), where em + Lambda would leave round-off of either sign
    ab = np.empty_like(lam)
    ab[equal] = (x_bose(-x, T_a) * ratio)[equal]
    at_zero = equal & (x == 0)  # Lambda/x is undefined there: em + Lambda (T = 0; T > 0 is interpolated below)
    ab[at_zero] = em[at_zero] + lam[at_zero]
    # interpolate the smooth nB(x) Lambda(x) across |x| < delta (cancellation in Lambda/x)
    delta = _DELTA * np.minimum(T_a, model.width)
    small = equal & (np.abs(x) < delta) & (T_a > 0)
    if small.any():
        s = np.flatnonzero(small)
        sub = (pts[s], W[s], W1[s])
        dl = delta[s]
        g = []
        for sign in (1.0, -1.0):
            lam_pm = _fermi_integral(*sub, mu_a[s] + sign * dl, T_a[s]) - S_a[s]
            g.append(bose(sign * dl, T_a[s]) * lam_pm)
        em[s] = g[1] + (g[0] - g[1]) * (x[s] + dl) / (2 * dl)
        ab[s] = em[s] + lam[s]  # |x| < delta: em and Lambda are comparable, no cancellation
    for j in np.flatnonzero(~equal):
        em[j] = _emission_quad(model.conductor, c, w[j], mu_a[j], mu_b[j], T_a[j], T_b[j])
        ab[j] = em[j] + lam[j]
    return em, lam, ab


def _safe_div(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0, 0.0, num / np.where(den == 0, 1.0, den))


def _flat(K0, w, mu_a, mu_b, T_a, T_b):
    """Flat band: ``Lambda = K0 (w - mu_c)/2pi``, ``tau_em = K0 x nB(x)/2pi`` (equal T)."""
    x = w - (mu_a - mu_b)
    lam = K0 * x / (2 * np.pi)
    em = K0 * x_bose(x, T_a) / (2 * np.pi)
    for j in np.flatnonzero(T_a != T_b):
        em[j] = K0 * _window_quad(lambda e: np.ones_like(e), w[j], mu_a[j], mu_b[j], T_a[j], T_b[j], [])
    return em, lam


def _window_quad(K, w, mu_a, mu_b, T_a, T_b, poles, epsabs=0.0):
    """``int de/2pi K(e) f_a(e) [1 - f_b(e - w)]`` over the window where the Fermi
    factors are not exponentially small (beyond 40 T they are below e^-40)."""
    Tm = max(T_a, T_b)
    lo = min(mu_a, mu_b + w) - 40 * Tm
    hi = max(mu_a, mu_b + w) + 40 * Tm
    if T_a == 0 and T_b == 0:
        lo, hi = mu_b + w, mu_a
    if hi <= lo:
        return 0.0
    pts = sorted({p for p in [*poles, mu_a, mu_b + w] if lo < p < hi})

    def f(e):
        return K(np.asarray(e)) * fermi(e - mu_a, T_a) * (1 - fermi(e - w - mu_b, T_b))

    val, _ = integrate.quad(f, lo, hi, points=pts or None, limit=1000, epsabs=epsabs, epsrel=1e-12)
    return val / (2 * np.pi)


def _real_line_quad(g, poles, half_width, epsabs):
    """``int_-inf^inf g`` split at the poles' real parts, tails mapped by quad."""
    lo, hi = min(poles) - 20 * half_width, max(poles) + 20 * half_width
    inner = [p for p in poles if lo < p < hi]
    mid, _ = integrate.quad(g, lo, hi, points=inner or None, limit=1000, epsabs=epsabs, epsrel=1e-12)
    left, _ = integrate.quad(g, -np.inf, lo, limit=500, epsabs=epsabs, epsrel=1e-12)
    right, _ = integrate.quad(g, hi, np.inf, limit=500, epsabs=epsabs, epsrel=1e-12)
    return left + mid + right


def kernel_weight(conductor: Conductor, channel: str, w: float) -> float:
    """``int de/2pi K_c(e, w)``: an upper bound of every rate of the channel."""
    z = np.linalg.eigvals(conductor.h_eff)
    poles = sorted({*z.real, *(z.real + w)})
    hw = max(1e-3, float(np.max(np.abs(z.imag))))
    return _real_line_quad(lambda e: kernel(conductor, channel, e, w), poles, hw, 0.0) / (2 * np.pi)


def _emission_quad(conductor: Conductor, c, w, mu_a, mu_b, T_a, T_b, scale=None):
    z = np.linalg.eigvals(conductor.h_eff)
    poles = [*z.real, *(z.real + w)]
    if scale is None:
        scale = kernel_weight(conductor, c, w)
    return _window_quad(lambda e: kernel(conductor, c, e, w), w, mu_a, mu_b, T_a, T_b, poles,
                        epsabs=1e-13 * 2 * np.pi * scale)


def _by_quad(conductor: Conductor, c, w, mu_a, mu_b, T_a, T_b):
    em = np.empty_like(w)
    lam = np.empty_like(w)
    for j in range(w.size):
        r = rates_by_quadrature(conductor, c, w[j], mu_a[j], mu_b[j], T_a[j], T_b[j])
        em[j], lam[j] = r["emission"], r["damping"]
    return em, lam


def rates_by_quadrature(conductor: Conductor, channel: str, w: float, mu_a: float, mu_b: float,
                        T_a: float, T_b: float | None = None) -> dict[str, float]:
    """Reference rates of one channel by adaptive quadrature (``scipy.integrate.quad``).

    Independent of the pole method: ``K`` is built from matrix inverses at each
    energy. Slow; used by the tests and for defective (exceptional-point) models.
    Absolute tolerance 1e-13 of ``int de/2pi K`` (the bound of every rate).
    """
    T_b = T_a if T_b is None else T_b
    scale = kernel_weight(conductor, channel, w)
    em = _emission_quad(conductor, channel, w, mu_a, mu_b, T_a, T_b, scale)
    z = np.linalg.eigvals(conductor.h_eff)
    poles = sorted({*z.real, *(z.real + w), mu_a, mu_b + w})
    hw = max(1e-3, float(np.max(np.abs(z.imag))), 2 * max(T_a, T_b))

    def g(e):
        return kernel(conductor, channel, e, w) * (fermi(e - w - mu_b, T_b) - fermi(e - mu_a, T_a))

    lam = _real_line_quad(g, poles, hw, 1e-13 * 2 * np.pi * scale) / (2 * np.pi)
    return {"emission": em, "absorption": em + lam, "damping": lam, "scale": scale}


def elastic_current(conductor: Conductor, mu_L: float, mu_R: float, T_L: float, T_R: float | None = None) -> float:
    r"""Elastic Landauer particle current L -> R (electrons per unit time, > 0 for ``mu_L > mu_R``).

    ``I = int dE/2pi Tr[Gamma_L G Gamma_R G^dagger] (f_L - f_R)``: the current without the mode, which
    the mode-assisted (inelastic) ``Ie`` of the channels comes on top of. With
    ``H_eff = V diag(z) V^-1`` the transmission is ``sum_kl C_kl / ((E - z_k)(E - z_l*))``,
    ``C_kl = (V^-1 Gamma_R V^-dagger)_kl (V^dagger Gamma_L V)_lk``; by partial fractions each term is two
    Fermi pole integrals (:func:`fermi_pole_integral`), exact at any temperature. Defective or undamped
    models are integrated by ``scipy.integrate.quad`` instead.
    """
    T_R = T_L if T_R is None else T_R
    model = _model(conductor)
    if model.defective:
        return _elastic_quad(conductor, mu_L, mu_R, T_L, T_R)
    z = model.z
    V = np.linalg.eig(conductor.h_eff)[1]
    Vi = np.linalg.inv(V)
    A = Vi @ conductor.gamma_R @ Vi.conj().T
    B = V.conj().T @ conductor.gamma_L @ V
    C = A * B.T
    den = z[:, None] - z.conj()[None, :]

    def window(mu: float, T: float) -> complex:
        Iz = fermi_pole_integral(z, mu, np.asarray(T, dtype=float))
        return np.sum(C * (Iz[:, None] - Iz.conj()[None, :]) / den)

    return float((window(mu_L, T_L) - window(mu_R, T_R)).real / (2 * np.pi))


def _elastic_quad(conductor: Conductor, mu_L: float, mu_R: float, T_L: float, T_R: float) -> float:
    def trans(e):
        G = conductor.green(e)
        return np.einsum("ij,...jk,kl,...li->...", conductor.gamma_L, G, conductor.gamma_R,
                         np.conj(np.swapaxes(G, -1, -2))).real

    Tm = max(T_L, T_R)
    lo, hi = min(mu_L, mu_R) - 40 * Tm, max(mu_L, mu_R) + 40 * Tm
    if hi <= lo:
        return 0.0
    z = np.linalg.eigvals(conductor.h_eff)
    pts = sorted({p for p in [*z.real, mu_L, mu_R] if lo < p < hi})

    def f(e):
        return float(trans(np.asarray(e)) * (fermi(e - mu_L, T_L) - fermi(e - mu_R, T_R)))

    val, _ = integrate.quad(f, lo, hi, points=pts or None, limit=1000, epsabs=0.0, epsrel=1e-12)
    return val / (2 * np.pi)
