r"""The labelled jump model: every route's one source of rates, labels, signs, dn and energies.

A mode of quantum ``Omega`` exchanges quanta with the four EHP channels
(``LL, RR, LR, RL``) and the phonon bath (``ph``). Each exchange is a *labelled jump*
(docs/theory.md, "Trajectories"): a label is ``(channel, direction)``, direction seen
from the bath (``emission``: the bath gives the mode a quantum). From Fock state ``n``::

    (c, emission)     n -> n + 1   at  a_c (n + 1),   a_c = tau_em_c(Omega),   a_ph = gamma_ph n_ph
    (c, absorption)   n -> n - 1   at  b_c n,         b_c = tau_abs_c(Omega),  b_ph = gamma_ph (n_ph + 1)

(the Lindblad equation of the paper's Eq. 8 with the ph-bath; collapse operators
``sqrt(a_c) a^dagger`` and ``sqrt(b_c) a``). A jump changes the population by
``dn = +1 / -1``, moves ``dQ = s_c dn`` electrons from L to R (``s_LR = +1``,
``s_RL = -1``, else 0; Eq. 14) and brings ``dE = Omega dn`` energy into the mode.

:class:`JumpModel` holds these coefficients (:attr:`JumpModel.label_rates`, one row per
label of :data:`LABELS`), built once from a config by :func:`rate_model`, and gives what
every route needs: the mean-population (rate) equation, the birth-death generator with
optional counting fields, the stationary distribution, the labels of the collapse
operators, and a JSON record (:meth:`JumpModel.record`) from which the model is rebuilt
(:meth:`JumpModel.from_record`). The population, Lindblad, trajectory (ssa, mcsolve),
counting-statistics and mode-statistics code all take it; none recomputes a rate, a
sign or a label.

Several modes: a :class:`Label` carries a ``mode`` and an ``op`` index (0 for one
mode), so labelled collapse operators over several modes fit the same table.

Units: hbar = k_B = e = 1; rates in energy units (1/time), energies in the config's unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from .channels import ChannelRates, channel_rates
from .conductor import CHANNEL_SIGN, CHANNELS, CHARGE_SIGN
from .guards import check_finite, kappa_roundoff
from .special import bose

if TYPE_CHECKING:
    from .config import Config

__all__ = [
    "BATHS", "DIRECTIONS", "LABELS", "N_LABELS", "DN", "CHARGE", "Label", "JumpModel", "RateModel", "label_index",
    "model_at", "rate_model",
    "clean",
]

#: Baths of the jump labels: the four EHP channels, then the phonon bath.
BATHS: tuple[str, ...] = (*CHANNELS, "ph")
#: Directions, seen from the bath: ``emission`` gives the mode a quantum (dn = +1).
DIRECTIONS: tuple[str, ...] = ("emission", "absorption")


@dataclass(frozen=True)
class Label:
    """One kind of quantum jump.

    Attributes
    ----------
    channel
        ``LL``, ``RR``, ``LR``, ``RL`` or ``ph``.
    direction
        ``emission`` (the bath gives the mode a quantum) or ``absorption``.
    mode, op
        Mode index and operator index (0 for a single mode; several modes label
        collapse operators by both).
    """

    channel: str
    direction: str
    mode: int = 0
    op: int = 0

    def __post_init__(self) -> None:
        if self.channel not in BATHS:
            raise ValueError(f"label channel must be one of {', '.join(BATHS)}, got {self.channel!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"label direction must be emission or absorption, got {self.direction!r}")

    @property
    def dn(self) -> int:
        """Change of the population: +1 (emission) or -1 (absorption)."""
        return 1 if self.direction == "emission" else -1

    @property
    def charge(self) -> int:
        """Electrons moved from L to R by one jump: ``s_c dn`` (Eq. 14's signs)."""
        return CHARGE_SIGN.get(self.channel, 0) * self.dn

    def energy(self, omega: float) -> float:
        """Energy brought into the mode by one jump: ``Omega dn`` (config unit)."""
        return float(omega) * self.dn

    @property
    def name(self) -> str:
        """``CHANNEL:DIRECTION``."""
        return f"{self.channel}:{self.direction}"


#: The labels of one mode, index ``2 * bath + direction`` (the jump table's order).
LABELS: tuple[Label, ...] = tuple(Label(c, d) for c in BATHS for d in DIRECTIONS)
N_LABELS = len(LABELS)
#: ``dn`` per label (int8).
DN: NDArray[np.int8] = np.array([lab.dn for lab in LABELS], dtype=np.int8)
#: Charge ``dQ`` (electrons L -> R) per label (float, no -0.0).
CHARGE: NDArray[np.float64] = np.array([lab.charge for lab in LABELS], dtype=float) + 0.0
_EMITS = DN > 0


def label_index(channel: str, direction: str) -> int:
    """Index of ``(channel, direction)`` in :data:`LABELS`: ``2 * bath_index + direction_index``."""
    if channel not in BATHS or direction not in DIRECTIONS:
        raise ValueError(f"a label is (channel in {BATHS}, direction in {DIRECTIONS}), got ({channel!r}, {direction!r})")
    return 2 * BATHS.index(channel) + DIRECTIONS.index(direction)


def clean(v: Any) -> Any:
    """JSON-ready copy: non-finite numbers become ``None`` (recursively through dicts and lists).

    Booleans stay booleans, integers stay integers, numpy scalars become Python numbers.
    """
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [clean(x) for x in v]
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return bool(v)
    if isinstance(v, int | np.integer):
        return int(v)
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return x if np.isfinite(x) else None


@dataclass(frozen=True)
class JumpModel:
    """Channel rates at ``Omega`` plus the ph-bath: the labelled jumps of one mode.

    Fields may be scalars or arrays (one entry per bias point); ``rates`` arrays have
    the channel first, :attr:`label_rates` the label first.

    Attributes
    ----------
    omega
        Mode quantum ``Omega`` (energy).
    rates
        The four channels' ``tau_em``, ``tau_abs``, ``Lambda`` at ``Omega`` (energy units).
    gamma_ph, T_ph
        Phonon-bath energy damping rate and temperature.
    T_e
        Electron temperature (for ``mu_eff``, Eq. 11).
    """

    omega: float
    rates: ChannelRates
    gamma_ph: float
    T_ph: float
    T_e: float

    # ----------------------------------------------------------------- labels

    labels = LABELS
    """The jump labels, in the order of :attr:`label_rates`."""

    @cached_property
    def n_ph(self) -> NDArray[np.float64]:
        """``n_ph = nB(Omega, T_ph)`` (computed once: the model is immutable)."""
        return bose(self.omega, self.T_ph)

    @cached_property
    def label_rates(self) -> NDArray[np.float64]:
        """Rate coefficient per label, shape ``(10,) + bias shape`` (energy units).

        ``(c, emission)``: ``tau_em_c``; ``(c, absorption)``: ``tau_abs_c``;
        ``(ph, emission)``: ``gamma_ph n_ph``; ``(ph, absorption)``: ``gamma_ph (n_ph + 1)``.
        The jump rate out of Fock state ``n`` is this times ``n + 1`` (emission) or ``n``.
        """
        em = np.asarray(self.rates.emission, dtype=float)
        ab = np.asarray(self.rates.absorption, dtype=float)
        shape = em.shape[1:]
        n_ph = np.asarray(self.n_ph, dtype=float)
        ph_em = np.broadcast_to(self.gamma_ph * n_ph, shape)
        ph_ab = np.broadcast_to(self.gamma_ph * (n_ph + 1), shape)
        out = np.empty((N_LABELS,) + shape)
        out[0:8:2], out[1:8:2] = em, ab
        out[8], out[9] = ph_em, ph_ab
        return out

    @property
    def energy(self) -> NDArray[np.float64]:
        """Energy into the mode per jump of each label, ``Omega dn``."""
        return self.omega * DN.astype(float)

    def coefficients(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(a, b)`` per bath (LL, RR, LR, RL, ph) of a scalar model, checked finite and >= 0.

        The rate of ``(c, emission)`` out of Fock state ``n`` is ``a[c] (n + 1)``, of
        ``(c, absorption)`` ``b[c] n`` (energy units).
        """
        if np.ndim(self.kappa) != 0:
            raise ValueError(f"this route needs a model at one bias point, got rates of shape {np.shape(self.kappa)}")
        lab = self.label_rates.reshape(N_LABELS)
        a, b = lab[0::2].copy(), lab[1::2].copy()
        if not (np.all(np.isfinite(lab)) and lab.min() >= 0):
            raise ValueError(f"jump rates must be finite and >= 0, got emission {a.tolist()}, absorption {b.tolist()}")
        return a, b

    # ----------------------------------------------------------------- rate equation (Eq. 8 + ph-bath)

    @property
    def emission_total(self) -> NDArray[np.float64]:
        """``E = sum_c tau_em_c`` (Eq. 8)."""
        return self.rates.emission.sum(axis=0)

    @property
    def absorption_total(self) -> NDArray[np.float64]:
        """``sum_c tau_abs_c``."""
        return self.rates.absorption.sum(axis=0)

    @property
    def gamma_e(self) -> NDArray[np.float64]:
        """``Gamma_e = sum_c Lambda_c`` (Eq. 7 summed): the electronic damping (may be negative)."""
        return self.rates.damping.sum(axis=0)

    @property
    def kappa(self) -> NDArray[np.float64]:
        """``kappa = Gamma_e + gamma_ph``: relaxation rate of N (growth rate ``-kappa``)."""
        return self.gamma_e + self.gamma_ph

    @property
    def kappa_roundoff(self) -> NDArray[np.float64]:
        """Absolute round-off bound of ``kappa`` (:func:`sim.guards.kappa_roundoff`)."""
        return kappa_roundoff(self.rates.emission, self.rates.absorption, self.gamma_ph)

    @property
    def near_threshold(self) -> NDArray[np.bool_]:
        """``|kappa| <= kappa_roundoff``: the sign of kappa, hence the stability verdict, is round-off."""
        return np.asarray(np.abs(self.kappa) <= self.kappa_roundoff)

    @property
    def stable(self) -> NDArray[np.bool_]:
        """``kappa > kappa_roundoff``: a steady state exists (False within round-off of the threshold too,
        where ``near_threshold`` is True: no steady state is claimed there)."""
        return np.asarray(self.kappa > self.kappa_roundoff)

    @property
    def up_rate(self) -> NDArray[np.float64]:
        """Birth coefficient ``sum_l a_l = E + gamma_ph n_ph``: ``up(n) = up_rate (n + 1)``."""
        return self.label_rates[_EMITS].sum(axis=0)

    @property
    def down_rate(self) -> NDArray[np.float64]:
        """Death coefficient ``sum_l b_l = sum_c tau_abs_c + gamma_ph (n_ph + 1)``: ``down(n) = down_rate n``."""
        return self.label_rates[~_EMITS].sum(axis=0)

    @property
    def source(self) -> NDArray[np.float64]:
        """``E + gamma_ph n_ph``: the spontaneous source of quanta (= :attr:`up_rate`)."""
        return self.emission_total + self.gamma_ph * self.n_ph

    def N_ss(self) -> NDArray[np.float64]:
        """Eq. 9 with the ph-bath, ``N_ss = (E + gamma_ph n_ph) / kappa``; NaN where ``kappa <= 0`` (none)
        or within round-off of 0 (:attr:`near_threshold`)."""
        k = np.asarray(self.kappa, dtype=float)
        ok = self.stable
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ok, self.source / np.where(ok, k, 1.0), np.nan)

    def N_t(self, t: ArrayLike, N0: float = 0.0) -> NDArray[np.float64]:
        """``N(t) = N0 e^{-kappa t} + (E + gamma_ph n_ph)(1 - e^{-kappa t})/kappa`` (t in 1/energy).

        Valid on both sides of the threshold (growth for ``kappa < 0``, linear at 0).
        """
        t = np.asarray(t, dtype=float)
        k = float(self.kappa)
        if k == 0.0:
            return N0 + float(self.source) * t
        return N0 * np.exp(-k * t) - float(self.source) * np.expm1(-k * t) / k

    def fluxes(self, N: ArrayLike) -> dict[str, NDArray[np.float64]]:
        """Energy and charge fluxes at population ``N`` (any time; docs/theory.md "Fluxes").

        ``N`` may carry extra trailing axes (a time grid) beyond the bias shape.
        Returns per-channel ``J_c = Omega [tau_em (N+1) - tau_abs N]`` (shape (4, ...),
        energy/time), ``Ie_c = s_c [...]`` (particles/time), totals ``J`` (e-bath ->
        mode), ``Ie`` (L -> R particles), and ``J_ph = Omega gamma_ph (N - n_ph)``
        (mode -> ph-bath).
        """
        N = np.asarray(N, dtype=float)
        em, ab = self.rates.emission, self.rates.absorption
        extra = N.ndim - (em.ndim - 1)  # e.g. a time axis of N beyond the bias shape
        if extra > 0:
            em = em.reshape(em.shape + (1,) * extra)
            ab = ab.reshape(ab.shape + (1,) * extra)
        net = em * (N + 1) - ab * N
        sign = CHANNEL_SIGN.reshape((4,) + (1,) * (net.ndim - 1))
        Jc = self.omega * net
        Iec = sign * net
        return {
            "J_channel": Jc, "Ie_channel": Iec, "J": Jc.sum(axis=0), "Ie": Iec.sum(axis=0),
            "J_ph": self.omega * self.gamma_ph * (N - self.n_ph),
        }

    # ----------------------------------------------------------------- birth-death generator

    def jump_matrix(self, label: int, cutoff: int) -> sp.csr_matrix:
        """``J_l``: rate matrix of one label's jumps on ``n = 0 .. cutoff - 1`` (column = from, row = to).

        Emission ``n -> n + 1`` at ``a_l (n + 1)`` (none from the top level: the truncation
        is reflecting, as ``a^dagger |cutoff - 1> = 0`` in QuTiP); absorption
        ``n -> n - 1`` at ``b_l n``. Units: 1/time.
        """
        if cutoff < 2:
            raise ValueError(f"cutoff must be >= 2, got {cutoff}")
        rate = float(np.asarray(self.label_rates[label]).reshape(()))
        n = np.arange(cutoff - 1, dtype=float)
        if DN[label] > 0:
            return sp.diags([rate * (n + 1.0)], [-1], shape=(cutoff, cutoff), format="csr")
        return sp.diags([rate * (n + 1.0)], [1], shape=(cutoff, cutoff), format="csr")

    def generator(self, cutoff: int, counting: tuple[ArrayLike, complex] | None = None, *, dense: bool = False
                  ) -> NDArray | sp.csr_matrix:
        r"""Generator of ``dP/dt = G P`` on ``n = 0 .. cutoff - 1``, optionally tilted.

        ``G(s) = sum_l e^{s nu_l} J_l - diag(sum_l J_l)`` with ``J_l`` of
        :meth:`jump_matrix`; ``counting = (nu, s)`` gives the counting field ``s`` of a
        quantity that each label changes by ``nu_l`` (without it, ``s = 0``: columns
        sum to zero). Tridiagonal: ``G[n+1, n] = up_rate (n + 1)``, ``G[n-1, n] = down_rate n``.
        Units: 1/time.
        """
        if cutoff < 2:
            raise ValueError(f"cutoff must be >= 2, got {cutoff}")
        lab = np.asarray(self.label_rates, dtype=float)
        if lab.shape != (N_LABELS,):
            raise ValueError(f"the generator needs a model at one bias point, got label rates of shape {lab.shape}")
        if counting is None:
            tilt = np.ones(N_LABELS)
        else:
            nu, s = counting
            tilt = np.exp(s * np.asarray(nu))
        n = np.arange(cutoff, dtype=float)
        up = lab[_EMITS].sum() * (n + 1.0)
        up[-1] = 0.0
        down = lab[~_EMITS].sum() * n
        sub = (lab[_EMITS] * tilt[_EMITS]).sum() * (n[:-1] + 1.0)
        sup = (lab[~_EMITS] * tilt[~_EMITS]).sum() * n[1:]
        main = -(up + down)
        if not dense:
            return sp.diags([sub, sup, main], [-1, 1, 0], format="csr")
        G = np.diag(main.astype(tilt.dtype))
        i = np.arange(cutoff - 1)
        G[i + 1, i] = sub
        G[i, i + 1] = sup
        return G

    def stationary(self, cutoff: int) -> NDArray[np.float64]:
        """Stationary ``P_n`` of the truncated chain by detailed balance, ``P_{n+1}/P_n = up_rate/down_rate``.

        For ``kappa > 0`` the truncated Bose-Einstein law ``(1 - x) x^n / (1 - x^cutoff)``,
        ``x = N_ss/(N_ss + 1)``; computed in logarithms and normalised.
        """
        up = float(self.up_rate)
        down = float(self.down_rate)
        n = np.arange(cutoff)
        if up == 0.0:
            return (n == 0).astype(float)
        logp = n * (np.log(up) - np.log(down)) if down > 0 else np.where(n == cutoff - 1, 0.0, -np.inf)
        p = np.exp(logp - np.max(logp))
        return p / p.sum()

    def take(self, i: int) -> JumpModel:
        """The model at bias point ``i`` of a model batched over one axis (rates of shape ``(4, B)``)."""
        r = self.rates
        if np.ndim(r.emission) != 2:
            raise ValueError(f"take needs rates batched over one axis, got shape {np.shape(r.emission)}")
        w = np.asarray(r.w)
        rates = ChannelRates(w[i] if w.ndim else w, r.mu[:, i], r.emission[:, i], r.absorption[:, i], r.damping[:, i])
        return JumpModel(self.omega, rates, self.gamma_ph, self.T_ph, self.T_e)

    # ----------------------------------------------------------------- provenance

    def record(self) -> dict[str, Any]:
        """JSON record of the model (``metadata.json``): ``omega, gamma_ph, T_ph, T_e, emission, absorption``.

        :meth:`from_record` rebuilds a model with the same :attr:`label_rates`.
        """
        r = self.rates
        return {"omega": self.omega, "gamma_ph": self.gamma_ph, "T_ph": self.T_ph, "T_e": self.T_e,
                "emission": np.asarray(r.emission, dtype=float).tolist(),
                "absorption": np.asarray(r.absorption, dtype=float).tolist()}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JumpModel:
        """The model of a :meth:`record` (``mu`` is not recorded: NaN; ``Lambda = tau_abs - tau_em``)."""
        em = np.asarray(record["emission"], dtype=float)
        ab = np.asarray(record["absorption"], dtype=float)
        omega = float(record["omega"])
        rates = ChannelRates(np.asarray(omega), np.full(em.shape, np.nan), em, ab, ab - em)
        return cls(omega, rates, float(record["gamma_ph"]), float(record["T_ph"]), float(record["T_e"]))


#: The name used by the rate-equation route and older code.
RateModel = JumpModel


def model_at(config: Config, mu_L: ArrayLike, mu_R: ArrayLike, w: float | None = None) -> JumpModel:
    """The :class:`JumpModel` of a config at chemical potentials ``mu_L``, ``mu_R`` (scalars or arrays).

    Channel rates (Eqs. 5, 7) at ``w = Omega`` by default, the config's temperatures and ph-bath.
    """
    b = config.bias
    omega = config.mode.omega
    with np.errstate(all="ignore"):  # overflow/underflow is judged on the result below
        rates = channel_rates(config.conductor.build(), omega if w is None else w, mu_L, mu_R, b.T_L, b.T_R)
    ctx = (f"conductor.kind = {config.conductor.kind!r}, mode.omega = {omega:g}, bias.mu_L = {np.max(mu_L):g}, "
           f"bias.mu_R = {np.max(mu_R):g}, bias.T_L = {b.T_L:g}, bias.T_R = {b.T_R:g}")
    for name in ("emission", "absorption", "damping"):
        check_finite(f"the channel rates ({name})", getattr(rates, name), ctx)
    m = JumpModel(omega, rates, config.phonon_bath.gamma, config.phonon_bath.T, b.T_e)
    check_finite("kappa = Gamma_e + gamma_ph", m.kappa, ctx + f", phonon_bath.gamma = {config.phonon_bath.gamma:g}")
    return m


def rate_model(config: Config, w: float | None = None) -> JumpModel:
    """Build the :class:`JumpModel` of a config: channel rates at ``w = Omega`` (default) plus the ph-bath."""
    return model_at(config, config.bias.mu_L, config.bias.mu_R, w)
