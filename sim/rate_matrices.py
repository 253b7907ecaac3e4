r"""EHP rate matrices of several modes (docs/theory.md, "Several modes"; Eqs. 6-7 as K x K matrices).

For modes ``m, n = 1..K`` with Hermitian couplings ``M^m`` (n x n) and a channel
``c = (a, b)`` (electron in electrode ``a``, hole in ``b``), at a frequency ``w``::

    tau_em^c_mn(w)  = int de/2pi Tr[M^m A_a(e) M^n A_b(e - w)] f_a(e) [1 - f_b(e - w)]
    tau_abs^c_mn(w) = int de/2pi Tr[M^m A_a(e) M^n A_b(e - w)] [1 - f_a(e)] f_b(e - w)
    Lambda^c_mn(w)  = tau_abs^c_mn - tau_em^c_mn

Hermitian K x K matrices; emission and absorption are positive semi-definite (Gram
matrices); the diagonal is the single-mode rate of :func:`sim.channels.channel_rates`
with ``M = M^m``. Units: rates in the energy unit (hbar = 1).

Method (exact, as in :mod:`sim.channels`)
------------------------------------------
With ``H_eff = H - i(Gamma_L + Gamma_R)/2 = V diag(z) V^-1``, ``Gt_a = V^-1 Gamma_a V^-dagger``
and ``Mt^m = V^dagger M^m V``, the kernel is a rational function of ``e``::

    K^mn(e) = sum_klpq Mt^m_qk Gt_a[k,l] Mt^n_lp Gt_b[p,q] / ((e - z_k)(e - z*_l)(e - w - z_p)(e - w - z*_q)).

Against a Fermi function the lower-half-plane poles ``z_k, w + z_p`` give the divided
difference ``(Q I)[z_k, w + z_p]`` with ``Q_lq(e) = 1/((e - z*_l)(e - w - z*_q))`` and
``I(p)`` the digamma integral of :func:`sim.channels.fermi_pole_integral`; since
``K^nm = conj(K^mn)`` the upper half plane contributes the Hermitian conjugate, so the
integral is ``L + L^dagger``. ``Q`` factorises in ``l`` and ``q``, so ``L`` is a sum of
matrix products: ``O(K n^3)`` to form the factors (once per channel and ``w``) and
``O(K^2 n^2)`` per Fermi function -- never ``K^2`` separate scalar integrals. Confluent
poles (``z_k = w + z_p``), the interpolation across ``w = mu_c`` and ``T = 0`` are handled
exactly as in :mod:`sim.channels`. Unequal electrode temperatures: ``tau_em`` by adaptive
vector quadrature (``scipy.integrate.quad_vec``), ``Lambda`` exact. Defective (exceptional
point) models: everything by quadrature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import integrate
from scipy.special import expit

from . import guards
from .channels import _CONFLUENT, _DELTA, fermi_pole_integral, fermi_pole_integral_derivative
from .conductor import CHANNELS, ELECTRODES, Conductor
from .special import bose, x_bose

__all__ = ["RateMatrices", "RateMatrixModel", "rate_matrices", "kernel_matrix", "validate_couplings"]

LAMB_EPSREL = 1e-9
"""Relative tolerance of the Lamb-shift quadrature (:meth:`RateMatrixModel.lamb_shift`)."""


@dataclass(frozen=True, eq=False)
class RateMatrices:
    """Rate matrices of the four channels at one frequency.

    Attributes
    ----------
    w : float
        Frequency (energy units).
    mu : ndarray, shape (4,)
        ``mu_c = mu_a - mu_b`` per channel, in the order of :data:`sim.conductor.CHANNELS`.
    emission, absorption, damping : ndarray, shape (4, K, K), complex
        ``tau_em^c``, ``tau_abs^c``, ``Lambda^c = tau_abs^c - tau_em^c`` (rates, energy units).
    """

    w: float
    mu: NDArray[np.float64]
    emission: NDArray[np.complex128]
    absorption: NDArray[np.complex128]
    damping: NDArray[np.complex128]

    def __post_init__(self) -> None:
        shape = self.emission.shape
        if len(shape) != 3 or shape[0] != 4 or shape[1] != shape[2]:
            raise ValueError(f"rate matrices must have shape (4, K, K), got {shape}")
        for k in ("absorption", "damping"):
            if getattr(self, k).shape != shape:
                raise ValueError(f"{k} must have shape {shape}, got {getattr(self, k).shape}")

    @property
    def K(self) -> int:
        """Number of modes."""
        return self.emission.shape[1]

    def channel(self, name: str) -> dict[str, NDArray]:
        """``{mu, emission, absorption, damping}`` of one channel."""
        i = CHANNELS.index(name)
        return {k: getattr(self, k)[i] for k in ("mu", "emission", "absorption", "damping")}


def validate_couplings(couplings: ArrayLike, n: int) -> NDArray[np.complex128]:
    """Check ``couplings`` is a (K, n, n) stack of finite Hermitian matrices; return it (complex)."""
    M = np.array(couplings, dtype=complex)
    if M.ndim == 2:
        M = M[None]
    if M.ndim != 3 or M.shape[1:] != (n, n) or M.shape[0] < 1:
        raise ValueError(f"couplings must have shape (K, {n}, {n}) with K >= 1, got {M.shape}")
    if not np.all(np.isfinite(M)):
        raise ValueError("couplings must be finite (no NaN or inf)")
    bad = np.array([np.max(np.abs(m - m.conj().T)) > guards.matrix_roundoff(m) for m in M])  # each at its own scale
    if bad.any():
        raise ValueError(f"couplings must be Hermitian; M^k is not for k = {np.flatnonzero(bad).tolist()}")
    return 0.5 * (M + M.conj().transpose(0, 2, 1))


def kernel_matrix(conductor: Conductor, couplings: ArrayLike, channel: str, e: float, w: float) -> NDArray[np.complex128]:
    """``K^mn(e, w) = Tr[M^m A_a(e) M^n A_b(e - w)]`` by direct matrix algebra (reference route), (K, K)."""
    M = np.asarray(couplings, dtype=complex)
    a, b = ELECTRODES[channel]
    P = M @ conductor.spectral(e, a)  # (K, n, n)
    Q = M @ conductor.spectral(e - w, b)
    K, n = M.shape[0], M.shape[1]
    return P.reshape(K, n * n) @ Q.transpose(0, 2, 1).reshape(K, n * n).T


class _ChannelFactors:
    """The ``I``-independent matrix factors of one channel at one ``w`` (see module docstring).

    ``L^mn = sum_kp [S1^m_kp inv_kp I(z_k) P1^n_kp - W2^m_kp inv_kp I(w + z_p) U2^n_kp]
    + sum_i (confluent pairs) [...]``.
    """

    def __init__(self, z, Gta, Gtb, Mt, w):
        n = z.size
        a = z
        c = w + z
        b, d = z.conj(), c.conj()
        alpha = 1.0 / (a[:, None] - b[None, :])  # (k, l)
        beta = 1.0 / (a[:, None] - d[None, :])  # (k, q)
        gamma = 1.0 / (c[:, None] - b[None, :])  # (p, l)
        delta = 1.0 / (c[:, None] - d[None, :])  # (p, q)
        diff = a[:, None] - c[None, :]
        mid = 0.5 * (a[:, None] + c[None, :])
        conf = np.abs(diff) < _CONFLUENT * np.abs(mid.imag)
        self.inv = np.where(conf, 0.0, 1.0 / np.where(conf, 1.0, diff))
        self.a, self.c = a, c
        K = Mt.shape[0]
        MtT = Mt.transpose(0, 2, 1)
        self.S1 = ((MtT * beta) @ Gtb.T).reshape(K, n * n)
        self.P1 = ((Gta * alpha) @ Mt).reshape(K, n * n)
        self.U2 = (Gta @ (gamma.T * Mt)).reshape(K, n * n)
        self.W2 = (MtT @ (Gtb * delta).T).reshape(K, n * n)
        kk, pp = np.nonzero(conf)
        self.mid = mid[kk, pp]
        if kk.size:
            ap = 1.0 / (self.mid[:, None] - b[None, :])  # (i, l)
            bp = 1.0 / (self.mid[:, None] - d[None, :])  # (i, q)
            Ga, Gb = Gta[kk], Gtb[pp]  # (i, l), (i, q)
            Mn = Mt[:, :, pp]  # (K, l, i): Mt^n_{l p_i}
            Mm = Mt[:, :, kk]  # (K, q, i): Mt^m_{q k_i}
            self.R1 = np.einsum("il,nli->ni", Ga * ap, Mn)
            self.R2 = np.einsum("il,nli->ni", Ga * ap * ap, Mn)
            self.B1 = np.einsum("mqi,iq->mi", Mm, Gb * bp)
            self.B2 = np.einsum("mqi,iq->mi", Mm, Gb * bp * bp)

    def contract(self, Ia, Ic, Im=None, dIm=None) -> NDArray[np.complex128]:
        """``L`` from the values of a pole integral at ``z_k`` (``Ia``), ``w + z_p`` (``Ic``) and,
        for confluent pairs, at their midpoints (``Im``) with its derivative (``dIm``)."""
        L = (self.S1 * (self.inv * Ia[:, None]).ravel()) @ self.P1.T
        L -= (self.W2 * (self.inv * Ic[None, :]).ravel()) @ self.U2.T
        if self.mid.size:
            L += (self.B1 * dIm) @ self.R1.T - (self.B1 * Im) @ self.R2.T - (self.B2 * Im) @ self.R1.T
        return L

    def lower(self, terms) -> NDArray[np.complex128]:
        """``L`` for the Fermi functional ``sum_j coef_j f((e - mu_j)/T_j)``; ``terms`` = [(coef, mu, T)]."""
        Ia = sum(cf * fermi_pole_integral(self.a, mu, T) for cf, mu, T in terms)
        Ic = sum(cf * fermi_pole_integral(self.c, mu, T) for cf, mu, T in terms)
        Im = dIm = None
        if self.mid.size:
            Im = sum(cf * fermi_pole_integral(self.mid, mu, T) for cf, mu, T in terms)
            dIm = sum(cf * fermi_pole_integral_derivative(self.mid, mu, T) for cf, mu, T in terms)
        return self.contract(Ia, Ic, Im, dIm)

    def integral(self, terms) -> NDArray[np.complex128]:
        """``int de/2pi K^mn(e) sum_j coef_j f_j(e) = (L + L^dagger)/2pi``."""
        L = self.lower(terms)
        return (L + L.conj().T) / (2 * np.pi)

    def window_integral(self, g, lo, hi, points) -> NDArray[np.complex128]:
        """``int de/2pi K^mn(e) g(e)`` for a real window ``g`` vanishing outside ``[lo, hi]``.

        The pole integrals ``J(p) = int g(e)/(e - p) de`` (and ``J'`` at confluent midpoints)
        are computed together by one adaptive vector quadrature (``scipy.integrate.quad_vec``):
        ``2n`` (plus confluent) scalar integrals whatever the number of modes.
        """
        p = np.concatenate([self.a, self.c, self.mid])
        nm = self.mid.size

        def f(e):
            d = 1.0 / (e - p)
            v = g(e) * np.concatenate([d, d[p.size - nm:] ** 2])
            return np.concatenate([v.real, v.imag])

        pts = sorted({x for x in [*p.real, *points] if lo < x < hi})
        val, _ = integrate.quad_vec(f, lo, hi, points=pts or None, epsabs=0.0, epsrel=1e-12, limit=4000, norm="max")
        J = val[: val.size // 2] + 1j * val[val.size // 2:]
        n = self.a.size
        L = self.contract(J[:n], J[n:2 * n], J[2 * n:2 * n + nm], J[2 * n + nm:])
        return (L + L.conj().T) / (2 * np.pi)

    def total_weight(self) -> NDArray[np.complex128]:
        """``int de/2pi K^mn(e)`` (``f = 1``: ``I(p) = -i pi``, ``I' = 0``): bounds every rate."""
        L = (self.S1 * (self.inv * (-1j * np.pi)).ravel()) @ self.P1.T
        L -= (self.W2 * (self.inv * (-1j * np.pi)).ravel()) @ self.U2.T
        if self.mid.size:
            L -= (-1j * np.pi) * (self.B1 @ self.R2.T + self.B2 @ self.R1.T)
        return (L + L.conj().T) / (2 * np.pi)


class RateMatrixModel:
    """Pole data of a conductor with several mode couplings, computed once (w- and bias-independent).

    Parameters
    ----------
    conductor
        The wide-band conductor (its own ``M`` is ignored).
    couplings
        ``M^k``, shape (K, n, n), Hermitian (complex allowed), energy units.
    """

    def __init__(self, conductor: Conductor, couplings: ArrayLike) -> None:
        if not isinstance(conductor, Conductor):
            raise TypeError(f"rate matrices need a matrix Conductor, got {type(conductor).__name__}")
        self.conductor = conductor
        self.M = validate_couplings(couplings, conductor.n)
        self.K = self.M.shape[0]
        z, V = np.linalg.eig(conductor.h_eff)
        self.z = z
        self.width = float(np.min(np.abs(z.imag)))
        cond = np.linalg.cond(V)
        self.defective = bool(not np.isfinite(cond) or cond > 1e7 or self.width <= 0)
        if not self.defective:
            Vi = np.linalg.inv(V)
            self.Gt = {a: Vi @ conductor.gamma(a) @ Vi.conj().T for a in ("L", "R")}
            self.Mt = V.conj().T @ self.M @ V

    def _factors(self, channel: str, w: float, modes) -> _ChannelFactors:
        a, b = ELECTRODES[channel]
        Mt = self.Mt if modes is None else self.Mt[modes]
        return _ChannelFactors(self.z, self.Gt[a], self.Gt[b], Mt, w)

    def rates(
        self,
        w: float,
        mu_L: float,
        mu_R: float,
        T_L: float,
        T_R: float | None = None,
        modes: ArrayLike | None = None,
    ) -> RateMatrices:
        """Emission, absorption and damping matrices of LL, RR, LR, RL at frequency ``w``.

        Parameters
        ----------
        w, mu_L, mu_R, T_L, T_R
            Scalars (energy units); ``T_R`` defaults to ``T_L``; ``T = 0`` is allowed.
        modes
            Indices of a subset of modes (default: all), e.g. one cluster.

        Returns
        -------
        RateMatrices
            (4, K', K') complex Hermitian matrices, K' = number of selected modes.
        """
        T_R = T_L if T_R is None else T_R
        vals = {"w": w, "mu_L": mu_L, "mu_R": mu_R, "T_L": T_L, "T_R": T_R}
        for k, v in vals.items():
            if not np.isfinite(v):
                raise ValueError(f"{k} must be finite, got {v!r}")
        if T_L < 0 or T_R < 0:
            raise ValueError(f"temperatures T_L, T_R must be >= 0, got {T_L!r}, {T_R!r}")
        w, mu_L, mu_R, T_L, T_R = (float(v) for v in vals.values())
        mu = {"L": mu_L, "R": mu_R}
        T = {"L": T_L, "R": T_R}
        idx = None if modes is None else np.atleast_1d(np.asarray(modes, dtype=int))
        K = self.K if idx is None else idx.size
        em = np.empty((4, K, K), dtype=complex)
        lam = np.empty_like(em)
        for i, c in enumerate(CHANNELS):
            a, b = ELECTRODES[c]
            if self.defective:
                M = self.M if idx is None else self.M[idx]
                em[i], lam[i] = _by_quad(self.conductor, M, c, w, mu[a], mu[b], T[a], T[b])
            else:
                em[i], lam[i] = self._exact(c, w, mu[a], mu[b], T[a], T[b], idx)
        mu_c = np.array([mu[ELECTRODES[c][0]] - mu[ELECTRODES[c][1]] for c in CHANNELS])
        return RateMatrices(w, mu_c, em, em + lam, lam)

    def rates_grid(self, w: ArrayLike, mu_L: float, mu_R: float, T_L: float,
                   T_R: float | None = None) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
        """Emission and damping matrices of all modes on a grid of frequencies: two arrays of shape (nw, 4, K, K).

        The same numbers as :meth:`rates` at each ``w``, vectorised over ``w`` for the exact method at equal
        electrode temperatures (the factors that do not depend on ``w`` are formed once); a ``w`` with a
        confluent pole pair or inside the interpolation window around ``w = mu_c``, a defective model and
        unequal temperatures go through :meth:`rates` one frequency at a time.
        """
        w = np.atleast_1d(np.asarray(w, dtype=float))
        T_R = T_L if T_R is None else T_R
        nw, K = w.size, self.K
        em = np.empty((nw, 4, K, K), dtype=complex)
        lam = np.empty_like(em)
        slow = np.ones(nw, dtype=bool)
        if not self.defective and T_L == T_R and np.all(np.isfinite(w)):
            mu = {"L": float(mu_L), "R": float(mu_R)}
            slow[:] = False
            for i, c in enumerate(CHANNELS):
                a, b = ELECTRODES[c]
                slow |= self._grid_exact(c, w, mu[a], mu[b], float(T_L), em[:, i], lam[:, i])
        for j in np.flatnonzero(slow):
            r = self.rates(float(w[j]), mu_L, mu_R, T_L, T_R)
            em[j], lam[j] = r.emission, r.damping
        return em, lam

    def total_damping(self, w: float, mu_L: float, mu_R: float, T_L: float, T_R: float | None = None,
                      modes: ArrayLike | None = None) -> NDArray[np.complex128]:
        """``sum_c Lambda^c(w)`` (K' x K', Hermitian; energy units): the damping of :meth:`rates` summed over the
        channels, the same numbers without the emission matrices (exact for unequal temperatures too)."""
        T_R = T_L if T_R is None else T_R
        mu, T = {"L": float(mu_L), "R": float(mu_R)}, {"L": float(T_L), "R": float(T_R)}
        idx = None if modes is None else np.atleast_1d(np.asarray(modes, dtype=int))
        out = None
        for c in CHANNELS:
            a, b = ELECTRODES[c]
            if self.defective:
                M = self.M if idx is None else self.M[idx]
                lam = _by_quad(self.conductor, M, c, w, mu[a], mu[b], T[a], T[b])[1]
            else:
                lam = self._factors(c, w, idx).integral([(1.0, mu[b] + w, T[b]), (-1.0, mu[a], T[a])])
            out = lam if out is None else out + lam
        return out

    def total_damping_grid(self, w: ArrayLike, mu_L: float, mu_R: float, T_L: float, T_R: float | None = None,
                           modes: ArrayLike | None = None) -> NDArray[np.complex128]:
        """:meth:`total_damping` on an array of frequencies, shape ``w.shape + (K', K')``: the exact method
        vectorised over ``w`` (any electrode temperatures); a frequency with a confluent pole pair, and a defective
        model, go through :meth:`total_damping` one frequency at a time."""
        w = np.asarray(w, dtype=float)
        flat = w.ravel()
        T_R = T_L if T_R is None else T_R
        idx = None if modes is None else np.atleast_1d(np.asarray(modes, dtype=int))
        K = self.K if idx is None else idx.size
        if self.defective:
            out = np.array([self.total_damping(float(x), mu_L, mu_R, T_L, T_R, idx) for x in flat]).reshape(-1, K, K)
            return out.reshape(w.shape + (K, K))
        mu, T = {"L": float(mu_L), "R": float(mu_R)}, {"L": float(T_L), "R": float(T_R)}
        Mt = self.Mt if idx is None else self.Mt[idx]
        out = np.zeros((flat.size, K, K), dtype=complex)
        slow = np.zeros(flat.size, dtype=bool)
        for c in CHANNELS:
            a, b = ELECTRODES[c]
            lam, conf = self._grid_damping(c, flat, mu[a], mu[b], T[a], T[b], Mt)
            out += lam
            slow |= conf
        for j in np.flatnonzero(slow):
            out[j] = self.total_damping(float(flat[j]), mu_L, mu_R, T_L, T_R, idx)
        return out.reshape(w.shape + (K, K))

    def lamb_shift(
        self,
        w_bar: float,
        mu_L: float,
        mu_R: float,
        T_L: float,
        T_R: float | None = None,
        modes: ArrayLike | None = None,
    ) -> NDArray[np.complex128]:
        r"""Lamb shift of a cluster: ``L = PV int dw/2pi sum_c Lambda^c(w) / (w_bar - w)`` (K' x K', Hermitian).

        The principal-value part of the electronic self-energy of the modes at the cluster's common
        frequency ``w_bar`` (the real part that :meth:`rates` leaves out); it renormalises the quanta
        (``Omega -> Omega + L_kk``) and couples the modes of a cluster (``L_mn``). Energy units.

        Method: folding the integral about the pole gives the ordinary integral

            L = int_0^inf du/2pi [F(w_bar - u) - F(w_bar + u)] / u,   F(w) = sum_c Lambda^c(w),

        whose integrand is smooth at ``u = 0`` (``-2 F'(w_bar)``) -- no pole to subtract and no
        cancellation -- and decays as ``u^-3`` (``Lambda^c(w) ~ w^-2`` for the Lorentzian
        resonances of a wide-band conductor), so the tail converges without a cutoff (it is mapped
        to ``t = U/u`` in ``(0, 1]``). One adaptive Gauss-Kronrod quadrature (15 points, error
        ``|K15 - G7|`` per interval, the worst entry) for all K'^2 entries, vectorised over the
        intervals (:meth:`total_damping_grid`), to relative tolerance :data:`LAMB_EPSREL` of the
        largest entry. The first partition has break points at the offsets ``|p - w_bar|`` of the
        frequencies where ``Lambda`` varies fastest (``p = Re(z_k - z_l)``, ``Re z_k - mu_a``,
        ``mu_a - Re z_k``, ``mu_c``; ``z`` the poles of the conductor) and pieces no longer than
        the smallest resonance width. Flat kernels (``Lambda`` linear in ``w``) diverge
        logarithmically and are not handled here (the config refuses them).

        Parameters
        ----------
        w_bar
            The cluster's common frequency (energy).
        mu_L, mu_R, T_L, T_R, modes
            As for :meth:`rates`.
        """
        if not np.isfinite(w_bar):
            raise ValueError(f"w_bar must be finite, got {w_bar!r}")
        if self.defective:
            raise ValueError("mode.lamb_shift = true needs a conductor whose H - i(Gamma_L + Gamma_R)/2 is "
                             "diagonalisable with every resonance broadened (this one is defective or has an unbroadened "
                             "level); set mode.lamb_shift = false")
        T_R = T_L if T_R is None else T_R
        idx = None if modes is None else np.atleast_1d(np.asarray(modes, dtype=int))
        K = self.K if idx is None else idx.size
        w_bar = float(w_bar)
        zr = self.z.real
        mus = (float(mu_L), float(mu_R))
        feats = ({a - b for a in zr for b in zr} | {a - m for a in zr for m in mus} | {m - a for a in zr for m in mus}
                 | {mu_L - mu_R, mu_R - mu_L, 0.0})
        pts = sorted({abs(float(p) - w_bar) for p in feats} - {0.0})
        width = self.width
        U = 2.0 * max(pts, default=0.0) + 20.0 * width + 1.0  # the tail u > U is mapped to t = U/u in (0, 1]
        edges = [0.0]
        for x in [*[p for p in pts if p < U], U]:
            n = max(1, int(np.ceil((x - edges[-1]) / width)))
            edges.extend(np.linspace(edges[-1], x, n + 1)[1:].tolist())

        def g(x: NDArray[np.float64]) -> NDArray[np.float64]:
            """The folded integrand at ``x`` (``u = x`` up to ``U``; beyond, ``t = U + 1 - x``, ``u = U/t``), (nx, 2K'^2)."""
            tail = x > U
            t = np.where(tail, U + 1.0 - x, 1.0)
            u = np.where(tail, U / t, x)
            jac = np.where(tail, U / t**2, 1.0)
            F = self.total_damping_grid(np.concatenate([w_bar - u, w_bar + u]), mu_L, mu_R, T_L, T_R, idx)
            v = (F[: x.size] - F[x.size:]) * (jac / u)[:, None, None]
            v = v.reshape(x.size, K * K)
            return np.concatenate([v.real, v.imag], axis=1)

        val = _gauss_kronrod(g, np.array([*edges, U + 1.0]), LAMB_EPSREL)
        L = (val[: K * K] + 1j * val[K * K:]).reshape(K, K) / (2 * np.pi)
        return 0.5 * (L + L.conj().T)

    def _grid_exact(self, c, w, mu_a, mu_b, T, em, lam) -> NDArray[np.bool_]:
        """:meth:`_exact` at equal temperatures for an array ``w`` (fills ``em``, ``lam``); returns the mask of
        frequencies it could not do (confluent poles, the window around ``w = mu_c``), to be redone one by one."""
        lam[:], conf = self._grid_damping(c, w, mu_a, mu_b, T, T, self.Mt)
        x = w - (mu_a - mu_b)
        dl = _DELTA * min(T, self.width)
        bad = conf | ((T > 0) & (np.abs(x) < dl))
        factor = np.divide(x_bose(x, T), x, out=np.zeros_like(x), where=x != 0)
        em[:] = factor[:, None, None] * lam
        return bad

    def _grid_damping(self, c, w, mu_a, mu_b, T_a, T_b, Mt) -> tuple[NDArray[np.complex128], NDArray[np.bool_]]:
        """``Lambda^c(w)`` of the couplings ``Mt`` (in the eigenbasis) for an array ``w``: ``(lam (nw, K, K), conf)``,
        ``conf`` marking the frequencies with a confluent pole pair (not done here: redo them one by one)."""
        a_el, b_el = ELECTRODES[c]
        Gta, Gtb, z = self.Gt[a_el], self.Gt[b_el], self.z
        K, n = Mt.shape[0], z.size
        a = z
        cc = w[:, None] + z[None, :]  # (nw, n): w + z_p
        b, d = z.conj(), cc.conj()
        alpha = 1.0 / (a[:, None] - b[None, :])
        beta = 1.0 / (a[None, :, None] - d[:, None, :])  # (nw, k, q)
        gamma = 1.0 / (cc[:, :, None] - b[None, None, :])  # (nw, p, l)
        delta = 1.0 / (z[:, None] - z.conj()[None, :])  # c_p - d_q = z_p - z*_q: independent of w
        diff = a[None, :, None] - cc[:, None, :]  # (nw, k, p)
        mid = 0.5 * (a[None, :, None] + cc[:, None, :])
        conf = np.abs(diff) < _CONFLUENT * np.abs(mid.imag)
        inv = 1.0 / np.where(conf, 1.0, diff)
        MtT = Mt.transpose(0, 2, 1)
        S1 = ((MtT[None] * beta[:, None]) @ Gtb.T).reshape(w.size, K, n * n)
        P1 = ((Gta * alpha) @ Mt).reshape(K, n * n)
        U2 = (Gta @ (np.swapaxes(gamma, 1, 2)[:, None] * Mt[None])).reshape(w.size, K, n * n)
        W2 = (MtT @ (Gtb * delta).T).reshape(K, n * n)
        terms = [(1.0, mu_b + w[:, None], T_b), (-1.0, mu_a, T_a)]
        Ia = sum(cf * fermi_pole_integral(a[None, :], m, T) for cf, m, T in terms)  # (nw, k)
        Ic = sum(cf * fermi_pole_integral(cc, m, T) for cf, m, T in terms)  # (nw, p)
        L = np.einsum("wmx,wx,nx->wmn", S1, (inv * Ia[:, :, None]).reshape(w.size, n * n), P1)
        L -= np.einsum("mx,wx,wnx->wmn", W2, (inv * Ic[:, None, :]).reshape(w.size, n * n), U2)
        return (L + np.conj(np.swapaxes(L, 1, 2))) / (2 * np.pi), conf.any(axis=(1, 2))

    def _exact(self, c, w, mu_a, mu_b, T_a, T_b, idx):
        F = self._factors(c, w, idx)
        lam = F.integral([(1.0, mu_b + w, T_b), (-1.0, mu_a, T_a)])
        x = w - (mu_a - mu_b)
        if T_a != T_b:  # no closed form: the pole integrals of the window by quadrature
            lo, hi = _window(w, mu_a, mu_b, T_a, T_b)
            if hi <= lo:
                return np.zeros_like(lam), lam

            return F.window_integral(_emission_window(w, mu_a, mu_b, T_a, T_b), lo, hi, [mu_a, mu_b + w]), lam
        dl = _DELTA * min(T_a, self.width)
        if T_a > 0 and abs(x) < dl:
            # interpolate the smooth nB(x) Lambda(x) across |x| < delta, as sim.channels does
            s = (x + dl) / (2 * dl)
            gp, gm = s * float(bose(dl, T_a)), (1 - s) * float(bose(-dl, T_a))
            em = F.integral([(gp, mu_a + dl, T_a), (gm, mu_a - dl, T_a), (-(gp + gm), mu_a, T_a)])
        else:
            factor = float(x_bose(x, T_a)) / x if x != 0 else 0.0
            em = factor * lam
        return em, lam


_XGK = np.array([0.991455371120812639206854697526329, 0.949107912342758524526189684047851,
                 0.864864423359769072789712788640926, 0.741531185599394439863864773280788,
                 0.586087235467691130294144845693013, 0.405845151377397166906606412076961,
                 0.207784955007898467600689403773245, 0.0])
_WGK = np.array([0.022935322010529224963732008058970, 0.063092092629978553290700663189204,
                 0.104790010322250183839876322541518, 0.140653259715525918745189590510238,
                 0.169004726639267902826583426598550, 0.190350578064785409913256402421014,
                 0.204432940075298892414161999234649, 0.209482141084727828012999174891714])
_WG = np.array([0.129484966168869693270611432679082, 0.279705391489276667901467771423780,
                0.381830050505118944950369775488975, 0.417959183673469387755102040816327])
#: The 15 Kronrod nodes on [-1, 1], their weights, and the weights of the 7 Gauss nodes among them (QUADPACK's qk15).
GK15_NODES = np.concatenate([-_XGK[:-1], [0.0], _XGK[-2::-1]])
GK15_WEIGHTS = np.concatenate([_WGK[:-1], [_WGK[-1]], _WGK[-2::-1]])
G7_WEIGHTS = np.zeros(15)
G7_WEIGHTS[1:7:2], G7_WEIGHTS[7], G7_WEIGHTS[9:15:2] = _WG[:3], _WG[3], _WG[2::-1]
_MAX_INTERVALS = 20000


def _gauss_kronrod(f, edges: NDArray[np.float64], epsrel: float) -> NDArray[np.float64]:
    """``int f`` over ``[edges[0], edges[-1]]`` by adaptive Gauss-Kronrod (15 points), vectorised over intervals.

    ``f`` maps an array of points (nx,) to values (nx, D). Every round evaluates the new intervals at once;
    the error of an interval is ``max_D |K15 - G7|`` (pessimistic for smooth integrands: the K15 error is
    far smaller), and the intervals whose error exceeds their share of the budget
    ``epsrel max_D |integral|`` (plus ``1e-14`` of the largest value seen, for entries that vanish) are
    bisected until the errors sum below it. :class:`sim.guards.NumericalError` past 20000 intervals.
    """
    lo, hi = edges[:-1].astype(float), edges[1:].astype(float)
    done_val, done_err = None, 0.0
    peak = 0.0
    while True:
        half, mid = 0.5 * (hi - lo), 0.5 * (hi + lo)
        x = (mid[:, None] + half[:, None] * GK15_NODES[None, :]).ravel()
        y = f(x).reshape(lo.size, 15, -1)
        peak = max(peak, float(np.max(np.abs(y), initial=0.0)))
        k = np.einsum("j,ijd->id", GK15_WEIGHTS, y) * half[:, None]
        err = np.max(np.abs(k - np.einsum("j,ijd->id", G7_WEIGHTS, y) * half[:, None]), axis=1)
        total = k.sum(axis=0) + (0.0 if done_val is None else done_val)
        tol = max(epsrel * float(np.max(np.abs(total))), 1e-14 * peak * float(edges[-1] - edges[0]))
        budget = tol - done_err
        if err.sum() <= budget:
            return total
        # keep the intervals already within their share (by length) of the remaining budget; bisect the rest
        share = budget * (hi - lo) / float(np.sum(hi - lo))
        ok = err <= 0.5 * np.maximum(share, 0.0)
        done_val = k[ok].sum(axis=0) + (0.0 if done_val is None else done_val)
        done_err += float(err[ok].sum())
        lo, hi, mid = lo[~ok], hi[~ok], mid[~ok]
        lo, hi = np.concatenate([lo, mid]), np.concatenate([mid, hi])
        if lo.size > _MAX_INTERVALS or (lo.size and np.min(hi - lo) <= 1e-15 * max(1.0, float(edges[-1]))):
            raise guards.NumericalError(f"the Lamb-shift quadrature did not reach relative {epsrel:g} "
                                        f"(error {err.sum():.3g} over {lo.size} intervals)")


def rate_matrices(
    conductor: Conductor,
    couplings: ArrayLike,
    w: float,
    mu_L: float,
    mu_R: float,
    T_L: float,
    T_R: float | None = None,
) -> RateMatrices:
    """One-shot :meth:`RateMatrixModel.rates` (build the model once to reuse its pole data)."""
    return RateMatrixModel(conductor, couplings).rates(w, mu_L, mu_R, T_L, T_R)


def _f(x: float, T: float) -> float:
    """Scalar Fermi function ``1/(e^(x/T) + 1)`` (step at ``T = 0``); ``1 - f(x) = f(-x)`` without cancellation."""
    if T > 0:
        return float(expit(-x / T))
    return 1.0 if x < 0 else (0.5 if x == 0 else 0.0)


def _emission_window(w, mu_a, mu_b, T_a, T_b):
    """``g(e) = f_a(e) [1 - f_b(e - w)]`` as a fast scalar function."""
    return lambda e: _f(e - mu_a, T_a) * _f(w + mu_b - e, T_b)


def _window(w, mu_a, mu_b, T_a, T_b):
    """Energies where the Fermi factors are not exponentially small (beyond 40 T below e^-40)."""
    Tm = max(T_a, T_b)
    lo = min(mu_a, mu_b + w) - 40 * Tm
    hi = max(mu_a, mu_b + w) + 40 * Tm
    return lo, hi


def _quad_matrix(fn, lo, hi, poles, epsabs):
    pts = sorted({p for p in poles if lo < p < hi})
    K = fn(0.5 * (lo + hi)).shape[0]

    def g(e):
        v = fn(e)
        return np.concatenate([v.real.ravel(), v.imag.ravel()])

    val, _ = integrate.quad_vec(g, lo, hi, points=pts or None, epsabs=epsabs, epsrel=1e-12, limit=4000, norm="max")
    return (val[: K * K] + 1j * val[K * K:]).reshape(K, K) / (2 * np.pi)


def _emission_quad(conductor, M, c, w, mu_a, mu_b, T_a, T_b, z, scale):
    """``tau_em^c`` by adaptive vector quadrature over the Fermi window (unequal temperatures)."""
    lo, hi = _window(w, mu_a, mu_b, T_a, T_b)
    if T_a == 0 and T_b == 0:
        lo, hi = mu_b + w, mu_a
    if hi <= lo:
        return np.zeros((M.shape[0],) * 2, dtype=complex)

    g = _emission_window(w, mu_a, mu_b, T_a, T_b)

    def fn(e):
        return kernel_matrix(conductor, M, c, e, w) * g(e)

    em = _quad_matrix(fn, lo, hi, [*z.real, *(z.real + w), mu_a, mu_b + w], 1e-13 * 2 * np.pi * max(scale, 1e-300))
    return 0.5 * (em + em.conj().T)


def _by_quad(conductor, M, c, w, mu_a, mu_b, T_a, T_b):
    """Defective models (no eigenbasis): ``tau_em`` and ``Lambda`` both by quadrature."""
    z = np.linalg.eigvals(conductor.h_eff)
    hw = max(1e-3, float(np.max(np.abs(z.imag))))
    poles = sorted({*z.real, *(z.real + w)})

    def diag(e):
        return np.real(np.diagonal(kernel_matrix(conductor, M, c, e, w)))

    lo_k, hi_k = min(poles) - 20 * hw, max(poles) + 20 * hw
    parts = [integrate.quad_vec(diag, *lim, epsrel=1e-4, limit=200)[0]  # scale of the tolerance only
             for lim in ((-np.inf, lo_k), (lo_k, hi_k), (hi_k, np.inf))]
    scale = float(np.max(np.abs(sum(parts)))) / (2 * np.pi)
    em = _emission_quad(conductor, M, c, w, mu_a, mu_b, T_a, T_b, z, scale)
    lo, hi = _window(w, mu_a, mu_b, T_a, T_b)
    if hi <= lo:
        return em, np.zeros_like(em)

    def fn(e):
        return kernel_matrix(conductor, M, c, e, w) * (_f(e - w - mu_b, T_b) - _f(e - mu_a, T_a))

    lam = _quad_matrix(fn, lo, hi, [*poles, mu_a, mu_b + w], 1e-13 * 2 * np.pi * max(scale, 1e-300))
    return em, 0.5 * (lam + lam.conj().T)
