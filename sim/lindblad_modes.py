r"""Several modes on the tensor Fock space: the multi-mode Lindblad equation with QuTiP 5.

Modes ``k = 0..K-1`` with quanta ``Omega_k`` (docs/theory.md, "Several modes")::

    d rho/dt = -i[sum_k Omega_k a_k^+ a_k, rho] + sum_l D[L_l] rho,   D[L] rho = L rho L^+ - {L^+ L, rho}/2,

with one labelled collapse operator per eigenvector ``v_j`` (eigenvalue ``lambda_j > 0``) of each
cluster's rate matrix, per channel ``c`` and direction (:meth:`sim.covariance.ModeSystem.collapse_operators`)::

    emission   (c, j):  L = sqrt(lambda_j) sum_m (v_j)_m a_m^+
    absorption (c, j):  L = sqrt(lambda_j) sum_m conj((v_j)_m) a_m

plus the ph-bath's ``sqrt(gamma_k (n_k + 1)) a_k`` and ``sqrt(gamma_k n_k) a_k^+`` per mode. Summed over
``j`` they give the rate-matrix form ``sum_mn T_em_mn (a_m^+ rho a_n - ...)`` of the covariance route.

Cutoffs. Mode ``k`` keeps ``0 .. N_k - 1`` quanta; the tensor space has ``prod_k N_k`` states and the
Liouvillian ``(prod_k N_k)^2`` rows. The generator is quadratic, so a Gaussian initial state (the
vacuum included) stays Gaussian, and the marginal of mode ``k`` is a geometric (Bose-Einstein)
distribution of mean ``C_kk``: the one-mode tail rule :func:`sim.fock.geometric_cutoff` applied to
``max_t C(t)_kk`` (or the steady ``C_kk``) puts at most ``tol`` on each mode's top level.

Solvers. Every collapse operator changes the total number of quanta by +-1 and ``H`` conserves it,
so the density-matrix elements between states of equal total number (the zero-charge
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

from .conductor import CHARGE_SIGN
from .covariance import CollapseOperator, ModeSystem
from .fock import DEFAULT_TOL, geometric_cutoff, geometric_tail
from .grids import time_grid

__all__ = [
    "MAX_LIOUVILLE", "MAX_SECTOR", "ModesLindbladResult", "ModesLindbladSteady", "Sector", "check_dimension",
    "collapse_operators_modes", "sector", "sector_size",
    "covariance_of", "evolve_lindblad_modes", "gaussian_state", "hamiltonian_modes", "mode_cutoffs",
    "mode_operators", "normal_modes", "operator_properties", "steady_lindblad_modes", "tail_estimate",
]

MAX_LIOUVILLE = 1_000_000
"""Largest Liouvillian (``dim^2`` rows, ``dim = prod_k N_k``) of the several-mode Lindblad route:
``dim = 1000`` states, e.g. two modes of 31 levels or three of 10."""


# --------------------------------------------------------------------------- cutoffs and operators

MAX_SECTOR = 20_000
"""Largest zero-charge sector (:class:`Sector`, ``sum_n d_n^2`` elements) of the sparse-LU solvers:
steady state, counting statistics and ``solver="sector"`` evolution. The LU of the block-tridiagonal
sector costs about ``size x band``: a fraction of a second for two modes of 14 levels (1834 elements),
seconds for two modes of 20 (5340); the limit admits two modes of 31 levels or three of 8."""


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
    """``H = sum_k Omega_k a_k^+ a_k`` (energy units; the Lamb shift is neglected, as in the covariance route)."""
    a = mode_operators(_cutoffs(cutoffs, system.K))
    return sum((float(w) * x.dag() * x for w, x in zip(system.omega, a, strict=True)), 0 * a[0])


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


# --------------------------------------------------------------------------- Gaussian states

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


# --------------------------------------------------------------------------- the zero-charge sector

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

@dataclass(frozen=True, eq=False)
class ModesLindbladSteady:
    """``qutip.steadystate`` of several truncated modes, or the instability verdict.

    Attributes
    ----------
    N : ndarray (K,)
        ``<a_k^+ a_k>``.
    C : ndarray (K, K)
        ``C_mn = <a_m^+ a_n>`` (compare :meth:`ModeSystem.steady_covariance`).
    cutoffs : tuple of int or None
    P_top : ndarray (K,)
        Probability of each mode's top level (the truncation's measure).
    stable : bool
    rho : qutip.Qobj or None
    message : str or None
        Plain words where unstable (then every number is NaN).
    """

    N: NDArray[np.float64]
    C: NDArray[np.complex128]
    cutoffs: tuple[int, ...] | None
    P_top: NDArray[np.float64]
    stable: bool
    rho: qutip.Qobj | None = None
    message: str | None = None

    @property
    def N_total(self) -> float:
        return float(np.sum(self.N))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (the ``lindblad`` record of a several-mode ``ehp steady``; non-finite -> None):
        ``N`` (K,), ``N_total``, ``C_re``/``C_im`` (K x K), ``cutoffs``, ``P_top`` (K,), ``stable``, ``message``."""
        from .model import clean

        return clean({"N": self.N.tolist(), "N_total": self.N_total, "C_re": self.C.real.tolist(),
                      "C_im": self.C.imag.tolist(), "cutoffs": list(self.cutoffs) if self.cutoffs else None,
                      "P_top": self.P_top.tolist(), "stable": self.stable, "message": self.message})


@dataclass(frozen=True, eq=False)
class ModesLindbladResult:
    """mesolve of several truncated modes on a time grid.

    ``N`` (n_t, K) holds ``<a_k^+ a_k>(t)``, ``N_total`` (n_t,) their sum, ``P_top`` (n_t, K) the
    probability of each mode's top level; ``rho`` is the state at the last time.
    """

    t: NDArray[np.float64]
    N: NDArray[np.float64]
    N_total: NDArray[np.float64]
    P_top: NDArray[np.float64]
    cutoffs: tuple[int, ...]
    rho: qutip.Qobj | None

    def to_frame(self):
        """Wide table: ``t``, ``N_0 .. N_{K-1}``, ``N`` (total), ``P_top_0 .. P_top_{K-1}`` (one row per time)."""
        import pandas as pd

        d = {"t": self.t}
        d.update({f"N_{k}": self.N[:, k] for k in range(self.N.shape[1])})
        d["N"] = self.N_total
        d.update({f"P_top_{k}": self.P_top[:, k] for k in range(self.P_top.shape[1])})
        return pd.DataFrame(d)


# --------------------------------------------------------------------------- solvers

def _unstable_message(system: ModeSystem) -> str:
    return (f"unstable modes: the collective mode with weights {np.round(system.unstable_mode, 4).tolist()} grows at "
            f"rate {system.growth_rate:.6g} (-2 min Re eig(Y) > 0); there is no steady state")


def steady_lindblad_modes(system: ModeSystem, cutoffs: ArrayLike | None = None, *, tol: float = DEFAULT_TOL,
                          solver: str = "sector", max_size: int | None = None,
                          include_phonon: bool = True) -> ModesLindbladSteady:
    """Steady state of the several-mode Lindblad equation on the truncated tensor Fock space.

    Parameters
    ----------
    system
        The modes (:func:`sim.covariance.mode_system`).
    cutoffs
        Levels per mode (int or (K,)); default :func:`mode_cutoffs` (steady ``C_kk``, tail ``<= tol``).
    solver
        ``"sector"`` (default: sparse LU of the bordered Liouvillian on the zero-charge sector,
        :class:`Sector`) or ``"qutip"`` (``qutip.steadystate`` on the full Liouvillian, ``dim^2`` rows).
    max_size
        Budget: sector elements (default :data:`MAX_SECTOR`) or Liouvillian rows (:data:`MAX_LIOUVILLE`).

    Unstable systems return ``stable = False`` and NaN without a computation.
    """
    K = system.K
    if solver not in ("sector", "qutip"):
        raise ValueError(f"solver must be 'sector' or 'qutip', got {solver!r}")
    if not system.stable:
        nan = np.full(K, np.nan)
        return ModesLindbladSteady(nan, np.full((K, K), np.nan + 0j), None, nan, False, None, _unstable_message(system))
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
    return ModesLindbladSteady(np.diagonal(C).real.copy(), C, cut, P_top, True, rho)


def _initial(system: ModeSystem, initial: str | ArrayLike | qutip.Qobj) -> tuple[NDArray[np.complex128] | None, Any]:
    """``(C0, state)``: the covariance of a Gaussian initial state (or None for a given Qobj)."""
    if isinstance(initial, qutip.Qobj):
        return None, initial
    if isinstance(initial, str):
        if initial == "vacuum":
            return np.zeros((system.K, system.K), dtype=complex), "vacuum"
        if initial == "steady":
            if not system.stable:
                raise ValueError(f"initial 'steady' needs stable modes: {_unstable_message(system)}")
            return system.steady_covariance(), "gaussian"
        raise ValueError(f"initial must be 'vacuum', 'steady', a (K, K) covariance or a density matrix, got {initial!r}")
    C0 = np.asarray(initial, dtype=complex)
    if C0.shape != (system.K, system.K):
        raise ValueError(f"an initial covariance must have shape ({system.K}, {system.K}), got {C0.shape}")
    normal_modes(C0)  # checks Hermitian, PSD
    return C0, "gaussian"


def evolve_lindblad_modes(system: ModeSystem, t: ArrayLike, initial: str | ArrayLike | qutip.Qobj = "vacuum",
                          cutoffs: ArrayLike | None = None, *, tol: float = DEFAULT_TOL, solver: str = "auto",
                          max_size: int | None = None, options: dict[str, Any] | None = None,
                          include_phonon: bool = True) -> ModesLindbladResult:
    """Evolve the several-mode Lindblad equation; per-mode ``N_k(t)`` and the total ``N(t)``.

    Parameters
    ----------
    t
        Strictly increasing grid (1/energy); ``t[0]`` is the time of ``initial``.
    initial
        ``"vacuum"``, ``"steady"`` (the Gaussian steady state, :func:`gaussian_state` of the Lyapunov ``C``),
        a (K, K) covariance ``C0`` (a Gaussian state) or a density matrix on the tensor space.
    cutoffs
        Levels per mode; default :func:`mode_cutoffs` with ``max_t C(t)_kk`` from ``C0`` (exact for Gaussian
        starts; required for a density-matrix start).
    solver
        ``"mesolve"`` (``qutip.mesolve`` on the full space, ``dim^2`` budget :data:`MAX_LIOUVILLE`),
        ``"sector"`` (``scipy.sparse.linalg.expm_multiply`` on the zero-charge sector, exact propagation
        between grid times, budget :data:`MAX_SECTOR`; Gaussian or number-diagonal starts) or ``"auto"``
        (``"sector"`` where the start allows it).
    options
        mesolve options over ``atol=1e-12, rtol=1e-10``.
    """
    from scipy.sparse.linalg import expm_multiply

    if solver not in ("auto", "sector", "mesolve"):
        raise ValueError(f"solver must be 'auto', 'sector' or 'mesolve', got {solver!r}")
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
    if solver == "sector":
        sec = sector(system, cut, include_phonon, max_size=MAX_SECTOR if max_size is None else max_size)
        x = sec.vector(rho0)
        W = np.array([sec.observable(O) for O in obs])
        dt = np.diff(t)
        if np.allclose(dt, dt[0], rtol=1e-12, atol=0):
            X = expm_multiply(sec.L, x, start=0.0, stop=t[-1] - t[0], num=t.size, endpoint=True)
        else:
            X = [x]
            for h in dt:
                X.append(expm_multiply(sec.L * h, X[-1]))
            X = np.array(X)
        ex = np.real(np.asarray(X) @ W.T).T
        rho = sec.density_matrix(X[-1])
    else:
        check_dimension(cut, MAX_LIOUVILLE if max_size is None else max_size)
        c_ops = [L for _, L in collapse_operators_modes(system, cut, include_phonon)]
        opts = {"atol": 1e-12, "rtol": 1e-10, "store_states": False, "store_final_state": True, **(options or {})}
        res = qutip.mesolve(hamiltonian_modes(system, cut), rho0, t, c_ops, e_ops=obs, options=opts)
        ex = np.real(np.array([np.asarray(e, dtype=complex) for e in res.expect]))
        rho = res.final_state
    N = ex[:K].T.copy()
    return ModesLindbladResult(t, N, N.sum(axis=1), ex[K:].T.copy(), cut, rho)


def tail_estimate(N: ArrayLike, cutoffs: ArrayLike) -> NDArray[np.float64]:
    """Predicted top-level probability per mode, ``x_k^(N_k - 1)`` with ``x_k = n_k/(n_k + 1)`` (geometric marginals)."""
    return np.array([geometric_tail(float(n), int(c)) for n, c in zip(np.atleast_1d(N), np.atleast_1d(cutoffs),
                                                                      strict=True)])
