r"""The Lindblad route (QuTiP) for any number of modes: labelled collapse operators, steady state, evolution.

Modes ``k = 0..K-1`` with quanta ``Omega_k`` (docs/theory.md sec. 4 for one mode, "Several modes" for K),
with ``D[L] rho = L rho L^dagger - {L^dagger L, rho}/2`` and ``hbar = 1``::

    d rho/dt = -i[sum_k Omega_k a_k^+ a_k, rho] + sum_l D[L_l] rho,

one labelled collapse operator ``L_l`` per eigenvector ``v_j`` (eigenvalue ``lambda_j > 0``) of each
cluster's rate matrix, per channel ``c`` and direction (:meth:`sim.covariance.ModeSystem.collapse_operators`)::

    emission   (c, j):  L = sqrt(lambda_j) sum_m (v_j)_m a_m^+
    absorption (c, j):  L = sqrt(lambda_j) sum_m conj((v_j)_m) a_m

plus the ph-bath's ``sqrt(gamma_k (n_k + 1)) a_k`` and ``sqrt(gamma_k n_k) a_k^+`` per mode. Summed over
``j`` they give the rate-matrix form ``sum_mn T_em_mn (a_m^+ rho a_n - ...)`` of the covariance route.
For one mode this is

.. math::

    \dot\rho = -i[\Omega a^\dagger a, \rho]
        + \sum_c \big(\tau^{em}_c D[a^\dagger] + \tau^{abs}_c D[a]\big)\rho
        + \gamma_{ph}(n_{ph} + 1) D[a]\rho + \gamma_{ph} n_{ph} D[a^\dagger]\rho .

One route, two systems. :func:`steady_lindblad` and :func:`evolve_lindblad` take either

- a :class:`sim.model.JumpModel` (one mode, any conductor, flat ones included): the one-mode fast path
  on ``n = 0 .. cutoff - 1`` Fock levels, each collapse operator labelled ``(channel, direction)``
  (channel in LL, RR, LR, RL, ph; ``emission`` is ``sqrt(rate) a^dagger``, ``absorption`` ``sqrt(rate) a``).
  In the truncated space ``a^dagger |cutoff - 1> = 0``, so the populations obey exactly the reflecting
  birth-death chain of :mod:`sim.population`: the same cutoff rule and the same guard on the top-level
  probability apply (see there). Any initial state, coherent ones included; a progress bar over the grid.
- a :class:`sim.covariance.ModeSystem` (``K >= 1`` modes of an orbital conductor,
  :func:`sim.covariance.mode_system_from_config`) on the truncated tensor Fock space.

Both return the same result types (:class:`LindbladSteady`, :class:`LindbladResult`); a ModeSystem
with ``K = 1`` gives the numbers of the fast path (tests/test_lindblad_modes.py).

Several modes: cutoffs. Mode ``k`` keeps ``0 .. N_k - 1`` quanta; the tensor space has ``prod_k N_k``
states and the Liouvillian ``(prod_k N_k)^2`` rows. The generator is quadratic, so a Gaussian initial
state (the vacuum included) stays Gaussian, and the marginal of mode ``k`` is a geometric
(Bose-Einstein) distribution of mean ``C_kk``: the one-mode tail rule :func:`sim.fock.geometric_cutoff`
applied to ``max_t C(t)_kk`` (or the steady ``C_kk``) puts at most ``tol`` on each mode's top level.

Several modes: solvers. Every collapse operator changes the total number of quanta by +-1 and ``H``
conserves it, so the density-matrix elements between states of equal total number (the zero-charge
:class:`Sector`) evolve among themselves; the steady state and every Gaussian state live there.
The default solvers work on that sector (sparse LU of the bordered Liouvillian for the steady state,
``expm_multiply`` for the evolution; budget :data:`MAX_SECTOR` elements); ``solver="qutip"`` /
``"mesolve"`` use ``qutip.steadystate`` / ``qutip.mesolve`` on the full space (budget
:data:`MAX_LIOUVILLE` Liouvillian rows). Where the space is too large a ValueError names the cutoffs,
the dimension and the limit (the covariance route stays exact for every second moment).

Units: hbar = 1; energies and rates in the energy unit, time in 1/energy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import qutip
from numpy.typing import ArrayLike, NDArray
from scipy import optimize

from .conductor import CHARGE_SIGN
from .covariance import CollapseOperator, ModeSystem
from .cutoff import DEFAULT_TOL, choose_cutoff, predicted_tail
from .fock import geometric_cutoff, geometric_tail
from .grids import time_grid
from .initial import InitialSpec
from .model import LABELS as MODEL_LABELS
from .model import JumpModel as RateModel
from .population import OnTruncation, TruncationError, stop_message, unstable_message
from .progress import progress_bar
from .results import Result, TimeSeries

__all__ = [
    "LABELS", "LINDBLAD_MAX_CUTOFF", "LindbladResult", "LindbladSteady", "LindbladSystem", "collapse_operators",
    "evolve_lindblad", "guarded_result", "hamiltonian", "initial_state", "label_rates", "mesolve_options",
    "run_guarded", "steady_lindblad",
    # several-mode building blocks (the tensor Fock space, its zero-charge sector, Gaussian states)
    "GAUSSIAN_STARTS", "MAX_LIOUVILLE", "MAX_SECTOR", "Sector", "check_dimension", "collapse_operators_modes",
    "covariance_of", "gaussian_state", "hamiltonian_modes", "lamb_hamiltonian", "mode_cutoffs", "mode_operators",
    "normal_modes",
    "operator_properties", "sector", "sector_size", "tail_estimate",
    # names of the former several-mode module, kept for existing callers
    "ModesLindbladResult", "ModesLindbladSteady", "evolve_lindblad_modes", "steady_lindblad_modes",
]

LindbladSystem = RateModel | ModeSystem
"""What the route takes: a one-mode :class:`sim.model.JumpModel` (the fast path) or a
:class:`sim.covariance.ModeSystem` of ``K >= 1`` modes."""

LABELS: tuple[tuple[str, str], ...] = tuple((lab.channel, lab.direction) for lab in MODEL_LABELS)
"""All ``(channel, direction)`` labels in their fixed order (those of :data:`sim.model.LABELS`)."""

LINDBLAD_MAX_CUTOFF = 150
"""Largest automatic cutoff of the Lindblad route (``cutoff^2`` density-matrix elements)."""

DEFAULT_OPTIONS: dict[str, Any] = {"atol": 1e-12, "rtol": 1e-10}
"""mesolve integrator tolerances used unless ``options`` overrides them. ``atol`` must stay
well below the guard's ``tol`` (it is lowered to ``tol/100`` when needed): the top-level
probability the guard watches is itself known only to about ``atol``."""

MAX_LIOUVILLE = 1_000_000
"""Largest Liouvillian (``dim^2`` rows, ``dim = prod_k N_k``) of the several-mode Lindblad route:
``dim = 1000`` states, e.g. two modes of 31 levels or three of 10."""

MAX_SECTOR = 20_000
"""Largest zero-charge sector (:class:`Sector`, ``sum_n d_n^2`` elements) of the sparse-LU solvers:
steady state, counting statistics and ``solver="sector"`` evolution. The LU of the block-tridiagonal
sector costs about ``size x band``: a fraction of a second for two modes of 14 levels (1834 elements),
seconds for two modes of 20 (5340); the limit admits two modes of 31 levels or three of 8."""


# --------------------------------------------------------------------------- one mode: operators and states

def label_rates(model: RateModel) -> list[tuple[str, str, NDArray[np.float64]]]:
    """``(channel, direction, rate)`` for every label of :data:`LABELS` (zeros included).

    ``rate`` is ``tau_em_c`` / ``tau_abs_c`` for the electronic channels and
    ``gamma_ph n_ph`` / ``gamma_ph (n_ph + 1)`` for the ph-bath; arrays where the
    model is vectorised over bias points.
    """
    return [(c, d, np.asarray(r, dtype=float)) for (c, d), r in zip(LABELS, model.label_rates, strict=True)]


def _check_cutoff(cutoff: int) -> int:
    if isinstance(cutoff, bool) or not isinstance(cutoff, int | np.integer) or cutoff < 2:
        raise ValueError(f"cutoff must be an integer >= 2, got {cutoff!r}")
    return int(cutoff)


def collapse_operators(model: RateModel, cutoff: int) -> list[tuple[str, str, qutip.Qobj]]:
    """Labelled collapse operators of a scalar model on ``cutoff`` Fock levels.

    Returns ``(channel, direction, L)`` for every label with rate > 0, in the order
    LL, RR, LR, RL, ph and emission before absorption: ``L = sqrt(rate) a^dagger``
    (emission) or ``sqrt(rate) a`` (absorption), ``rate`` in 1/time.
    """
    cutoff = _check_cutoff(cutoff)
    a = qutip.destroy(cutoff)
    ad = a.dag()
    ops = []
    for c, d, rate in label_rates(model):
        if rate.size != 1:
            raise ValueError(f"collapse operators need a scalar-bias RateModel, got rates of shape {rate.shape}")
        g = float(rate)
        if g > 0:
            ops.append((c, d, math.sqrt(g) * (ad if d == "emission" else a)))
    return ops


def hamiltonian(system: LindbladSystem, cutoff: int | ArrayLike) -> qutip.Qobj:
    """``H = Omega a^dagger a`` on ``cutoff`` levels (energy units); for a ModeSystem
    ``sum_k Omega_k a_k^+ a_k`` on the tensor space (:func:`hamiltonian_modes`)."""
    if isinstance(system, ModeSystem):
        return hamiltonian_modes(system, cutoff)
    return float(system.omega) * qutip.num(_check_cutoff(cutoff))


def initial_state(spec: str | InitialSpec, cutoff: int, model: RateModel | None = None) -> qutip.Qobj:
    """Density matrix of a ``run.initial`` spec on ``cutoff`` Fock levels.

    ``vacuum``, ``fock:n``; ``thermal:N`` and ``steady`` (the Bose-Einstein state of
    ``model``, which must be stable) are diagonal; ``coherent:alpha`` (complex alpha,
    ``coherent:1+0.5j``) is the pure state with amplitudes
    ``e^{-|alpha|^2/2} alpha^n / sqrt(n!)``. Truncated states are renormalised.
    """
    cutoff = _check_cutoff(cutoff)
    s = InitialSpec.parse(spec)
    if s.kind != "coherent":
        return qutip.Qobj(np.diag(s.populations(cutoff, model)))
    alpha = complex(s.value)
    amp = np.sqrt(s.populations(cutoff, model)) * np.exp(1j * np.angle(alpha) * np.arange(cutoff))
    return qutip.ket2dm(qutip.Qobj(amp / np.linalg.norm(amp)))


def _spec_of_state(rho: qutip.Qobj) -> InitialSpec:
    p = np.clip(np.real(rho.diag()), 0.0, None)
    return InitialSpec("distribution", tuple(p / p.sum()))


# --------------------------------------------------------------------------- several modes: cutoffs and operators

def sector_size(cutoffs: ArrayLike) -> int:
    """``sum_n d_n^2``: density-matrix elements between states of equal total number ``n``."""
    d = np.ones(1, dtype=object)
    for c in np.atleast_1d(cutoffs):
        d = np.convolve(d, np.ones(int(c), dtype=object))
    return int(sum(int(x) ** 2 for x in d))


def check_dimension(cutoffs: ArrayLike, max_liouville: int = MAX_LIOUVILLE, what: str = "the Lindblad route",
                    sector_only: bool = False) -> int:
    """Hilbert-space dimension ``dim = prod_k N_k``.

    ValueError naming the cutoffs, ``dim`` and the limit where the Liouvillian is too large:
    ``dim^2 > max_liouville`` (full Liouvillian, QuTiP's solvers), or with ``sector_only=True`` its
    zero-charge sector (:func:`sector_size`) is.
    """
    cut = [int(c) for c in np.atleast_1d(cutoffs)]
    if any(c < 2 for c in cut):
        raise ValueError(f"every mode's cutoff must be an integer >= 2, got {cut}")
    dim = math.prod(cut)
    size = sector_size(cut) if sector_only else dim * dim
    if size > max_liouville:
        prod = " x ".join(str(c) for c in cut)
        kind = f"its zero-charge sector has {size} elements" if sector_only else f"a Liouvillian of {dim}^2 = {size} rows"
        raise ValueError(
            f"the tensor Fock space is too large for {what}: cutoffs {prod} = {dim} states, {kind}, over the limit of "
            f"{max_liouville}; use the covariance route (exact second moments), fewer or less populated modes, "
            f"or a looser tol")
    return dim


def mode_cutoffs(system: ModeSystem, t: ArrayLike | None = None, C0: ArrayLike | None = None, *,
                 tol: float = DEFAULT_TOL, min_cutoff: int = 2) -> tuple[int, ...]:
    """Per-mode cutoffs from the covariance: ``geometric_cutoff(N_k, tol)`` (:mod:`sim.fock`).

    ``N_k = max(C0_kk, max_t C(t)_kk)`` on the grid ``t`` (from ``C0``, default vacuum), or the steady
    ``C_kk`` without a grid (then the system must be stable). The marginal of each mode of a Gaussian
    state is geometric of mean ``C_kk``, so the top level of mode ``k`` holds at most ``tol``.
    """
    if t is None:
        if not system.stable:
            raise ValueError(f"unstable modes (growth rate {system.growth_rate:.6g} > 0): give a time grid or cutoffs")
        N = np.diagonal(system.steady_covariance()).real
    else:
        C = system.covariance(np.asarray(t, dtype=float), C0)
        N = np.max(np.diagonal(C, axis1=-2, axis2=-1).real.reshape(-1, system.K), axis=0)
        if C0 is not None:
            N = np.maximum(N, np.diagonal(np.asarray(C0)).real)
    if not np.all(np.isfinite(N)):
        raise ValueError(f"mode populations are not finite ({N.tolist()}): no cutoff")
    return tuple(max(int(min_cutoff), geometric_cutoff(float(n), tol)) for n in N)


def _cutoffs(cutoffs: ArrayLike | int, K: int) -> tuple[int, ...]:
    cut = np.broadcast_to(np.asarray(cutoffs), (K,))
    if not all(float(c).is_integer() for c in cut):
        raise ValueError(f"cutoffs must be integers >= 2, got {np.asarray(cutoffs).tolist()}")
    return tuple(int(c) for c in cut)


def mode_operators(cutoffs: ArrayLike) -> list[qutip.Qobj]:
    """Annihilation operators ``a_k`` on the tensor Fock space ``N_0 x N_1 x ...`` (QuTiP, CSR)."""
    cut = [int(c) for c in np.atleast_1d(cutoffs)]
    eye = [qutip.qeye(c) for c in cut]
    return [qutip.tensor(*(qutip.destroy(c) if i == k else eye[i] for i, c in enumerate(cut))) for k in range(len(cut))]


def hamiltonian_modes(system: ModeSystem, cutoffs: ArrayLike) -> qutip.Qobj:
    """``H = sum_k Omega_k a_k^+ a_k`` (energy units), plus the Lamb shift ``sum_mn L_mn a_m^+ a_n`` where the
    system includes it (:attr:`sim.covariance.ModeSystem.lamb`, as the covariance route does)."""
    a = mode_operators(_cutoffs(cutoffs, system.K))
    H = sum((float(w) * x.dag() * x for w, x in zip(system.omega, a, strict=True)), 0 * a[0])
    return H if system.lamb is None else H + lamb_hamiltonian(system, a)


def lamb_hamiltonian(system: ModeSystem, a: list) -> qutip.Qobj:
    """``sum_mn L_mn a_m^+ a_n`` on the operators ``a`` (energy units; zero where the Lamb shift is neglected)."""
    H = 0 * a[0]
    if system.lamb is None:
        return H
    for m, n in zip(*np.nonzero(system.lamb), strict=True):
        H = H + complex(system.lamb[m, n]) * a[m].dag() * a[n]
    return H


def collapse_operators_modes(system: ModeSystem, cutoffs: ArrayLike, include_phonon: bool = True
                             ) -> list[tuple[CollapseOperator, qutip.Qobj]]:
    """The labelled collapse operators on the tensor space: ``(label, L)`` in the order of
    :meth:`ModeSystem.collapse_operators` (the operator index used by every several-mode table).

    Emission ``L = sqrt(rate) sum_m w_m a_m^+``, absorption ``L = sqrt(rate) sum_m conj(w_m) a_m``
    (``rate`` in 1/time).
    """
    a = mode_operators(_cutoffs(cutoffs, system.K))
    out = []
    for op in system.collapse_operators(include_phonon=include_phonon):
        terms = [(w, x) for w, x in zip(op.weights, a, strict=True) if w != 0]
        if op.direction == "emission":
            L = sum((complex(w) * x.dag() for w, x in terms[1:]), complex(terms[0][0]) * terms[0][1].dag())
        else:
            L = sum((complex(np.conj(w)) * x for w, x in terms[1:]), complex(np.conj(terms[0][0])) * terms[0][1])
        out.append((op, math.sqrt(op.rate) * L))
    return out


def operator_properties(ops: list[CollapseOperator], omega: ArrayLike) -> dict[str, NDArray]:
    """Per collapse operator (in the order of ``ops``): what one of its jumps does.

    ``dn`` (+1 emission, -1 absorption), ``dQ = s_c dn`` (electrons L -> R; ``s_LR = +1``,
    ``s_RL = -1``, else 0), ``quantum = sum_m |w_m|^2 Omega_m`` (the cluster's quantum for a
    degenerate cluster, ``Omega_k`` for an operator on mode ``k`` alone; for a split cluster the
    weight-averaged quantum), ``dE = quantum dn`` and ``mode`` (the one mode with a weight above
    1e-12, or -1 for an operator spanning several modes).
    """
    omega = np.asarray(omega, dtype=float)
    W = np.array([np.abs(op.weights) for op in ops]).reshape(len(ops), omega.size)
    dn = np.array([1 if op.direction == "emission" else -1 for op in ops], dtype=np.int8)
    sign = np.array([CHARGE_SIGN.get(op.channel, 0) for op in ops], dtype=float)
    quantum = (W**2) @ omega
    big = W > 1e-12
    mode = np.where(big.sum(axis=1) == 1, np.argmax(W, axis=1), -1).astype(np.int16)
    return {"dn": dn, "dQ": sign * dn + 0.0, "quantum": quantum, "dE": quantum * dn, "mode": mode}


def covariance_of(rho: qutip.Qobj, cutoffs: ArrayLike) -> NDArray[np.complex128]:
    """``C_mn = <a_m^+ a_n> = Tr[a_m^+ a_n rho]``, shape (K, K)."""
    a = mode_operators(cutoffs)
    K = len(a)
    C = np.array([[qutip.expect(a[m].dag() * a[n], rho) for n in range(K)] for m in range(K)], dtype=complex)
    return 0.5 * (C + C.conj().T)


def _top_projectors(cutoffs: tuple[int, ...]) -> list[qutip.Qobj]:
    eye = [qutip.qeye(c) for c in cutoffs]
    return [qutip.tensor(*(qutip.fock_dm(c, c - 1) if i == k else eye[i] for i, c in enumerate(cutoffs)))
            for k in range(len(cutoffs))]


# --------------------------------------------------------------------------- several modes: Gaussian states

def normal_modes(C: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.complex128]]:
    """``C = U diag(n) U^+``: occupations ``n_j >= 0`` and the unitary ``U``.

    The normal modes ``b_j = sum_m U_mj a_m`` have ``<b_i^+ b_j> = n_j delta_ij`` (with
    ``C_mn = <a_m^+ a_n>``: ``<b_i^+ b_j> = sum_mn conj(U_mi) U_nj C_mn = (U^+ C U)_ij``).
    """
    C = np.asarray(C, dtype=complex)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"a covariance must be a square matrix, got shape {C.shape}")
    if not np.allclose(C, C.conj().T, rtol=1e-10, atol=1e-14):
        raise ValueError("a covariance C_mn = <a_m^+ a_n> must be Hermitian")
    n, U = np.linalg.eigh(0.5 * (C + C.conj().T))
    if n.min() < -1e-10 * max(1.0, float(np.abs(n).max())):
        raise ValueError(f"a covariance must be positive semi-definite, got eigenvalues {n.tolist()}")
    return np.clip(n, 0.0, None), U


def gaussian_state(C: ArrayLike, cutoffs: ArrayLike) -> qutip.Qobj:
    r"""The Gaussian (quasi-free) state with ``<a_m^+ a_n> = C_mn`` as a density matrix on the truncated space.

    ``rho = exp(-sum_mn h_mn a_m^+ a_n)/Z``: a product of thermal states of the normal modes
    ``b_j = sum_m U_mj a_m`` (:func:`normal_modes`), ``exp(-beta_j b_j^+ b_j)`` with
    ``e^{-beta_j} = n_j/(n_j + 1)``, so ``h = conj(U diag(beta) U^+)``. Built by ``eigh`` of the
    (number-conserving) exponent on the truncated space and renormalised: exact up to the weight of
    the states the truncation cuts (at most the per-mode top-level tail). Occupations ``n_j = 0`` are
    represented by ``beta_j = 745`` (``e^{-745}`` underflows).
    """
    n, U = normal_modes(C)
    cut = _cutoffs(cutoffs, n.size)
    with np.errstate(divide="ignore"):
        beta = np.where(n > 0, np.log1p(1.0 / np.where(n > 0, n, 1.0)), 745.0)
    beta = np.minimum(beta, 745.0)
    h = np.conj((U * beta) @ U.conj().T)
    a = mode_operators(cut)
    X = sum((complex(h[m, k]) * a[m].dag() * a[k] for m in range(n.size) for k in range(n.size) if h[m, k] != 0),
            0 * a[0])
    E, V = np.linalg.eigh(0.5 * (X.full() + X.full().conj().T))
    p = np.exp(-(E - E.min()))
    rho = (V * (p / p.sum())) @ V.conj().T
    return qutip.Qobj(0.5 * (rho + rho.conj().T), dims=a[0].dims)


# --------------------------------------------------------------------------- several modes: the zero-charge sector

@dataclass(frozen=True, eq=False)
class Sector:
    r"""The Liouvillian on the density matrices that commute with the total number ``N = sum_k a_k^+ a_k``.

    Every collapse operator changes ``N`` by exactly +-1 and ``H`` conserves it, so the generator
    commutes with ``rho -> e^{-i phi N} rho e^{i phi N}``: the elements ``rho_ij`` with
    ``N(i) = N(j)`` evolve among themselves. The steady state, every Gaussian state (the vacuum
    included) and everything evolved from them live there. That sector has ``sum_n d_n^2``
    elements (``d_n`` states of total number ``n``) instead of ``dim^2``: 1834 instead of 38416 for
    two modes of 14 levels.

    Attributes
    ----------
    cutoffs, dim
        Levels per mode and ``prod_k N_k``.
    row, col
        Element ``p`` of a sector vector is ``rho[row[p], col[p]]`` (column-stacking order).
    L : scipy.sparse.csr_matrix
        ``d x/dt = L x`` on the sector (1/time).
    jumps : list of scipy.sparse.csr_matrix
        ``J_l x = vec(L_l rho L_l^+)`` per collapse operator, in the order of :attr:`labels`.
    labels : list of CollapseOperator
    """

    cutoffs: tuple[int, ...]
    dim: int
    row: NDArray[np.int64]
    col: NDArray[np.int64]
    L: Any
    jumps: list
    labels: list[CollapseOperator]

    @property
    def size(self) -> int:
        return int(self.row.size)

    @property
    def trace(self) -> NDArray[np.float64]:
        """``Tr rho = trace @ x``."""
        return (self.row == self.col).astype(float)

    def observable(self, O: qutip.Qobj | NDArray) -> NDArray[np.complex128]:
        """Row vector ``w`` with ``Tr[O rho] = w @ x`` for a number-conserving ``O``."""
        M = O.full() if isinstance(O, qutip.Qobj) else np.asarray(O)
        return M[self.col, self.row]

    def vector(self, rho: qutip.Qobj) -> NDArray[np.complex128]:
        """The sector part of ``rho``; ValueError if ``rho`` has weight outside the sector."""
        M = rho.full()
        x = M[self.row, self.col]
        if abs(np.abs(M).sum() - np.abs(x).sum()) > 1e-12 * max(1.0, np.abs(M).sum()):
            raise ValueError("the state has coherences between different total numbers of quanta (not in the "
                             "zero-charge sector); use solver='mesolve'")
        return x

    def density_matrix(self, x: ArrayLike) -> qutip.Qobj:
        rho = np.zeros((self.dim, self.dim), dtype=complex)
        rho[self.row, self.col] = x
        return qutip.Qobj(0.5 * (rho + rho.conj().T), dims=[list(self.cutoffs), list(self.cutoffs)])

    def bordered(self):
        """LU of ``[[L, t], [t^T, 0]]`` (``t`` the trace row): nonsingular when the steady state is unique.

        Solving it with right-hand side ``(y, 0)`` gives ``L x = y``, ``Tr x = 0`` for trace-free ``y``
        (``L`` is trace preserving), and ``(0, 1)`` gives the steady state.
        """
        import scipy.sparse as sp
        from scipy.sparse.linalg import splu

        t = self.trace
        M = sp.bmat([[self.L, sp.csr_matrix(t[:, None])], [sp.csr_matrix(t[None, :]), None]], format="csc")
        return splu(M, permc_spec="NATURAL")  # block-tridiagonal in n: natural order keeps the fill in the band


def _number(cutoffs: tuple[int, ...]) -> NDArray[np.int64]:
    """Total number of quanta of each basis state (QuTiP's tensor order: the first mode most significant)."""
    return np.indices(cutoffs).sum(axis=0).ravel()


def _sector_kron(B, A, Nt: NDArray[np.int64], pos: NDArray[np.int64]):
    """Sector block of ``kron(B, A)`` (the superoperator ``X -> A X B^T``) as COO triplets."""
    A, B = A.tocoo(), B.tocoo()
    rows, cols, vals = [], [], []
    for n in np.unique(Nt[A.col]):
        ma, mb = Nt[A.col] == n, Nt[B.col] == n
        if not mb.any():
            continue
        c = pos[A.col[ma][:, None], B.col[mb][None, :]]
        r = pos[A.row[ma][:, None], B.row[mb][None, :]]
        if (r < 0).any():
            raise ValueError("an operator does not conserve the difference of ket and bra numbers")
        rows.append(r.ravel())
        cols.append(c.ravel())
        vals.append((A.data[ma][:, None] * B.data[mb][None, :]).ravel())
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, complex)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def sector(system: ModeSystem, cutoffs: ArrayLike, include_phonon: bool = True, *,
           max_size: int = MAX_SECTOR) -> Sector:
    """The zero-charge sector of the several-mode Liouvillian (:class:`Sector`), built without ``dim^2`` storage.

    ``L x = vec(-i H_eff rho + i rho H_eff^+ + sum_l L_l rho L_l^+)``, ``H_eff = H - (i/2) sum_l L_l^+ L_l``.
    ValueError where the sector has more than ``max_size`` elements.
    """
    import scipy.sparse as sp

    cut = _cutoffs(cutoffs, system.K)
    dim = check_dimension(cut, max_size, "the Lindblad route", sector_only=True)
    Nt = _number(cut)
    i, j = np.nonzero(Nt[:, None] == Nt[None, :])
    order = np.lexsort((i, j, Nt[i]))  # blocks of total number n, column stacking within a block
    row, col = i[order], j[order]
    pos = np.full((dim, dim), -1, dtype=np.int64)
    pos[row, col] = np.arange(row.size)
    ops = collapse_operators_modes(system, cut, include_phonon)
    mats = [L.to("csr").data.as_scipy() for _, L in ops]
    H = hamiltonian_modes(system, cut).to("csr").data.as_scipy()
    Heff = H - 0.5j * sum((m.conj().T @ m for m in mats), sp.csr_matrix((dim, dim), dtype=complex))
    eye = sp.identity(dim, dtype=complex, format="csr")
    size = row.size
    jumps = []
    for m in mats:
        r, c, v = _sector_kron(m.conj(), m, Nt, pos)
        jumps.append(sp.csr_matrix((v, (r, c)), shape=(size, size)))
    parts = [_sector_kron(eye, Heff, Nt, pos), _sector_kron(Heff.conj(), eye, Nt, pos)]
    r = np.concatenate([parts[0][0], parts[1][0]])
    c = np.concatenate([parts[0][1], parts[1][1]])
    v = np.concatenate([-1j * parts[0][2], 1j * parts[1][2]])
    L = sp.csr_matrix((v, (r, c)), shape=(size, size)) + sum(jumps, sp.csr_matrix((size, size), dtype=complex))
    return Sector(cut, dim, row, col, L.tocsr(), jumps, [op for op, _ in ops])


# --------------------------------------------------------------------------- results

def _float_or_none(x) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


@dataclass(frozen=True)
class LindbladResult(TimeSeries):
    """The Lindblad state's populations on a time grid (either system).

    Attributes
    ----------
    t : (n_t,) array
        Times (1/energy), up to ``stopped_at``.
    N : (n_t,) array for a JumpModel, (n_t, K) for a ModeSystem
        ``N(t) = Tr[a^dagger a rho(t)]``; per mode ``<a_k^+ a_k>(t)`` for a ModeSystem.
    P_top : same shape as ``N``
        Probability of the top Fock level ``cutoff - 1`` (of each mode): the truncation's measure.
    rho : qutip.Qobj or None
        The state at the last time; None when the guard stopped the run.
    cutoff : int or None
        Fock levels of the one-mode fast path (None for a ModeSystem: see ``cutoffs``).
    tail_probability : float
        Predicted ``P(n >= cutoff - 1)`` (:func:`sim.population.predicted_tail`); for a ModeSystem the
        largest top-level probability of a mode's geometric marginal (:func:`tail_estimate` at the
        largest ``N_k(t)``).
    stopped_at : float or None
        Time at which the top level reached ``tol`` (interpolated between grid points; one-mode guard).
    message : str or None
    cutoffs : tuple of int
        Levels per mode (``(cutoff,)`` on the fast path).
    """

    t: NDArray[np.float64]
    N: NDArray[np.float64]
    P_top: NDArray[np.float64]
    rho: qutip.Qobj | None
    cutoff: int | None
    tail_probability: float
    stopped_at: float | None = None
    message: str | None = None
    cutoffs: tuple[int, ...] = ()

    route = "lindblad"

    def __post_init__(self) -> None:
        if not self.cutoffs and self.cutoff is not None:
            object.__setattr__(self, "cutoffs", (int(self.cutoff),))

    @property
    def N_total(self) -> NDArray[np.float64]:
        """``sum_k N_k(t)``, shape (n_t,)."""
        N = np.asarray(self.N)
        return N.sum(axis=1) if N.ndim == 2 else N

    def to_frame(self):
        """The ``evolution.parquet`` table.

        One mode (a JumpModel): ``t, N, J, J_ph, Ie, J_LL .. Ie_RL`` (:meth:`TimeSeries.to_frame`, fluxes
        from ``model``). A ModeSystem: ``t``, ``N_0 .. N_{K-1}``, ``N`` (total), ``P_top_0 .. P_top_{K-1}``.
        """
        if np.ndim(self.N) == 1:
            return super().to_frame()
        import pandas as pd

        d = {"t": self.t}
        d.update({f"N_{k}": self.N[:, k] for k in range(self.N.shape[1])})
        d["N"] = self.N_total
        d.update({f"P_top_{k}": self.P_top[:, k] for k in range(self.P_top.shape[1])})
        return pd.DataFrame(d)


@dataclass(frozen=True)
class LindbladSteady(Result):
    """The Lindblad steady state (``qutip.steadystate`` or the sector's LU), or the instability verdict.

    Attributes
    ----------
    N : float for a JumpModel, ndarray (K,) for a ModeSystem
        ``<a^+ a>`` (per mode ``<a_k^+ a_k>``).
    cutoff : int or None
        Fock levels of the one-mode fast path (None for a ModeSystem and where unstable).
    tail_probability : float
        Largest probability of a top Fock level in the computed state.
    stable : bool
    rho : qutip.Qobj or None
    message : str or None
        Plain words where unstable (then every number is NaN, ``null`` in :meth:`to_dict`).
    C : ndarray (K, K) or None
        ``C_mn = <a_m^+ a_n>`` (compare :meth:`sim.covariance.ModeSystem.steady_covariance`); ``[[N]]`` for one mode.
    cutoffs : tuple of int or None
        Levels per mode (``(cutoff,)`` on the fast path).
    P_top : ndarray (K,) or None
        Probability of each mode's top level.
    model : JumpModel or None
        The one-mode model (fast path), for :meth:`provenance`.
    """

    N: float | NDArray[np.float64]
    cutoff: int | None
    tail_probability: float
    stable: bool
    rho: qutip.Qobj | None = None
    message: str | None = None
    C: NDArray[np.complex128] | None = None
    cutoffs: tuple[int, ...] | None = None
    P_top: NDArray[np.float64] | None = None
    model: RateModel | None = None

    route = "lindblad"

    def __post_init__(self) -> None:
        if np.ndim(self.N) == 0:  # the fast path: one mode's numbers as (1,) arrays too
            if self.C is None:
                object.__setattr__(self, "C", np.array([[self.N]], dtype=complex))
            if self.P_top is None:
                object.__setattr__(self, "P_top", np.array([self.tail_probability], dtype=float))
            if self.cutoffs is None and self.cutoff is not None:
                object.__setattr__(self, "cutoffs", (int(self.cutoff),))

    @property
    def N_total(self) -> float:
        """``sum_k N_k``."""
        return float(np.sum(self.N))

    def to_dict(self) -> dict[str, Any]:
        """The ``lindblad`` record of ``ehp steady --json`` (non-finite -> None).

        One mode (a JumpModel): ``N``, ``cutoff``, ``tail_probability``. A ModeSystem: ``N`` (K,),
        ``N_total``, ``C_re``/``C_im`` (K x K), ``cutoffs``, ``P_top`` (K,), ``stable``, ``message``.
        """
        if np.ndim(self.N) == 0:
            return {"N": _float_or_none(self.N), "cutoff": self.cutoff if self.stable else None,
                    "tail_probability": _float_or_none(self.tail_probability)}
        from .model import clean

        return clean({"N": np.asarray(self.N).tolist(), "N_total": self.N_total, "C_re": self.C.real.tolist(),
                      "C_im": self.C.imag.tolist(), "cutoffs": list(self.cutoffs) if self.cutoffs else None,
                      "P_top": self.P_top.tolist(), "stable": self.stable, "message": self.message})

    def to_frame(self):
        """One row per mode: ``mode``, ``N``, ``cutoff`` (levels of that mode), ``P_top`` (NaN where unstable)."""
        import pandas as pd

        N = np.atleast_1d(np.asarray(self.N, dtype=float))
        cut = list(self.cutoffs) if self.cutoffs else [None] * N.size
        P = np.atleast_1d(np.asarray(self.P_top, dtype=float))
        return pd.DataFrame({"mode": np.arange(N.size), "N": N, "cutoff": pd.array(cut, dtype="Int64"), "P_top": P})


ModesLindbladSteady = LindbladSteady
"""Former name of the several-mode steady result (now :class:`LindbladSteady` for every system)."""

ModesLindbladResult = LindbladResult
"""Former name of the several-mode evolution result (now :class:`LindbladResult` for every system)."""


# --------------------------------------------------------------------------- one mode: the fast path

_CHUNK = 50  # time points per solver run, so that the guard can stop a runaway early
_RELAX = 100.0  # a stable mode has relaxed after 100/kappa: coherences decay at kappa/2 (e^-50), populations at kappa
_STEP_SPAN = 100.0  # solver output points are at most 100/||L|| apart, so its steps per output stay below nsteps
_MAX_POINTS = 200_000  # largest number of solver output points (about a minute of mesolve): beyond it, refuse


def mesolve_options(options: dict[str, Any] | None, tol: float = DEFAULT_TOL) -> dict[str, Any]:
    """Our defaults (tight tolerances, no stored states, final state kept) updated by ``options``."""
    base = {**DEFAULT_OPTIONS, "store_states": False, "store_final_state": True}
    base["atol"] = min(base["atol"], 1e-2 * tol)
    return {**base, **(options or {})}


@dataclass(frozen=True)
class _Run:
    t: NDArray[np.float64]
    N: NDArray[np.float64]
    P_top: NDArray[np.float64]
    rho: qutip.Qobj | None
    stop: float | None


def _top_at(solver: qutip.MESolver, rho: qutip.Qobj, t0: float, t1: float) -> float:
    res = solver.run(rho, [t0, t1])
    return float(np.real(res.final_state.diag()[-1]))


def _refine_stop(solver: qutip.MESolver, rho: qutip.Qobj, t0: float, t1: float, tol: float) -> float:
    """Time in ``(t0, t1]`` at which ``P_top`` reaches ``tol``, starting from ``rho`` at ``t0``."""
    if _top_at(solver, rho, t0, t1) <= tol:
        return t1
    return float(optimize.brentq(lambda tau: _top_at(solver, rho, t0, tau) - tol, t0, t1,
                                 xtol=1e-10 * max(1.0, abs(t1)), rtol=1e-10))


def run_guarded(solver: qutip.MESolver, rho0: qutip.Qobj, t: NDArray[np.float64], tol: float,
                progress: bool | None = None) -> _Run:
    """Run ``solver`` on ``t`` in chunks, watching ``P_top = <cutoff-1|rho|cutoff-1>``.

    At the first grid time where ``P_top > tol`` the run stops; the crossing time is
    found by Brent's method, restarting the solver from the last good state.
    The solver must keep the final state (``store_final_state=True``). ``progress``: a bar
    over the time grid on stderr (None: when stderr is a terminal).
    """
    with progress_bar(t.size - 1, "lindblad", "step", progress) as bar:
        return _run_guarded(solver, rho0, t, tol, bar)


def _run_guarded(solver, rho0, t, tol, bar) -> _Run:
    K = rho0.shape[0]
    e_ops = [qutip.num(K), qutip.fock_dm(K, K - 1)]
    Ns: list[NDArray[np.float64]] = []
    tops: list[NDArray[np.float64]] = []
    rho = rho0
    if float(np.real(rho0.diag()[-1])) > tol:
        return _Run(t[:0], t[:0], t[:0], None, float(t[0]))
    i = 0
    while True:
        j = min(i + _CHUNK, t.size - 1)
        chunk = t[i: j + 1]
        start = rho
        res = solver.run(rho, chunk, e_ops=e_ops)
        N = np.real(np.asarray(res.expect[0], dtype=complex))
        top = np.real(np.asarray(res.expect[1], dtype=complex))
        bad = np.flatnonzero(top > tol)
        if bad.size:
            k = int(bad[0])
            good = solver.run(start, chunk[: k]).final_state if k > 1 else start
            t0, t1 = float(chunk[k - 1]), float(chunk[k])
            stop = _refine_stop(solver, good, t0, t1, tol)
            Ns.append(N[(i > 0): k])
            tops.append(top[(i > 0): k])
            n = sum(x.size for x in Ns)
            return _Run(t[:n], np.concatenate(Ns), np.concatenate(tops), None, stop)
        Ns.append(N[(i > 0):])
        tops.append(top[(i > 0):])
        bar.update(j - i)
        rho = res.final_state
        if j >= t.size - 1:
            return _Run(t, np.concatenate(Ns), np.concatenate(tops), rho, None)
        i = j


def guarded_result(run: _Run, cutoff: int, tail: float, tol: float, kappa: float,
                   on_truncation: OnTruncation) -> LindbladResult:
    """Turn a guarded run into a :class:`LindbladResult`, raising where the rules say so."""
    if run.stop is None:
        return LindbladResult(run.t, run.N, run.P_top, run.rho, cutoff, tail)
    stable = kappa > 0
    msg = stop_message(kappa, stable, run.stop, cutoff, tol)
    result = LindbladResult(run.t, run.N, run.P_top, None, cutoff, tail, run.stop, msg)
    if run.t.size == 0 or (on_truncation or ("raise" if stable else "return")) == "raise":
        raise TruncationError(msg, run.stop, result)
    return result


def _evolve_fock(
    model: RateModel,
    t: ArrayLike,
    initial: str | InitialSpec | qutip.Qobj = "vacuum",
    cutoff: int | None = None,
    *,
    tol: float = DEFAULT_TOL,
    max_cutoff: int = LINDBLAD_MAX_CUTOFF,
    options: dict[str, Any] | None = None,
    on_truncation: OnTruncation = None,
    progress: bool | None = None,
) -> LindbladResult:
    """The one-mode fast path of :func:`evolve_lindblad` (a JumpModel): ``qutip.MESolver`` run in chunks of
    the grid so that the top-level guard can stop a runaway early; parameters as there."""
    t = time_grid(t)
    if isinstance(initial, qutip.Qobj):
        rho0 = initial if initial.isoper else qutip.ket2dm(initial)
        if cutoff is not None and rho0.shape[0] != cutoff:
            raise ValueError(f"initial state has {rho0.shape[0]} levels, cutoff is {cutoff}")
        cutoff = rho0.shape[0]
        tail = predicted_tail(model, _spec_of_state(rho0), cutoff, t)
    else:
        if cutoff is None:
            cutoff, tail = choose_cutoff(model, initial, t, tol=tol, max_cutoff=max_cutoff)
        else:
            tail = predicted_tail(model, initial, cutoff, t)
        rho0 = initial_state(initial, cutoff, model)
    cutoff = _check_cutoff(cutoff)
    c_ops = [op for _, _, op in collapse_operators(model, cutoff)]
    H = hamiltonian(model, cutoff)
    solver = qutip.MESolver(H, c_ops, options=mesolve_options(options, tol))
    tt, keep, relaxed = _solver_grid(model, t, cutoff, tol)
    run = run_guarded(solver, rho0, tt, tol, progress)
    n = int(np.count_nonzero(keep[: run.t.size]))
    if relaxed is not None and run.stop is None:  # the rest of the grid is the steady state (verified)
        run = _steady_tail(run, keep, relaxed, H, c_ops, t, float(model.kappa))
    else:
        run = _Run(t[:n], run.N[keep[: run.t.size]], run.P_top[keep[: run.t.size]], run.rho, run.stop)
    return guarded_result(run, cutoff, tail, tol, float(model.kappa), on_truncation)


def _solver_grid(model: RateModel, t: NDArray[np.float64], cutoff: int, tol: float
                 ) -> tuple[NDArray[np.float64], NDArray[np.bool_], float | None]:
    """The solver's output times: the grid up to the horizon, with points inserted where it is coarse.

    ``mesolve`` takes at most ``nsteps`` steps between two output times, and a step cannot be much
    longer than ``1/||L||`` (``||L|| = cutoff (sum of the rates + Omega)``, the fastest rate of the
    truncated Liouvillian): a grid spacing of ``kappa dt >> 1`` failed with "Excess work done".
    Points are inserted so that no two are more than ``100/||L||`` apart, up to the horizon:

    - stable: ``100/kappa`` after ``t[0]`` (everything has relaxed to ``e^-50``); the grid beyond it
      is given the steady state (:func:`_steady_tail`, after checking the state has reached it);
    - unstable: twice the rate-equation time for ``N`` to fill the cutoff (the guard stops earlier).

    More than :data:`_MAX_POINTS` points is refused (:class:`sim.guards.GuardError`), naming t_end.
    Returns ``(times, keep, relaxed_at)``: ``keep`` marks the times of ``t``; ``relaxed_at`` is the
    horizon when the grid goes beyond it on the stable side, else None.
    """
    k = float(model.kappa)
    rates = float(np.sum(model.label_rates)) + float(model.omega)
    norm = cutoff * rates
    span = float(t[-1] - t[0])
    if bool(model.stable):
        horizon = _RELAX / k
    else:
        n_cap = max(1.0, (cutoff - 1) / math.log(1.0 / tol))
        src = max(float(model.source), np.finfo(float).tiny)
        horizon = 2 * (math.log1p(n_cap * abs(k) / src) / abs(k) if k != 0 else n_cap / src)
    run_to = min(span, horizon)
    h = _STEP_SPAN / norm
    n_inner = math.ceil(run_to / h) if run_to > 0 else 0
    if n_inner > _MAX_POINTS:
        from .guards import GuardError

        what = "relaxes" if bool(model.stable) else "runs away"
        raise GuardError(
            f"t_end = {float(t[-1]):.6g} on the lindblad route: the mode {what} over t = {run_to:.3g} "
            f"(kappa = {k:.6g}) while the Liouvillian's fastest rate is {norm:.3g} (cutoff {cutoff}), "
            f"{n_inner:.3g} solver steps > {_MAX_POINTS}; use --method population (exact for any t_end) "
            "or a smaller cutoff or t_end")
    t0 = float(t[0])
    inner = t0 + np.linspace(0.0, run_to, n_inner + 1) if n_inner else np.array([t0])
    grid = t[t - t0 <= run_to]
    tt = np.union1d(grid, inner)
    keep = np.isin(tt, grid)
    relaxed = t0 + run_to if (bool(model.stable) and span > horizon) else None
    return tt, keep, relaxed


def _steady_tail(run: _Run, keep: NDArray[np.bool_], relaxed: float, H: qutip.Qobj, c_ops: list, t: NDArray[np.float64],
                 kappa: float) -> _Run:
    """Fill the grid beyond the horizon ``relaxed`` (``100/kappa``) with the steady state.

    ``qutip.steadystate`` gives ``rho_ss``; the state the solver reached at the horizon must agree
    with it to ``1e-8`` in every element (mesolve's own error, ``rtol = 1e-10`` over the run, is
    below that), else :class:`sim.guards.NumericalError`.
    """
    from .guards import NumericalError

    rho_ss = qutip.steadystate(H, c_ops, method="direct")
    diff = float(np.max(np.abs((run.rho - rho_ss).full())))
    if not diff <= 1e-8:
        raise NumericalError(f"the Lindblad state at t = {relaxed:.6g} (100/kappa, kappa = {kappa:.6g}) differs from "
                             f"the steady state by {diff:.3g} > 1e-8: it has not relaxed; use --method population")
    K = rho_ss.shape[0]
    N_ss = float(np.real(qutip.expect(qutip.num(K), rho_ss)))
    top_ss = float(np.real(rho_ss.diag()[-1]))
    N = np.concatenate([run.N[keep], np.full(t.size - int(np.count_nonzero(keep)), N_ss)])
    top = np.concatenate([run.P_top[keep], np.full(N.size - int(np.count_nonzero(keep)), top_ss)])
    return _Run(t, N, top, rho_ss, None)

def _steady_fock(model: RateModel, cutoff: int | None = None, *, tol: float = DEFAULT_TOL,
                 method: str = "direct") -> LindbladSteady:
    """The one-mode fast path of :func:`steady_lindblad`: ``qutip.steadystate`` on ``cutoff`` Fock levels.

    Unstable (``kappa <= 0``): no computation, ``stable = False`` and the message
    "unstable mode: kappa = ... <= 0 ... N grows at rate ...", never a number.
    A top-level probability above ``tol`` raises :class:`TruncationError`.
    """
    kappa = float(model.kappa)
    if not bool(model.stable):  # kappa <= 0, or within round-off of 0 (RateModel.near_threshold)
        return LindbladSteady(float("nan"), None, float("nan"), False, None, unstable_message(kappa), model=model)
    if cutoff is None:
        cutoff, _ = choose_cutoff(model, "vacuum", tol=tol, max_cutoff=LINDBLAD_MAX_CUTOFF)
    cutoff = _check_cutoff(cutoff)
    c_ops = [op for _, _, op in collapse_operators(model, cutoff)]
    rho = qutip.steadystate(hamiltonian(model, cutoff), c_ops, method=method)
    N = float(np.real(qutip.expect(qutip.num(cutoff), rho)))
    p_top = float(np.real(rho.diag()[-1]))
    result = LindbladSteady(N, cutoff, p_top, True, rho, model=model)
    if p_top > tol:
        raise TruncationError(
            f"truncation: the top Fock level {cutoff - 1} holds probability {p_top:.3g} > {tol:.3g} in the "
            f"Lindblad steady state (cutoff {cutoff}); raise the cutoff", math.inf, result)
    return result



# --------------------------------------------------------------------------- several modes: solvers

def _unstable_message(system: ModeSystem) -> str:
    return (f"unstable modes: the collective mode with weights {np.round(system.unstable_mode, 4).tolist()} grows at "
            f"rate {system.growth_rate:.6g} (-2 min Re eig(Y) > 0); there is no steady state")


def _steady_modes(system: ModeSystem, cutoffs: ArrayLike | None, tol: float, solver: str, max_size: int | None,
                  include_phonon: bool) -> LindbladSteady:
    """:func:`steady_lindblad` of a ModeSystem: the sector's bordered LU or ``qutip.steadystate``."""
    K = system.K
    solver = "sector" if solver == "auto" else solver
    if solver not in ("sector", "qutip"):
        raise ValueError(f"solver must be 'auto', 'sector' or 'qutip' for a ModeSystem, got {solver!r}")
    options = {"solver": solver, "tol": tol, "include_phonon": include_phonon}
    if not system.stable:
        nan = np.full(K, np.nan)
        return LindbladSteady(nan, None, float("nan"), False, None, _unstable_message(system),
                              C=np.full((K, K), np.nan + 0j), P_top=nan, options=options)
    cut = mode_cutoffs(system, tol=tol) if cutoffs is None else _cutoffs(cutoffs, K)
    if solver == "sector":
        sec = sector(system, cut, include_phonon, max_size=MAX_SECTOR if max_size is None else max_size)
        rhs = np.zeros(sec.size + 1, dtype=complex)
        rhs[-1] = 1.0
        rho = sec.density_matrix(sec.bordered().solve(rhs)[:-1])
    else:
        check_dimension(cut, MAX_LIOUVILLE if max_size is None else max_size)
        c_ops = [L for _, L in collapse_operators_modes(system, cut, include_phonon)]
        rho = qutip.steadystate(hamiltonian_modes(system, cut), c_ops, method="direct")
    C = covariance_of(rho, cut)
    P_top = np.array([float(np.real(qutip.expect(P, rho))) for P in _top_projectors(cut)])
    return LindbladSteady(np.diagonal(C).real.copy(), None, float(P_top.max()), True, rho, C=C, cutoffs=cut,
                          P_top=P_top, options={**options, "cutoffs": list(cut)})


GAUSSIAN_STARTS = ("vacuum", "steady", "thermal")
"""``run.initial`` kinds a ModeSystem starts from (Gaussian states; besides a covariance or a density matrix)."""


def _initial(system: ModeSystem, initial: str | InitialSpec | ArrayLike | qutip.Qobj
             ) -> tuple[NDArray[np.complex128] | None, Any]:
    """``(C0, state)``: the covariance of a Gaussian initial state (or None for a given Qobj).

    ``vacuum``; ``steady`` (the Lyapunov ``C``); ``thermal:N`` (every mode thermal with mean ``N``,
    no coherences: ``C0 = N 1``) or ``thermal:T=<temperature>`` (``C0 = diag(nB(Omega_k, T))``, each mode
    at its own quantum); a (K, K) covariance; or a density matrix on the tensor space.
    """
    if isinstance(initial, qutip.Qobj):
        return None, initial
    if isinstance(initial, str | InitialSpec):
        s = InitialSpec.parse(initial)
        if s.kind == "vacuum":
            return np.zeros((system.K, system.K), dtype=complex), "vacuum"
        if s.kind == "steady":
            if not system.stable:
                raise ValueError(f"initial 'steady' needs stable modes: {_unstable_message(system)}")
            return system.steady_covariance(), "gaussian"
        if s.kind == "thermal":  # thermal:N in every mode, or thermal:T= at each mode's own quantum
            return np.diag(s.means(system.omega)).astype(complex), "gaussian"
        raise ValueError(f"initial = {str(s)!r}: the Lindblad route of a ModeSystem starts from a Gaussian state "
                         "(vacuum, steady, thermal:N, a (K, K) covariance) or a density matrix on the tensor space; "
                         "fock, coherent and distribution starts of one mode run on its JumpModel (sim.rate_model)")
    C0 = np.asarray(initial, dtype=complex)
    if C0.shape != (system.K, system.K):
        raise ValueError(f"an initial covariance must have shape ({system.K}, {system.K}), got {C0.shape}")
    normal_modes(C0)  # checks Hermitian, PSD
    return C0, "gaussian"


def _evolve_modes(system: ModeSystem, t: ArrayLike, initial, cutoffs: ArrayLike | None, tol: float, solver: str,
                  max_size: int | None, options: dict[str, Any] | None, include_phonon: bool,
                  progress: bool | None) -> LindbladResult:
    """:func:`evolve_lindblad` of a ModeSystem: ``expm_multiply`` on the sector or ``qutip.MESolver``,
    both in chunks of :data:`_CHUNK` grid points under a progress bar."""
    from scipy.sparse.linalg import expm_multiply

    if solver not in ("auto", "sector", "mesolve"):
        raise ValueError(f"solver must be 'auto', 'sector' or 'mesolve' for a ModeSystem, got {solver!r}")
    t = time_grid(t)
    C0, state = _initial(system, initial)
    if cutoffs is None:
        if C0 is None:
            raise ValueError("give cutoffs for a density-matrix initial state")
        cutoffs = mode_cutoffs(system, t - t[0], C0, tol=tol)
    cut = _cutoffs(cutoffs, system.K)
    check_dimension(cut, 10**12)  # cutoffs valid
    if state == "vacuum":
        rho0 = qutip.ket2dm(qutip.tensor(*(qutip.basis(c, 0) for c in cut)))
    elif state == "gaussian":
        rho0 = gaussian_state(C0, cut)
    else:
        rho0 = state if state.isoper else qutip.ket2dm(state)
        if rho0.dims[0] != list(cut):
            raise ValueError(f"initial state has dims {rho0.dims[0]}, cutoffs are {list(cut)}")
    K = system.K
    a = mode_operators(cut)
    obs = [x.dag() * x for x in a] + _top_projectors(cut)
    if solver == "auto":
        solver = "mesolve" if C0 is None else "sector"
    steps = [(i, min(i + _CHUNK, t.size - 1)) for i in range(0, t.size - 1, _CHUNK)]
    with progress_bar(t.size - 1, "lindblad", "step", progress) as bar:
        if solver == "sector":
            sec = sector(system, cut, include_phonon, max_size=MAX_SECTOR if max_size is None else max_size)
            W = np.array([sec.observable(O) for O in obs])
            X = [sec.vector(rho0)[None, :]]
            dt = np.diff(t)
            uniform = dt.size > 0 and np.allclose(dt, dt[0], rtol=1e-12, atol=0)
            for i, j in steps:
                if uniform:  # the whole chunk in one call (exact propagation to each grid time)
                    X.append(expm_multiply(sec.L, X[-1][-1], start=0.0, stop=t[j] - t[i], num=j - i + 1,
                                           endpoint=True)[1:])
                else:
                    chunk = [X[-1][-1]]
                    for h in dt[i:j]:
                        chunk.append(expm_multiply(sec.L * h, chunk[-1]))
                    X.append(np.array(chunk[1:]))
                bar.update(j - i)
            X = np.concatenate(X)
            ex = np.real(X @ W.T).T
            rho = sec.density_matrix(X[-1])
        else:
            check_dimension(cut, MAX_LIOUVILLE if max_size is None else max_size)
            c_ops = [L for _, L in collapse_operators_modes(system, cut, include_phonon)]
            opts = {"atol": 1e-12, "rtol": 1e-10, "store_states": False, "store_final_state": True, **(options or {})}
            mes = qutip.MESolver(hamiltonian_modes(system, cut), c_ops, options=opts)
            rho = rho0
            ex = [np.real([qutip.expect(O, rho0) for O in obs])[:, None]]
            for i, j in steps:
                res = mes.run(rho, t[i: j + 1], e_ops=obs)
                ex.append(np.real(np.array([np.asarray(e, dtype=complex) for e in res.expect]))[:, 1:])
                rho = res.final_state
                bar.update(j - i)
            ex = np.concatenate(ex, axis=1)
    N = ex[:K].T.copy()
    P_top = ex[K:].T.copy()
    tail = float(tail_estimate(N.max(axis=0), cut).max())
    return LindbladResult(t, N, P_top, rho, None, tail, cutoffs=cut,
                          options={"solver": solver, "tol": tol, "include_phonon": include_phonon,
                                   "cutoffs": list(cut)})


def tail_estimate(N: ArrayLike, cutoffs: ArrayLike) -> NDArray[np.float64]:
    """Predicted top-level probability per mode, ``x_k^(N_k - 1)`` with ``x_k = n_k/(n_k + 1)`` (geometric marginals)."""
    return np.array([geometric_tail(float(n), int(c)) for n, c in zip(np.atleast_1d(N), np.atleast_1d(cutoffs),
                                                                      strict=True)])


# --------------------------------------------------------------------------- the route: one entry each

def steady_lindblad(system: LindbladSystem, cutoff: int | ArrayLike | None = None, *, cutoffs: ArrayLike | None = None,
                    tol: float = DEFAULT_TOL, method: str = "direct", solver: str = "auto",
                    max_size: int | None = None, include_phonon: bool = True) -> LindbladSteady:
    """Steady state of the Lindblad equation of any number of modes: ``N``, cutoffs, top-level probabilities.

    Parameters
    ----------
    system
        A :class:`sim.model.JumpModel` (one mode, the fast path: ``qutip.steadystate`` on ``cutoff`` Fock
        levels, result with a scalar ``N``) or a :class:`sim.covariance.ModeSystem` of ``K >= 1`` modes
        (the truncated tensor Fock space; ``N`` per mode, the covariance ``C``).
    cutoff, cutoffs
        Levels: one int, or for a ModeSystem one per mode (``cutoffs`` is the same argument, its
        several-mode name). Default: :func:`sim.cutoff.choose_cutoff` (one mode, capped at
        :data:`LINDBLAD_MAX_CUTOFF`) or :func:`mode_cutoffs` (steady ``C_kk``, tail ``<= tol``).
    tol
        Top-level probability allowed. The fast path raises :class:`sim.population.TruncationError`
        above it; a ModeSystem reports ``P_top`` per mode.
    method
        ``qutip.steadystate`` method of the fast path.
    solver
        ModeSystem: ``"sector"`` (``"auto"``, default: sparse LU of the bordered Liouvillian on the
        zero-charge sector, :class:`Sector`) or ``"qutip"`` (``qutip.steadystate`` on the full
        Liouvillian, ``dim^2`` rows). The fast path has only ``"auto"``.
    max_size
        ModeSystem budget: sector elements (default :data:`MAX_SECTOR`) or Liouvillian rows (:data:`MAX_LIOUVILLE`).
    include_phonon
        ModeSystem: keep the ph-bath's collapse operators.

    Unstable systems return ``stable = False``, NaN and a plain-words ``message`` without a computation.
    """
    if cutoff is not None and cutoffs is not None:
        raise ValueError("give cutoff or cutoffs, not both")
    cut = cutoffs if cutoff is None else cutoff
    if isinstance(system, ModeSystem):
        return _steady_modes(system, cut, tol, solver, max_size, include_phonon)
    if solver != "auto":
        raise ValueError(f"solver = {solver!r} applies to a ModeSystem; the one-mode fast path has only 'auto'")
    return _steady_fock(system, cut, tol=tol, method=method)


def evolve_lindblad(
    system: LindbladSystem,
    t: ArrayLike,
    initial: str | InitialSpec | ArrayLike | qutip.Qobj = "vacuum",
    cutoff: int | ArrayLike | None = None,
    *,
    cutoffs: ArrayLike | None = None,
    tol: float = DEFAULT_TOL,
    max_cutoff: int = LINDBLAD_MAX_CUTOFF,
    options: dict[str, Any] | None = None,
    on_truncation: OnTruncation = None,
    progress: bool | None = None,
    solver: str = "auto",
    max_size: int | None = None,
    include_phonon: bool = True,
) -> LindbladResult:
    """Evolve the Lindblad equation of any number of modes on a time grid; ``N(t)`` (per mode) and ``P_top(t)``.

    Parameters
    ----------
    system
        A :class:`sim.model.JumpModel` (one mode, the fast path: ``qutip.MESolver`` on ``cutoff`` Fock
        levels, run in chunks of the grid so that the top-level guard can stop a runaway early; ``N`` has
        shape (n_t,)) or a :class:`sim.covariance.ModeSystem` of ``K >= 1`` modes (the truncated tensor
        Fock space; ``N`` has shape (n_t, K)).
    t
        Strictly increasing time grid (1/energy); ``t[0]`` is the time of ``initial``.
    initial
        Fast path: any ``run.initial`` spec (``vacuum``, ``steady``, ``thermal:N``, ``fock:n``,
        ``coherent:alpha``) or a density matrix on ``cutoff`` levels. ModeSystem: a Gaussian state
        (``vacuum``, ``steady`` (:func:`gaussian_state` of the Lyapunov ``C``), ``thermal:N`` (``C0 = N 1``),
        a (K, K) covariance ``C0``) or a density matrix on the tensor space.
    cutoff, cutoffs
        Levels (one int, or one per mode; ``cutoffs`` is the several-mode name of the same argument).
        Default: :func:`sim.cutoff.choose_cutoff` (fast path, capped at ``max_cutoff``) or :func:`mode_cutoffs`
        with ``max_t C(t)_kk`` from ``C0`` (exact for Gaussian starts; required for a density-matrix start).
    tol
        Fast path: the guard on the top-level probability (as in :func:`sim.population.evolve_population`).
        ModeSystem: the tail each mode's cutoff leaves; ``P_top`` is reported per mode.
    options
        mesolve options, merged over :data:`DEFAULT_OPTIONS` (fast path: ``atol = min(1e-12, tol/100)``,
        ``rtol = 1e-10``, ``store_states=False``, ``store_final_state=True``).
    on_truncation
        Fast path: ``"raise"``, ``"return"``, or None: return for an unstable model, raise otherwise.
    progress
        A bar over the time grid on stderr (None: when stderr is a terminal).
    solver
        ModeSystem: ``"mesolve"`` (``qutip.MESolver`` on the full space, ``dim^2`` budget
        :data:`MAX_LIOUVILLE`), ``"sector"`` (``scipy.sparse.linalg.expm_multiply`` on the zero-charge
        sector, exact propagation between grid times, budget :data:`MAX_SECTOR`; Gaussian or
        number-diagonal starts) or ``"auto"`` (``"sector"`` where the start allows it). The fast path has only ``"auto"``.
    max_size, include_phonon
        ModeSystem: the budget and whether to keep the ph-bath's collapse operators.
    """
    if cutoff is not None and cutoffs is not None:
        raise ValueError("give cutoff or cutoffs, not both")
    cut = cutoffs if cutoff is None else cutoff
    if isinstance(system, ModeSystem):
        return _evolve_modes(system, t, initial, cut, tol, solver, max_size, options, include_phonon, progress)
    if solver != "auto":
        raise ValueError(f"solver = {solver!r} applies to a ModeSystem; the one-mode fast path has only 'auto'")
    return _evolve_fock(system, t, initial, cut, tol=tol, max_cutoff=max_cutoff, options=options,
                        on_truncation=on_truncation, progress=progress)


steady_lindblad_modes = steady_lindblad
"""Former name of :func:`steady_lindblad` for a ModeSystem (the one function now takes every system)."""

evolve_lindblad_modes = evolve_lindblad
"""Former name of :func:`evolve_lindblad` for a ModeSystem (the one function now takes every system)."""
