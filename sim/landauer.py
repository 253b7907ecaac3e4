r"""Landauer-like steady-state fluxes, Eqs. 13-14 (docs/theory.md, docs/approximations.md).

Lowest order (the paper's)::

    J  = sum_c int_0^inf dw/2pi w  Lambda_c(w) A_ph(w) [nB(w - mu_c, T_e) - nB(w, T_ph)]
    Ie = sum_c s_c int_0^inf dw/2pi Lambda_c(w) A_ph(w) [nB(w - mu_c, T_e) - nB(w, T_ph)]
    A_ph(w) = 4 Omega gamma w / ((w^2 - Omega^2)^2 + gamma^2 w^2)

``Lambda_c [nB(w - mu_c) - nB(w, T_ph)]`` is evaluated as ``tau_em_c - Lambda_c nB(w, T_ph)``,
finite at ``w = mu_c`` (and with unequal electrode temperatures it is the same
golden-rule expression). Full broadening replaces ``A_ph`` by ``|D|^2 gamma w/Omega``,
``D = 2 Omega / (w^2 - Omega^2 + i w gamma + i Omega Gamma_e(w))``, and treats the four
channels and the ph-bath as terminals of a multi-terminal bosonic Landauer formula
with broadenings ``Gamma_c = Lambda_c(w)``, ``Gamma_ph = gamma w / Omega`` and
transmissions ``T_ij = Gamma_i |D|^2 Gamma_j``; the mode then also carries charge
between the LR and RL channels. Units: J in energy/time, Ie in particles/time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate

from .channels import channel_rates
from .conductor import CHANNEL_SIGN as _SIGN
from .config import Config
from .model import rate_model
from .results import Result
from .special import x_bose

__all__ = ["LandauerResult", "landauer", "a_ph", "a_ph_weight"]

LEVELS = ("lowest", "full")


@dataclass(frozen=True)
class LandauerResult(Result):
    """Fluxes at one level of theory, with quadrature error estimates.

    ``valid`` is False at full broadening where ``kappa <= 0`` (``D(w)`` has no
    meaning there); then J and Ie are NaN. Lowest order cannot see the
    instability: ``kappa`` is reported beside it so a scan can flag it.
    """

    route = "landauer"

    level: str
    J: float
    Ie: float
    J_err: float
    Ie_err: float
    kappa: float
    valid: bool

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


def _integrands(config: Config, level: str):
    cond = config.conductor.build()
    b = config.bias
    om = config.mode.omega
    g = config.phonon_bath.gamma
    T_ph = config.phonon_bath.T

    def f(w):
        w = np.atleast_1d(np.asarray(w, dtype=float))
        r = channel_rates(cond, w, b.mu_L, b.mu_R, b.T_L, b.T_R)
        xb = x_bose(w, T_ph)  # w nB(w, T_ph)
        if level == "lowest":
            # A_ph nB(w, T_ph) = [A_ph / w] (w nB)
            A_over_w = 4 * om * g / ((w * w - om**2) ** 2 + g**2 * w * w)
            flux = A_over_w * (w * r.emission - r.damping * xb)  # (4, nw): A_ph [tau_em - Lambda n_ph]
            Jw = w * flux.sum(axis=0)
            Iw = (_SIGN[:, None] * flux).sum(axis=0)
        else:
            gam_e = r.damping.sum(axis=0)
            D2 = 4 * om**2 / np.abs(w * w - om**2 + 1j * w * g + 1j * om * gam_e) ** 2
            ph = D2 * (g / om) * (w * r.emission - r.damping * xb)  # Gamma_ph |D|^2 (tau_em - Lambda n_ph)
            cross = D2 * (r.emission * gam_e - r.damping * r.emission.sum(axis=0))  # sum_c' T_cc'(n_c - n_c')
            Jw = w * ph.sum(axis=0)
            Iw = (_SIGN[:, None] * (ph + cross)).sum(axis=0)
        return Jw / (2 * np.pi), Iw / (2 * np.pi)

    return f


def landauer(config: Config, level: str = "lowest") -> LandauerResult:
    """Eqs. 13-14 at ``level`` ``"lowest"`` (the paper's ``A_ph``) or ``"full"``.

    The integral over ``w`` in (0, inf) is split at ``Omega``, its resonance
    width, and every ``w = mu_c > 0`` (where the Bose factor of the channel is
    singular but the product is not); vectorised adaptive Gauss-Kronrod
    (``scipy.integrate.cubature`` on each piece, rtol 1e-10); errors are its estimates, summed.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    m = rate_model(config)
    kappa = float(m.kappa)
    om = config.mode.omega
    g = config.phonon_bath.gamma
    if level == "full" and not bool(m.stable):  # kappa <= 0 or within round-off of 0: D(w) has no meaning
        nan = float("nan")
        return LandauerResult(level, nan, nan, nan, nan, kappa, False, config=config, options={"level": level})
    if level == "lowest" and g == 0:
        # A_ph -> 2 pi delta(w - Omega): the pinned formula, exactly
        n_ph = float(m.n_ph)
        net = m.rates.emission - m.rates.damping * n_ph
        return LandauerResult(level, float(om * net.sum()), float((_SIGN * net).sum()), 0.0, 0.0, kappa, True,
                              config=config, options={"level": level})
    f = _integrands(config, level)
    width = g if level == "lowest" else max(kappa, 1e-300)
    b = config.bias
    T = max(b.T_L, b.T_R, config.phonon_bath.T)
    mus = [abs(b.mu_L - b.mu_R)]
    pts = {om, *(om + k * width for k in (-20, -5, -1, 1, 5, 20)), *mus}
    top = max(om, *mus) + 60 * max(T, width) + 10 * om
    pts = sorted(p for p in pts if 0 < p < top)
    est, err = _integrate(f, pts, top)
    J, Ie = (float(x) for x in est)
    Jerr, Ierr = (float(x) for x in err)
    return LandauerResult(level, J, Ie, Jerr, Ierr, kappa, True, config=config, options={"level": level})


_RTOL = 1e-10
_ATOL = 1e-15


def _integrate(f, pts: list[float], top: float) -> tuple[np.ndarray, np.ndarray]:
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
    """

    def F(x):
        return np.stack(f(x[:, 0]), axis=1)

    edges = [0.0, *(q for q in pts if 0.0 < q < top), top, np.inf]
    pieces = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]

    def run(atol: float, rtol: float) -> tuple[np.ndarray, np.ndarray]:
        est = np.zeros(2)
        err = np.zeros(2)
        for a, b in pieces:
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

    est, err = run(_ATOL, _RTOL)
    target = np.maximum(_ATOL, _RTOL * np.abs(est))
    if np.any(err > target):  # cancellation between pieces: tighten each piece absolutely
        est, err = run(max(_ATOL, float(target.min()) / len(pieces)), _RTOL)
    return est, err
