r"""Several modes driven by the four EHP baths: exact second moments (docs/theory.md, "Several modes").

Modes ``k = 1..K`` with quanta ``Omega_k``, couplings ``M^k``, an Ohmic ph-bath of damping
``gamma_k`` and occupation ``n_k = nB(Omega_k, T_ph)`` per mode. The Lindblad equation::

    d rho/dt = -i[sum_k Omega_k a_k^+ a_k, rho]
      + sum_c sum_mn tau_em^c_mn  (a_m^+ rho a_n - {a_n a_m^+, rho}/2)
      + sum_c sum_mn tau_abs^c_mn (a_n rho a_m^+ - {a_m^+ a_n, rho}/2)
      + sum_k gamma_k [(n_k + 1) D[a_k] + n_k D[a_k^+]] rho

is quadratic, so ``C_mn = <a_m^+ a_n>`` obeys the closed linear equation::

    dC/dt = -(Y C + C Y^+) + conj(G),   Y = conj(K)/2 - i diag(Omega),
    K = sum_c Lambda^c + diag(gamma),   G = sum_c tau_em^c + diag(gamma n).

Coherences: the modes are grouped into clusters (sorted quanta whose neighbours differ by at
most ``delta``; degenerate modes always share one). Between clusters the rate matrices are
zero (secular approximation); within a cluster the geometric-mean rule
``T_mn = [g(Omega_m) g(Omega_n)]_mn``, ``g(w) = tau(w)^(1/2)`` (matrix square root of the
cluster's rate matrix), is used for each channel and direction, and
``Lambda = T_abs - T_em``. A one-quantum cluster uses ``tau(Omega)`` itself. The Lamb shift
is neglected (as in the paper). Units: hbar = k_B = 1; energies, rates and temperatures in
the energy unit, time in 1/energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import linalg

from .conductor import CHANNELS, CHARGE_SIGN, Conductor
from .progress import progress_bar
from .rate_equation import effective_chemical_potential, effective_temperature
from .rate_matrices import RateMatrixModel
from .special import bose

if TYPE_CHECKING:
    from .config import Config

__all__ = [
    "CollapseOperator", "ModeSystem", "ModesSteadyState", "clusters", "cluster_rates", "mode_system",
    "mode_system_from_config",
]

_SIGN = np.array([CHARGE_SIGN[c] for c in CHANNELS], dtype=float)


def clusters(omega: ArrayLike, delta: float) -> tuple[tuple[int, ...], ...]:
    """Group modes whose sorted quanta differ from their neighbour by at most ``delta``.

    Returns tuples of mode indices (ascending), clusters ordered by their lowest quantum.
    Exactly degenerate quanta always share a cluster (``delta = 0`` included); a spacing equal
    to ``delta`` up to rounding (``1e-12`` of the largest quantum) counts as within it.
    """
    omega = np.asarray(omega, dtype=float)
    if not np.isfinite(delta) or delta < 0:
        raise ValueError(f"delta must be finite and >= 0, got {delta!r}")
    order = np.argsort(omega, kind="stable")
    width = delta + 1e-12 * float(np.max(np.abs(omega)))
    out, cur = [], [int(order[0])]
    for i, j in zip(order[:-1], order[1:], strict=True):
        if omega[j] - omega[i] <= width:
            cur.append(int(j))
        else:
            out.append(tuple(sorted(cur)))
            cur = [int(j)]
    out.append(tuple(sorted(cur)))
    return tuple(out)


def _root_rows(em: NDArray[np.complex128], ab: NDArray[np.complex128], rows: NDArray[np.int_]
               ) -> tuple[NDArray[np.complex128], NDArray[np.complex128]]:
    """Rows ``rows`` of ``em^(1/2)`` and ``ab^(1/2)`` per channel, shape (4, len(rows), K).

    One batched ``eigh`` for all that need one, and only the requested rows formed
    (``g[rows] = (U[rows] sqrt(lam)) U^+``). A zero matrix has the root 0. Where one direction is a
    multiple of the other (equal electrode temperatures away from ``w = mu_c``: ``tau_em = nB Lambda``
    and ``tau_abs = (1 + nB) Lambda``, the proportionality holding to 4 ulps of the entries), the
    smaller's root is the larger's times ``sqrt(ratio)``: one ``eigh`` per channel instead of two.
    """
    K = em.shape[-1]
    g = np.zeros((2, 4, rows.size, K), dtype=complex)  # direction (0 = em, 1 = ab), channel, row, column
    todo: list[tuple[NDArray[np.complex128], int, int]] = []  # (matrix, direction, channel)
    scaled: list[tuple[int, int, float]] = []  # (direction, channel, sqrt(ratio)): from the other direction's root
    eps = np.finfo(float).eps
    for c in range(4):
        te, ta = float(np.trace(em[c]).real), float(np.trace(ab[c]).real)
        (big, d_big), (small, d_small) = ((ab[c], 1), (em[c], 0)) if ta >= te else ((em[c], 0), (ab[c], 1))
        scale = float(np.abs(big).max(initial=0.0))
        if scale == 0.0:
            continue
        todo.append((big, d_big, c))
        if float(np.abs(small).max(initial=0.0)) == 0.0:
            continue
        r = min(ta, te) / max(ta, te)
        if r > 0 and float(np.abs(small - r * big).max()) <= 4 * eps * scale:
            scaled.append((d_small, c, float(np.sqrt(r))))
        else:
            todo.append((small, d_small, c))
    if todo:
        lam, U = np.linalg.eigh(np.stack([m for m, _, _ in todo]))
        part = (U[:, rows, :] * np.sqrt(np.clip(lam, 0.0, None))[:, None, :]) @ np.swapaxes(U, -1, -2).conj()
        for (_, d, c), x in zip(todo, part, strict=True):
            g[d, c] = x
    for d, c, f in scaled:
        g[d, c] = f * g[1 - d, c]
    return g[0], g[1]


_GEOMETRIC_WORK = 5e10
"""Largest ``sum over clusters of (distinct quanta) x 4 K_c^3`` of the geometric-mean rule: about 40 s of
``eigh`` on one core (7 ms for K = 200, measured); beyond it :func:`cluster_rates` refuses."""


def _check_cluster_work(omega: NDArray[np.float64], cl: tuple[tuple[int, ...], ...], K: int) -> None:
    """Refuse (one line, :class:`sim.guards.GuardError`) a cluster rule too large for memory or time."""
    from .guards import GuardError, check_memory

    check_memory(f"mode.omega with {K} modes", 16 * 4 * K * K * 12,
                 "use fewer modes (twelve 4 x K x K complex rate matrices are kept)")
    work = sum(np.unique(omega[np.array(S)]).size * 4 * len(S) ** 3 for S in cl if len(S) > 1)
    if work > _GEOMETRIC_WORK:
        big = max(cl, key=len)
        nq = np.unique(omega[np.array(big)]).size
        raise GuardError(
            f"mode.omega: a cluster of {len(big)} modes with {nq} distinct quanta needs {4 * nq} Hermitian square "
            f"roots of {len(big)} x {len(big)} rate matrices (about {work:.2g} operations), more than the budget of "
            f"{_GEOMETRIC_WORK:.0e} (about a minute): set mode.coherence_width below the spacing of the quanta to "
            "split the cluster (docs/modes.md), make near-degenerate quanta equal, or use fewer modes")


def cluster_rates(
    model: RateMatrixModel,
    omega: ArrayLike,
    delta: float,
    mu_L: float,
    mu_R: float,
    T_L: float,
    T_R: float | None = None,
    progress: bool | None = None,
) -> tuple[NDArray[np.complex128], NDArray[np.complex128], NDArray[np.complex128], tuple[tuple[int, ...], ...]]:
    """Rate matrices of the modes with the cluster (secular plus geometric-mean) rule.

    One :meth:`RateMatrixModel.rates` per distinct quantum of a cluster (the geometric mean needs the
    cluster's rate matrices at each quantum and their square roots): a bar on stderr (``progress``,
    None: when stderr is a terminal) shows it once it takes more than 2 s. A cluster too large for
    the memory budget or for about a minute of square roots is refused (:class:`sim.guards.GuardError`).

    Returns
    -------
    emission, absorption, damping : ndarray, shape (4, K, K)
        ``T_em^c``, ``T_abs^c`` and ``Lambda^c = T_abs^c - T_em^c`` (zero between clusters).
    clusters : tuple of tuples
        The clusters of :func:`clusters`.
    """
    omega = np.asarray(omega, dtype=float)
    K = model.K
    if omega.shape != (K,):
        raise ValueError(f"omega must have shape ({K},) like the couplings, got {omega.shape}")
    cl = clusters(omega, delta)
    _check_cluster_work(omega, cl, K)
    em = np.zeros((4, K, K), dtype=complex)
    ab = np.zeros_like(em)
    lam = np.zeros_like(em)
    n_calls = sum(np.unique(omega[np.array(S)]).size for S in cl)
    with progress_bar(n_calls, "rate matrices", "quantum", progress, delay=2.0) as bar:
        for S in cl:
            idx = np.array(S)
            block = np.ix_(range(4), idx, idx)
            quanta = np.unique(omega[idx])
            if quanta.size == 1:
                r = model.rates(float(quanta[0]), mu_L, mu_R, T_L, T_R, modes=idx)
                em[block], ab[block], lam[block] = r.emission, r.absorption, r.damping
                bar.update(1)
                continue
            # T_mn = sum_j g(Omega_m)_mj g(Omega_n)_jn = (A A^+)_mn with row m of A from g(Omega_m) (g Hermitian:
            # column n of g(Omega_n) is the conjugate of its row n): one row kept per mode, one product per channel
            A_em = np.zeros((4, idx.size, idx.size), dtype=complex)
            A_ab = np.zeros_like(A_em)
            for q in quanta:
                rows = np.flatnonzero(omega[idx] == q)
                r = model.rates(float(q), mu_L, mu_R, T_L, T_R, modes=idx)
                A_em[:, rows], A_ab[:, rows] = _root_rows(r.emission, r.absorption, rows)
                bar.update(1)
            em[block] = A_em @ np.swapaxes(A_em, -1, -2).conj()
            ab[block] = A_ab @ np.swapaxes(A_ab, -1, -2).conj()
            lam[block] = ab[block] - em[block]
    return em, ab, lam, cl


@dataclass(frozen=True, eq=False)
class CollapseOperator:
    """One labelled Lindblad collapse operator ``L = sqrt(rate) sum_m x_m``.

    Emission: ``L = sqrt(rate) sum_m weights_m a_m^+``; absorption:
    ``L = sqrt(rate) sum_m conj(weights_m) a_m``. ``channel`` is one of LL, RR, LR, RL or
    ``"ph"`` (the ph-bath of mode ``j``); ``j`` numbers the eigenvectors of the cluster's rate
    matrix (the mode index for ``"ph"``). ``rate`` in energy units; ``weights`` (K,) unit norm.
    """

    channel: str
    direction: str
    j: int
    rate: float
    weights: NDArray[np.complex128]
    cluster: int


@dataclass(frozen=True, eq=False)
class ModeSystem:
    r"""Several modes with their cluster rate matrices and ph-baths (immutable, validated).

    Attributes
    ----------
    omega, gamma, n_th : ndarray, shape (K,)
        Quanta ``Omega_k``, ph-bath energy damping ``gamma_k >= 0`` and occupation
        ``n_k = nB(Omega_k, T_ph)``.
    emission, absorption, damping : ndarray, shape (4, K, K)
        Cluster rate matrices ``T_em^c``, ``T_abs^c``, ``Lambda^c`` (channels in the order LL, RR, LR, RL).
    mu : ndarray, shape (4,)
        ``mu_c`` per channel.
    clusters : tuple of tuples of int
        Mode indices of each cluster.
    T_e : float
        Electron temperature used by ``mu_eff`` (Eq. 11).
    """

    omega: NDArray[np.float64]
    gamma: NDArray[np.float64]
    n_th: NDArray[np.float64]
    emission: NDArray[np.complex128]
    absorption: NDArray[np.complex128]
    damping: NDArray[np.complex128]
    mu: NDArray[np.float64]
    clusters: tuple[tuple[int, ...], ...]
    T_e: float

    def __post_init__(self) -> None:
        K = np.asarray(self.omega).shape[0]
        for name in ("omega", "gamma", "n_th"):
            x = np.asarray(getattr(self, name), dtype=float)
            if x.shape != (K,) or not np.all(np.isfinite(x)):
                raise ValueError(f"{name} must be a finite array of shape ({K},), got {x!r}")
            object.__setattr__(self, name, x)
        if sorted(k for S in self.clusters for k in S) != list(range(K)):
            raise ValueError(f"clusters must partition the modes 0..{K - 1}, got {self.clusters!r}")
        if np.asarray(self.mu).shape != (4,):
            raise ValueError(f"mu must have shape (4,), got {np.asarray(self.mu).shape}")
        if np.any(self.gamma < 0) or np.any(self.n_th < 0):
            raise ValueError("gamma and n_th must be >= 0")
        for name in ("emission", "absorption", "damping"):
            x = np.asarray(getattr(self, name), dtype=complex)
            if x.shape != (4, K, K):
                raise ValueError(f"{name} must have shape (4, {K}, {K}), got {x.shape}")
            object.__setattr__(self, name, x)

    @property
    def K(self) -> int:
        return self.omega.size

    @cached_property
    def damping_matrix(self) -> NDArray[np.complex128]:
        """``K = sum_c Lambda^c + diag(gamma)`` (Hermitian; energy units)."""
        return self.damping.sum(axis=0) + np.diag(self.gamma)

    @cached_property
    def source(self) -> NDArray[np.complex128]:
        """``G = sum_c tau_em^c + diag(gamma n)`` (Hermitian, positive semi-definite)."""
        return self.emission.sum(axis=0) + np.diag(self.gamma * self.n_th)

    @cached_property
    def Y(self) -> NDArray[np.complex128]:
        """Drift matrix ``Y = conj(K)/2 - i diag(Omega)`` of ``dC/dt = -(Y C + C Y^+) + conj(G)``."""
        return self.damping_matrix.conj() / 2 - 1j * np.diag(self.omega)

    @cached_property
    def _eig(self):
        lam, R = np.linalg.eig(self.Y)
        return lam, R

    @property
    def eigenvalues(self) -> NDArray[np.complex128]:
        """Eigenvalues of ``Y``, sorted by real part (energy units)."""
        lam = self._eig[0]
        return lam[np.argsort(lam.real, kind="stable")]

    @property
    def margin(self) -> float:
        """The stability margin ``2 min Re eig(Y)`` (``kappa`` for K = 1; energy units)."""
        return float(2 * self._eig[0].real.min())

    @cached_property
    def margin_roundoff(self) -> float:
        r"""Absolute round-off bound of :attr:`margin`: ``256 eps cond (K r_max + 2 ||Y||_F)``.

        The analogue of the one-mode :func:`sim.guards.kappa_roundoff` (256 ulps of the largest
        rate entering kappa). Two sources move ``2 min Re eig(Y)``:

        - the entries of ``K = 2 conj(Y)``: each rate-matrix entry carries the one-mode round-off,
          ``256 eps r_max`` with ``r_max`` the largest ``|entry|`` of any emission or absorption
          matrix or ``gamma_k``; a K x K matrix of such errors has norm ``<= K 256 eps r_max``;
        - the eigenvalue solver (LAPACK ``geev``), backward stable: it returns the eigenvalues of
          ``Y + E`` with ``||E|| <= p(K) eps ||Y||_F`` (``p(K)`` of modest growth; 256 taken), the
          quanta ``Omega_k`` in ``Y`` included.

        An eigenvalue moves by at most ``cond`` times the perturbation, ``cond = ||l|| ||r|| / |l^H r|``
        (left and right eigenvectors of the eigenvalue with the smallest real part; 1 for a normal
        ``Y``), capped at ``1/sqrt(eps)`` (a defective ``Y`` moves by ``sqrt`` of the perturbation).
        """
        lam, R = self._eig
        i = int(np.argmin(lam.real))
        try:
            left = np.linalg.inv(R)[i]
            cond = float(np.linalg.norm(R[:, i]) * np.linalg.norm(left) / abs(left @ R[:, i]))
        except np.linalg.LinAlgError:
            cond = np.inf
        eps = np.finfo(float).eps
        cond = min(cond, 1 / np.sqrt(eps)) if np.isfinite(cond) else 1 / np.sqrt(eps)
        r_max = max(float(np.abs(self.emission).max(initial=0.0)), float(np.abs(self.absorption).max(initial=0.0)),
                    float(np.abs(self.gamma).max(initial=0.0)))
        from .guards import KAPPA_ROUNDOFF_ULPS

        return float(KAPPA_ROUNDOFF_ULPS * eps * cond * (self.K * r_max + 2 * np.linalg.norm(self.Y)))

    @property
    def near_threshold(self) -> bool:
        """``|margin| <= margin_roundoff``: the sign of the margin, hence the verdict, is round-off."""
        return bool(abs(self.margin) <= self.margin_roundoff)

    @property
    def stable(self) -> bool:
        """Every eigenvalue of ``Y`` has a positive real part beyond round-off: ``margin > margin_roundoff``
        (False within round-off of the threshold, where :attr:`near_threshold` is True)."""
        return bool(self.margin > self.margin_roundoff)

    @property
    def growth_rate(self) -> float:
        """``-2 min Re eig(Y)``: growth rate of the fastest collective population (``-kappa`` for K = 1)."""
        return float(-2 * self._eig[0].real.min())

    @property
    def unstable_mode(self) -> NDArray[np.complex128]:
        """Weights ``u`` (K,) of the slowest-decaying (or fastest-growing) collective mode.

        Its creation operator is ``b^+ = sum_m u_m a_m^+``, and ``C(t)`` approaches
        ``conj(u) u^T`` times a growing (or decaying) number: ``u = conj(r)`` for the right
        eigenvector ``r`` of ``Y`` with the smallest real part; unit norm, largest entry real > 0.
        """
        lam, R = self._eig
        u = R[:, np.argmin(lam.real)].conj()
        u = u / np.linalg.norm(u)
        big = u[np.argmax(np.abs(u))]
        return u * (abs(big) / big)

    def covariance(self, t: ArrayLike, C0: ArrayLike | None = None, method: str = "auto") -> NDArray[np.complex128]:
        """``C(t) = e^{-Yt} C0 e^{-Y^+ t} + int_0^t e^{-Ys} conj(G) e^{-Y^+ s} ds``, shape ``t.shape + (K, K)``.

        Exact on both sides of the threshold (equal to ``C_ss - e^{-Yt}(C_ss - C0)e^{-Y^+t}``
        when stable). ``C0`` defaults to the vacuum (zeros). ``method``: ``"eig"`` (eigenbasis
        of ``Y``, vectorised over ``t``), ``"expm"`` (Van Loan's block exponential, one
        ``scipy.linalg.expm`` per time; also valid for a defective ``Y``) or ``"auto"`` (``"eig"``
        unless the eigenvectors are ill-conditioned).
        """
        if method not in ("auto", "eig", "expm"):
            raise ValueError(f"method must be 'auto', 'eig' or 'expm', got {method!r}")
        t = np.asarray(t, dtype=float)
        K = self.K
        C0 = np.zeros((K, K), dtype=complex) if C0 is None else np.asarray(C0, dtype=complex)
        if C0.shape != (K, K):
            raise ValueError(f"C0 must have shape ({K}, {K}), got {C0.shape}")
        lam, R = self._eig
        Gc = self.source.conj()
        if method == "eig" or (method == "auto" and np.linalg.cond(R) < 1e8):
            Ri = np.linalg.inv(R)
            X0 = Ri @ C0 @ Ri.conj().T
            Gt = Ri @ Gc @ Ri.conj().T
            s = lam[:, None] + lam.conj()[None, :]
            st = s * t[..., None, None]
            small = np.abs(st) < 1e-8
            phi = np.where(small, t[..., None, None] * (1 - st / 2), -np.expm1(-st) / np.where(small, 1.0, s))
            X = np.exp(-st) * X0 + phi * Gt
            out = R @ X @ R.conj().T
        else:  # defective Y (exceptional point): Van Loan's block exponential per time
            out = np.empty(t.shape + (K, K), dtype=complex)
            Y = self.Y
            big = np.block([[-Y, Gc], [np.zeros((K, K)), Y.conj().T]])
            for i, ti in np.ndenumerate(t):
                E = linalg.expm(big * ti)
                eYt = E[:K, :K]
                Einv = linalg.expm(-Y.conj().T * ti)
                out[i] = eYt @ C0 @ eYt.conj().T + E[:K, K:] @ Einv
        return 0.5 * (out + np.swapaxes(out, -1, -2).conj())

    def steady_covariance(self) -> NDArray[np.complex128]:
        """Steady ``C`` from ``Y C + C Y^+ = conj(G)`` (``scipy.linalg.solve_continuous_lyapunov``); NaN if unstable."""
        if not self.stable:
            return np.full((self.K, self.K), np.nan + 0j)
        C = linalg.solve_continuous_lyapunov(self.Y, self.source.conj())
        return 0.5 * (C + C.conj().T)

    def fluxes(self, C: ArrayLike) -> dict[str, NDArray[np.float64]]:
        """Jump rates and fluxes at covariance ``C`` (any time; docs/theory.md).

        ``emission_rate_c = sum_mn T_em^c_mn (C_mn + delta_mn)``, ``absorption_rate_c =
        sum_mn T_abs^c_mn C_mn`` (jumps per unit time, shape (4,)); energy into the modes
        ``J_c = sum_mn (Omega_m + Omega_n)/2 [T_em^c_mn (C + 1)_mn - T_abs^c_mn C_mn]``
        (``Omega`` times the net jump rate for a degenerate cluster); ``Ie_c = s_c`` (net jump
        rate) (electrons L -> R); ``J_ph = sum_k Omega_k gamma_k (C_kk - n_k)``; totals ``J``, ``Ie``.
        In steady state ``J = J_ph`` exactly.
        """
        C = np.asarray(C, dtype=complex)
        eye = np.eye(self.K)
        em = np.einsum("cmn,mn->c", self.emission, C + eye).real
        ab = np.einsum("cmn,mn->c", self.absorption, C).real
        wbar = 0.5 * (self.omega[:, None] + self.omega[None, :])
        Jc = np.einsum("cmn,mn->c", self.emission * wbar, C + eye).real - np.einsum(
            "cmn,mn->c", self.absorption * wbar, C).real
        Iec = _SIGN * (em - ab)
        N = np.diagonal(C).real
        return {
            "emission_rate": em, "absorption_rate": ab, "J_channel": Jc, "Ie_channel": Iec,
            "J": Jc.sum(), "Ie": Iec.sum(), "J_ph": float(np.sum(self.omega * self.gamma * (N - self.n_th))),
        }

    def collapse_operators(self, include_phonon: bool = True) -> list[CollapseOperator]:
        """Labelled collapse operators: eigen-decomposition ``T = sum_j rate_j v_j v_j^+`` of each
        cluster's rate matrix per channel and direction (eigenvalues ``<= 0`` dropped), plus the
        ph-bath's ``sqrt(gamma_k (n_k + 1)) a_k`` and ``sqrt(gamma_k n_k) a_k^+``."""
        ops = []
        for ci, S in enumerate(self.clusters):
            idx = np.array(S)
            for c, name in enumerate(CHANNELS):
                for direction, T in (("emission", self.emission[c]), ("absorption", self.absorption[c])):
                    lam, U = np.linalg.eigh(T[np.ix_(idx, idx)])
                    for j in np.flatnonzero(lam > 0):
                        v = np.zeros(self.K, dtype=complex)
                        v[idx] = U[:, j]
                        ops.append(CollapseOperator(name, direction, int(j), float(lam[j]), v, ci))
        if include_phonon:
            cl_of = {k: ci for ci, S in enumerate(self.clusters) for k in S}
            for k in range(self.K):
                e = np.zeros(self.K, dtype=complex)
                e[k] = 1.0
                for direction, rate in (("absorption", self.gamma[k] * (self.n_th[k] + 1)),
                                        ("emission", self.gamma[k] * self.n_th[k])):
                    if rate > 0:
                        ops.append(CollapseOperator("ph", direction, k, float(rate), e, cl_of[k]))
        return ops

    def steady_state(self) -> ModesSteadyState:
        """Steady state and stability verdict (see :class:`ModesSteadyState`)."""
        C = self.steady_covariance()
        K = self.K
        if not self.stable:
            nan = np.full(K, np.nan)
            return ModesSteadyState(self, C, nan, nan, nan, np.full(4, np.nan), np.full(4, np.nan),
                                    np.full(4, np.nan), np.full(4, np.nan), np.nan, np.nan, np.nan)
        N = np.diagonal(C).real.copy()
        f = self.fluxes(C)
        return ModesSteadyState(
            self, C, N, effective_temperature(N, self.omega), effective_chemical_potential(N, self.omega, self.T_e),
            f["emission_rate"], f["absorption_rate"], f["J_channel"], f["Ie_channel"], float(f["J"]),
            float(f["J_ph"]), float(f["Ie"]),
        )


@dataclass(frozen=True, eq=False)
class ModesSteadyState:
    r"""Steady state of several modes, or the instability verdict.

    ``C`` solves ``Y C + C Y^+ = conj(G)`` with ``C_mn = <a_m^+ a_n>``; ``N_k = C_kk``;
    ``T_eff_k = Omega_k / ln(1 + 1/N_k)`` and ``mu_eff_k = Omega_k - T_e ln(1 + 1/N_k)``
    (Eqs. 10-11 per mode); jump rates per channel (emission ``sum_mn T_em_mn (C_mn + delta_mn)``,
    absorption ``sum_mn T_abs_mn C_mn``, per unit time), ``J_channel`` (energy per unit time,
    e-bath -> modes), ``Ie_channel`` (electrons L -> R per unit time), ``J_ph`` (modes -> ph-bath).
    Where unstable (some ``Re eig(Y) <= 0``) every number is NaN and ``growth_rate =
    -2 min Re eig(Y) >= 0`` says how fast the collective mode :attr:`unstable_mode` runs away.
    """

    system: ModeSystem
    C: NDArray[np.complex128]
    N: NDArray[np.float64]
    T_eff: NDArray[np.float64]
    mu_eff: NDArray[np.float64]
    emission_rate: NDArray[np.float64]
    absorption_rate: NDArray[np.float64]
    J_channel: NDArray[np.float64]
    Ie_channel: NDArray[np.float64]
    J: float
    J_ph: float
    Ie: float

    @property
    def stable(self) -> bool:
        return self.system.stable

    @property
    def near_threshold(self) -> bool:
        return self.system.near_threshold

    @property
    def growth_rate(self) -> float:
        return self.system.growth_rate

    @property
    def unstable_mode(self) -> NDArray[np.complex128]:
        return self.system.unstable_mode

    @property
    def N_total(self) -> float:
        """``sum_k N_k``."""
        return float(np.sum(self.N))

    def to_dict(self) -> dict:
        """The JSON record of ``ehp steady --json`` for several modes (non-finite numbers -> None).

        ``stable``, ``near_threshold`` (``|margin| <= margin_roundoff``: then ``stable`` is False and
        every N, J, Ie null), ``growth_rate`` (``-2 min Re eig(Y)``, 1/time), ``margin`` (``2 min Re eig(Y)``,
        the one-mode ``kappa``), ``margin_roundoff`` (:attr:`ModeSystem.margin_roundoff`), ``unstable_mode``
        (weights ``u_m`` of ``b^+ = sum_m u_m a_m^+`` as ``{re, im}``), totals ``N, J, J_ph, Ie``, ``modes``
        (config order: ``omega, gamma, n_th, N, T_eff, mu_eff``), ``channels`` (``mu``, jump rates
        ``emission_rate, absorption_rate``, ``J, Ie``), ``coherences`` (``{m, n, re, im}`` of
        ``C_mn = <a_m^+ a_n>``, m < n), ``clusters``.
        """
        from .model import clean

        s = self.system
        K = s.K
        u = s.unstable_mode
        modes = [{"omega": s.omega[k], "gamma": s.gamma[k], "n_th": s.n_th[k], "N": self.N[k], "T_eff": self.T_eff[k],
                  "mu_eff": self.mu_eff[k]} for k in range(K)]
        chans = {c: {"mu": s.mu[i], "emission_rate": self.emission_rate[i], "absorption_rate": self.absorption_rate[i],
                     "J": self.J_channel[i], "Ie": self.Ie_channel[i]} for i, c in enumerate(CHANNELS)}
        coh = [{"m": m, "n": n, "re": self.C[m, n].real, "im": self.C[m, n].imag}
               for m in range(K) for n in range(m + 1, K)]
        return clean({
            "n_modes": K, "stable": self.stable, "near_threshold": self.near_threshold, "growth_rate": self.growth_rate,
            "margin": -self.growth_rate, "margin_roundoff": s.margin_roundoff,
            "unstable_mode": [{"re": x.real, "im": x.imag} for x in u], "N": self.N_total if self.stable else None,
            "J": self.J, "J_ph": self.J_ph, "Ie": self.Ie, "modes": modes, "channels": chans, "coherences": coh,
            "clusters": [list(S) for S in s.clusters],
        })

    def to_record(self) -> dict:
        """Flat columns for a sweep table: the scalars of :meth:`to_dict`, ``N_k``, ``T_eff_k``,
        ``mu_eff_k`` per mode and ``{LL,RR,LR,RL}.{J, Ie}`` (NaN where unstable)."""
        d = self.to_dict()
        rec = {k: (np.nan if d[k] is None else d[k])
               for k in ("stable", "near_threshold", "growth_rate", "margin", "N", "J", "J_ph", "Ie")}
        for q in ("N", "T_eff", "mu_eff"):
            for k, m in enumerate(d["modes"]):
                rec[f"{q}_{k}"] = np.nan if m[q] is None else m[q]
        for c, r in d["channels"].items():
            for q in ("J", "Ie"):
                rec[f"{c}.{q}"] = np.nan if r[q] is None else r[q]
        return rec


def mode_system(
    conductor: Conductor | RateMatrixModel,
    couplings: ArrayLike | None,
    omega: ArrayLike,
    gamma: ArrayLike,
    T_ph: float,
    mu_L: float,
    mu_R: float,
    T_L: float,
    T_R: float | None = None,
    delta: float = 0.0,
    T_e: float | None = None,
) -> ModeSystem:
    """Build the :class:`ModeSystem` of a conductor with couplings ``M^k`` (K, n, n).

    Parameters
    ----------
    conductor
        The conductor (its ``M`` ignored), or a prepared :class:`RateMatrixModel` (then ``couplings`` is None).
    omega, gamma
        Quanta ``Omega_k`` and ph-bath dampings ``gamma_k`` (shape (K,) or scalar).
    T_ph
        ph-bath temperature: ``n_k = nB(Omega_k, T_ph)``.
    mu_L, mu_R, T_L, T_R
        Bias (``T_R`` defaults to ``T_L``).
    delta
        Coherence width of the clusters (>= 0).
    T_e
        Electron temperature for ``mu_eff`` (default ``T_L``).
    """
    model = conductor if isinstance(conductor, RateMatrixModel) else RateMatrixModel(conductor, couplings)
    K = model.K
    omega, gamma = np.asarray(omega, dtype=float), np.asarray(gamma, dtype=float)
    for name, x in (("omega", omega), ("gamma", gamma)):
        if x.shape not in ((), (K,)):
            raise ValueError(f"{name} must be a scalar or have shape ({K},) like the couplings, got {x.shape}")
    omega, gamma = np.broadcast_to(omega, (K,)).copy(), np.broadcast_to(gamma, (K,)).copy()
    if np.any(omega <= 0) or not np.all(np.isfinite(omega)):
        raise ValueError(f"omega must be finite and > 0, got {omega.tolist()}")
    if T_ph < 0 or not np.isfinite(T_ph):
        raise ValueError(f"T_ph must be finite and >= 0, got {T_ph!r}")
    em, ab, lam, cl = cluster_rates(model, omega, delta, mu_L, mu_R, T_L, T_R)
    mu = np.array([mu_L - mu_L, mu_R - mu_R, mu_L - mu_R, mu_R - mu_L])
    return ModeSystem(omega, gamma, bose(omega, T_ph), em, ab, lam, mu, cl, float(T_L if T_e is None else T_e))


def mode_system_from_config(config: Config) -> ModeSystem:
    """The :class:`ModeSystem` of a config (any number of modes ``K``, one included).

    Quanta ``mode.omega`` (a number or a list of K), couplings from ``[conductor]``
    (:meth:`sim.config.ConductorConfig.build_modes`), ``gamma_k`` from ``phonon_bath.gamma``
    (a number applies to every mode), ``n_k = nB(Omega_k, phonon_bath.T)``, the bias and
    temperatures of ``[bias]``, and the cluster width ``mode.coherence_width`` (unset: all
    modes in one cluster; see :class:`sim.config.ModesConfig`).

    Raises
    ------
    ConfigError
        For a flat conductor (no orbital couplings).
    """
    cond, M = config.conductor.build_modes()
    omegas = np.asarray(config.mode.omegas, dtype=float)
    K = omegas.size
    width = getattr(config.mode, "delta", None)
    delta = 0.0 if width is None else width
    b = config.bias
    return mode_system(cond, M, omegas, config.phonon_bath.gammas(K), config.phonon_bath.T, b.mu_L, b.mu_R,
                       b.T_L, b.T_R, delta=delta, T_e=b.T_e)
