r"""Mean-population (rate-equation) model of the mode (physics.md sec. 4).

``dN/dt = sum_c [tau_em_c (N + 1) - tau_abs_c N] + gamma_ph (n_ph - N)
        = E + gamma_ph n_ph - kappa N``,
``E = sum_c tau_em_c``, ``Gamma_e = sum_c Lambda_c``, ``kappa = Gamma_e + gamma_ph``,
all rates at ``w = Omega``. Stable iff ``kappa > 0``; then
``N_ss = (E + gamma_ph n_ph) / kappa``. Units: rates in energy units (hbar = 1),
energies and temperatures in the config's unit, time in 1/energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .channels import ChannelRates, channel_rates
from .conductor import CHANNELS, CHARGE_SIGN
from .config import Config
from .special import bose

__all__ = ["RateModel", "SteadyState", "rate_model", "steady_state"]

_SIGN = np.array([CHARGE_SIGN[c] for c in CHANNELS], dtype=float)


@dataclass(frozen=True)
class RateModel:
    """Channel rates at ``Omega`` plus the ph-bath: everything the mode equations need.

    Fields may be scalars or arrays (one entry per bias point); ``rates`` arrays
    have the channel first.
    """

    omega: float
    rates: ChannelRates
    gamma_ph: float
    T_ph: float
    T_e: float

    @cached_property
    def n_ph(self) -> NDArray[np.float64]:
        """``nB(Omega, T_ph)`` (computed once: the model is immutable)."""
        return bose(self.omega, self.T_ph)

    @property
    def emission_total(self) -> NDArray[np.float64]:
        """``E = sum_c tau_em_c``."""
        return self.rates.emission.sum(axis=0)

    @property
    def absorption_total(self) -> NDArray[np.float64]:
        return self.rates.absorption.sum(axis=0)

    @property
    def gamma_e(self) -> NDArray[np.float64]:
        """``Gamma_e = sum_c Lambda_c``: the electronic damping (may be negative)."""
        return self.rates.damping.sum(axis=0)

    @property
    def kappa(self) -> NDArray[np.float64]:
        """``kappa = Gamma_e + gamma_ph``: relaxation rate of N (growth rate ``-kappa``)."""
        return self.gamma_e + self.gamma_ph

    @property
    def stable(self) -> NDArray[np.bool_]:
        return np.asarray(self.kappa > 0)

    @property
    def source(self) -> NDArray[np.float64]:
        """``E + gamma_ph n_ph``: the spontaneous source of quanta."""
        return self.emission_total + self.gamma_ph * self.n_ph

    @property
    def up_rate(self) -> NDArray[np.float64]:
        """Birth-death coefficient: ``up(n) = up_rate (n + 1)``."""
        return self.source

    @property
    def down_rate(self) -> NDArray[np.float64]:
        """Birth-death coefficient: ``down(n) = down_rate n``."""
        return self.absorption_total + self.gamma_ph * (self.n_ph + 1)

    def N_ss(self) -> NDArray[np.float64]:
        """Steady population; NaN where unstable (``kappa <= 0``): there is none."""
        k = np.asarray(self.kappa, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(k > 0, self.source / np.where(k > 0, k, 1.0), np.nan)

    def N_t(self, t: ArrayLike, N0: float = 0.0) -> NDArray[np.float64]:
        """``N(t) = N0 e^{-kappa t} + (E + gamma_ph n_ph)(1 - e^{-kappa t})/kappa``.

        Valid on both sides of the threshold (growth for ``kappa < 0``, linear at 0).
        """
        t = np.asarray(t, dtype=float)
        k = float(self.kappa)
        if k == 0.0:
            return N0 + float(self.source) * t
        return N0 * np.exp(-k * t) - float(self.source) * np.expm1(-k * t) / k

    def fluxes(self, N: ArrayLike) -> dict[str, NDArray[np.float64]]:
        """Energy and charge fluxes at population ``N`` (any time, physics.md sec. 4).

        ``N`` may carry extra trailing axes (a time grid) beyond the bias shape.
        Returns per-channel ``J_c = Omega [tau_em (N+1) - tau_abs N]`` (shape (4, ...)),
        ``Ie_c = s_c [...]``, totals ``J`` (e-bath -> mode), ``Ie`` (L -> R particles),
        and ``J_ph = Omega gamma_ph (N - n_ph)`` (mode -> ph-bath).
        """
        N = np.asarray(N, dtype=float)
        em, ab = self.rates.emission, self.rates.absorption
        extra = N.ndim - (em.ndim - 1)  # e.g. a time axis of N beyond the bias shape
        if extra > 0:
            em = em.reshape(em.shape + (1,) * extra)
            ab = ab.reshape(ab.shape + (1,) * extra)
        net = em * (N + 1) - ab * N
        sign = _SIGN.reshape((4,) + (1,) * (net.ndim - 1))
        Jc = self.omega * net
        Iec = sign * net
        return {
            "J_channel": Jc, "Ie_channel": Iec, "J": Jc.sum(axis=0), "Ie": Iec.sum(axis=0),
            "J_ph": self.omega * self.gamma_ph * (N - self.n_ph),
        }


def rate_model(config: Config, w: float | None = None) -> RateModel:
    """Build the :class:`RateModel` of a config (rates at ``w = Omega`` by default)."""
    b = config.bias
    omega = config.mode.omega
    rates = channel_rates(config.conductor.build(), omega if w is None else w, b.mu_L, b.mu_R, b.T_L, b.T_R)
    return RateModel(omega, rates, config.phonon_bath.gamma, config.phonon_bath.T, b.T_e)


@dataclass(frozen=True)
class SteadyState:
    """Steady state of the rate equation, or the instability verdict.

    Where ``stable`` is False every steady-state number is NaN (``null`` in JSON)
    and ``growth_rate = -kappa >= 0`` says how fast N runs away.
    """

    model: RateModel
    N: float
    T_eff: float
    mu_eff: float
    J: float
    J_ph: float
    Ie: float
    eta: float
    J_channel: NDArray[np.float64]
    Ie_channel: NDArray[np.float64]

    @property
    def stable(self) -> bool:
        return bool(self.model.stable)

    @property
    def kappa(self) -> float:
        return float(self.model.kappa)

    @property
    def growth_rate(self) -> float:
        return -self.kappa

    def to_dict(self) -> dict:
        """The JSON record of ``ehp steady --json`` (non-finite numbers -> None)."""
        m = self.model
        r = m.rates
        chans = {
            c: {
                "mu": r.mu[i], "emission": r.emission[i], "absorption": r.absorption[i],
                "damping": r.damping[i], "J": self.J_channel[i], "Ie": self.Ie_channel[i],
            }
            for i, c in enumerate(CHANNELS)
        }
        d = {
            "channels": chans, "gamma_e": m.gamma_e, "emission_total": m.emission_total,
            "kappa": m.kappa, "kappa_over_omega": m.kappa / m.omega, "stable": self.stable,
            "growth_rate": self.growth_rate, "N": self.N, "T_eff": self.T_eff, "mu_eff": self.mu_eff,
            "J": self.J, "J_ph": self.J_ph, "Ie": self.Ie, "eta": self.eta, "n_ph": m.n_ph,
        }
        return _clean(d)


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, bool | np.bool_):
        return bool(v)
    x = float(v)
    return x if np.isfinite(x) else None


def effective_temperature(N: ArrayLike, omega: float) -> NDArray[np.float64]:
    """Eq. 10: ``T_eff = Omega / ln(1 + 1/N)``."""
    N = np.asarray(N, dtype=float)
    with np.errstate(divide="ignore"):
        return omega / np.log1p(1.0 / N)


def effective_chemical_potential(N: ArrayLike, omega: float, T_e: float) -> NDArray[np.float64]:
    """Eq. 11: ``mu_eff = Omega - T_e ln(1 + 1/N)``."""
    N = np.asarray(N, dtype=float)
    with np.errstate(divide="ignore"):
        return omega - T_e * np.log1p(1.0 / N)


def steady_state(config: Config) -> SteadyState:
    """Steady state and stability of the mode for one config (scalar bias)."""
    m = rate_model(config)
    if not m.stable:
        nan = float("nan")
        return SteadyState(m, nan, nan, nan, nan, nan, nan, nan, np.full(4, nan), np.full(4, nan))
    N = float(m.N_ss())
    f = m.fluxes(N)
    J_ph = float(f["J_ph"])
    Ie = float(f["Ie"])
    eta = Ie / (J_ph / m.omega) if J_ph != 0 else float("nan")
    return SteadyState(
        m, N, float(effective_temperature(N, m.omega)), float(effective_chemical_potential(N, m.omega, m.T_e)),
        float(f["J"]), J_ph, Ie, eta, f["J_channel"], f["Ie_channel"],
    )
