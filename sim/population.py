r"""Birth-death master equation for the Fock populations ``P_n(t)`` (docs/theory.md).

The diagonal of the section-4 Lindblad equation closes on itself:

.. math::

    \dot P_n = \mathrm{up}(n-1) P_{n-1} + \mathrm{down}(n+1) P_{n+1} - [\mathrm{up}(n) + \mathrm{down}(n)] P_n,

    \mathrm{up}(n) = (E + \gamma_{ph} n_{ph})(n + 1),\qquad
    \mathrm{down}(n) = (\textstyle\sum_c \tau^{abs}_c + \gamma_{ph}(n_{ph} + 1))\, n,

with the coefficients :attr:`RateModel.up_rate` and :attr:`RateModel.down_rate`
(energy units = 1/time, hbar = 1). The generator ``G`` (``dP/dt = G P``) is
tridiagonal on ``n = 0 .. cutoff - 1``. Truncation is *reflecting*: the top level
has no birth, so probability is conserved exactly and the truncated chain is the
diagonal of the truncated Lindblad equation (``a^dagger |cutoff-1> = 0`` in QuTiP),
level for level. The price is a pile-up at the top level; a guard watches it.

Cutoff and guard
----------------
With ``x = N/(N+1)`` a geometric (Bose-Einstein) distribution of mean ``N`` puts
``P(n >= K - 1) = x^(K-1)`` on the top level ``K - 1`` of a ``K``-level space and
beyond. :func:`choose_cutoff` takes ``N`` as the largest of ``N_ss``, the initial mean
and (given a time grid) the rate-equation ``N(t)``, a geometric being the widest
distribution of a given mean, and also requires the initial distribution's own
``P(n >= K - 1)`` to be below ``tol``. During an evolution the probability of the top
level is checked at every time point: once it exceeds ``tol`` the result is no longer
trustworthy and the evolution stops at the crossing time (found by root finding).
A stable model that hits the guard raises :class:`TruncationError` (the cutoff was too
small); an unstable one (``kappa <= 0``) returns the partial result with ``stopped_at``
and a message (a runaway mode is an answer, not a crash).

Error of ``N`` from the truncation: ``|dN/dt - dN_rate/dt| = up_rate K P_{K-1}``, so
``|N - N_rate| <= up_rate K max_t P_{K-1} (t - t_0)`` up to round-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy.sparse.linalg import expm_multiply

from .cutoff import DEFAULT_TOL, MAX_CUTOFF, choose_cutoff, geometric_cutoff, predicted_tail
from .grids import time_grid
from .guards import GuardError
from .initial import InitialSpec, initial_distribution
from .model import JumpModel as RateModel
from .results import Result, TimeSeries

if TYPE_CHECKING:
    import pandas as pd

    from .covariance import ModeSystem

__all__ = [
    "DEFAULT_TOL", "MAX_CUTOFF", "InitialSpec", "ModesPopulation", "PopulationResult", "PopulationSteady", "TruncationError",
    "birth_death_parts", "choose_cutoff", "evolve_population", "generator", "geometric_cutoff", "predicted_tail",
    "initial_distribution", "steady_population", "stop_message", "unstable_message",
]


_DENSE_MAX = MAX_CUTOFF  # up to this many levels exp(G dt) is formed densely (a few s at 1000, vs minutes of
# expm_multiply on a stiff space near threshold, where ||G|| dt is in the thousands)
_SUBSTEPS = 64  # _crossing narrows the bracket to (t1 - t0)/64 before the root finder
_CHUNK = 64  # time points per expm_multiply call on large spaces (so the guard can stop early)
_DOUBLING_MAX = 128  # largest space whose rows are all formed at once by doubling
_BASE_NORM = 0.5  # ||G h||_1 of the base step of the conserving scaling and squaring (_propagator)
_NARROW_NORM = 16.0  # _crossing hands over to expm_multiply once ||G||_1 (t1 - t0) is below this
_SPARSE_WORK = 1e6  # largest ||G||_1 (t_end - t_0) of the sparse route (cutoff > _DENSE_MAX): ~5 matvecs per unit

OnTruncation = Literal["raise", "return"] | None


class TruncationError(RuntimeError):
    """The top Fock level holds more probability than the tolerance: the cutoff is too small.

    Attributes
    ----------
    t_stop : float
        Time at which the top-level probability reached the tolerance
        (``inf`` for a steady state).
    partial : object
        The result up to ``t_stop`` (a :class:`PopulationResult`, a
        ``LindbladResult`` or a steady-state result).
    """

    def __init__(self, message: str, t_stop: float, partial: object) -> None:
        super().__init__(message)
        self.t_stop = float(t_stop)
        self.partial = partial


# --------------------------------------------------------------------------- generator

def birth_death_parts(cutoff: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Unit-rate parts ``(A, B)`` of the generator: ``G = up_rate A + down_rate B``.

    ``A`` moves ``n -> n + 1`` at rate ``n + 1`` (none from the top level, reflecting);
    ``B`` moves ``n -> n - 1`` at rate ``n``. Columns of both sum to zero.
    """
    if cutoff < 2:
        raise ValueError(f"cutoff must be >= 2, got {cutoff}")
    n = np.arange(cutoff, dtype=float)
    up = n + 1.0
    up[-1] = 0.0
    A = sp.diags([up[:-1], -up], [-1, 0], format="csr")
    B = sp.diags([n[1:], -n], [1, 0], format="csr")
    return A, B


def generator(model: RateModel, cutoff: int) -> sp.csr_matrix:
    """Sparse tridiagonal generator ``G`` of ``dP/dt = G P`` on ``0 .. cutoff - 1``.

    ``G[n+1, n] = up_rate (n + 1)`` (``n < cutoff - 1``), ``G[n-1, n] = down_rate n``,
    ``G[n, n] = -(sum of the column)``; equal to ``up_rate A + down_rate B`` of
    :func:`birth_death_parts`. Units: 1/time.
    """
    return model.generator(cutoff)


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class PopulationResult(TimeSeries):
    """Fock populations on a time grid.

    Attributes
    ----------
    t : (n_t,) array
        Times (1/energy) up to ``stopped_at`` when the guard stopped the run.
    P : (n_t, cutoff) array
        ``P_n(t)``.
    N : (n_t,) array
        ``N(t) = sum_n n P_n(t)``.
    cutoff : int
        Number of Fock levels kept (``n = 0 .. cutoff - 1``).
    tail_probability : float
        Predicted ``P(n >= cutoff - 1)`` (:func:`predicted_tail`), for an automatic or a
        user cutoff.
    top_probability : float
        Largest ``P_{cutoff-1}(t)`` on the returned grid (the guard's quantity).
    stopped_at : float or None
        Time at which ``P_{cutoff-1}`` reached ``tol``; None when the run finished.
    message : str or None
        Plain-words reason for the stop (growth rate and cutoff); None when finished.
    """

    t: NDArray[np.float64]
    P: NDArray[np.float64]
    N: NDArray[np.float64]
    cutoff: int
    tail_probability: float
    top_probability: float
    stopped_at: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class PopulationSteady(Result):
    """Steady state of the truncated birth-death chain, or the instability verdict.

    Where ``stable`` is False, ``P`` is None and ``N`` NaN: there is no steady state.
    ``residual = ||G P||_1 / ||G||_1`` checks the null vector.
    """

    P: NDArray[np.float64] | None
    N: float
    cutoff: int | None
    tail_probability: float
    top_probability: float
    residual: float
    stable: bool
    message: str | None = None


def unstable_message(kappa: float) -> str:
    """The plain-words verdict for ``kappa <= 0``."""
    return (f"unstable mode: kappa = {kappa:.6g} <= 0, there is no steady state; "
            f"N grows at rate {-kappa:.6g} (exponentially, linearly at kappa = 0)")


def stop_message(kappa: float, stable: bool, t_stop: float, cutoff: int, tol: float) -> str:
    where = (f"the top Fock level {cutoff - 1} reached probability {tol:.3g} at t = {t_stop:.6g} "
             f"(cutoff {cutoff})")
    if stable:
        return f"truncation: {where}; N would be wrong beyond this time, raise the cutoff"
    return f"{unstable_message(kappa)}; evolution stopped: {where}"


# --------------------------------------------------------------------------- evolution

def _uniform(dts: NDArray[np.float64]) -> bool:
    return dts.size > 0 and bool(np.allclose(dts, dts.mean(), rtol=1e-10, atol=0.0))


def _norm1(G: NDArray[np.float64] | sp.csr_matrix) -> float:
    """``||G||_1`` (largest column sum of ``|G|``), 1/time."""
    return float(abs(G).sum(axis=0).max())


def _square(U: NDArray[np.float64]) -> NDArray[np.float64]:
    """``U U`` for a column-stochastic ``U``, with the round-off negatives clipped and every column
    rescaled to sum 1 (the probability conservation that the exact product has)."""
    V = U @ U
    np.maximum(V, 0.0, out=V)
    V /= V.sum(axis=0)
    return V


def _propagator(G: NDArray[np.float64], dt: float) -> NDArray[np.float64]:
    r"""``exp(G dt)`` of a dense generator whose columns sum to zero, for any ``dt >= 0``.

    Conserving scaling and squaring: ``U = expm(G h)`` with ``h = dt / 2^s`` and
    ``||G h||_1 <= 1/2``, then ``U <- U U`` ``s`` times through :func:`_square`. Plain
    ``scipy.linalg.expm`` loses the column sums at a rate of about ``eps ||G dt||_1`` (its own
    squarings double that error each time): at ``||G dt||_1 = 3e16`` its columns summed to 1.9 and
    the run came out ``N = 0`` or garbage. A column-stochastic matrix has the eigenvalue 1 with the
    left eigenvector ``(1, ..., 1)``; the round-off along that direction is the only one a
    squaring doubles, and the rescaling removes it, so the error stays ``O(eps)`` per squaring
    however large ``s``. The squarings stop once ``U U = U`` to 8 ulps: the chain has relaxed and
    every column is its stationary law (``kappa dt >> 1`` on the stable side).
    """
    norm = _norm1(G) * dt
    if norm <= _BASE_NORM:
        return sla.expm(G * dt)
    s = int(math.ceil(math.log2(norm / _BASE_NORM)))
    U = sla.expm(G * (dt / 2.0**s))
    for _ in range(s):
        V = _square(U)
        done = float(np.max(np.abs(V - U))) <= 8 * np.finfo(float).eps
        U = V
        if done:
            break
    return U


def _doubling_rows(U: NDArray[np.float64], p: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    """Rows ``U^1 p, ..., U^n p`` by doubling: ``R[k:2k] = R[0:k] (U^k)^T``, ``U^2k = U^k U^k``."""
    R = np.empty((n + 1, p.size))
    R[0] = p
    filled, Uk = 1, U
    while filled <= n:
        b = min(filled, n + 1 - filled)
        R[filled: filled + b] = R[:b] @ Uk.T
        filled += b
        if filled <= n:
            Uk = _square(Uk)
    return R[1:]


def _blocks(G: NDArray[np.float64] | sp.csr_matrix, p0: NDArray[np.float64], t: NDArray[np.float64]):
    """Populations at ``t[1:]`` in consecutive blocks: yields ``(i, rows)`` with rows at ``t[i:i+len]``.

    Dense (``cutoff <= 1000``): ``U = exp(G dt)`` per distinct ``dt`` (:func:`_propagator`, exact
    for any ``||G|| dt``); on a uniform grid of a
    small space (``cutoff <= 128``) all rows at once by doubling (``log2(n_t)`` products).
    Larger spaces: ``expm_multiply`` in chunks of ``_CHUNK`` times.
    """
    dts = np.diff(t)
    K = G.shape[0]
    p = p0
    i = 0
    if isinstance(G, np.ndarray):
        Gd = G
        if _uniform(dts):
            U = _propagator(Gd, float(dts.mean()))
            if K <= _DOUBLING_MAX:
                yield 1, _doubling_rows(U, p, dts.size)
                return
            for i in range(1, dts.size + 1):
                p = U @ p
                yield i, p[None, :]
            return
        cache: dict[float, NDArray[np.float64]] = {}
        for i, dt in enumerate(dts, start=1):
            if float(dt) not in cache:
                cache[float(dt)] = _propagator(Gd, float(dt))
            p = cache[float(dt)] @ p
            yield i, p[None, :]
        return
    while i < dts.size:
        j = min(i + _CHUNK, dts.size)
        if _uniform(dts[i:j]):
            block = expm_multiply(G, p, start=0.0, stop=float(t[j] - t[i]), num=j - i + 1, endpoint=True)[1:]
        else:
            block = []
            for dt in dts[i:j]:
                p = expm_multiply(G * float(dt), p)
                block.append(p)
            block = np.array(block)
        yield i + 1, block
        p = block[-1]
        i = j


def _narrow(G: NDArray[np.float64], p: NDArray[np.float64], t0: float, t1: float,
            tol: float) -> tuple[NDArray[np.float64], float, float]:
    """Shrink ``(t0, t1]`` around the time ``P_top`` reaches ``tol`` until ``||G||_1 (t1 - t0) <= 16``.

    Dense generator, any ``||G|| (t1 - t0)``: the powers ``U_j = exp(G h 2^j)`` of one base step
    (:func:`_square`) are formed upwards until ``U_j p`` has crossed (or ``t1`` is reached), then
    the crossing is located bit by bit downwards, taking a power wherever its end point has not
    crossed yet (exact on a ``P_top`` that crosses once, as from the vacuum, whose birth-death
    chain is stochastically increasing). Returns ``(p_a, a, b)``: the state at ``a`` and the
    narrowed bracket ``(a, b]``, ``b - a = h``.
    """
    s = int(math.ceil(math.log2(max(_norm1(G) * (t1 - t0) / _NARROW_NORM, 1.0))))
    h = (t1 - t0) / 2.0**s
    powers = [_propagator(G, h)]
    starts = [p]  # starts[j] = state at t0 + h 2^(j-1) (starts[0] at t0)
    j = 0
    while True:
        q = powers[j] @ p
        if q[-1] > tol or j == s:
            break
        starts.append(q)
        powers.append(_square(powers[j]))
        j += 1
    a = t0 if j == 0 else t0 + h * 2.0 ** (j - 1)
    p_a = starts[j]
    for i in range(j - 2, -1, -1):  # the bracket (a, a + h 2^(j-1)] is halved at each power
        q = powers[i] @ p_a
        if q[-1] <= tol:
            p_a, a = q, a + h * 2.0**i
    return p_a, a, min(a + h, t1)


def _crossing(G: NDArray[np.float64] | sp.csr_matrix, p_prev: NDArray[np.float64], t0: float, t1: float,
              tol: float) -> float:
    """Time in ``(t0, t1]`` at which ``P_top`` reaches ``tol`` (Brent's method).

    A dense generator with ``||G||_1 (t1 - t0) > 16`` first has its bracket narrowed by
    :func:`_narrow` (powers of an exact propagator: bounded cost for any ``t1 - t0``, where
    ``expm_multiply`` over the whole interval would take ``||G|| (t1 - t0)`` steps). The bracket
    is then narrowed to one of ``_SUBSTEPS`` sub-intervals (one ``expm_multiply`` pass over the
    grid of sub-steps), so that each root-finder step propagates over at most
    ``(t1 - t0)/_SUBSTEPS``.
    """
    if isinstance(G, np.ndarray) and _norm1(G) * (t1 - t0) > _NARROW_NORM:
        p_prev, t0, t1 = _narrow(G, p_prev, t0, t1, tol)
    Gs = sp.csr_matrix(G) if isinstance(G, np.ndarray) else G
    rows = expm_multiply(Gs, p_prev, start=0.0, stop=t1 - t0, num=_SUBSTEPS + 1, endpoint=True)
    above = np.flatnonzero(rows[:, -1] > tol)
    if not above.size:
        return t1
    k = max(int(above[0]), 1)
    h = (t1 - t0) / _SUBSTEPS
    a, p_a = t0 + (k - 1) * h, rows[k - 1]

    def f(tau: float) -> float:
        return float(expm_multiply(Gs * (tau - a), p_a)[-1]) - tol

    b = min(t0 + k * h, t1)
    if f(b) <= 0:
        return b
    return float(optimize.brentq(f, a, b, xtol=1e-12 * max(1.0, abs(t1)), rtol=1e-12))


def evolve_population(
    model: RateModel | ModeSystem,
    t: ArrayLike,
    initial: str | InitialSpec | ArrayLike = "vacuum",
    cutoff: int | None = None,
    *,
    tol: float = DEFAULT_TOL,
    max_cutoff: int = MAX_CUTOFF,
    on_truncation: OnTruncation = None,
) -> PopulationResult:
    r"""Evolve ``P_n`` with ``P(t) = exp(G (t - t_0)) P(t_0)`` on the grid ``t``.

    ``t[0]`` is the time of the initial state. Propagators ``exp(G dt)`` are exact
    (dense, probability-conserving scaling and squaring up to 1000 levels, for any
    ``kappa dt``: :func:`_propagator`; ``expm_multiply`` above, refused with
    :class:`sim.guards.GuardError` when ``||G||_1 (t_end - t_0) > 1e6``), so the only error
    besides round-off is the truncation, bounded by the guard (module docstring).

    Several modes: ``model`` a :class:`sim.covariance.ModeSystem` without cross terms (every
    cluster one mode) evolves each mode's chain (:meth:`~sim.covariance.ModeSystem.mode_model`)
    from the same ``initial`` text and returns :class:`ModesPopulation` (:func:`_evolve_modes`).

    Parameters
    ----------
    model
        Scalar :class:`RateModel` (rates in energy units), or a ModeSystem (above).
    t
        Non-decreasing time grid (1/energy).
    initial
        ``run.initial`` spec (``"vacuum"``, ``"steady"``, ``"thermal:N"``, ``"fock:n"``,
        ``"coherent:alpha"``: its Poissonian populations, exact here because the
        populations do not couple to coherences) or an explicit distribution ``P_n``.
    cutoff
        Number of Fock levels; default :func:`choose_cutoff` with ``t``.
    tol
        Guard tolerance on ``P_{cutoff-1}(t)`` and tolerance of the automatic cutoff.
    max_cutoff
        Cap of the automatic cutoff.
    on_truncation
        What to do when the guard fires: ``"raise"`` :class:`TruncationError`,
        ``"return"`` the partial result; default (None): return for an unstable model
        (``kappa <= 0``, a runaway), raise for a stable one (a too-small cutoff).
    """
    if hasattr(model, "clusters"):  # several modes (a ModeSystem): one chain per mode
        return _evolve_modes(model, t, initial, cutoff, tol=tol, max_cutoff=max_cutoff, on_truncation=on_truncation)
    t = time_grid(t, strict=False)
    spec = InitialSpec.parse(initial)
    if cutoff is None:
        cutoff, tail = choose_cutoff(model, spec, t, tol=tol, max_cutoff=max_cutoff)
    else:
        tail = predicted_tail(model, spec, cutoff, t)
    G = model.generator(cutoff, dense=cutoff <= _DENSE_MAX)
    if not isinstance(G, np.ndarray) and _norm1(G) * float(t[-1] - t[0]) > _SPARSE_WORK:
        raise GuardError(
            f"--cutoff {cutoff} with t_end - t_0 = {float(t[-1] - t[0]):.6g}: a cutoff above {_DENSE_MAX} is "
            f"propagated by expm_multiply, whose work grows as ||G||_1 (t_end - t_0) = "
            f"{_norm1(G) * float(t[-1] - t[0]):.3g} > {_SPARSE_WORK:.0e}; use a cutoff <= {_DENSE_MAX} (exact for any "
            "t_end) or a shorter t_end")
    p0 = spec.populations(cutoff, model)
    kappa = float(model.kappa)
    stable = kappa > 0
    mode = on_truncation or ("raise" if stable else "return")
    rows = [p0]
    stop = None
    if p0[-1] > tol:
        stop = float(t[0])
        rows = []
    else:
        for i, block in _blocks(G, p0, t):
            bad = np.flatnonzero(block[:, -1] > tol)
            if bad.size:
                k = int(bad[0])
                rows.extend(block[:k])
                stop = _crossing(G, rows[-1], float(t[i + k - 1]), float(t[i + k]), tol)
                break
            rows.extend(block)
    P = np.array(rows).reshape(len(rows), cutoff)
    n = np.arange(cutoff)
    top = float(P[:, -1].max()) if len(rows) else float(p0[-1])
    result = PopulationResult(t[: len(rows)].copy(), P, P @ n, cutoff, tail, top, stop,
                              None if stop is None else stop_message(kappa, stable, stop, cutoff, tol))
    if stop is not None and (mode == "raise" or not rows):
        raise TruncationError(result.message, stop, result)
    return result


@dataclass(frozen=True, kw_only=True)
class ModesPopulation(TimeSeries):
    """Fock populations of K independent modes (no cross terms) on a time grid.

    The joint distribution is the product of the per-mode ones (the modes do not exchange quanta
    and start from a product state), so the marginals ``P[k]`` are the whole answer.

    Attributes
    ----------
    t : (n_t,) array
        Times (1/energy), up to the earliest stop of any mode.
    N : (n_t,) array
        Total ``N(t) = sum_k N_k(t)``.
    N_modes : (n_t, K) array
        ``N_k(t) = sum_n n P_k,n(t)``.
    P : tuple of (n_t, cutoff_k) arrays
        ``P_k,n(t)``, mode by mode.
    cutoffs : tuple of int
        Fock levels kept per mode.
    tail_probability, top_probability : float
        Largest predicted tail and largest top-level probability over the modes.
    stopped_at : float or None
        Earliest time a mode's top level reached the guard tolerance (None: finished).
    message : str or None
        The stop's reason (mode and growth rate); None when finished.
    system : ModeSystem
        The modes (the fluxes of :meth:`to_frame` are taken from it).
    """

    t: NDArray[np.float64]
    N: NDArray[np.float64]
    N_modes: NDArray[np.float64]
    P: tuple[NDArray[np.float64], ...]
    cutoffs: tuple[int, ...]
    tail_probability: float
    top_probability: float
    stopped_at: float | None = None
    message: str | None = None
    system: ModeSystem | None = None
    route = "population"

    @property
    def K(self) -> int:
        return self.N_modes.shape[1]

    def to_frame(self) -> pd.DataFrame:
        """``t, N, N_0 .. N_{K-1}, J, J_ph, Ie, J_LL .. J_RL, Ie_LL .. Ie_RL`` (fluxes at ``C = diag N_k``,
        exact without cross terms), the columns of the covariance route's table."""
        import pandas as pd

        from .conductor import CHANNELS

        if self.system is None:
            raise ValueError("ModesPopulation.to_frame needs the system (pass system=...)")
        cols: dict[str, NDArray] = {"t": self.t, "N": self.N}
        cols.update({f"N_{k}": self.N_modes[:, k] for k in range(self.K)})
        flux = [self.system.fluxes(np.diag(n)) for n in self.N_modes]
        for q in ("J", "J_ph", "Ie"):
            cols[q] = np.array([float(f[q]) for f in flux])
        for q, key in (("J", "J_channel"), ("Ie", "Ie_channel")):
            for i, c in enumerate(CHANNELS):
                cols[f"{q}_{c}"] = np.array([f[key][i] for f in flux])
        return pd.DataFrame(cols)


def _evolve_modes(system: ModeSystem, t: ArrayLike, initial: str | InitialSpec | ArrayLike, cutoff: int | None, *,
                  tol: float, max_cutoff: int, on_truncation: OnTruncation) -> ModesPopulation:
    """:func:`evolve_population` of K modes without cross terms: mode ``k``'s chain from ``initial``.

    ``initial`` is read per mode (``steady``: each mode's own steady state; ``thermal:N``: mean N
    each; ``thermal:T=``: ``nB(Omega_k, T)``; ``fock:n``: each in ``|n>``), so the start is the
    product state of the several-mode trajectory engines. ``cutoff``: one for all modes or None
    (each its own automatic cutoff). A stop of any mode ends every mode's table there; a stable
    mode that hits its cutoff raises :class:`TruncationError` with the partial result.
    """
    several = [list(S) for S in system.clusters if len(S) > 1]
    if several:
        raise ValueError(f"the population route needs modes without cross terms (every cluster one mode); the clusters "
                         f"{several} couple modes, so the populations do not close on themselves: use --method rate "
                         "(covariance) or lindblad")
    models = [system.mode_model(k) for k in range(system.K)]
    if isinstance(initial, str | InitialSpec) and InitialSpec.parse(initial).kind == "steady":
        bad = [k for k, m in enumerate(models) if not bool(m.stable)]
        if bad:
            raise ValueError(f"initial 'steady' needs stable modes; mode(s) {bad} run away (kappa = "
                             f"{', '.join(f'{float(models[k].kappa):.6g}' for k in bad)})")
    parts: list[PopulationResult] = []
    error: TruncationError | None = None
    for k in range(system.K):
        try:
            parts.append(evolve_population(models[k], t, initial, cutoff, tol=tol, max_cutoff=max_cutoff,
                                           on_truncation=on_truncation))
        except TruncationError as e:
            parts.append(e.partial)  # type: ignore[arg-type]
            error = error or e
    n = min(p.t.size for p in parts)
    stops = [(p.stopped_at, k, p.message) for k, p in enumerate(parts) if p.stopped_at is not None]
    stop, k_stop, why = min(stops) if stops else (None, None, None)
    Nk = np.stack([p.N[:n] for p in parts], axis=1) if n else np.empty((0, system.K))
    res = ModesPopulation(t=parts[0].t[:n].copy(), N=Nk.sum(axis=1), N_modes=Nk, P=tuple(p.P[:n] for p in parts),
                          cutoffs=tuple(p.cutoff for p in parts),
                          tail_probability=max(p.tail_probability for p in parts),
                          top_probability=max(p.top_probability for p in parts), stopped_at=stop,
                          message=None if stop is None else f"mode {k_stop}: {why}", system=system)
    if error is not None:
        raise TruncationError(res.message or str(error), float(stop if stop is not None else error.t_stop), res)
    return res


# --------------------------------------------------------------------------- steady state

def steady_population(model: RateModel, cutoff: int | None = None, *, tol: float = DEFAULT_TOL) -> PopulationSteady:
    r"""Null vector of the generator: the truncated Bose-Einstein distribution.

    A birth-death chain obeys detailed balance, so ``G P = 0`` is solved by the
    recursion ``P_{n+1} / P_n = G[n+1, n] / G[n, n+1] = up_rate / down_rate = x``
    (in logarithms, then normalised) and checked by the residual ``||G P||_1``.
    For ``kappa > 0``, ``x = N_ss/(N_ss + 1)`` and ``P_n = (1 - x) x^n / (1 - x^cutoff)``.

    Unstable (``kappa <= 0``): no steady state; ``stable = False``, ``N = NaN``, message.
    A cutoff whose top level holds more than ``tol`` raises :class:`TruncationError`.
    """
    kappa = float(model.kappa)
    if not bool(model.stable):  # kappa <= 0, or within round-off of 0 (RateModel.near_threshold)
        return PopulationSteady(None, float("nan"), cutoff, float("nan"), float("nan"), float("nan"), False,
                                unstable_message(kappa))
    if cutoff is None:
        cutoff, tail = choose_cutoff(model, "vacuum", tol=tol)
    else:
        tail = predicted_tail(model, "vacuum", cutoff)
    G = generator(model, cutoff)
    up = G.diagonal(-1)  # G[n+1, n]
    down = G.diagonal(1)  # G[n, n+1]
    if up[0] == 0.0:
        logp = np.where(np.arange(cutoff) == 0, 0.0, -np.inf)
    else:
        logp = np.concatenate([[0.0], np.cumsum(np.log(up) - np.log(down))])
    P = np.exp(logp - logp.max())
    P /= P.sum()
    scale = float(abs(G).sum(axis=0).max())
    residual = float(np.abs(G @ P).sum() / scale) if scale > 0 else 0.0
    if not residual <= 1e-12:
        raise RuntimeError(f"steady population failed its check: ||G P||_1 / ||G||_1 = {residual:.3g}")
    result = PopulationSteady(P, float(np.arange(cutoff) @ P), cutoff, tail, float(P[-1]), residual, True)
    if P[-1] > tol:
        raise TruncationError(
            f"truncation: the top Fock level {cutoff - 1} holds probability {P[-1]:.3g} > {tol:.3g} in the steady state "
            f"(cutoff {cutoff}, N_ss = {float(model.N_ss()):.6g}); raise the cutoff", math.inf, result)
    return result
