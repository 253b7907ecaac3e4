r"""Full counting statistics, waiting times and first passage of the mode's jump process.

From a Fock-diagonal state the jumps of the Lindblad model (docs/theory.md) are a
birth-death process on ``n = 0 .. K-1``: the label ``(c, emission)`` moves ``n -> n+1``
at rate ``a_c (n + 1)`` and ``(c, absorption)`` moves ``n -> n-1`` at rate ``b_c n``,
with ``a_c = tau_em_c``, ``b_c = tau_abs_c`` for the four EHP channels and
``a_ph = gamma_ph n_ph``, ``b_ph = gamma_ph (n_ph + 1)``.

Counting a quantity ``Q`` that each label ``l`` changes by ``nu_l`` (charge ``+-s_c``,
energy ``+-Omega``, or 1 for one label's jumps), the tilted generator is
``L(s) = L_0 + sum_l (e^{s nu_l} - 1) J_l`` and the long-time cumulant rates are the
derivatives of its leading eigenvalue, ``c_k = d^k theta / ds^k`` at ``s = 0``. They
are computed exactly by the recursive perturbation theory of Flindt et al.
(PRB 82, 155407 (2010)) with ``L^(m) = sum_l nu_l^m J_l``::

    theta^(n) = sum_{m=1..n} C(n,m) <<1| L^(m) |rho^(n-m)>>
    |rho^(n)>> = L_0^+ sum_{m=1..n} C(n,m) (theta^(m) - L^(m)) |rho^(n-m)>>

Units: rates per unit time (energy units, hbar = 1); energies in the config's unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import comb

import numpy as np
from numpy.typing import NDArray
from scipy import linalg

from .cutoff import counting_cutoff
from .model import BATHS, CHARGE, LABELS
from .model import JumpModel as RateModel

__all__ = [
    "JUMP_LABELS", "BirthDeath", "birth_death", "cumulant_rates", "quantity_weights", "waiting_time_density",
    "waiting_time_probability", "mean_first_passage", "mean_first_passage_recursion", "first_passage_mean",
    "first_passage_exact",
    "g2_from_distribution",
]

#: (channel, direction) labels, in the jump table's order (those of :data:`sim.model.LABELS`).
JUMP_LABELS: tuple[tuple[str, str], ...] = tuple((lab.channel, lab.direction) for lab in LABELS)


def _frozen(a: NDArray[np.float64]) -> NDArray[np.float64]:
    a = np.asarray(a)
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class BirthDeath:
    """The birth-death chain of a :class:`sim.model.JumpModel` truncated at ``cutoff`` levels.

    Every rate comes from the model (:attr:`JumpModel.label_rates`); ``a[c]``, ``b[c]``
    are the per-bath coefficients (emission ``a (n+1)``, absorption ``b n``, 1/time).
    """

    model: RateModel
    cutoff: int

    @property
    def omega(self) -> float:
        return float(self.model.omega)

    @property
    def a(self) -> NDArray[np.float64]:
        return self.model.coefficients()[0]

    @property
    def b(self) -> NDArray[np.float64]:
        return self.model.coefficients()[1]

    @cached_property
    def _jumps(self) -> tuple[NDArray[np.float64], ...]:
        return tuple(_frozen(self.model.jump_matrix(k, self.cutoff).toarray()) for k in range(len(JUMP_LABELS)))

    @cached_property
    def _generator(self) -> NDArray[np.float64]:
        return _frozen(self.model.generator(self.cutoff, dense=True))

    @cached_property
    def _steady(self) -> NDArray[np.float64]:
        return _frozen(self.model.stationary(self.cutoff))

    def jump_matrix(self, label: int) -> NDArray[np.float64]:
        """``J_l``: the rate matrix of one label's jumps (column = from, row = to; dense, read-only, built once)."""
        return self._jumps[label]

    def generator(self) -> NDArray[np.float64]:
        """``L_0 = sum_l J_l - diag(escape rates)``: columns sum to zero (dense, read-only, built once)."""
        return self._generator

    def steady(self) -> NDArray[np.float64]:
        """Stationary P_n of the truncated chain (detailed balance ratio ``P_{n+1}/P_n``; read-only, built once)."""
        return self._steady


def birth_death(model: RateModel, cutoff: int | None = None, tol: float = 1e-14) -> BirthDeath:
    """Chain of a stable model; the cutoff (:func:`sim.cutoff.counting_cutoff`) makes the tail ``x^K`` below ``tol``."""
    if not bool(model.stable):
        raise ValueError(f"the mode is unstable (kappa = {float(model.kappa):.6g} <= 0): no stationary statistics")
    model.coefficients()  # checks one bias point, finite and >= 0
    if cutoff is None:
        cutoff = counting_cutoff(float(model.N_ss()), tol)
    return BirthDeath(model, int(cutoff))


def quantity_weights(quantity: str, omega: float) -> NDArray[np.float64]:
    """``nu_l`` for ``charge`` (L -> R electrons), ``energy:CHANNEL`` (into the mode from
    that bath) or ``jumps:CHANNEL:DIRECTION``."""
    nu = np.zeros(len(JUMP_LABELS))
    parts = quantity.split(":")
    if quantity == "charge":
        nu[:] = CHARGE
    elif parts[0] == "energy" and len(parts) == 2 and parts[1] in BATHS:
        for i, lab in enumerate(LABELS):
            if lab.channel == parts[1]:
                nu[i] = lab.energy(omega)
    elif parts[0] == "jumps" and len(parts) == 3 and (parts[1], parts[2]) in JUMP_LABELS:
        nu[JUMP_LABELS.index((parts[1], parts[2]))] = 1.0
    else:
        raise ValueError(f"quantity must be 'charge', 'energy:CHANNEL' or 'jumps:CHANNEL:DIRECTION', got {quantity!r}")
    return nu + 0.0


def cumulant_rates(chain: BirthDeath, nu: NDArray[np.float64], order: int = 4) -> NDArray[np.float64]:
    """Long-time cumulant rates ``c_k = d^k theta / ds^k`` at ``s = 0`` of the counted quantity (exact).

    ``theta(s)`` is the leading eigenvalue of the tilted generator ``L(s)`` (module docstring;
    docs/theory.md, "Counting statistics"). Units: ``[nu]^k`` per unit time.
    """
    L0 = chain.generator()
    rho = chain.steady()
    K = chain.cutoff
    ones = np.ones(K)
    Ls = [sum(nu[l] ** m * chain.jump_matrix(l) for l in range(len(nu)) if nu[l] != 0) for m in range(order + 1)]
    # L0^+ on trace-free vectors: solve (L0 - rho 1^T) x = y, which gives 1^T x = 0 when 1^T y = 0
    lu = linalg.lu_factor(L0 - np.outer(rho, ones))
    theta = np.zeros(order + 1)
    states = [rho]
    for n in range(1, order + 1):
        theta[n] = sum(comb(n, m) * ones @ (Ls[m] @ states[n - m]) for m in range(1, n + 1))
        rhs = sum(comb(n, m) * (theta[m] * states[n - m] - Ls[m] @ states[n - m]) for m in range(1, n + 1))
        states.append(linalg.lu_solve(lu, rhs))
    return theta[1:]


def waiting_time_density(chain: BirthDeath, first: int, second: int, tau: NDArray[np.float64]) -> NDArray[np.float64]:
    """Density of the time from a jump ``first`` to the next jump (any label), given that it is ``second``.

    ``w(tau) = <<1| J_second e^{(L_0 - J) tau} J_first |rho_ss>> / <<1| J_first |rho_ss>>``
    with ``J = sum_l J_l``; ``sum_second int w dtau = 1``. Units: 1/time.
    """
    L0 = chain.generator()
    J_all = sum(chain.jump_matrix(l) for l in range(len(JUMP_LABELS)))
    rho = chain.steady()
    start = chain.jump_matrix(first) @ rho
    norm = start.sum()
    if norm <= 0:
        raise ValueError(f"label {JUMP_LABELS[first]} never occurs in the steady state")
    evals, V = linalg.eig(L0 - J_all)
    c = linalg.solve(V, start / norm)
    row = np.ones(chain.cutoff) @ chain.jump_matrix(second) @ V
    tau = np.asarray(tau, dtype=float)
    return np.real(np.exp(np.outer(tau, evals)) @ (row * c))


def waiting_time_probability(chain: BirthDeath, first: int, second: int) -> float:
    """``int_0^inf w(tau) dtau = <<1| J_second (J - L_0)^-1 J_first |rho_ss>> / <<1| J_first |rho_ss>>``:
    the probability that the jump after ``first`` is ``second`` (exact; they sum to 1 over ``second``)."""
    L0 = chain.generator()
    J_all = sum(chain.jump_matrix(l) for l in range(len(JUMP_LABELS)))
    start = chain.jump_matrix(first) @ chain.steady()
    x = linalg.solve(J_all - L0, start / start.sum())
    return float(np.ones(chain.cutoff) @ chain.jump_matrix(second) @ x)


def mean_first_passage(model: RateModel, n0: int, level: int) -> float:
    """Mean time (1/energy) for the population to first reach ``level`` from ``n0 < level``:
    the absorbing-chain linear system ``L_0^T T = -1`` on ``0 .. level-1`` (works above threshold too)."""
    A, B = float(model.up_rate), float(model.down_rate)
    n = np.arange(level)
    up, down = A * (n + 1), B * n
    M = np.diag(-(up + down)) + np.diag(up[:-1], 1) + np.diag(down[1:], -1)
    T = linalg.solve(M, -np.ones(level))
    return float(T[n0])


def mean_first_passage_recursion(model: RateModel, n0: int, level: int) -> float:
    """The birth-death closed form: ``tau_k = 1/up_k + (down_k / up_k) tau_{k-1}`` for ``k -> k+1``."""
    return first_passage_mean(float(model.up_rate), float(model.down_rate), n0, level)


def first_passage_mean(A: float, B: float, n0: int, level: int) -> float:
    """Mean time from ``n0`` to ``level`` for ``up(n) = A (n + 1)``, ``down(n) = B n``:
    ``sum_{k=n0}^{level-1} tau_k`` with ``tau_k = 1/up_k + (down_k/up_k) tau_{k-1}``."""
    total, prev = 0.0, 0.0
    for k in range(level):
        prev = 1.0 / (A * (k + 1)) + (B * k) / (A * (k + 1)) * prev
        if k >= n0:
            total += prev
    return total


def first_passage_exact(A: float, B: float, p0: NDArray[np.float64], level: int, t: float) -> tuple[float, float]:
    r"""Mean first-passage time to ``level`` and the probability of reaching it by ``t``, from ``P(n0) = p0``.

    Birth-death chain ``up(n) = A (n + 1)``, ``down(n) = B n`` made absorbing at ``level``; on
    the states ``0 .. level-1`` its backward generator ``M`` (``M T = -1`` gives the mean times
    ``T(n)`` of :func:`first_passage_mean`) also gives the survival ``u(t) = e^{M t} 1``, so::

        E[T]           = sum_{n < level} p0(n) T(n)          (T = 0 from n0 >= level)
        P(T <= t)      = 1 - sum_{n < level} p0(n) u_n(t)

    ``p0`` may be shorter or longer than ``level`` (missing entries are 0; mass at
    ``n >= level`` has ``T = 0``). Units: 1/energy for times.
    """
    from scipy.linalg import expm

    p0 = np.asarray(p0, dtype=float)
    q = np.zeros(level)
    q[: min(level, p0.size)] = p0[:level]
    n = np.arange(level)
    up, down = A * (n + 1), B * n
    M = np.diag(-(up + down)) + np.diag(up[:-1], 1) + np.diag(down[1:], -1)
    T = linalg.solve(M, -np.ones(level))
    survival = expm(M * float(t)) @ np.ones(level)
    return float(q @ T), float(1.0 - q @ survival)


def g2_from_distribution(P: NDArray[np.float64]) -> float:
    """``g2(0) = <n(n-1)> / <n>^2`` (2 for a Bose-Einstein distribution)."""
    n = np.arange(len(P))
    N = float(n @ P)
    return float((n * (n - 1)) @ P / N**2)
