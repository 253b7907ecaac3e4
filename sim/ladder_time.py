r"""Time domain on a ladder of levels: populations ``P_i(t)``, the survival ``S(t)`` and the escape flux.

A ladder config (``[mode.potential]`` with ``kind`` other than ``harmonic``) is one mode whose levels
are not equally spaced: its Pauli rates form the labelled Markov chain :class:`sim.level_chain.LevelChain`
(the harmonic birth-death chain of :class:`sim.model.JumpModel` is its special case). The master
equation over all levels ``i`` (absorbing levels keep what reaches them: the reaction has happened)::

    dP/dt = G P,    G[j, i] = sum_b k_b(i -> j)  (i transient),   G[i, i] = -Gamma_i = -sum_j G[j, i]

is solved on a time grid by its exact propagator ``P(t + dt) = exp(G dt) P(t)`` (a dense matrix
exponential, one per distinct step; the number of levels is small). From it:

- the survival probability ``S(t) = sum_{i transient} P_i(t)`` (the probability that no rupture has
  happened by ``t``), with ``S(0) = 1`` and ``-dS/dt = F(t) = sum_i esc_i P_i(t)`` (the escape flux);
- the hazard ``h(t) = F(t) / S(t) = -d ln S / dt``, which tends to the escape eigenvalue ``lambda_1``
  (the slowest decay rate of the transient block) at long times;
- the mean first-passage time ``MFPT = int_0^inf S(t) dt``, which equals ``1/R`` of
  :func:`sim.rupture.escape` from level 0 (renewal);
- ``N(t) = sum_i i P_i(t)`` over the levels that do not absorb (``i`` the level index in energy order:
  the Fock number in the harmonic limit; the mean level of the trajectories times their survival),
  ``E(t) = sum_i E_i P_i(t)`` (energy from the well bottom), and the
  per-bath fluxes of the labelled rates at ``P(t)``::

      J_c(t)  = sum_{i,j} k_c(i -> j) (E_j - E_i) P_i     energy e-bath c -> mode
      Ie_c(t) = sum_{i,j} k_c(i -> j) dQ_c(i -> j) P_i    electrons L -> R
      J_ph(t) = -sum_{i,j} k_ph(i -> j) (E_j - E_i) P_i  energy mode -> ph-bath

  which are the fluxes of :func:`sim.results.evolution_frame` in the harmonic limit.

The Lindblad route (:func:`evolve_ladder_lindblad`) solves the same dynamics with QuTiP's ``mesolve``:
``H = diag(E)`` and one collapse operator ``sqrt(k_b(i -> j)) |j><i|`` per label (bath, direction, from,
to). From a diagonal state these keep the density matrix diagonal and its diagonal obeys the Pauli
equation above exactly, so both routes agree to the solver's tolerance.

Initial states (:func:`ladder_initial`): ``vacuum`` (the lowest level), ``fock:n`` (the ``n``-th level
that does not absorb, in energy order), ``thermal:T=<temperature>`` (Boltzmann weights
``exp(-E_i/T)`` over the levels that do not absorb), ``steady`` only where nothing absorbs (the
stationary distribution of the chain), or an explicit distribution over the levels that do not
absorb. Units: energies in the config's unit, times 1/energy (hbar = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import linalg

from .config_base import ConfigError
from .initial import InitialSpec
from .level_chain import LevelChain, level_chain
from .model import BATHS, clean
from .results import TimeSeries

if TYPE_CHECKING:
    from .config import Config
    from .ladder import Ladder

__all__ = ["is_ladder", "time_ladder", "ladder_chain", "ladder_initial", "LadderEvolution", "evolve_ladder",
           "evolve_ladder_lindblad", "chain_record", "chain_operators", "survival", "mfpt_from", "LADDER_INITIAL",
           "LINDBLAD_MAX_LEVELS", "restricted_mean", "exact_mfpt", "rupture_summary"]

#: Initial states a ladder config takes (``steady`` only where nothing absorbs).
LADDER_INITIAL: tuple[str, ...] = ("vacuum", "fock", "thermal", "steady", "distribution")
#: Largest number of levels of the Lindblad route (QuTiP's Liouvillian is ``n^2 x n^2``, sparse).
LINDBLAD_MAX_LEVELS = 400


def is_ladder(config: Config) -> bool:
    """True where the config's mode has a ladder of levels other than the harmonic one (``[mode.potential]``)."""
    pot = getattr(config.mode, "potential", None)  # several modes (ModesConfig) are harmonic
    return pot is not None and pot.kind != "harmonic"


def time_ladder(config: Config) -> Ladder:
    """The levels of a one-mode config for the time-domain routes (the harmonic kind included: its Fock ladder
    of ``run.cutoff`` levels)."""
    from .rupture import keep_energy

    config.require_one_mode("ladder time-domain")
    pot = config.mode.potential
    return pot.ladder(config.mode.omega, keep_energy(config), config.run.cutoff)


def ladder_chain(config: Config, ladder: Ladder | None = None) -> LevelChain:
    """The labelled Pauli rates of a config's ladder at its bias point (:func:`sim.level_chain.level_chain`)."""
    lad = time_ladder(config) if ladder is None else ladder
    b = config.bias
    return level_chain(lad, config.conductor.build(), b.mu_L, b.mu_R, b.T_L, b.T_R, config.phonon_bath.gamma,
                       config.phonon_bath.T)


def ladder_initial(spec: str | InitialSpec | ArrayLike, chain: LevelChain) -> NDArray[np.float64]:
    """The initial distribution over all levels of the chain (zero on the absorbing ones), sum 1.

    Raises
    ------
    ConfigError
        A state a ladder cannot start from (``coherent:alpha``, ``thermal:N``: give ``thermal:T=``),
        ``fock:n`` beyond the levels that do not absorb, ``steady`` where some level absorbs, a
        distribution longer than the levels that do not absorb.
    """
    s = InitialSpec.parse(spec)
    lad = chain.ladder
    t = lad.transient
    nb = t.size
    p = np.zeros(lad.n_levels)
    if s.kind == "vacuum":
        p[t[0]] = 1.0
    elif s.kind == "fock":
        if s.value >= nb:
            raise ConfigError(f"run.initial = {s.text!r}: the ladder has {nb} levels that do not absorb (fock:0 .. "
                              f"fock:{nb - 1})")
        p[t[int(s.value)]] = 1.0
    elif s.kind == "thermal":
        if s.T is None:
            raise ConfigError(f"run.initial = {s.text!r}: a mean number does not fix a distribution over anharmonic "
                              "levels; give the temperature, thermal:T=<temperature>")
        E = lad.E[t] - lad.E[t[0]]
        w = np.exp(-E / s.T) if s.T > 0 else (E == 0).astype(float)
        p[t] = w / w.sum()
    elif s.kind == "steady":
        if lad.absorbing.any():
            raise ConfigError("run.initial = 'steady': a ladder with absorbing levels has no steady state (every "
                              "trajectory ruptures); start from vacuum, fock:n or thermal:T=<temperature>")
        from .rupture import gth_stationary

        p[t] = gth_stationary(chain.transient_rates)
    elif s.kind == "distribution":
        q = np.asarray(s.value, dtype=float)
        if q.size > nb:
            raise ConfigError(f"run.initial: an explicit distribution over {q.size} levels, but the ladder has {nb} "
                              "levels that do not absorb")
        p[t[: q.size]] = np.maximum(q, 0.0) / np.maximum(q, 0.0).sum()
    else:
        raise ConfigError(f"run.initial = {s.text!r}: a ladder of levels starts from vacuum, fock:n, "
                          "thermal:T=<temperature>, steady (nothing absorbing) or a distribution, not from a "
                          f"{s.kind} state")
    return p


def chain_operators(chain: LevelChain) -> pd.DataFrame:
    """The labelled transitions of a chain as an operator table (``operators.parquet`` of a ladder run).

    One row per nonzero ``(bath, direction, from, to)``: ``op`` (int32), ``channel``, ``direction``
    (categorical, as the jump table), ``from``, ``to`` (level indices), ``mode`` (0), ``rate`` (1/time),
    ``dn`` (``to - from``: levels climbed), ``dQ`` (electrons L -> R), ``dE`` (``E_to - E_from``, energy
    into the mode), ``absorbing`` (whether ``to`` absorbs: the jump is the rupture).
    """
    from .trajectories.table import CHANNEL_DTYPE, DIRECTION_DTYPE

    j = chain.jumps()
    n = j["rate"].size
    return pd.DataFrame({
        "op": np.arange(n, dtype=np.int32),
        "channel": pd.Categorical(list(j["channel"]), dtype=CHANNEL_DTYPE),
        "direction": pd.Categorical(list(j["direction"]), dtype=DIRECTION_DTYPE),
        "from": j["from"].astype(np.int32), "to": j["to"].astype(np.int32), "mode": np.zeros(n, np.int16),
        "rate": j["rate"].astype(float), "dn": (j["to"] - j["from"]).astype(np.int32),
        "dQ": j["dQ"].astype(float), "dE": j["dE"].astype(float),
        "absorbing": chain.ladder.absorbing[j["to"]].astype(bool),
    })


def chain_record(chain: LevelChain) -> dict[str, Any]:
    """What identifies a chain's levels (``metadata.json``): :meth:`sim.level_chain.LevelChain.record`."""
    return chain.record()


# --------------------------------------------------------------------------- exact propagator


def _propagate(G: NDArray[np.float64], p0: NDArray[np.float64], t: NDArray[np.float64]) -> NDArray[np.float64]:
    """``P(t_k) = exp(G (t_k - t_0)) p0`` on the grid, one dense ``exp(G dt)`` per distinct step."""
    P = np.empty((t.size, p0.size))
    P[0] = p0
    cache: dict[float, NDArray[np.float64]] = {}
    for k in range(1, t.size):
        dt = float(t[k] - t[k - 1])
        key = round(dt, 12) if dt else 0.0
        M = cache.get(key)
        if M is None:
            M = linalg.expm(G * dt)
            if len(cache) < 64:
                cache[key] = M
        P[k] = M @ P[k - 1]
    return P


def survival(chain: LevelChain, t: ArrayLike, p0: ArrayLike | None = None) -> NDArray[np.float64]:
    """Exact survival ``S(t) = sum_{transient} [exp(G_TT t) p0_T]`` at arbitrary times ``t >= 0`` (any order).

    The times are sorted and propagated step by step on the transient block (small); ``p0`` defaults
    to the lowest level. Units: ``t`` in 1/energy.
    """
    t = np.asarray(t, dtype=float)
    flat = t.ravel()
    order = np.argsort(flat, kind="stable")
    tr = chain.ladder.transient
    A = _transient_block(chain)
    p = np.zeros(tr.size)
    if p0 is None:
        p[0] = 1.0
    else:
        p = np.asarray(p0, dtype=float)[tr].copy()
    out = np.empty(flat.size)
    now = 0.0
    for i in order:
        dt = flat[i] - now
        if dt < 0:
            raise ValueError(f"survival needs times >= 0, got {flat[i]:g}")
        if dt > 0:
            p = linalg.expm(A * dt) @ p
            now = flat[i]
        out[i] = p.sum()
    return out.reshape(t.shape)


def _transient_block(chain: LevelChain) -> NDArray[np.float64]:
    """``G_TT`` (column = from, row = to) over the levels that do not absorb."""
    Q = chain.transient_rates.copy()
    np.fill_diagonal(Q, 0.0)
    return Q.T - np.diag(chain.out_rate)


def mfpt_from(chain: LevelChain, p0: ArrayLike) -> float:
    """``int_0^inf S dt = 1^T (-G_TT)^{-1} p0_T``: the mean first-passage time from the distribution ``p0``
    (linear solve: a reference valid where the rupture rate is not below ~1e-12 of the largest rate)."""
    tr = chain.ladder.transient
    return float(np.linalg.solve(-_transient_block(chain), np.asarray(p0, dtype=float)[tr]).sum())


@dataclass(frozen=True, kw_only=True)
class LadderEvolution(TimeSeries):
    """Level populations of a ladder on a time grid (population or Lindblad route).

    Attributes
    ----------
    t
        Times (1/energy), from the time of the initial state.
    P
        ``P_i(t)`` over all levels, shape ``(n_t, n_levels)`` (absorbing levels: what has reached them).
    S
        Survival ``sum_{transient} P_i(t)``.
    N
        ``sum_{transient} i P_i(t)``, ``i`` the level index (energy order; the Fock number in the harmonic limit).
    escape_flux
        ``F(t) = sum_i esc_i P_i(t) = -dS/dt`` (1/time).
    chain
        The labelled rates (:class:`sim.level_chain.LevelChain`).
    p0
        The initial distribution over all levels.
    """

    t: NDArray[np.float64]
    P: NDArray[np.float64]
    S: NDArray[np.float64]
    N: NDArray[np.float64]
    escape_flux: NDArray[np.float64]
    chain: LevelChain
    p0: NDArray[np.float64]
    method: str = "population"

    @property
    def route(self) -> str:  # type: ignore[override]
        """``population`` or ``lindblad``: the route that made the result."""
        return self.method

    def model_record(self) -> dict[str, Any] | None:
        return {"ladder": chain_record(self.chain)}

    @property
    def hazard(self) -> NDArray[np.float64]:
        """``h(t) = F(t)/S(t) = -d ln S/dt`` (1/time; NaN where ``S = 0``)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.S > 0, self.escape_flux / self.S, np.nan)

    @property
    def energy(self) -> NDArray[np.float64]:
        """``E(t) = sum_{transient} E_i P_i(t)`` (energy from the well bottom)."""
        tr = self.chain.ladder.transient
        return self.P[:, tr] @ self.chain.ladder.E[tr]

    def fluxes(self) -> dict[str, NDArray[np.float64]]:
        """``J_c``, ``Ie_c`` per e-bath, ``J_ph`` and the totals ``J``, ``Ie`` at ``P(t)`` (module docstring)."""
        ch = self.chain
        tr = ch.ladder.transient
        dE = ch.ladder.E[None, :] - ch.ladder.E[tr][:, None]  # (n_t, n)
        sgn = np.sign(dE) + (dE == 0)  # emission (dE >= 0) counts +1
        Pt = self.P[:, tr]  # (n_time, n_t)
        J = np.einsum("kr,brj,rj->bk", Pt, ch.k, dE)
        from .conductor import CHANNEL_SIGN

        Ie = np.einsum("kr,brj,rj->bk", Pt, ch.k[:4], sgn) * np.asarray(CHANNEL_SIGN)[:, None]
        out = {f"J_{c}": J[i] for i, c in enumerate(BATHS[:4])}
        out.update({f"Ie_{c}": Ie[i] for i, c in enumerate(BATHS[:4])})
        out["J"] = J[:4].sum(axis=0)
        out["J_ph"] = -J[4]
        out["Ie"] = Ie.sum(axis=0)
        return out

    def to_frame(self) -> pd.DataFrame:
        """``t, N, S, hazard, escape_flux, E_mode, J, J_ph, Ie, J_LL .. J_RL, Ie_LL .. Ie_RL, P_0 .. P_{nb-1},
        P_absorbed`` (``P_i`` over the levels that do not absorb, in energy order)."""
        f = self.fluxes()
        cols: dict[str, Any] = {"t": self.t, "N": self.N, "S": self.S, "hazard": self.hazard,
                                "escape_flux": self.escape_flux, "E_mode": self.energy,
                                "J": f["J"], "J_ph": f["J_ph"], "Ie": f["Ie"]}
        cols.update({f"J_{c}": f[f"J_{c}"] for c in BATHS[:4]})
        cols.update({f"Ie_{c}": f[f"Ie_{c}"] for c in BATHS[:4]})
        tr = self.chain.ladder.transient
        for r, i in enumerate(tr):
            cols[f"P_{r}"] = self.P[:, i]
        cols["P_absorbed"] = self.P[:, self.chain.ladder.absorbing].sum(axis=1)
        return pd.DataFrame(cols)


def _result(chain: LevelChain, t: NDArray[np.float64], P: NDArray[np.float64], p0: NDArray[np.float64],
            route: str) -> LadderEvolution:
    tr = chain.ladder.transient
    Pt = P[:, tr]
    return LadderEvolution(t=t, P=P, S=Pt.sum(axis=1), N=Pt @ tr.astype(float), escape_flux=Pt @ chain.escape,
                           chain=chain, p0=p0, method=route)


def _grid(t: ArrayLike) -> NDArray[np.float64]:
    t = np.asarray(t, dtype=float).ravel()
    if t.size < 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
        raise ConfigError("the time grid must be finite and non-decreasing")
    return t


def evolve_ladder(chain: LevelChain, t: ArrayLike, initial: str | InitialSpec | ArrayLike = "vacuum"
                  ) -> LadderEvolution:
    """Level populations on the grid ``t`` by the exact propagator ``exp(G dt)`` (module docstring)."""
    t = _grid(t)
    p0 = ladder_initial(initial, chain)
    return _result(chain, t, _propagate(chain.generator(), p0, t), p0, "population")


def evolve_ladder_lindblad(chain: LevelChain, t: ArrayLike, initial: str | InitialSpec | ArrayLike = "vacuum",
                           options: dict[str, Any] | None = None) -> LadderEvolution:
    """Level populations by QuTiP ``mesolve``: ``H = diag(E)``, collapse operators ``sqrt(k) |j><i|`` per label.

    Raises
    ------
    ConfigError
        More than :data:`LINDBLAD_MAX_LEVELS` levels.
    """
    import qutip

    from .lindblad import DEFAULT_OPTIONS

    t = _grid(t)
    lad = chain.ladder
    n = lad.n_levels
    if n > LINDBLAD_MAX_LEVELS:
        raise ConfigError(f"the Lindblad route on a ladder of {n} levels: at most {LINDBLAD_MAX_LEVELS} (its "
                          "Liouvillian is n^2 x n^2); use --method population (the exact propagator)")
    p0 = ladder_initial(initial, chain)
    j = chain.jumps()
    c_ops = [math.sqrt(k) * qutip.basis(n, int(b)) * qutip.basis(n, int(a)).dag()
             for k, a, b in zip(j["rate"], j["from"], j["to"], strict=True)]
    H = qutip.Qobj(np.diag(lad.E - lad.E.min()))
    e_ops = [qutip.fock_dm(n, i) for i in range(n)]
    opts = {**DEFAULT_OPTIONS, "nsteps": 10**7, "progress_bar": False, "store_states": False, **(options or {})}
    res = qutip.mesolve(H, qutip.Qobj(np.diag(p0)), t - t[0], c_ops, e_ops=e_ops, options=opts)
    P = np.array([np.real(np.asarray(e, dtype=complex)) for e in res.expect]).T
    return _result(chain, t, P, p0, "lindblad")


# --------------------------------------------------------------------------- rupture times


def restricted_mean(chain: LevelChain, p0: ArrayLike, t_end: float) -> float:
    r"""``int_0^T S(t) dt`` (the mean of ``min(T_rupture, T)``), exact by the augmented exponential
    ``exp([[G_TT, p0], [0, 0]] T)`` (Van Loan). Units: time."""
    A = _transient_block(chain)
    n = A.shape[0]
    M = np.zeros((n + 1, n + 1))
    M[:n, :n] = A * t_end
    M[:n, n] = np.asarray(p0, dtype=float)[chain.ladder.transient] * t_end
    return float(linalg.expm(M)[:n, n].sum())


def exact_mfpt(chain: LevelChain, p0: ArrayLike) -> float:
    """Mean first-passage time into the absorbing levels from the distribution ``p0``: ``sum_i p0_i MFPT(i)`` with
    the MFPT of every level by subtraction-free elimination (:func:`sim.rupture.escape`; time, ``inf`` where
    nothing is reached). Beyond :data:`sim.rupture.MFPT_ALL_MAX` levels it falls back to :func:`mfpt_from`."""
    from .rupture import escape

    p = np.asarray(p0, dtype=float)[chain.ladder.transient]
    if not chain.ladder.absorbing.any():
        return math.inf
    m = escape(chain).mfpt
    use = p > 0
    if np.any(np.isnan(m[use])):
        return mfpt_from(chain, p0)
    return float(p[use] @ m[use])


def rupture_summary(t_stop: ArrayLike | tuple[int, float, float], ntraj: int, chain: LevelChain, p0: ArrayLike,
                    t_end: float) -> dict[str, Any]:
    r"""Rupture times of ``ntraj`` trajectories run to ``t_end`` against the exact chain.

    ``t_stop``: the rupture times, or their sums ``(n, sum t, sum t^2)``. Returns ``fraction`` ruptured
    by ``t_end`` (``exact_fraction = 1 - S(t_end)``); ``mean_time`` of the ruptured ones with its standard
    error ``se = s/sqrt(n)``; ``exact_mean_time = E[T | T <= t_end] = (int_0^T S dt - T S(T)) / (1 - S(T))``
    (the MFPT where ``S(t_end)`` is negligible); ``mfpt`` the exact unconditional mean; ``restricted_mean``:
    the mean of ``min(T_i, t_end)`` over all trajectories (no censoring bias), its ``se`` and its exact
    value ``int_0^T S dt``. Units: time.
    """
    if isinstance(t_stop, tuple):
        n, s1, s2 = int(t_stop[0]), float(t_stop[1]), float(t_stop[2])
    else:
        ts = np.asarray(t_stop, dtype=float)
        n, s1, s2 = int(ts.size), float(ts.sum()), float((ts**2).sum())
    T = float(t_end)
    S_end = float(survival(chain, T, np.asarray(p0, dtype=float)))
    rm = restricted_mean(chain, p0, T)
    cond = (rm - T * S_end) / (1.0 - S_end) if S_end < 1.0 else math.nan

    def mean_se(k, a, b):
        if k < 1:
            return None, None
        m = a / k
        return m, (math.sqrt(max(b - k * m * m, 0.0) / (k - 1) / k) if k > 1 else None)

    mean, se = mean_se(n, s1, s2)
    rest = max(int(ntraj) - n, 0)
    rmean, rse = mean_se(int(ntraj), s1 + rest * T, s2 + rest * T * T)
    out = {"n_ruptured": n, "ntraj": int(ntraj), "fraction": n / ntraj if ntraj else math.nan,
           "exact_fraction": 1.0 - S_end, "mean_time": mean, "se": se, "exact_mean_time": cond,
           "mfpt": exact_mfpt(chain, p0), "t_end": T,
           "restricted_mean": {"value": rmean, "se": rse, "exact": rm}}
    return clean(out)
