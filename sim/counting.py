r"""Full counting statistics, waiting times and first passage of the mode's jump process.

From a Fock-diagonal state the jumps of the Lindblad model (physics.md sec. 4) are a
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
from math import comb

import numpy as np
from numpy.typing import NDArray
from scipy import linalg

from .conductor import CHANNELS, CHARGE_SIGN
from .rate_equation import RateModel

__all__ = [
    "JUMP_LABELS", "BirthDeath", "birth_death", "cumulant_rates", "quantity_weights", "waiting_time_density",
    "waiting_time_probability", "mean_first_passage", "mean_first_passage_recursion", "first_passage_mean",
    "g2_from_distribution",
]

#: (channel, direction) labels, in the jump table's order.
JUMP_LABELS: tuple[tuple[str, str], ...] = tuple((c, d) for c in (*CHANNELS, "ph") for d in ("emission", "absorption"))


@dataclass(frozen=True)
class BirthDeath:
    """The birth-death chain of a :class:`RateModel` truncated at ``cutoff`` levels.

    ``a[l]``, ``b[l]``: per-label coefficients (emission ``a (n+1)``, absorption ``b n``).
    """

    a: NDArray[np.float64]
    b: NDArray[np.float64]
    cutoff: int
    omega: float

    def jump_matrix(self, label: int) -> NDArray[np.float64]:
        """``J_l``: the rate matrix of one label's jumps (column = from, row = to)."""
        K = self.cutoff
        n = np.arange(K)
        J = np.zeros((K, K))
        if label % 2 == 0:  # emission: n -> n + 1 (the top level has no up jump: truncation)
            J[n[1:], n[:-1]] = self.a[label // 2] * (n[:-1] + 1)
        else:
            J[n[:-1], n[1:]] = self.b[label // 2] * n[1:]
        return J

    def generator(self) -> NDArray[np.float64]:
        """``L_0 = sum_l J_l - diag(escape rates)``: columns sum to zero."""
        J = sum(self.jump_matrix(l) for l in range(len(JUMP_LABELS)))
        return J - np.diag(J.sum(axis=0))

    def steady(self) -> NDArray[np.float64]:
        """Stationary P_n of the truncated chain (detailed balance ratio ``P_{n+1}/P_n``)."""
        up = self.a.sum() * (np.arange(self.cutoff - 1) + 1)
        down = self.b.sum() * (np.arange(1, self.cutoff))
        logp = np.concatenate([[0.0], np.cumsum(np.log(up) - np.log(down))])
        p = np.exp(logp - logp.max())
        return p / p.sum()


def birth_death(model: RateModel, cutoff: int | None = None, tol: float = 1e-14) -> BirthDeath:
    """Chain of a stable model; the cutoff makes the geometric tail ``x^K`` below ``tol``."""
    if not bool(model.stable):
        raise ValueError(f"the mode is unstable (kappa = {float(model.kappa):.6g} <= 0): no stationary statistics")
    r = model.rates
    a = np.append(np.asarray(r.emission, dtype=float), model.gamma_ph * float(model.n_ph))
    b = np.append(np.asarray(r.absorption, dtype=float), model.gamma_ph * (float(model.n_ph) + 1))
    if cutoff is None:
        N = float(model.N_ss())
        x = N / (N + 1)
        cutoff = 20 if x == 0 else max(20, int(np.ceil(np.log(tol) / np.log(x))) + 5)
    return BirthDeath(a, b, int(cutoff), model.omega)


def quantity_weights(quantity: str, omega: float) -> NDArray[np.float64]:
    """``nu_l`` for ``charge`` (L -> R electrons), ``energy:CHANNEL`` (into the mode from
    that bath) or ``jumps:CHANNEL:DIRECTION``."""
    nu = np.zeros(len(JUMP_LABELS))
    parts = quantity.split(":")
    if quantity == "charge":
        for i, (c, d) in enumerate(JUMP_LABELS):
            nu[i] = CHARGE_SIGN.get(c, 0) * (1 if d == "emission" else -1)
    elif parts[0] == "energy" and len(parts) == 2 and parts[1] in (*CHANNELS, "ph"):
        for i, (c, d) in enumerate(JUMP_LABELS):
            if c == parts[1]:
                nu[i] = omega if d == "emission" else -omega
    elif parts[0] == "jumps" and len(parts) == 3 and (parts[1], parts[2]) in JUMP_LABELS:
        nu[JUMP_LABELS.index((parts[1], parts[2]))] = 1.0
    else:
        raise ValueError(f"quantity must be 'charge', 'energy:CHANNEL' or 'jumps:CHANNEL:DIRECTION', got {quantity!r}")
    return nu + 0.0


def cumulant_rates(chain: BirthDeath, nu: NDArray[np.float64], order: int = 4) -> NDArray[np.float64]:
    """Long-time cumulant rates ``c_1 .. c_order`` of the counted quantity (exact)."""
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
    """Mean time for the population to first reach ``level`` from ``n0 < level``:
    the absorbing-chain linear system ``L_0^T T = -1`` on ``0 .. level-1`` (works above threshold too)."""
    r = model.rates
    A = float(r.emission.sum()) + model.gamma_ph * float(model.n_ph)
    B = float(r.absorption.sum()) + model.gamma_ph * (float(model.n_ph) + 1)
    n = np.arange(level)
    up, down = A * (n + 1), B * n
    M = np.diag(-(up + down)) + np.diag(up[:-1], 1) + np.diag(down[1:], -1)
    T = linalg.solve(M, -np.ones(level))
    return float(T[n0])


def mean_first_passage_recursion(model: RateModel, n0: int, level: int) -> float:
    """The birth-death closed form: ``tau_k = 1/up_k + (down_k / up_k) tau_{k-1}`` for ``k -> k+1``."""
    r = model.rates
    A = float(r.emission.sum()) + model.gamma_ph * float(model.n_ph)
    B = float(r.absorption.sum()) + model.gamma_ph * (float(model.n_ph) + 1)
    return first_passage_mean(A, B, n0, level)


def first_passage_mean(A: float, B: float, n0: int, level: int) -> float:
    """Mean time from ``n0`` to ``level`` for ``up(n) = A (n + 1)``, ``down(n) = B n``:
    ``sum_{k=n0}^{level-1} tau_k`` with ``tau_k = 1/up_k + (down_k/up_k) tau_{k-1}``."""
    total, prev = 0.0, 0.0
    for k in range(level):
        prev = 1.0 / (A * (k + 1)) + (B * k) / (A * (k + 1)) * prev
        if k >= n0:
            total += prev
    return total


def g2_from_distribution(P: NDArray[np.float64]) -> float:
    """``g2(0) = <n(n-1)> / <n>^2`` (2 for a Bose-Einstein distribution)."""
    n = np.arange(len(P))
    N = float(n @ P)
    return float((n * (n - 1)) @ P / N**2)
