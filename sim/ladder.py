r"""The levels of one mode beyond the harmonic ladder: energies, coordinate elements, absorbing states.

The mode has a dimensionless coordinate ``x`` (``x = a + a^dagger`` in the harmonic limit) and the
vibrational Hamiltonian (energy units, hbar = 1)::

    H_vib = -Omega d^2/dx^2 + U(x),          harmonic: U = Omega x^2 / 4.

A :class:`Ladder` holds its levels in order of energy: ``E_i`` (measured from the bottom of the
well), the coordinate elements ``|x_ij| = |<i|x|j>|`` (only their moduli enter Pauli rates) and a
mask of *absorbing* levels (the reaction: a broken bond, a switched state). Kinds:

``harmonic``
    ``E_n = Omega (n + 1/2)``, ``x_{n,n+1} = sqrt(n + 1)``, ``n < cutoff`` (a Fock cutoff); nothing
    absorbs. The rates of :mod:`sim.level_chain` are then exactly the birth-death chain of the mode.
``truncated``
    ``N = bound`` harmonic levels ``0 .. N-1`` plus level ``N`` (``E_N = Omega (N + 1/2)``),
    absorbing; nearest-neighbour ``x``.
``morse``
    ``U = D (1 - e^{-alpha x})^2`` with ``alpha = sqrt(Omega / 4D)`` (so that ``U -> Omega x^2/4``),
    ``lambda = 2D/Omega``, ``N_b = ceil(lambda - 1/2)`` bound levels
    ``E_n = Omega (n + 1/2) - Omega^2 (n + 1/2)^2 / (4D)`` and, for ``m > n``,
    ``|x_nm| = sqrt(2 lambda) sqrt[(2lambda-2n-1)(2lambda-2m-1) Gamma(2lambda-m) m! / (Gamma(2lambda-n) n!)]
    / [(m-n)(2lambda-n-m-1)]``. The continuum (``E > D``, absorbing) is the spectrum of ``H_vib`` in
    a box, discretized by a sinc DVR (:func:`dvr_states`); its elements with the bound levels come from
    the box's eigenvectors. The box must hold exactly ``N_b`` bound states (else it is enlarged).
``grid``
    Any ``U(x)`` given on points (inline or an ``.npz`` with ``x``, ``U``), shifted so that its minimum
    is 0, interpolated (cubic) onto a DVR box spanning the points; levels above ``absorb_above`` absorb.
``file``
    Explicit ``E``, ``x`` (n x n) and ``absorbing`` (n,) arrays from an ``.npz`` (levels of another code).

Units: energies in the config's unit, ``x`` dimensionless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import interpolate, linalg, special

__all__ = ["Ladder", "LADDER_KINDS", "harmonic_ladder", "truncated_ladder", "morse_ladder", "morse_bound",
           "morse_x", "grid_ladder", "file_ladder", "dvr_states", "morse_box", "SPACING"]

#: The kinds of ladder.
LADDER_KINDS: tuple[str, ...] = ("harmonic", "truncated", "morse", "grid", "file")
#: Default DVR spacing in ``x`` (the Morse results are insensitive to it, docs/ladder.md).
SPACING = 0.08
#: Wall depth: the box starts where the WKB decay of the highest kept state reaches ``e^-WALL``.
_WALL = 36.0
#: Default outer box edge of a Morse well: the top bound level's outer turning point plus ``_TAIL``
#: decay lengths ``1/sqrt((D - E_top)/Omega)``, and at least ``_XMIN_OUT``.
_TAIL = 8.0
_XMIN_OUT = 60.0


@dataclass(frozen=True, eq=False)
class Ladder:
    """Levels of a mode, in order of energy.

    Attributes
    ----------
    kind
        One of :data:`LADDER_KINDS`.
    omega
        The harmonic quantum ``Omega`` (energy).
    E
        Level energies from the well bottom, shape ``(n,)``, non-decreasing (energy).
    x
        Moduli of the coordinate elements ``|x_ij|``, shape ``(n, n)``, symmetric, zero diagonal.
    absorbing
        Boolean mask, shape ``(n,)``: levels where the reaction has happened (no rates out of them).
    threshold
        The energy at which absorption starts: ``D`` (Morse), ``E_N`` (truncated), the lowest absorbing
        level (grid, file); ``nan`` where nothing absorbs (harmonic).
    info
        How the levels were made (box, spacing, counts), for the record.
    """

    kind: str
    omega: float
    E: NDArray[np.float64]
    x: NDArray[np.float64]
    absorbing: NDArray[np.bool_]
    threshold: float = math.nan
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in LADDER_KINDS:
            raise ValueError(f"ladder kind must be one of {', '.join(LADDER_KINDS)}, got {self.kind!r}")
        E = np.asarray(self.E, dtype=float).reshape(-1)
        n = E.size
        x = np.abs(np.asarray(self.x, dtype=float))
        ab = np.asarray(self.absorbing, dtype=bool).reshape(-1)
        if n < 2:
            raise ValueError(f"a ladder needs at least 2 levels, got {n}")
        if x.shape != (n, n) or ab.shape != (n,):
            raise ValueError(f"ladder arrays must have shapes E (n,), x (n, n), absorbing (n,) with n = {n}, got "
                             f"x {x.shape}, absorbing {ab.shape}")
        if not (np.all(np.isfinite(E)) and np.all(np.isfinite(x))):
            raise ValueError("ladder energies and coordinate elements must be finite")
        if np.any(np.diff(E) < 0):
            raise ValueError("ladder energies must be in non-decreasing order")
        if not np.allclose(x, x.T, rtol=1e-10, atol=1e-12 * max(1.0, float(x.max(initial=0.0)))):
            raise ValueError("ladder coordinate elements |x_ij| must be symmetric")
        if ab.all():
            raise ValueError("a ladder needs at least one level that does not absorb")
        x = 0.5 * (x + x.T)
        np.fill_diagonal(x, 0.0)
        for name, a in (("E", E), ("x", x), ("absorbing", ab)):
            a.setflags(write=False)
            object.__setattr__(self, name, a)

    @property
    def n_levels(self) -> int:
        """Number of levels ``n`` (absorbing ones included)."""
        return int(self.E.size)

    @property
    def transient(self) -> NDArray[np.intp]:
        """Indices of the levels that do not absorb (the bound levels), in order of energy."""
        return np.flatnonzero(~self.absorbing)

    @property
    def n_bound(self) -> int:
        """Number of levels that do not absorb."""
        return int((~self.absorbing).sum())

    @property
    def E_top(self) -> float:
        """Energy of the highest level that does not absorb."""
        return float(self.E[self.transient[-1]])


# --------------------------------------------------------------------------- harmonic and truncated


def _nearest_neighbour(n: int) -> NDArray[np.float64]:
    x = np.zeros((n, n))
    i = np.arange(n - 1)
    x[i, i + 1] = x[i + 1, i] = np.sqrt(i + 1.0)
    return x


def harmonic_ladder(omega: float, cutoff: int) -> Ladder:
    """Fock levels ``n = 0 .. cutoff - 1``: ``E_n = Omega (n + 1/2)``, ``x_{n,n+1} = sqrt(n + 1)``; none absorbs."""
    if cutoff < 2:
        raise ValueError(f"cutoff must be >= 2, got {cutoff}")
    E = omega * (np.arange(cutoff) + 0.5)
    return Ladder("harmonic", omega, E, _nearest_neighbour(cutoff), np.zeros(cutoff, bool), info={"cutoff": cutoff})


def truncated_ladder(omega: float, bound: int) -> Ladder:
    """``bound = N`` harmonic levels ``0 .. N-1`` and level ``N`` absorbing (nearest-neighbour ``x``)."""
    if bound < 1:
        raise ValueError(f"bound must be >= 1, got {bound}")
    n = bound + 1
    E = omega * (np.arange(n) + 0.5)
    ab = np.zeros(n, bool)
    ab[-1] = True
    return Ladder("truncated", omega, E, _nearest_neighbour(n), ab, threshold=float(E[-1]), info={"bound": bound})


# --------------------------------------------------------------------------- Morse: closed forms


def morse_bound(omega: float, D: float) -> tuple[int, NDArray[np.float64]]:
    """``(N_b, E_n)``: ``N_b = ceil(lambda - 1/2)`` with ``lambda = 2D/Omega`` (the state at ``E = D`` is not
    bound) and ``E_n = Omega (n + 1/2) - Omega^2 (n + 1/2)^2 / (4D)``, ``n < N_b`` (energy)."""
    lam = 2.0 * D / omega
    nb = max(0, math.ceil(lam - 0.5))
    while nb > 0 and nb - 1 + 0.5 >= lam:  # round-off at lambda - 1/2 integer
        nb -= 1
    v = np.arange(nb) + 0.5
    return nb, omega * v - omega**2 * v**2 / (4.0 * D)


def morse_x(omega: float, D: float) -> NDArray[np.float64]:
    """Closed-form ``|x_nm|`` between the bound Morse levels (dimensionless), shape ``(N_b, N_b)``.

    ``|x_nm| = sqrt(2 lambda) sqrt[(2lambda-2n-1)(2lambda-2m-1) Gamma(2lambda-m) m! / (Gamma(2lambda-n) n!)]
    / [(m - n)(2 lambda - n - m - 1)]`` for ``m > n`` (gamma functions in logarithms).
    """
    lam = 2.0 * D / omega
    nb, _ = morse_bound(omega, D)
    n, m = np.meshgrid(np.arange(nb), np.arange(nb), indexing="ij")
    up = m > n
    nn, mm = n[up].astype(float), m[up].astype(float)
    logr = (special.gammaln(2 * lam - mm) + special.gammaln(mm + 1) - special.gammaln(2 * lam - nn)
            - special.gammaln(nn + 1))
    val = (np.sqrt(2 * lam) * np.sqrt((2 * lam - 2 * nn - 1) * (2 * lam - 2 * mm - 1)) * np.exp(0.5 * logr)
           / ((mm - nn) * np.abs(2 * lam - nn - mm - 1)))
    x = np.zeros((nb, nb))
    x[up] = val
    return x + x.T


def _morse_u(omega: float, D: float):
    alpha = math.sqrt(omega / (4.0 * D))

    def U(x):
        return D * (-np.expm1(-alpha * np.asarray(x, dtype=float))) ** 2

    return U, alpha


# --------------------------------------------------------------------------- the box (sinc DVR)


def dvr_states(xg: NDArray[np.float64], U: NDArray[np.float64], omega: float, e_max: float
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Eigenstates of ``H_vib = -Omega d^2/dx^2 + U(x)`` on an evenly spaced grid (sinc DVR, Colbert-Miller).

    ``T_ii = Omega pi^2 / (3 dx^2)``, ``T_ij = 2 Omega (-1)^(i-j) / (dx^2 (i-j)^2)``; ``x`` is diagonal.
    Returns the energies up to ``e_max`` (ascending) and the eigenvectors as columns (unit norm on the
    grid). Units: energy; the box walls are hard (the grid's ends).
    """
    xg = np.asarray(xg, dtype=float)
    n = xg.size
    dx = float(xg[1] - xg[0])
    k = np.arange(n)
    d = k[:, None] - k[None, :]
    with np.errstate(divide="ignore"):
        H = np.where(d == 0, np.pi**2 / 3.0, 2.0 * (-1.0) ** np.abs(d) / np.where(d == 0, 1, d) ** 2)
    H *= omega / dx**2
    H[k, k] += U
    e_lo = float(np.min(U)) - 1.0
    w, v = linalg.eigh(H, subset_by_value=(e_lo, e_max), driver="evr", overwrite_a=True, check_finite=False)
    return w, v


def _left_wall(U, e: float, x_turn: float, omega: float, dx: float) -> float:
    """The point left of ``x_turn`` where ``int sqrt((U - e)/Omega) dx`` reaches :data:`_WALL`."""
    step = dx / 4.0
    x, acc = x_turn, 0.0
    while acc < _WALL:
        x -= step
        acc += math.sqrt(max(float(U(x)) - e, 0.0) / omega) * step
        if x_turn - x > 1e4:
            raise ValueError("the potential does not rise on the left: no wall for the box")
    return x


def morse_box(omega: float, D: float, e_keep: float, spacing: float = SPACING,
              x_max: float | None = None) -> tuple[float, float]:
    """The default box ``(x_min, x_max)`` of a Morse well (dimensionless ``x``).

    ``x_min``: where the WKB decay of a state at ``e_keep`` under the repulsive wall reaches ``e^-36``.
    ``x_max`` (unless given): the top bound level's outer turning point plus 8 of its decay lengths
    ``1/sqrt((D - E_top)/Omega)``, and at least 60 (this converges R to better than 1e-3, docs/ladder.md).
    """
    U, alpha = _morse_u(omega, D)
    nb, E = morse_bound(omega, D)
    e_keep = max(e_keep, D + omega)
    x_turn = -math.log1p(math.sqrt(e_keep / D)) / alpha
    x_min = _left_wall(U, e_keep, x_turn, omega, spacing)
    if x_max is None:
        e_top = float(E[-1])
        x_out = -math.log1p(-math.sqrt(e_top / D)) / alpha
        x_max = max(_XMIN_OUT, x_out + _TAIL / math.sqrt((D - e_top) / omega))
    return x_min, float(x_max)


def morse_ladder(omega: float, D: float, e_keep: float, spacing: float = SPACING,
                 x_max: float | None = None) -> Ladder:
    """Morse levels: closed-form bound ``E_n`` and ``|x_nm|``, and the box continuum up to ``e_keep``.

    Bound-continuum elements come from the box's eigenvectors; the continuum states (``E > D``) absorb.
    If the box holds fewer than ``N_b`` bound states it is enlarged (by 1.5 at a time, up to 8 times).

    Parameters
    ----------
    omega, D
        Harmonic quantum and well depth (energy); ``D > Omega/4`` (one bound level at least).
    e_keep
        Continuum states are kept up to this energy (from the well bottom); those above are left out
        (the rates into them are negligible there by construction, docs/ladder.md).
    spacing, x_max
        DVR spacing and outer box edge (default: :func:`morse_box`).
    """
    nb, Eb = morse_bound(omega, D)
    if nb < 1:
        raise ValueError(f"a Morse well with D = {D:g} and omega = {omega:g} has no bound level (need D > omega/4)")
    U, _ = _morse_u(omega, D)
    x_min, x_hi = morse_box(omega, D, e_keep, spacing, x_max)
    for _ in range(9):
        xg = np.arange(x_min, x_hi + 0.5 * spacing, spacing)
        w, v = dvr_states(xg, U(xg), omega, max(e_keep, D + 1e-9 * omega))
        n_box = int((w <= D).sum())
        if n_box >= nb:
            break
        x_hi = x_min + 1.5 * (x_hi - x_min)
    else:  # pragma: no cover - the 8 enlargements reach 25 times the box
        raise ValueError(f"the Morse box up to x = {x_hi:g} holds {n_box} of the {nb} bound levels")
    if n_box != nb:
        raise ValueError(f"the Morse box [{x_min:g}, {x_hi:g}] holds {n_box} bound states, the closed form {nb}: "
                         "use another mode.potential.spacing")
    cont = w > D
    Ec = w[cont]
    vb, vc = v[:, :nb], v[:, cont]
    xbc = np.abs(vb.T @ (xg[:, None] * vc))  # (nb, nc)
    n = nb + Ec.size
    x = np.zeros((n, n))
    x[:nb, :nb] = morse_x(omega, D)
    x[:nb, nb:] = xbc
    x[nb:, :nb] = xbc.T
    E = np.concatenate([Eb, Ec])
    ab = np.zeros(n, bool)
    ab[nb:] = True
    info = {"box": [float(x_min), float(xg[-1])], "spacing": spacing, "grid_points": int(xg.size),
            "continuum_states": int(Ec.size), "e_keep": float(e_keep), "E_box_bound": w[:nb].tolist()}
    return Ladder("morse", omega, E, x, ab, threshold=float(D), info=info)


# --------------------------------------------------------------------------- any U(x) and explicit levels


def grid_ladder(omega: float, x_points: NDArray[np.float64], U_points: NDArray[np.float64], absorb_above: float,
                e_keep: float, spacing: float = SPACING) -> Ladder:
    """Levels of any ``U(x)`` on points: shifted to ``min U = 0``, interpolated (cubic) onto a DVR box spanning
    the points (hard walls at its ends); levels with ``E > absorb_above`` absorb, those above ``e_keep`` are
    left out. All elements ``|x_ij|`` come from the box's eigenvectors."""
    xp = np.asarray(x_points, dtype=float)
    Up = np.asarray(U_points, dtype=float)
    Up = Up - Up.min()
    spline = interpolate.CubicSpline(xp, Up)
    xg = np.arange(xp[0], xp[-1] + 1e-12, spacing)
    w, v = dvr_states(xg, spline(xg), omega, max(e_keep, absorb_above))
    if w.size < 2:
        raise ValueError(f"the grid potential has {w.size} level(s) below {max(e_keep, absorb_above):g}: need 2")
    ab = w > absorb_above
    if ab.all():
        raise ValueError(f"every level of the grid potential lies above absorb_above = {absorb_above:g}")
    x = np.abs(v.T @ (xg[:, None] * v))
    info = {"box": [float(xg[0]), float(xg[-1])], "spacing": spacing, "grid_points": int(xg.size)}
    thr = float(w[ab].min()) if ab.any() else math.nan
    return Ladder("grid", omega, w, x, ab, threshold=thr, info=info)


def file_ladder(omega: float, E: NDArray[np.float64], x: NDArray[np.float64], absorbing: NDArray[np.bool_]) -> Ladder:
    """Explicit levels (sorted by energy here: ``E``, ``x`` and the mask are permuted together)."""
    E = np.asarray(E, dtype=float).reshape(-1)
    order = np.argsort(E, kind="stable")
    x = np.asarray(x, dtype=float)[np.ix_(order, order)]
    ab = np.asarray(absorbing, dtype=bool).reshape(-1)[order]
    thr = float(E[order][ab].min()) if ab.any() else math.nan
    return Ladder("file", omega, E[order], x, ab, threshold=thr, info={"levels": int(E.size)})
