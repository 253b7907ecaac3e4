r"""Mean-population (rate-equation) model of the mode (docs/theory.md).

``dN/dt = sum_c [tau_em_c (N + 1) - tau_abs_c N] + gamma_ph (n_ph - N)
        = E + gamma_ph n_ph - kappa N``,
``E = sum_c tau_em_c``, ``Gamma_e = sum_c Lambda_c``, ``kappa = Gamma_e + gamma_ph``,
all rates at ``w = Omega`` (Eq. 8 plus the ph-bath). Stable iff ``kappa > 0``; then
``N_ss = (E + gamma_ph n_ph) / kappa`` (Eq. 9). The coefficients live in the labelled
jump model :class:`sim.model.JumpModel` (``RateModel`` is its older name). Units: rates in energy units (hbar = 1),
energies and temperatures in the config's unit, time in 1/energy.

Near the threshold: where ``|kappa| <= kappa_roundoff`` (:func:`sim.guards.kappa_roundoff`,
256 ulps of the largest rate that enters kappa) the sign of kappa is round-off. The model
then reports ``near_threshold = True`` and ``stable = False`` (no steady state is
claimed: ``N``, ``J``, ... are NaN / ``null``), consistently in ``ehp steady``, sweeps
and ``ehp threshold``. Non-finite rates raise :class:`sim.guards.NumericalError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .conductor import CHANNELS
from .grids import time_grid
from .guards import check_finite
from .model import JumpModel, RateModel, rate_model
from .results import Result, TimeSeries, clean

if TYPE_CHECKING:
    from .config import Config

__all__ = ["JumpModel", "RateModel", "SteadyState", "rate_model", "steady_state", "steady_of", "effective_temperature",
           "effective_chemical_potential", "RateSolution", "evolve_rate"]

@dataclass(frozen=True)
class SteadyState(Result):
    """Steady state of the rate equation, or the instability verdict.

    Where ``stable`` is False every steady-state number is NaN (``null`` in JSON)
    and ``growth_rate = -kappa >= 0`` says how fast N runs away. Where
    ``near_threshold`` is True (``|kappa| <= kappa_roundoff``) ``stable`` is False as
    well, and neither the verdict nor N is determined (see the module docstring).
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
    def near_threshold(self) -> bool:
        return bool(self.model.near_threshold)

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
            "near_threshold": self.near_threshold,
            "growth_rate": self.growth_rate, "N": self.N, "T_eff": self.T_eff, "mu_eff": self.mu_eff,
            "J": self.J, "J_ph": self.J_ph, "Ie": self.Ie, "eta": self.eta, "n_ph": m.n_ph,
        }
        return clean(d)

    def columns(self) -> dict[str, NDArray]:
        """The flat sweep columns of a result over ``B`` bias points (each of shape ``(B,)``; NaN for null).

        The keys and order of :func:`sim.system.flatten_record` of :meth:`to_dict` (scalars, then
        ``LL.mu`` .. ``RL.Ie``), computed for the whole batch at once.
        """
        m = self.model
        r = m.rates
        nan_inf = np.isfinite
        shape = np.shape(m.kappa)

        def col(x):
            x = np.broadcast_to(np.asarray(x, dtype=float), shape)
            return np.where(nan_inf(x), x, np.nan)

        out: dict[str, NDArray] = {
            "gamma_e": col(m.gamma_e), "emission_total": col(m.emission_total), "kappa": col(m.kappa),
            "kappa_over_omega": col(m.kappa / m.omega), "stable": np.broadcast_to(np.asarray(m.stable), shape).copy(),
            "near_threshold": np.broadcast_to(np.asarray(m.near_threshold), shape).copy(),
            "growth_rate": col(-np.asarray(m.kappa)), "N": col(self.N), "T_eff": col(self.T_eff),
            "mu_eff": col(self.mu_eff), "J": col(self.J), "J_ph": col(self.J_ph), "Ie": col(self.Ie),
            "eta": col(self.eta), "n_ph": col(m.n_ph),
        }
        for i, c in enumerate(CHANNELS):
            for q, x in (("mu", r.mu[i]), ("emission", r.emission[i]), ("absorption", r.absorption[i]),
                         ("damping", r.damping[i]), ("J", self.J_channel[i]), ("Ie", self.Ie_channel[i])):
                out[f"{c}.{q}"] = col(x)
        return out


def effective_temperature(N: ArrayLike, omega: float) -> NDArray[np.float64]:
    """Eq. 10: ``T_eff = Omega / ln(1 + 1/N)``."""
    N = np.asarray(N, dtype=float)
    with np.errstate(divide="ignore"):
        return omega / np.log1p(1.0 / N)


def effective_chemical_potential(N: ArrayLike, omega: float, T_e: float) -> NDArray[np.float64]:
    """Eq. 11: ``mu_eff = Omega - T_e ln(1 + 1/N)``."""
    N = np.asarray(N, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):  # T_e = 0 at N = 0: undefined (NaN)
        return omega - T_e * np.log1p(1.0 / N)


def steady_state(config: Config) -> SteadyState:
    """Steady state and stability of the mode for one config (scalar bias)."""
    return steady_of(rate_model(config))


def steady_of(m: JumpModel) -> SteadyState:
    """Steady state and stability of a one-mode :class:`JumpModel` (Eq. 9 with the ph-bath).

    A model at one bias point gives numbers; a model batched over bias points (rates of shape
    ``(4, B)``) gives arrays of shape ``(B,)`` (``J_channel`` ``(4, B)``), NaN where not stable:
    the same elementwise formulas (:meth:`SteadyState.columns` is then the sweep table).
    """
    k = np.asarray(m.kappa, dtype=float)
    ok = np.asarray(m.stable)
    N = np.asarray(m.N_ss(), dtype=float)
    check_finite("the steady population N = (E + gamma_ph n_ph) / kappa", N[ok],
                 f"kappa = {np.max(k):.6g}, source = {np.max(np.asarray(m.source)):.6g}")
    with np.errstate(invalid="ignore"):
        f = m.fluxes(N)
        # J_ph = Omega gamma_ph (N - n_ph) with N - n_ph = (E - Gamma_e n_ph)/kappa exactly in steady state:
        # free of the cancellation of N - n_ph when gamma_ph dominates kappa (then N ~ n_ph)
        J_ph = np.where(ok, m.omega * m.gamma_ph * (m.emission_total - m.gamma_e * m.n_ph) / np.where(ok, k, 1.0), np.nan)
        Ie = np.asarray(f["Ie"], dtype=float)
        with np.errstate(divide="ignore"):
            eta = np.where(J_ph != 0, Ie / (J_ph / m.omega), np.nan)
    T_eff, mu_eff = effective_temperature(N, m.omega), effective_chemical_potential(N, m.omega, m.T_e)
    if k.ndim == 0:
        return SteadyState(m, float(N), float(T_eff), float(mu_eff), float(f["J"]), float(J_ph), float(Ie), float(eta),
                           np.asarray(f["J_channel"], dtype=float), np.asarray(f["Ie_channel"], dtype=float))
    return SteadyState(m, N, T_eff, mu_eff, np.asarray(f["J"], dtype=float), J_ph, Ie, eta,
                       np.asarray(f["J_channel"], dtype=float), np.asarray(f["Ie_channel"], dtype=float))


@dataclass(frozen=True)
class RateSolution(TimeSeries):
    """``N(t)`` of the rate equation (Eq. 8 with the ph-bath) at a constant bias.

    ``N(t) = N0 e^{-kappa t} + (E + gamma_ph n_ph)(1 - e^{-kappa t})/kappa`` on the grid
    ``t`` (1/energy); no truncation, so a runaway (``kappa <= 0``) grows without a stop.
    """

    t: NDArray[np.float64]
    N: NDArray[np.float64]
    message: str | None = None
    route = "rate"


def evolve_rate(model: JumpModel, t: ArrayLike, N0: float = 0.0) -> RateSolution:
    """Closed-form solution of Eq. 8 plus the ph-bath from ``N(t[0]) = N0`` (see :class:`RateSolution`)."""
    t = time_grid(t, strict=False)
    N = model.N_t(t - t[0], N0)
    message = None
    if not bool(model.stable):
        k = float(model.kappa)
        message = f"unstable: kappa = {k:.6g} <= 0; N grows at rate {-k:.6g} (the rate equation has no truncation)"
    return RateSolution(t, N, message, model=model)
