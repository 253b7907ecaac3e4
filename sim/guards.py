r"""Guards at the boundary: numeric domain, memory budget, non-finite results, round-off of kappa.

Every command uses these checks before it allocates or reports, so that bad or extreme
input ends in one ``ehp: error: ...`` line (exit 2) instead of a traceback, an
out-of-memory kill or a silent wrong number.

Numeric domain
--------------
Temperatures, rates (``gamma_L``, ``gamma_R``, ``K_c``, ``phonon_bath.gamma``) and the
mode quantum ``omega`` must be ``0`` (where the physics allows it: ``T = 0``, ``gamma = 0``)
or have a magnitude in ``[DOMAIN_MIN, DOMAIN_MAX] = [1e-12, 1e12]`` in the config's unit;
signed energies (``eps``, ``hopping``, ``coupling``, ``mu_L``, ``mu_R``, ``V``, ``mu0``,
matrix elements) need ``|x| <= DOMAIN_MAX`` (any small value is fine there: a sweep may
pass through ``1e-17`` instead of ``0``). Outside it the special functions under- or
overflow (``T_e = 1e-300`` gives NaN rates, ``T_e = 1e15`` gives zero rates) and no
answer can be trusted. Times (``t_end``) must lie in ``(0, DOMAIN_MAX]``.

Memory budget
-------------
:data:`MEMORY_BUDGET` (4 GiB) bounds every array a command would allocate; the size is
estimated *before* allocating (:func:`check_memory`) and a larger request is refused
with a hint to batch, stream or shrink.

Matrices
--------
A matrix model (``H``, ``gamma_L``, ``gamma_R``, ``M``: inline, in ``conductor.file`` or
given to :class:`sim.conductor.Conductor`) must be Hermitian, and ``gamma_a`` positive
semi-definite, up to round-off *relative to the matrix's own scale* (no absolute floor, so
a matrix of scale ``1e-9`` is checked as strictly as one of scale 1):
``max |A - A^+| <= MATRIX_ROUNDOFF_ULPS n eps ||A||_2`` and ``min eig(A) >= -(the same)``
(:func:`matrix_roundoff`). Why ``n eps ||A||_2``: a matrix computed in floating point as a
product of ``k`` factors (``U D U^+``, ``B B^+``) carries an entrywise error of at most about
``k n eps ||A||_2`` (the rows of a unitary ``U`` are unit vectors), ``A_ij`` and
``conj(A_ji)`` each; ``eigvalsh`` adds a backward error of order ``n eps ||A||_2``. With
``k <= 3`` that is ``<= 6 n eps ||A||_2``; ``MATRIX_ROUNDOFF_ULPS = 64`` leaves a factor of
ten for longer computations (``n = 2``: ``2.8e-14`` relative), while a relative asymmetry of
``1e-12`` or more (a typing error, a wrong sign of an imaginary part) is refused at any scale.

Near the threshold
------------------
``kappa = sum_c Lambda_c + gamma_ph`` is a sum of rates each of which is a difference
``tau_abs - tau_em`` of two positive rates. Each is computed to a few ulps of the
largest of them (closed forms, digamma/trigamma differences), so the absolute round-off
of ``kappa`` is ``<= KAPPA_ROUNDOFF_ULPS * eps * scale`` with ``eps = 2.2e-16`` and
``scale = max(gamma_ph, max_c tau_em_c, max_c tau_abs_c)``: 5 terms, each with
``<= 2`` operands and a few ulps from the special functions, bounded generously by
``KAPPA_ROUNDOFF_ULPS = 256`` (about 5.7e-14 relative). Where ``|kappa|`` is below that, its
sign is not known: the steady state, sweeps and ``threshold`` report
``near_threshold: true``, ``stable: false`` and ``N: null`` (see :func:`kappa_roundoff`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DOMAIN_MIN", "DOMAIN_MAX", "MEMORY_BUDGET", "KAPPA_ROUNDOFF_ULPS", "GuardError", "ResourceError",
    "NumericalError", "check_memory", "check_count", "check_jumps", "check_finite", "check_scale", "check_signed",
    "check_time", "kappa_roundoff", "near_threshold", "format_bytes", "JUMP_BYTES", "MATRIX_ROUNDOFF_ULPS",
    "matrix_roundoff", "check_hermitian", "check_psd",
]

DOMAIN_MIN = 1e-12
"""Smallest non-zero magnitude of a temperature, rate or ``omega`` (config's unit)."""

DOMAIN_MAX = 1e12
"""Largest magnitude of any energy, temperature, rate or time (config's unit / its inverse)."""

MEMORY_BUDGET = 4 * 1024**3
"""Bytes one command may allocate for its grids, tables and operators (4 GiB)."""

KAPPA_ROUNDOFF_ULPS = 256
"""``|kappa| <= KAPPA_ROUNDOFF_ULPS * eps * scale`` is within round-off of 0 (module docstring)."""


class GuardError(ValueError):
    """Bad or extreme input refused at the boundary (exit 2): the message names key, value and rule."""


class ResourceError(GuardError):
    """A request whose estimated memory exceeds :data:`MEMORY_BUDGET`."""


class NumericalError(ArithmeticError):
    """A non-finite intermediate result: the input lies where the numerics break down (exit 2)."""


def format_bytes(n: float) -> str:
    """``1.5 GiB`` style."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


def check_memory(what: str, n_bytes: float, hint: str = "use a smaller size", medium: str = "memory") -> None:
    """Refuse ``what`` (``--n-points 10**9``, say) when ``n_bytes`` > :data:`MEMORY_BUDGET`.

    Raises
    ------
    ResourceError
        ``"{what} needs about X of memory, more than the budget of 4 GiB: {hint}"``.
    """
    if not n_bytes <= MEMORY_BUDGET:
        raise ResourceError(f"{what} needs about {format_bytes(float(n_bytes))} of {medium}, more than the budget of "
                            f"{format_bytes(MEMORY_BUDGET)}: {hint}")


def check_count(key: str, value: Any, *, lo: int = 1, bytes_each: float = 8.0, hint: str = "use a smaller size") -> int:
    """An integer ``>= lo`` whose ``value * bytes_each`` fits the budget (``key`` names it)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise GuardError(f"{key} must be an integer, got {value!r}")
    value = int(value)
    if value < lo:
        raise GuardError(f"{key} must be an integer >= {lo}, got {value}")
    check_memory(f"{key} = {value}", value * bytes_each, hint)
    return value


JUMP_BYTES = 32
"""Bytes per recorded quantum jump (trajectory, time, channel, direction) in the jump tables."""


def check_jumps(what: str, model: Any, ntraj: int, t_end: float, N0: float = 0.0) -> None:
    """Refuse a trajectory run whose expected number of jumps would exceed the memory budget.

    Expected jumps ``ntraj t_end [up (N + 1) + down N]`` at ``N = max(N0, N_ss)`` (a stable
    mode; ``up``, ``down``: the birth-death coefficients of the rate model). An unstable run
    stops at its population cap, so it is not estimated here.
    """
    if not bool(np.all(model.stable)):
        return
    N = max(float(N0), float(model.N_ss()))
    rate = float(model.up_rate) * (N + 1) + float(model.down_rate) * N
    n = float(ntraj) * float(t_end) * rate
    check_memory(f"{what}: about {n:.3g} expected jumps ({ntraj} trajectories x t_end {t_end:g} x jump rate "
                 f"{rate:.3g} at N = {N:.3g})", JUMP_BYTES * n, "use fewer trajectories or a shorter t_end",
                 "memory or disk")


def check_scale(key: str, v: float, *, allow_zero: bool = True, exc: type[Exception] = GuardError) -> float:
    """A temperature/rate/``omega``: ``0`` (if allowed) or ``DOMAIN_MIN <= |v| <= DOMAIN_MAX``."""
    a = abs(v)
    if a == 0.0 and allow_zero:
        return v
    if not DOMAIN_MIN <= a <= DOMAIN_MAX:
        zero = "0 or " if allow_zero else ""
        raise exc(f"{key} must be {zero}between {DOMAIN_MIN:g} and {DOMAIN_MAX:g} in magnitude "
                         f"(the numeric domain), got {v:g}")
    return v


def check_signed(key: str, v: float, exc: type[Exception] = GuardError) -> float:
    """A signed energy: ``|v| <= DOMAIN_MAX``."""
    if not abs(v) <= DOMAIN_MAX:
        raise exc(f"{key} must be within +-{DOMAIN_MAX:g} (the numeric domain), got {v:g}")
    return v


def check_time(key: str, v: Any, exc: type[Exception] = GuardError) -> float:
    """A final time: a finite number in ``(0, DOMAIN_MAX]``."""
    if isinstance(v, bool) or not isinstance(v, int | float | np.floating | np.integer):
        raise exc(f"{key} must be a number, got {v!r}")
    v = float(v)
    if not (0 < v <= DOMAIN_MAX):
        raise exc(f"{key} must be a finite time > 0 and <= {DOMAIN_MAX:g}, got {v!r}")
    return v


MATRIX_ROUNDOFF_ULPS = 64
"""Hermiticity and positivity are checked up to ``MATRIX_ROUNDOFF_ULPS n eps ||A||_2`` (module docstring)."""


def matrix_roundoff(a: ArrayLike) -> float:
    """Round-off allowance of an n x n matrix: ``MATRIX_ROUNDOFF_ULPS n eps ||A||_2`` (0 for a zero matrix)."""
    a = np.asarray(a, dtype=complex)
    return MATRIX_ROUNDOFF_ULPS * a.shape[-1] * float(np.finfo(float).eps) * float(np.linalg.norm(a, 2))


def check_hermitian(key: str, a: ArrayLike, exc: type[Exception] = GuardError, shown: Any = None
                    ) -> NDArray[np.complex128]:
    """``a`` (finite, square) Hermitian up to :func:`matrix_roundoff`; returns its Hermitian part.

    ``shown``: the value to quote in the message (default: the matrix; ``False``: none, for a large one).
    """
    a = np.asarray(a, dtype=complex)
    err = float(np.max(np.abs(a - a.conj().T))) if a.size else 0.0
    tol = matrix_roundoff(a)
    if err > tol:
        got = "" if shown is False else f", got {a.tolist() if shown is None else shown!r}"
        raise exc(f"{key} must be Hermitian (max |A - A^+| = {err:.3g} is above the round-off allowance "
                  f"{MATRIX_ROUNDOFF_ULPS} n eps ||A||_2 = {tol:.3g}){got}")
    return 0.5 * (a + a.conj().T)


def check_psd(key: str, a: ArrayLike, exc: type[Exception] = GuardError) -> NDArray[np.float64]:
    """A Hermitian ``a`` positive semi-definite up to :func:`matrix_roundoff`; returns its eigenvalues."""
    a = np.asarray(a, dtype=complex)
    ev = np.linalg.eigvalsh(0.5 * (a + a.conj().T))
    tol = MATRIX_ROUNDOFF_ULPS * a.shape[-1] * float(np.finfo(float).eps) * float(np.abs(ev).max(initial=0.0))
    if ev.size and ev.min() < -tol:
        raise exc(f"{key} must be positive semi-definite (no eigenvalue below -{MATRIX_ROUNDOFF_ULPS} n eps "
                  f"||A||_2 = {-tol:.3g}), got eigenvalues [{', '.join(f'{x:.6g}' for x in ev)}]")
    return ev


def check_finite(what: str, values: ArrayLike, context: str = "") -> None:
    """Raise :class:`NumericalError` when ``values`` hold NaN or inf (``what`` names them)."""
    a = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(a)):
        bad = "NaN" if np.any(np.isnan(a)) else "inf"
        raise NumericalError(f"{what} came out {bad}{' for ' + context if context else ''}: the input is where the "
                             "numerics break down; keep temperatures, energies and rates within the numeric domain "
                             f"[{DOMAIN_MIN:g}, {DOMAIN_MAX:g}] and their ratios moderate")


def kappa_roundoff(emission: ArrayLike, absorption: ArrayLike, gamma_ph: ArrayLike) -> NDArray[np.float64]:
    """Absolute round-off bound of ``kappa``: ``KAPPA_ROUNDOFF_ULPS eps max(gamma_ph, tau_em_c, tau_abs_c)``.

    ``emission`` and ``absorption`` have the channel first (shape ``(4,) + S``).
    """
    em = np.abs(np.asarray(emission, dtype=float))
    ab = np.abs(np.asarray(absorption, dtype=float))
    scale = np.maximum(np.maximum(em.max(axis=0), ab.max(axis=0)), np.abs(np.asarray(gamma_ph, dtype=float)))
    return KAPPA_ROUNDOFF_ULPS * np.finfo(float).eps * scale


def near_threshold(kappa: ArrayLike, roundoff: ArrayLike) -> NDArray[np.bool_]:
    """``|kappa| <= roundoff``: the sign of kappa (the stability verdict) is not determined."""
    return np.asarray(np.abs(np.asarray(kappa, dtype=float)) <= np.asarray(roundoff, dtype=float))


def is_finite_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
