r"""Escape from a level chain: the rupture (or switching) rate, MFPT, escape eigenvalue, yield, exponent.

Re-inject every escape into level 0: the stationary escape flux of that recurrent chain is the
rupture rate ``R``, and by renewal ``R = 1 / MFPT(0 -> absorbing)`` exactly. ``R`` spans 1e-25 and
less of the level rates at low current, where a linear solve or an eigenvalue loses everything
(their round-off is ``eps`` of the largest rate), so the stationary populations ``P_i`` of the
re-injected chain are computed by the subtraction-free elimination of Grassmann, Taksar and Heyman
(:func:`gth_stationary`): eliminating the highest level ``k`` folds its flows into the others,
``q_ij += q_ik q_kj / S_k`` with ``S_k = sum_{j<k} q_kj``, and back substitution gives
``P_k = sum_{i<k} P_i q_ik / S_k``; only sums, products and quotients of positive numbers, so every
``P_i`` and ``R = sum_i P_i esc_i`` keep full relative precision. ``MFPT(i)`` is ``1/R`` of the chain
re-injected into ``i``.

The escape eigenvalue ``lambda_1`` (the slowest decay of the survival probability, ``1/lambda_1`` the
MFPT from the quasi-stationary distribution) is the smallest eigenvalue of the transient block of
``-G``; it is reported only where it is resolved against round-off (``lambda_1 > 1e-9`` of the largest
rate), else ``None``. ``lambda_1 ~ R`` only when escape is slow against relaxation.

Units: rates 1/time, times 1/energy (hbar = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from .channels import elastic_current
from .conductor import Conductor, FlatConductor
from .config_base import ConfigError
from .ladder import Ladder, morse_bound
from .level_chain import LevelChain, level_chain
from .model import BATHS, clean

if TYPE_CHECKING:
    from .config import Config

__all__ = ["gth_stationary", "Escape", "escape", "mfpt_linear", "EIGEN_RESOLUTION", "MFPT_ALL_MAX",
           "RuptureResult", "rupture", "rupture_ladder", "keep_energy", "scaled_conductor", "EXPONENT_STEP",
           "PAULI_LIMIT"]

#: ``lambda_1`` is reported where it exceeds this fraction of the largest rate (else it is round-off).
EIGEN_RESOLUTION = 1e-9
#: The MFPT from every level (one elimination per level) is computed up to this many transient levels.
MFPT_ALL_MAX = 128


def gth_stationary(q: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""Stationary distribution of a continuous-time chain by GTH elimination (subtraction-free).

    Parameters
    ----------
    q
        Off-diagonal rates ``q[i, j]`` from ``i`` to ``j`` (1/time; the diagonal is ignored), >= 0.

    Returns
    -------
    ndarray
        ``pi`` (sums to 1), with full relative precision in every entry. States that cannot be left
        (no rate out after the elimination) and are reached take all the weight (a trap).
    """
    a = np.array(q, dtype=float)
    n = a.shape[0]
    np.fill_diagonal(a, 0.0)
    S = np.zeros(n)
    for k in range(n - 1, 0, -1):
        s = a[k, :k].sum()
        S[k] = s
        if s > 0:
            a[:k, :k] += np.outer(a[:k, k], a[k, :k] / s)
    pi = np.zeros(n)
    pi[0] = 1.0
    trap = np.zeros(n, bool)
    for k in range(1, n):
        inflow = pi[:k] @ a[:k, k]
        if S[k] > 0:
            pi[k] = inflow / S[k]
        elif inflow > 0:
            trap[k] = True
    if trap.any():
        return trap / trap.sum()
    return pi / pi.sum()


def _reinjected(chain: LevelChain, start: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Transient rates with every escape sent back to transient level ``start``, ordered so that
    ``start`` comes first (GTH keeps its first state to the end). Returns ``(q, order)``."""
    Q = chain.transient_rates.copy()
    np.fill_diagonal(Q, 0.0)
    Q[:, start] += chain.escape
    n = Q.shape[0]
    order = np.r_[start, np.delete(np.arange(n), start)]
    return Q[np.ix_(order, order)], order


def _rate_from(chain: LevelChain, start: int) -> tuple[float, NDArray[np.float64]]:
    q, order = _reinjected(chain, start)
    p = np.empty(q.shape[0])
    p[order] = gth_stationary(q)
    return float(p @ chain.escape), p


def mfpt_linear(chain: LevelChain) -> NDArray[np.float64]:
    """MFPT from every transient level by a linear solve of ``-G_TT tau = 1`` (a reference route, valid only
    where ``R`` is not below about 1e-12 of the largest rate; time units)."""
    Q = chain.transient_rates.copy()
    np.fill_diagonal(Q, 0.0)
    A = np.diag(chain.out_rate) - Q
    return np.linalg.solve(A, np.ones(Q.shape[0]))


@dataclass(frozen=True)
class Escape:
    """Escape from level 0 of a chain, with every escape re-injected there.

    Attributes
    ----------
    rate
        ``R = 1 / MFPT(0)`` (1/time); 0 where level 0 cannot reach an absorbing level.
    mfpt
        MFPT from each transient level (time; ``inf`` where ``R = 0``; ``nan`` where not computed,
        beyond :data:`MFPT_ALL_MAX` levels except level 0).
    populations
        Re-injected stationary populations ``P_i`` of the transient levels (sum 1).
    eigen_rate
        ``lambda_1`` (1/time) or ``None`` where not resolved against round-off.
    escape_by_bath
        Share of the escape flux carried by each bath's final jump (``BATHS`` order; sums to 1, or zeros).
    energy_by_bath
        Net energy each bath puts into the mode in the re-injected steady state (energy/time).
    """

    rate: float
    mfpt: NDArray[np.float64]
    populations: NDArray[np.float64]
    eigen_rate: float | None
    escape_by_bath: NDArray[np.float64]
    energy_by_bath: NDArray[np.float64]
    extra: dict[str, Any] = field(default_factory=dict)


def escape(chain: LevelChain, mfpt_all: bool = True) -> Escape:
    """Rupture rate, re-injected populations, MFPTs, escape eigenvalue and per-bath shares of a chain."""
    R, P = _rate_from(chain, 0)
    n = chain.ladder.n_bound
    mfpt = np.full(n, math.nan)
    mfpt[0] = 1.0 / R if R > 0 else math.inf
    if mfpt_all and n <= MFPT_ALL_MAX:
        for i in range(1, n):
            Ri, _ = _rate_from(chain, i)
            mfpt[i] = 1.0 / Ri if Ri > 0 else math.inf
    esc_b = P @ chain.escape_by_bath.T  # (5,)
    share = esc_b / R if R > 0 else np.zeros(len(BATHS))
    dE = chain.ladder.E[None, :] - chain.ladder.E[chain.ladder.transient][:, None]  # (n_t, n)
    energy = np.einsum("r,brj,rj->b", P, chain.k, dE)
    return Escape(R, mfpt, P, _eigen_rate(chain), share, energy)


def _eigen_rate(chain: LevelChain) -> float | None:
    Q = chain.transient_rates.copy()
    np.fill_diagonal(Q, 0.0)
    A = np.diag(chain.out_rate) - Q
    scale = float(chain.out_rate.max(initial=0.0))
    if scale == 0:
        return None
    ev = np.linalg.eigvals(A)
    lam = float(np.min(ev.real))
    return lam if lam > EIGEN_RESOLUTION * scale else None


# --------------------------------------------------------------------------- from a config

#: Step in ``ln s`` of the central difference of the exponent ``d ln R / d ln s``.
EXPONENT_STEP = 1e-3
#: Validity numbers above this are flagged: the Pauli rates are not controlled there.
PAULI_LIMIT = 0.1


def scaled_conductor(conductor: Conductor | FlatConductor, s: float) -> Conductor | FlatConductor:
    """The conductor with its tip coupling scaled by ``s``: ``gamma_L -> s gamma_L`` (orbital), or
    ``K_LR, K_RL -> s K`` and ``K_LL -> s^2 K_LL`` (flat kernels); ``gamma_R``, ``K_RR`` unchanged."""
    if isinstance(conductor, FlatConductor):
        return FlatConductor(s * s * conductor.K_LL, conductor.K_RR, s * conductor.K_LR, s * conductor.K_RL)
    return Conductor(conductor.H, s * conductor.gamma_L, conductor.gamma_R, conductor.M)


def _top_energy(config: Config) -> float:
    """Energy of the highest bound level without building the box (Morse: closed form)."""
    pot = config.mode.potential
    om = config.mode.omega
    if pot.kind == "morse":
        return float(morse_bound(om, pot.params["D"])[1][-1])
    if pot.kind == "truncated":
        return om * (pot.params["bound"] - 0.5)
    if pot.kind == "grid":
        return float(pot.params["absorb_above"])
    return 0.0


def keep_energy(config: Config, V_max: float | None = None) -> float:
    """Box states are kept up to ``E_top + max(V, 0) + 40 T`` (``T`` the largest temperature, electrons or
    phonons): above it every channel rate into them is below ``e^-40`` of its scale."""
    b = config.bias
    V = b.V if V_max is None else V_max
    T = max(b.T_e, b.T_L, b.T_R, config.phonon_bath.T)
    return _top_energy(config) + max(V, 0.0) + 40.0 * T


def rupture_ladder(config: Config, V_max: float | None = None) -> Ladder:
    """The ladder of a config's ``[mode.potential]`` (refused for the harmonic kind: nothing absorbs)."""
    config.require_one_mode("rupture")
    pot = config.mode.potential
    if pot.kind == "harmonic":
        raise ConfigError("mode.potential.kind = 'harmonic' has no absorbing level, so there is no rupture: set "
                          "[mode.potential] kind = 'truncated', 'morse', 'grid' or 'file' (docs/ladder.md)")
    return pot.ladder(config.mode.omega, keep_energy(config, V_max), config.run.cutoff)


@dataclass(frozen=True)
class RuptureResult:
    """Rupture rate of a ladder config with its exponent, yield and validity numbers.

    Attributes
    ----------
    rate, mfpt, eigen_rate
        ``R`` (1/time), ``MFPT(0) = 1/R`` (time), ``lambda_1`` (1/time, None where unresolved).
    exponent
        ``d ln R / d ln s`` at ``s = 1`` (central difference, step :data:`EXPONENT_STEP`); None where R = 0.
    current, yield_
        Elastic Landauer current (electrons/time; None for flat kernels) and ``R / current``.
    secular, top
        ``max (Gamma_i + Gamma_j) / (2 |E_i - E_j|)`` over bound pairs and ``Gamma_top / (threshold - E_top)``.
    kappa
        The harmonic mode's ``kappa`` at the same bias (for the comparison with the runaway).
    """

    ladder: Ladder
    chain: LevelChain
    escape: Escape
    rate: float
    mfpt: float
    eigen_rate: float | None
    exponent: float | None
    current: float | None
    yield_: float | None
    secular: float
    top: float
    kappa: float
    V: float

    @property
    def valid(self) -> bool:
        """Both validity numbers below :data:`PAULI_LIMIT` (the Pauli rates are controlled)."""
        return bool(self.secular < PAULI_LIMIT and self.top < PAULI_LIMIT)

    def to_dict(self) -> dict[str, Any]:
        """JSON record (non-finite numbers ``None``): the keys of ``ehp rupture --json``."""
        lad, e = self.ladder, self.escape
        t = lad.transient
        levels = [{"index": int(i), "E": float(lad.E[i]), "P": float(e.populations[r]),
                   "escape_rate": float(self.chain.escape[r]), "mfpt": float(e.mfpt[r]),
                   "out_rate": float(self.chain.out_rate[r])} for r, i in enumerate(t)]
        ch = {b: {"escape_share": float(e.escape_by_bath[k]), "energy_in": float(e.energy_by_bath[k])}
              for k, b in enumerate(BATHS)}
        info = {k: v for k, v in lad.info.items() if k != "E_box_bound"}
        return clean({
            "rate": self.rate, "mfpt": self.mfpt, "eigen_rate": self.eigen_rate, "bound_levels": lad.n_bound,
            "levels": levels, "shares": {b: ch[b]["escape_share"] for b in BATHS}, "channels": ch,
            "current": self.current, "yield": self.yield_, "exponent": self.exponent, "V": self.V,
            "kappa_harmonic": self.kappa,
            "validity": {"secular": self.secular, "top": self.top, "valid": self.valid, "limit": PAULI_LIMIT},
            "ladder": {"kind": lad.kind, "n_levels": lad.n_levels, "threshold": lad.threshold, **info},
        })


def _chain(config: Config, ladder: Ladder, conductor: Conductor | FlatConductor) -> LevelChain:
    b = config.bias
    return level_chain(ladder, conductor, b.mu_L, b.mu_R, b.T_L, b.T_R, config.phonon_bath.gamma,
                       config.phonon_bath.T)


def _validity(chain: LevelChain) -> tuple[float, float]:
    lad = chain.ladder
    t = lad.transient
    G = chain.out_rate
    E = lad.E[t]
    if t.size > 1:
        dE = np.abs(E[:, None] - E[None, :])
        S = (G[:, None] + G[None, :]) / 2.0
        off = ~np.eye(t.size, dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(dE > 0, S / np.where(dE > 0, dE, 1.0), np.where(S > 0, np.inf, 0.0))
        secular = float(ratio[off].max())
    else:
        secular = 0.0
    gap = lad.threshold - lad.E_top
    top = float(G[-1] / gap) if gap > 0 else math.inf
    return secular, top


def rupture(config: Config, ladder: Ladder | None = None, *, exponent: bool = True,
            mfpt_all: bool = True) -> RuptureResult:
    """Rupture rate, MFPT, escape eigenvalue, populations, exponent, current and yield of a ladder config.

    ``ladder``: a prebuilt :func:`rupture_ladder` (a bias scan builds it once for its largest bias).
    The exponent needs two more chains at ``s = exp(+-EXPONENT_STEP)`` (the levels are reused).
    """
    from .model import rate_model

    lad = rupture_ladder(config) if ladder is None else ladder
    cond = config.conductor.build()
    chain = _chain(config, lad, cond)
    e = escape(chain, mfpt_all)
    R = e.rate
    n = None
    if exponent and R > 0:
        h = EXPONENT_STEP
        Rp = escape(_chain(config, lad, scaled_conductor(cond, math.exp(h))), False).rate
        Rm = escape(_chain(config, lad, scaled_conductor(cond, math.exp(-h))), False).rate
        if Rp > 0 and Rm > 0:
            n = (math.log(Rp) - math.log(Rm)) / (2 * h)
    b = config.bias
    current = None
    if isinstance(cond, Conductor):
        current = elastic_current(cond, b.mu_L, b.mu_R, b.T_L, b.T_R)
    yld = R / current if current is not None and current > 0 else None
    secular, top = _validity(chain)
    kappa = float(rate_model(config).kappa)
    return RuptureResult(lad, chain, e, R, e.mfpt[0], e.eigen_rate, n, current, yld, secular, top, kappa, b.V)
