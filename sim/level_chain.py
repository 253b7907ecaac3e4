r"""Pauli rates between the levels of a :class:`sim.ladder.Ladder`: the labelled Markov chain of one mode.

To second order in the coupling, with the gaps distinct on the scale of the rates (secular), the
four EHP channels and the Ohmic phonon bath give, between levels ``i != j`` (``w = |E_j - E_i|``)::

    k_c(i -> j)  = |x_ij|^2 tau_em_c(w)                          E_j >= E_i  (emission: the bath gives)
    k_c(i -> j)  = |x_ij|^2 tau_abs_c(w)                         E_j <  E_i  (absorption)
    k_ph(i -> j) = gamma_ph (w / Omega) |x_ij|^2 n_B(w, T_ph)       up,  (n_B + 1) down

with the channel rates of :func:`sim.channels.channel_rates` at each gap (overtones ``|i - j| > 1``
included; degenerate levels take the ``w -> 0`` limits, ``gamma_ph (T_ph/Omega) |x_ij|^2`` for the
phonons). A jump carries the label ``(bath, direction, from, to)``, brings ``dE = E_j - E_i`` into the
mode and moves ``dQ = s_c sign(dE)`` electrons from L to R (one electron per inelastic event, whatever
the number of quanta; ``s_LR = +1``, ``s_RL = -1``, else 0). For the harmonic ladder
(``x_{n,n+1} = sqrt(n+1)``, equal gaps) these are the birth-death rates of :class:`sim.model.JumpModel`.

Absorbing levels have no rates out (the reaction has happened). :class:`LevelChain` keeps the rates
per bath as a dense array ``k[b, i, j]`` over the transient rows ``i`` (a small number: the bound
levels) and all columns ``j``; :meth:`LevelChain.jumps` flattens them into the labelled table every
route (rupture, population, trajectories) can share. Units: rates 1/time (energy units).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .channels import channel_rates
from .conductor import CHANNEL_SIGN, Conductor, FlatConductor
from .ladder import Ladder
from .model import BATHS, DIRECTIONS
from .special import x_bose

__all__ = ["LevelChain", "level_chain"]


@dataclass(frozen=True, eq=False)
class LevelChain:
    """Labelled Pauli rates over the levels of a ladder at one bias point.

    Attributes
    ----------
    ladder
        The levels (energies, ``|x_ij|``, absorbing mask).
    k
        Rates per bath ``b`` in :data:`sim.model.BATHS` (LL, RR, LR, RL, ph), shape ``(5, n_t, n)``:
        ``k[b, r, j]`` is the rate from transient level ``ladder.transient[r]`` to level ``j`` (1/time).
    """

    ladder: Ladder
    k: NDArray[np.float64]

    def __post_init__(self) -> None:
        k = np.asarray(self.k, dtype=float)
        shape = (len(BATHS), self.ladder.n_bound, self.ladder.n_levels)
        if k.shape != shape:
            raise ValueError(f"level-chain rates must have shape {shape}, got {k.shape}")
        if not (np.all(np.isfinite(k)) and k.min(initial=0.0) >= 0):
            raise ValueError("level-chain rates must be finite and >= 0")
        k.setflags(write=False)
        object.__setattr__(self, "k", k)

    @property
    def n_levels(self) -> int:
        return self.ladder.n_levels

    @property
    def K(self) -> int:
        """One mode (the ladder is one mode whose levels are not harmonic)."""
        return 1

    @property
    def omega(self) -> float:
        """The harmonic quantum of the ladder (energy)."""
        return float(self.ladder.omega)

    def record(self) -> dict[str, Any]:
        """What identifies the chain (``metadata.json``): ladder kind, quantum, energies, absorbing mask, threshold
        and the number of labelled transitions (the rates themselves are in a run's operator table)."""
        from .model import clean

        lad = self.ladder
        return clean({"kind": lad.kind, "omega": float(lad.omega), "n_levels": lad.n_levels, "n_bound": lad.n_bound,
                      "E": [float(e) for e in lad.E], "absorbing": [bool(a) for a in lad.absorbing],
                      "threshold": float(lad.threshold), "n_transitions": int(np.count_nonzero(self.k))})

    @cached_property
    def total(self) -> NDArray[np.float64]:
        """Total rate ``K[r, j] = sum_b k[b, r, j]`` from transient row ``r`` to level ``j``."""
        return self.k.sum(axis=0)

    @cached_property
    def transient_rates(self) -> NDArray[np.float64]:
        """``Q[r, s]``: total rate between transient levels (rows from, columns to), zero diagonal."""
        return self.total[:, self.ladder.transient]

    @cached_property
    def escape(self) -> NDArray[np.float64]:
        """Direct escape rate of each transient level into the absorbing levels, ``sum_{a} K[r, a]``."""
        return self.total[:, self.ladder.absorbing].sum(axis=1)

    @cached_property
    def escape_by_bath(self) -> NDArray[np.float64]:
        """Escape rate per bath and transient level, shape ``(5, n_t)``."""
        return self.k[:, :, self.ladder.absorbing].sum(axis=2)

    @cached_property
    def out_rate(self) -> NDArray[np.float64]:
        """Total rate out of each transient level ``Gamma_r = sum_j K[r, j]`` (escape included)."""
        return self.total.sum(axis=1)

    def generator(self) -> NDArray[np.float64]:
        """``G`` of ``dP/dt = G P`` over all levels (column = from, row = to; absorbing columns zero), dense."""
        n = self.n_levels
        G = np.zeros((n, n))
        t = self.ladder.transient
        G[:, t] = self.total.T
        G[t, t] -= self.out_rate
        return G

    def jumps(self) -> dict[str, NDArray[Any]]:
        """The labelled jumps as flat arrays (one entry per nonzero ``(bath, direction, from, to)``).

        Keys: ``bath`` (index in BATHS), ``channel`` (name), ``direction`` (``emission`` when
        ``E_to >= E_from``), ``from``, ``to`` (level indices), ``rate`` (1/time), ``dE`` (energy into the
        mode, ``E_to - E_from``), ``dQ`` (electrons L -> R, ``s_c sign(dE)``).
        """
        b, r, j = np.nonzero(self.k)
        i = self.ladder.transient[r]
        dE = self.ladder.E[j] - self.ladder.E[i]
        up = dE >= 0
        sign = np.append(CHANNEL_SIGN, 0.0)[b]
        return {"bath": b, "channel": np.array(BATHS, dtype=object)[b],
                "direction": np.where(up, DIRECTIONS[0], DIRECTIONS[1]).astype(object),
                "from": i, "to": j, "rate": self.k[b, r, j], "dE": dE, "dQ": sign * np.where(up, 1.0, -1.0) + 0.0}


def _gaps(ladder: Ladder) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float64]]:
    t = ladder.transient
    r, j = np.nonzero(ladder.x[t] > 0)
    w = ladder.E[j] - ladder.E[t[r]]
    return r, j, w


def level_chain(ladder: Ladder, conductor: Conductor | FlatConductor, mu_L: float, mu_R: float, T_L: float,
                T_R: float, gamma_ph: float, T_ph: float) -> LevelChain:
    """The Pauli rates of a ladder coupled to a conductor at one bias point and an Ohmic phonon bath.

    The channel rates are evaluated once, vectorised over the distinct gaps ``|E_j - E_i|``
    (:func:`sim.channels.channel_rates`). Units: energies and rates in the config's unit.
    """
    r, j, w = _gaps(ladder)
    aw = np.abs(w)
    wu, inv = np.unique(aw, return_inverse=True)
    with np.errstate(all="ignore"):
        cr = channel_rates(conductor, wu, mu_L, mu_R, T_L, T_R)
    up = w >= 0
    x2 = ladder.x[ladder.transient[r], j] ** 2
    k = np.zeros((len(BATHS), ladder.n_bound, ladder.n_levels))
    em, ab = cr.emission[:, inv], cr.absorption[:, inv]
    k[:4, r, j] = x2 * np.where(up, em, ab)
    if gamma_ph > 0:
        xb = x_bose(np.where(up, aw, -aw), T_ph)  # w n_B(w) up, w (n_B(w) + 1) down; T_ph at w = 0
        k[4, r, j] = gamma_ph / ladder.omega * x2 * xb
    bad = ~np.isfinite(k)
    if bad.any():
        raise ValueError(f"level-chain rates are not finite at {int(bad.sum())} transitions (mu_L = {mu_L:g}, "
                         f"mu_R = {mu_R:g}, T_L = {T_L:g}, T_R = {T_R:g})")
    return LevelChain(ladder, np.maximum(k, 0.0))
