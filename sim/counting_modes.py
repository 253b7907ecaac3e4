r"""Exact counting statistics of several modes from the tilted Liouvillian (small truncated spaces).

Every labelled collapse operator ``L_l`` of :func:`sim.lindblad_modes.collapse_operators_modes`
(channel, direction, eigen-index, cluster) is a kind of quantum jump. Counting a quantity that each
jump of ``l`` changes by ``nu_l`` (charge ``s_c dn``, energy ``quantum_l dn``, or 1 for one label),
the tilted Liouvillian is ``L(s) = L_0 + sum_l (e^{s nu_l} - 1) J_l`` with ``J_l rho = L_l rho L_l^+``,
and the long-time cumulant rates are ``c_k = d^k theta/ds^k`` at ``s = 0`` of its leading eigenvalue.
They are computed by the recursive perturbation theory of Flindt et al. (PRB 82, 155407 (2010)),
as for one mode (:mod:`sim.counting`)::

    theta^(n) = sum_{m=1..n} C(n,m) Tr[L^(m) rho^(n-m)],   L^(m) = sum_l nu_l^m J_l
    rho^(n)   = L_0^+ sum_{m=1..n} C(n,m) (theta^(m) - L^(m)) rho^(n-m)

on the zero-charge sector of the truncated tensor Fock space (:class:`sim.lindblad_modes.Sector`;
``L_0^+`` by the LU of the bordered Liouvillian). The per-label jump rates are ``Tr[J_l rho_ss]``.
Cutoffs: :func:`sim.lindblad_modes.mode_cutoffs` with ``tol = 1e-12`` by default; where the sector
exceeds :data:`sim.lindblad_modes.MAX_SECTOR` a ValueError says so.

Units: rates per unit time (energy units, hbar = 1); energies in the energy unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .conductor import CHANNELS
from .covariance import CollapseOperator, ModeSystem
from .lindblad import MAX_SECTOR, _cutoffs, mode_cutoffs, operator_properties, sector

__all__ = ["ModesCounting", "mode_counting", "operator_weights"]


def operator_weights(quantity: str | ArrayLike, ops: list[CollapseOperator], omega: ArrayLike) -> NDArray[np.float64]:
    """``nu_l`` per operator: ``charge`` (L -> R electrons), ``energy`` (into the modes, every bath),
    ``energy:CHANNEL``, ``jumps:CHANNEL:DIRECTION`` (every eigen-index), or an explicit array (one per operator)."""
    if not isinstance(quantity, str):
        nu = np.asarray(quantity, dtype=float)
        if nu.shape != (len(ops),):
            raise ValueError(f"explicit weights need one entry per collapse operator ({len(ops)}), got shape {nu.shape}")
        return nu
    p = operator_properties(ops, omega)
    ch = np.array([op.channel for op in ops])
    di = np.array([op.direction for op in ops])
    parts = quantity.split(":")
    baths = (*CHANNELS, "ph")
    if quantity == "charge":
        return p["dQ"].astype(float)
    if quantity == "energy":
        return p["dE"].astype(float)
    if parts[0] == "energy" and len(parts) == 2 and parts[1] in baths:
        return np.where(ch == parts[1], p["dE"], 0.0)
    if parts[0] == "jumps" and len(parts) == 3 and parts[1] in baths and parts[2] in ("emission", "absorption"):
        return ((ch == parts[1]) & (di == parts[2])).astype(float)
    raise ValueError(f"quantity must be 'charge', 'energy', 'energy:CHANNEL' or 'jumps:CHANNEL:DIRECTION' "
                     f"(CHANNEL in {', '.join(baths)}), got {quantity!r}")


@dataclass(frozen=True, eq=False)
class ModesCounting:
    """Stationary jump rates and cumulant rates of several modes.

    Attributes
    ----------
    operators : list of CollapseOperator
        The labels, in the order of ``rates`` and ``nu``.
    rates : ndarray
        ``Tr[L_l rho_ss L_l^+]`` per operator (jumps per unit time).
    emission_rate, absorption_rate : ndarray (4,)
        Summed over the eigen-index per channel LL, RR, LR, RL (compare :meth:`ModeSystem.fluxes`).
    nu : ndarray
        The counted weights.
    cumulants : ndarray (order,)
        ``c_1 .. c_order`` of the counted quantity (its units^k per unit time).
    cutoffs : tuple of int
    C : ndarray (K, K)
        ``<a_m^+ a_n>`` of the truncated steady state.
    """

    operators: list[CollapseOperator]
    rates: NDArray[np.float64]
    emission_rate: NDArray[np.float64]
    absorption_rate: NDArray[np.float64]
    nu: NDArray[np.float64]
    cumulants: NDArray[np.float64]
    cutoffs: tuple[int, ...]
    C: NDArray[np.complex128]

    def rates_frame(self):
        """Per-operator table: ``op``, ``channel``, ``direction``, ``j``, ``cluster``, ``coefficient`` (the
        operator's eigenvalue ``rate``, 1/time), ``jump_rate`` (``Tr[L rho L^+]``, jumps per unit time), ``nu``."""
        import pandas as pd

        ops = self.operators
        return pd.DataFrame({"op": np.arange(len(ops), dtype=np.int16), "channel": [o.channel for o in ops],
                             "direction": [o.direction for o in ops], "j": [o.j for o in ops],
                             "cluster": [o.cluster for o in ops], "coefficient": [o.rate for o in ops],
                             "jump_rate": self.rates, "nu": self.nu})

    def to_dict(self) -> dict:
        """JSON-ready record: ``cumulants`` (c_1..), ``emission_rate``/``absorption_rate`` per channel LL, RR, LR, RL,
        ``cutoffs``."""
        from .model import clean

        return clean({"cumulants": self.cumulants.tolist(), "emission_rate": self.emission_rate.tolist(),
                      "absorption_rate": self.absorption_rate.tolist(), "cutoffs": list(self.cutoffs)})


def mode_counting(system: ModeSystem, quantity: str | ArrayLike = "charge", order: int = 2,
                  cutoffs: ArrayLike | None = None, *, tol: float = 1e-12, max_size: int = MAX_SECTOR,
                  include_phonon: bool = True) -> ModesCounting:
    """Exact stationary counting statistics of several modes (see the module doc).

    Parameters
    ----------
    system
        Stable modes (:func:`sim.covariance.mode_system`).
    quantity
        What is counted (:func:`operator_weights`).
    order
        Highest cumulant (>= 1).
    cutoffs
        Levels per mode; default :func:`sim.lindblad_modes.mode_cutoffs` of the steady ``C`` with ``tol``.
    max_size
        Largest zero-charge sector (elements) accepted.
    """
    if not system.stable:
        raise ValueError(f"the modes are unstable (growth rate {system.growth_rate:.6g} > 0): no stationary statistics")
    if int(order) < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    cut = mode_cutoffs(system, tol=tol) if cutoffs is None else _cutoffs(cutoffs, system.K)
    sec = sector(system, cut, include_phonon, max_size=max_size)
    ops = sec.labels
    nu = operator_weights(quantity, ops, system.omega)
    lu = sec.bordered()
    size = sec.size
    tr = sec.trace

    def pinv(y):
        return lu.solve(np.concatenate([y, [0.0]]))[:size]

    e = np.zeros(size + 1, dtype=complex)
    e[-1] = 1.0
    rho = lu.solve(e)[:size]
    rates = np.array([float(np.real(tr @ (J @ rho))) for J in sec.jumps])
    order = int(order)
    Ls = [None] + [sum(nu[l] ** m * sec.jumps[l] for l in range(len(ops)) if nu[l] != 0) for m in range(1, order + 1)]
    theta = np.zeros(order + 1)
    states = [rho]
    for n in range(1, order + 1):
        theta[n] = float(np.real(sum(comb(n, m) * (tr @ (Ls[m] @ states[n - m])) for m in range(1, n + 1)
                                     if not np.isscalar(Ls[m]))))
        if n < order:
            rhs = sum(comb(n, m) * (theta[m] * states[n - m] - (Ls[m] @ states[n - m] if not np.isscalar(Ls[m]) else 0))
                      for m in range(1, n + 1))
            states.append(pinv(rhs))
    em, ab = np.zeros(4), np.zeros(4)
    for op, r in zip(ops, rates, strict=True):
        if op.channel in CHANNELS:
            (em if op.direction == "emission" else ab)[CHANNELS.index(op.channel)] += r
    rho_q = sec.density_matrix(rho)
    from .lindblad import covariance_of

    return ModesCounting(ops, rates, em, ab, nu, theta[1:], cut, covariance_of(rho_q, cut))
