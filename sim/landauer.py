r"""Landauer-like steady-state fluxes of K >= 1 modes, Eqs. 13-14 (docs/theory.md, docs/modes.md).

Lowest order (the paper's), with ``A_ph`` diagonal (each mode k has its own ph-bath ``gamma_k``)::

    J  = sum_c int_0^inf dw/2pi w  Tr[Lambda^c(w) A_ph(w)] [nB(w - mu_c, T_e) - nB(w, T_ph)]
    Ie = sum_c s_c int_0^inf dw/2pi Tr[Lambda^c(w) A_ph(w)] [nB(w - mu_c, T_e) - nB(w, T_ph)]
    A_ph,kk(w) = 4 Omega_k gamma_k w / ((w^2 - Omega_k^2)^2 + gamma_k^2 w^2)

so only the diagonal entries ``Lambda^c_kk`` (each mode's one-mode rates) enter: the sum over modes of
the one-mode formula. ``Lambda_c [nB(w - mu_c) - nB(w, T_ph)]`` is evaluated as ``tau_em_c - Lambda_c
nB(w, T_ph)``, finite at ``w = mu_c`` (and with unequal electrode temperatures it is the same
golden-rule expression).

Full broadening replaces ``A_ph`` by the K x K displacement propagator dressed by the electrons,

    D(w) = 2 Omega^(1/2) [w^2 - Omega^2 + i w Gamma_ph + i Omega^(1/2) Gamma_e(w) Omega^(1/2)]^(-1) Omega^(1/2),

``Omega = diag(Omega_k)``, ``Gamma_ph = diag(gamma_k)``, ``Gamma_e(w) = sum_c Lambda^c(w)`` (Hermitian;
one mode: ``D = 2 Omega / (w^2 - Omega^2 + i w gamma + i Omega Gamma_e)``), and treats the four channels
and the ph-bath as terminals of a multi-terminal bosonic Landauer formula with matrix broadenings
``Gamma_c = Lambda^c(w)``, ``Gamma_ph(w) = diag(gamma_k w/Omega_k)`` and sources ``tau_em^c(w)``,
``Gamma_ph(w) nB(w, T_ph)``: the particle flux from terminal ``i`` into the modes is
``I_i = int dw/2pi Tr[S_i D Gamma D^+ - Gamma_i D S D^+]`` (``Gamma``, ``S`` the sums over terminals).
The modes then also carry charge between the LR and RL channels. Derivation, limits and the check
against the covariance route: docs/modes.md ("Landauer fluxes"). Units: J in energy/time, Ie in
particles/time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate

from .channels import channel_rates
from .conductor import CHANNEL_SIGN as _SIGN
from .config import Config
from .progress import progress_bar
from .results import Result
from .special import bose, x_bose

__all__ = ["LandauerResult", "landauer", "a_ph", "a_ph_weight"]

LEVELS = ("lowest", "full")


@dataclass(frozen=True)
class LandauerResult(Result):
    """Fluxes at one level of theory, with quadrature error estimates.

    ``valid`` is False at full broadening where the modes are not stable (``kappa <= 0`` for one
    mode, the stability margin ``2 min Re eig(Y) <= 0`` for several, or within round-off of 0):
    ``D(w)`` has no meaning there, and J and Ie are NaN. Lowest order cannot see the instability:
    ``kappa`` (the margin for K > 1) is reported beside it so a scan can flag it.
    """

    route = "landauer"

    level: str
    J: float
    Ie: float
    J_err: float
    Ie_err: float
    kappa: float
    valid: bool

    @property
    def margin(self) -> float:
        """``kappa`` under its several-mode name: the stability margin ``2 min Re eig(Y)`` (energy units)."""
        return self.kappa

    def to_dict(self) -> dict:
        out = {}
        for k in ("level", "J", "Ie", "J_err", "Ie_err", "kappa", "valid"):
            v = getattr(self, k)
            out[k] = v if isinstance(v, str | bool) or np.isfinite(v) else None
        return out


def a_ph(w, omega: float, gamma: float):
    """Mode spectral function due to the ph-bath alone, the ``A_ph(w)`` of Eq. 13 (dimension 1/energy):
    ``A_ph = 4 Omega gamma w / ((w^2 - Omega^2)^2 + gamma^2 w^2)``."""
    w = np.asarray(w, dtype=float)
    return 4 * omega * gamma * w / ((w * w - omega**2) ** 2 + gamma**2 * w * w)


def a_ph_weight(omega: float, gamma: float) -> float:
    """``int_0^inf dw/2pi A_ph = (Omega gamma/(pi c))(pi/2 + arctan(b/c))`` (for gamma < 2 Omega)."""
    b = omega**2 - gamma**2 / 2
    c = gamma * np.sqrt(omega**2 - gamma**2 / 4)
    return float(omega * gamma / (np.pi * c) * (np.pi / 2 + np.arctan(b / c)))


@dataclass(frozen=True, eq=False)
class _Modes:
    """What the integrands need for K modes.

    ``conductors``: each mode's one-mode conductor (its own ``M^k``; their rates are the diagonal
    entries ``tau^c_kk``, all that lowest order uses); ``matrices``: the K x K rate-matrix model of
    full broadening (None for one mode: the scalar fast path); ``kappa``: ``kappa`` (one mode) or the
    stability margin ``2 min Re eig(Y)`` of the covariance route, with its verdict ``stable``;
    ``resonances``: ``(center, width)`` of each collective mode (the eigenvalues of ``Y``), where the
    full-broadening integrand is sharp.
    """

    omega: np.ndarray
    gamma: np.ndarray
    conductors: tuple
    matrices: object
    kappa: float
    stable: bool
    resonances: tuple[tuple[float, float], ...]


def _modes(config: Config) -> _Modes:
    omega = np.asarray(config.mode.omegas, dtype=float)
    K = omega.size
    gamma = config.phonon_bath.gammas(K)
    if K == 1:  # fast path: the one-mode rates (flat conductors too) and kappa of the rate equation
        from .model import rate_model

        m = rate_model(config)
        kappa = float(m.kappa)
        return _Modes(omega, gamma, (config.conductor.build(),), None, kappa, bool(m.stable),
                      ((float(omega[0]), max(kappa, 1e-300)),))
    from .conductor import Conductor
    from .covariance import mode_system_from_config
    from .rate_matrices import RateMatrixModel

    system = mode_system_from_config(config)  # the stability verdict of the covariance route
    cond, M = config.conductor.build_modes()
    conds = tuple(Conductor(cond.H, cond.gamma_L, cond.gamma_R, Mk) for Mk in M)
    res = tuple((float(-x.imag), max(2 * float(x.real), 1e-300)) for x in system.eigenvalues)
    return _Modes(omega, gamma, conds, RateMatrixModel(cond, M), float(system.margin), bool(system.stable), res)


def _lowest_integrand(config: Config, md: _Modes, modes):
    """Sum over ``modes`` of the one-mode lowest-order densities ``A_ph,kk(w) [tau_em^c_kk - Lambda^c_kk n_ph]``."""
    b = config.bias
    T_ph = config.phonon_bath.T

    def f(w):
        w = np.atleast_1d(np.asarray(w, dtype=float))
        xb = x_bose(w, T_ph)  # w nB(w, T_ph)
        Jw = Iw = 0.0
        for k in modes:
            om, g = float(md.omega[k]), float(md.gamma[k])
            r = channel_rates(md.conductors[k], w, b.mu_L, b.mu_R, b.T_L, b.T_R)
            # A_ph nB(w, T_ph) = [A_ph / w] (w nB)
            A_over_w = 4 * om * g / ((w * w - om**2) ** 2 + g**2 * w * w)
            flux = A_over_w * (w * r.emission - r.damping * xb)  # (4, nw): A_ph [tau_em - Lambda n_ph]
            Jw = Jw + w * flux.sum(axis=0)
            Iw = Iw + (_SIGN[:, None] * flux).sum(axis=0)
        return Jw / (2 * np.pi), Iw / (2 * np.pi)

    return f


def _full_scalar_integrand(config: Config, md: _Modes):
    """One mode: ``|D|^2 = 4 Omega^2 / |w^2 - Omega^2 + i w gamma + i Omega Gamma_e|^2`` (the fast path)."""
    cond = md.conductors[0]
    b = config.bias
    om, g = float(md.omega[0]), float(md.gamma[0])
    T_ph = config.phonon_bath.T

    def f(w):
        w = np.atleast_1d(np.asarray(w, dtype=float))
        r = channel_rates(cond, w, b.mu_L, b.mu_R, b.T_L, b.T_R)
        xb = x_bose(w, T_ph)  # w nB(w, T_ph)
        gam_e = r.damping.sum(axis=0)
        D2 = 4 * om**2 / np.abs(w * w - om**2 + 1j * w * g + 1j * om * gam_e) ** 2
        ph = D2 * (g / om) * (w * r.emission - r.damping * xb)  # Gamma_ph |D|^2 (tau_em - Lambda n_ph)
        cross = D2 * (r.emission * gam_e - r.damping * r.emission.sum(axis=0))  # sum_c' T_cc'(n_c - n_c')
        Jw = w * ph.sum(axis=0)
        Iw = (_SIGN[:, None] * (ph + cross)).sum(axis=0)
        return Jw / (2 * np.pi), Iw / (2 * np.pi)

    return f


def _full_matrix_integrand(config: Config, md: _Modes):
    r"""K x K densities: ``P_c = Tr[tau_em^c D Gamma_ph D^+] - Tr[Lambda^c D S_ph D^+]`` (channel c <-> ph-bath) and
    ``X_c = Tr[tau_em^c D Gamma_e D^+] - Tr[Lambda^c D S_e D^+]`` (c <-> the other channels), with
    ``S_ph = Gamma_ph nB(w, T_ph)``, ``S_e = sum_c tau_em^c``; ``J = int w sum_c P_c``, ``Ie = int sum_c s_c (P_c + X_c)``
    (``sum_c X_c = 0``). Rates from :meth:`sim.rate_matrices.RateMatrixModel.rates_grid`, vectorised over ``w``."""
    model = md.matrices
    b = config.bias
    T_ph = config.phonon_bath.T
    om, g = md.omega, md.gamma
    K = om.size
    s = np.sqrt(om)
    eye = np.eye(K)

    def f(w):
        w = np.atleast_1d(np.asarray(w, dtype=float))
        em, lam = model.rates_grid(w, b.mu_L, b.mu_R, b.T_L, b.T_R)  # (nw, 4, K, K)
        xb = x_bose(w, T_ph)  # w nB(w, T_ph)
        gam_e = lam.sum(axis=1)  # (nw, K, K)
        A = (((w * w)[:, None, None] - om**2) * eye + 1j * w[:, None, None] * (g * eye)
             + 1j * s[:, None] * gam_e * s[None, :])
        D = 2 * s[:, None] * np.linalg.inv(A) * s[None, :]
        Dh = np.conj(np.swapaxes(D, -1, -2))

        def sandwich(Y):
            return D @ Y @ Dh

        g_ph = (w[:, None] * (g / om))[:, :, None] * eye  # Gamma_ph(w) = diag(gamma_k w/Omega_k)
        s_ph = (xb[:, None] * (g / om))[:, :, None] * eye  # Gamma_ph nB(w, T_ph)

        def tr(X, Y):  # Tr[X_c Y] for each channel: (nw, 4)
            return np.einsum("ncij,nji->nc", X, Y).real

        P = tr(em, sandwich(g_ph)) - tr(lam, sandwich(s_ph))
        X = tr(em, sandwich(gam_e)) - tr(lam, sandwich(em.sum(axis=1)))
        Jw = w * P.sum(axis=1)
        Iw = ((P + X) * _SIGN[None, :]).sum(axis=1)
        return Jw / (2 * np.pi), Iw / (2 * np.pi)

    return f


def landauer(config: Config, level: str = "lowest", progress: bool | None = None) -> LandauerResult:
    """Eqs. 13-14 at ``level`` ``"lowest"`` (the paper's ``A_ph``) or ``"full"``, for any number of modes K.

    One mode (flat conductors included) takes the scalar fast path; K > 1 needs orbital couplings
    (``conductor.build_modes``). Lowest order sums each mode's one-mode formula (only ``Lambda^c_kk``
    enters; a mode with ``gamma_k = 0`` contributes its delta-function limit, the pinned
    ``Omega_k sum_c [tau_em^c_kk - Lambda^c_kk n_k]`` at ``Omega_k``). Full broadening uses the K x K
    propagator ``D(w)`` (module docstring) and is defined only where the modes are stable; elsewhere
    it returns ``valid = False`` with NaN fluxes.

    The integral over ``w`` in (0, inf) is split at each resonance (each ``Omega_k`` and its width
    ``gamma_k`` at lowest order; each collective mode of the covariance route, ``-Im`` and ``2 Re`` of the
    eigenvalues of ``Y``, at full broadening; ``Omega`` and ``kappa`` for one mode) and every
    ``w = mu_c > 0`` (where the Bose factor of the channel is singular but the product is not); vectorised
    adaptive Gauss-Kronrod (``scipy.integrate.cubature`` on each piece, rtol 1e-10); errors are its
    estimates, summed. ``progress``: a bar over the pieces on stderr once they take more than 2 s
    (None: when stderr is a terminal).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    md = _modes(config)
    opts = {"level": level}
    if level == "full" and not md.stable:  # margin <= 0 or within round-off of 0: D(w) has no meaning
        nan = float("nan")
        return LandauerResult(level, nan, nan, nan, nan, md.kappa, False, config=config, options=opts)
    b = config.bias
    T_ph = config.phonon_bath.T
    J0 = I0 = 0.0
    if level == "lowest":
        pinned = [k for k in range(md.omega.size) if md.gamma[k] == 0]
        for k in pinned:  # A_ph -> 2 pi delta(w - Omega_k): the pinned formula, exactly
            om = float(md.omega[k])
            r = channel_rates(md.conductors[k], om, b.mu_L, b.mu_R, b.T_L, b.T_R)
            net = np.ravel(r.emission - r.damping * float(bose(om, T_ph)))
            J0, I0 = J0 + float(om * net.sum()), I0 + float((_SIGN * net).sum())
        modes = [k for k in range(md.omega.size) if md.gamma[k] > 0]
        if not modes:
            return LandauerResult(level, J0, I0, 0.0, 0.0, md.kappa, True, config=config, options=opts)
        f = _lowest_integrand(config, md, modes)
        res = [(float(md.omega[k]), float(md.gamma[k])) for k in modes]
    else:
        f = _full_scalar_integrand(config, md) if md.matrices is None else _full_matrix_integrand(config, md)
        res = list(md.resonances)
    T = max(b.T_L, b.T_R, T_ph)
    mus = [abs(b.mu_L - b.mu_R)]
    pts = {*mus}
    for c, width in res:
        pts |= {c, *(c + k * width for k in (-20, -5, -1, 1, 5, 20))}
    om_max = float(md.omega.max())
    top = max(om_max, *mus) + 60 * max(T, *(width for _, width in res)) + 10 * om_max
    pts = sorted(p for p in pts if 0 < p < top)
    est, err = _integrate(f, pts, top, progress)
    J, Ie = (float(x) for x in est)
    Jerr, Ierr = (float(x) for x in err)
    return LandauerResult(level, J + J0, Ie + I0, Jerr, Ierr, md.kappa, True, config=config, options=opts)


_RTOL = 1e-10
_ATOL = 1e-15


def _integrate(f, pts: list[float], top: float, progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``int_0^inf`` of the two integrands (J, Ie) with vectorised adaptive Gauss-Kronrod.

    ``[0, top]`` is split at ``pts`` and each piece, and ``[top, inf)``, is integrated by
    its own ``scipy.integrate.cubature`` call; a piece that does not converge is redone
    with ``scipy.integrate.quad``. The summed error estimates meet the global criterion
    ``err <= max(atol, rtol |estimate|)`` for each component (a second pass with absolute
    tolerances ``rtol |estimate| / pieces`` enforces it when pieces of opposite sign
    cancel).

    One call per piece, not ``cubature(..., points=pts)``: scipy 1.17 puts the pieces
    on its region heap without ``heapify``, so the piece with the largest error is not
    always the one refined, and a piece of a few ulp (a breakpoint ``w = mu_c`` next to
    another one, e.g. ``V = 0.9500000000000001`` beside ``Omega - gamma = 0.95``) made it
    run to ``max_subdivisions`` on the wrong pieces (15-40 s instead of 0.3 s).

    ``progress``: a bar over the pieces (shown once they take more than 2 s).
    """

    def F(x):
        return np.stack(f(x[:, 0]), axis=1)

    edges = [0.0, *(q for q in pts if 0.0 < q < top), top, np.inf]
    pieces = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]

    def run(atol: float, rtol: float, bar) -> tuple[np.ndarray, np.ndarray]:
        est = np.zeros(2)
        err = np.zeros(2)
        for a, b in pieces:
            bar.update(1)
            r = integrate.cubature(F, [a], [b], rtol=rtol, atol=atol, max_subdivisions=2000)
            if r.status == "converged":
                est += r.estimate
                err += r.error
                continue
            for comp in (0, 1):
                v, e = integrate.quad(lambda w, _c=comp: float(f(w)[_c][0]), a, b, limit=2000,
                                      epsabs=atol, epsrel=rtol)
                est[comp] += v
                err[comp] += e
        return est, err

    with progress_bar(len(pieces), "landauer", "piece", progress, delay=2.0) as bar:
        est, err = run(_ATOL, _RTOL, bar)
        target = np.maximum(_ATOL, _RTOL * np.abs(est))
        if np.any(err > target):  # cancellation between pieces: tighten each piece absolutely
            bar.reset(total=len(pieces))
            est, err = run(max(_ATOL, float(target.min()) / len(pieces)), _RTOL, bar)
    return est, err
