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
most ``delta``; degenerate modes always share one; ``delta`` unset: :func:`default_coherence_width`).
Between clusters the rate matrices are zero (secular approximation); within a cluster ``S`` every
channel's rate matrices are taken at one common frequency ``w_S`` (:func:`cluster_frequency`, the
unified GKLS rule), and so is the ph-bath occupation ``n_k = nB(w_S, T_ph)`` of its modes: each
bath then obeys detailed balance as a matrix, and at zero bias with one temperature the Gibbs
state ``C = nB(w_S) 1`` of every cluster is stationary with every flux zero. A one-quantum
cluster uses ``tau(Omega)`` itself (``w_S = Omega``).

Lamb shift: neglected by default (as in the paper). With ``mode.lamb_shift = true`` each cluster
gets the Hermitian matrix ``L = PV int dw/2pi sum_c Lambda^c(w)/(w_S - w)``
(:meth:`sim.rate_matrices.RateMatrixModel.lamb_shift`; zero between clusters), the Hamiltonian
gains ``sum_mn L_mn a_m^+ a_n`` and the drift matrix becomes ``Y = conj(K/2 + i(diag(Omega) + L))``.
Units: hbar = k_B = 1; energies, rates and temperatures in the energy unit, time in 1/energy.
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
from .results import Result, TimeSeries
from .special import bose

if TYPE_CHECKING:
    from .config import Config
    from .model import JumpModel

__all__ = [
    "CollapseOperator", "ModeSystem", "ModesSteadyState", "clusters", "cluster_rates", "mode_system",
    "mode_system_from_config", "mode_system_of", "config_mode_system", "CovarianceEvolution", "cluster_lamb_shift",
    "lamb_record",
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


def _check_memory(K: int) -> None:
    """Refuse (one line, :class:`sim.guards.ResourceError`) K modes whose rate matrices exceed the memory budget."""
    from .guards import check_memory

    check_memory(f"mode.omega with {K} modes", 16 * 4 * K * K * 12,
                 "use fewer modes (twelve 4 x K x K complex rate matrices are kept)")


def cluster_frequency(omega: ArrayLike, S: tuple[int, ...]) -> float:
    """The common frequency ``w_S`` of a cluster: the midpoint ``(min + max)/2`` of its quanta.

    Every rate matrix of the cluster (each channel and direction) and the ph-bath occupation of its
    modes are taken at ``w_S`` (the unified GKLS rule, docs/modes.md). The midpoint minimises the largest
    offset ``max_m |Omega_m - w_S| = spread/2`` that bounds the rule's error; ``w_S = Omega`` for a
    degenerate or one-mode cluster.
    """
    q = np.asarray(omega, dtype=float)[np.asarray(S, dtype=int)]
    lo, hi = float(q.min()), float(q.max())
    return lo if lo == hi else 0.5 * (lo + hi)


def energy_scale(model: RateMatrixModel, T_L: float, T_R: float | None, T_ph: float) -> float:
    """``E``: the smallest positive of the temperatures ``T_L, T_R, T_ph`` and the conductor's smallest
    resonance width ``min |Im z|`` (the poles ``z`` of ``H - i(Gamma_L + Gamma_R)/2``): the energy over which
    the baths' rates and occupations vary with the frequency (NaN if none is positive)."""
    T_R = T_L if T_R is None else T_R
    xs = [float(x) for x in (T_L, T_R, T_ph, model.width) if np.isfinite(x) and x > 0]
    return min(xs) if xs else float("nan")


def _own_rates(model: RateMatrixModel, omega: NDArray[np.float64], mu_L: float, mu_R: float, T_L: float,
               T_R: float | None, bar=None) -> dict[float, tuple[NDArray[np.int_], object]]:
    """``{q: (modes, rates)}``: the rate matrices of the modes of each distinct quantum ``q`` at ``q`` itself."""
    out = {}
    for q in np.unique(omega):
        idx = np.flatnonzero(omega == q)
        out[float(q)] = (idx, model.rates(float(q), mu_L, mu_R, T_L, T_R, modes=idx))
        if bar is not None:
            bar.update(1)
    return out


def default_coherence_width(model: RateMatrixModel, omega: ArrayLike, gamma: ArrayLike, T_ph: float, mu_L: float,
                            mu_R: float, T_L: float, T_R: float | None = None, own=None) -> tuple[float, float, float]:
    r"""The default cluster width ``sqrt(Gamma_max E)`` and its two scales ``(width, Gamma_max, E)``.

    ``Gamma_max = max_k [sum_c (tau_em^c_kk + tau_abs^c_kk)(Omega_k) + gamma_k (2 n_k + 1)]``: the largest
    total jump rate of one mode at its own quantum (by Cauchy-Schwarz it bounds every entry of the damping
    and source matrices, cross terms included, under any bias); ``E`` from :func:`energy_scale`.
    Splitting two modes by ``Delta`` errs by about ``Gamma/Delta`` (secular: the dropped cross terms, first
    order for a weakly pumped mode beside a strong one); keeping them in one cluster errs by about
    ``Delta/E`` (the common frequency). ``Delta = sqrt(Gamma_max E)`` balances the two: both are then at most
    ``sqrt(Gamma_max/E)``. Without a positive energy scale the width is ``Gamma_max``.
    """
    omega, gamma = np.asarray(omega, dtype=float), np.asarray(gamma, dtype=float)
    own = _own_rates(model, omega, mu_L, mu_R, T_L, T_R) if own is None else own
    n = bose(omega, T_ph)
    total = gamma * (2 * n + 1)
    for idx, r in own.values():
        total[idx] = total[idx] + np.diagonal(r.emission + r.absorption, axis1=1, axis2=2).real.sum(axis=0)
    g_max = float(np.max(total))
    E = energy_scale(model, T_L, T_R, T_ph)
    return (float(np.sqrt(g_max * E)) if np.isfinite(E) else g_max), g_max, E


def cluster_rates(
    model: RateMatrixModel,
    omega: ArrayLike,
    delta: float,
    mu_L: float,
    mu_R: float,
    T_L: float,
    T_R: float | None = None,
    progress: bool | None = None,
    own=None,
) -> tuple[NDArray[np.complex128], NDArray[np.complex128], NDArray[np.complex128], tuple[tuple[int, ...], ...]]:
    """Rate matrices of the modes with the cluster rule: secular between clusters, a common frequency within.

    A cluster of one quantum (one mode, or degenerate modes) has its rates at that quantum; a cluster of
    several quanta has every channel's matrices (emission, absorption, damping) at its common frequency
    :func:`cluster_frequency` -- one :meth:`RateMatrixModel.rates` call per cluster, no matrix roots. Each
    channel then obeys detailed balance as a matrix at equal electrode temperatures, ``tau_em^c =
    nB(w_S - mu_c) Lambda^c``, so at zero bias the Gibbs state at ``w_S`` is stationary and every flux
    vanishes (docs/modes.md). A bar on stderr (``progress``, None: when stderr is a terminal) shows the
    calls once they take more than 2 s. ``own``: rates at each distinct quantum, already computed
    (:func:`_own_rates`), reused for clusters of one quantum.

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
    _check_memory(K)
    cl = clusters(omega, delta)
    em = np.zeros((4, K, K), dtype=complex)
    ab = np.zeros_like(em)
    lam = np.zeros_like(em)
    own = {} if own is None else own
    n_calls = sum(1 for S in cl if not (np.unique(omega[np.array(S)]).size == 1 and float(omega[S[0]]) in own))
    with progress_bar(n_calls, "rate matrices", "cluster", progress, delay=2.0) as bar:
        for S in cl:
            idx = np.array(S)
            block = np.ix_(range(4), idx, idx)
            w = cluster_frequency(omega, S)
            hit = own.get(w)
            if hit is not None and np.array_equal(hit[0], idx):
                r = hit[1]
            else:
                r = model.rates(w, mu_L, mu_R, T_L, T_R, modes=idx)
                bar.update(1)
            em[block], ab[block], lam[block] = r.emission, r.absorption, r.damping
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
        ``n_k = nB(w_S, T_ph)`` at the frequency ``w_S`` of the mode's cluster (``Omega_k`` for a
        one-quantum cluster).
    emission, absorption, damping : ndarray, shape (4, K, K)
        Cluster rate matrices ``T_em^c``, ``T_abs^c``, ``Lambda^c`` (channels in the order LL, RR, LR, RL).
    mu : ndarray, shape (4,)
        ``mu_c`` per channel.
    clusters : tuple of tuples of int
        Mode indices of each cluster.
    T_e : float
        Electron temperature used by ``mu_eff`` (Eq. 11).
    coherence_width : float
        The cluster width used (resolved default included; NaN: not recorded).
    rate_scale, energy_scale : float
        ``Gamma_max`` and ``E`` of :func:`default_coherence_width` (NaN where not computed).
    lamb : ndarray, shape (K, K), or None
        The Lamb-shift matrix ``L`` (Hermitian, block-diagonal over the clusters; energy units), or None
        where the Lamb shift is neglected (the default; ``Y`` is then exactly ``conj(K)/2 - i diag(Omega)``).
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
    coherence_width: float = float("nan")
    rate_scale: float = float("nan")
    energy_scale: float = float("nan")
    lamb: NDArray[np.complex128] | None = None

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
        if self.lamb is not None:
            L = np.asarray(self.lamb, dtype=complex)
            if L.shape != (K, K) or not np.all(np.isfinite(L)):
                raise ValueError(f"lamb must be a finite ({K}, {K}) matrix, got shape {L.shape}")
            if np.max(np.abs(L - L.conj().T), initial=0.0) > 1e-12 * max(1.0, float(np.max(np.abs(L), initial=0.0))):
                raise ValueError("lamb must be Hermitian")
            object.__setattr__(self, "lamb", 0.5 * (L + L.conj().T))

    @property
    def K(self) -> int:
        return self.omega.size

    @property
    def lamb_shift(self) -> bool:
        """Whether the Lamb shift is included (:attr:`lamb` set)."""
        return self.lamb is not None

    @property
    def frequency_matrix(self) -> NDArray[np.complex128]:
        """``diag(Omega) + L`` (``L`` = 0 where the Lamb shift is neglected): the quadratic Hamiltonian
        ``sum_mn [diag(Omega) + L]_mn a_m^+ a_n`` of the modes (energy units)."""
        h = np.diag(self.omega).astype(complex)
        return h if self.lamb is None else h + self.lamb

    def record(self) -> dict:
        """JSON record (what identifies a several-mode run): quanta, ph-baths, clusters, ``mu_c``, ``T_e`` and
        the emission and absorption rate matrices as real and imaginary parts (channels LL, RR, LR, RL)."""
        d = {"omega": self.omega.tolist(), "gamma": self.gamma.tolist(), "n_th": self.n_th.tolist(),
             "clusters": [list(S) for S in self.clusters], "mu": np.asarray(self.mu).tolist(), "T_e": self.T_e,
             "emission_re": self.emission.real.tolist(), "emission_im": self.emission.imag.tolist(),
             "absorption_re": self.absorption.real.tolist(), "absorption_im": self.absorption.imag.tolist()}
        if self.lamb is not None:  # left out where neglected: the record of such a run is as before
            d.update(lamb_re=self.lamb.real.tolist(), lamb_im=self.lamb.imag.tolist())
        return d

    def mode_model(self, k: int) -> JumpModel:
        r"""Mode ``k`` alone: the one-mode jump model of its diagonal rates (a birth-death chain).

        Channel rates ``tau_em_c = T_em^c_kk``, ``tau_abs_c = T_abs^c_kk`` (``Lambda_c`` their
        difference) at ``Omega_k``, the ph-bath ``gamma_k`` with temperature
        ``T_ph = Omega_k / ln(1 + 1/n_k)`` (so that ``nB(Omega_k, T_ph) = n_k`` to round-off) and
        ``T_e``. Without cross terms (every cluster one mode) the modes are independent and the
        populations of mode ``k`` obey exactly this chain; with cross terms it is only the mode's
        diagonal part, and routes refuse it (:func:`sim.population.evolve_population`).
        """
        from .channels import ChannelRates
        from .model import JumpModel

        k = int(k)
        if not 0 <= k < self.K:
            raise ValueError(f"mode index must be in 0 .. {self.K - 1}, got {k}")
        em = self.emission[:, k, k].real.copy()
        ab = self.absorption[:, k, k].real.copy()
        w, n = float(self.omega[k]), float(self.n_th[k])
        T_ph = 0.0 if n == 0.0 else w / float(np.log1p(1.0 / n))
        rates = ChannelRates(w=np.float64(w), mu=np.asarray(self.mu, dtype=float), emission=em, absorption=ab,
                             damping=ab - em)
        return JumpModel(w, rates, float(self.gamma[k]), T_ph, float(self.T_e))

    @property
    def cluster_frequencies(self) -> tuple[float, ...]:
        """``w_S`` of each cluster (:func:`cluster_frequency`): the frequency of its rates and ph-bath occupation."""
        return tuple(cluster_frequency(self.omega, S) for S in self.clusters)

    def wide_clusters(self, tol: float = 0.1) -> list[tuple[tuple[int, ...], float]]:
        """Clusters whose spread ``max - min`` of the quanta exceeds ``tol E`` (``E`` = :attr:`energy_scale`):
        the common frequency then moves equilibrium populations by more than about ``tol/2`` relative
        (docs/modes.md). Returns ``(cluster, spread)`` pairs; none where ``E`` is not positive."""
        E = self.energy_scale
        if not (np.isfinite(E) and E > 0):
            return []
        out = []
        for S in self.clusters:
            q = self.omega[list(S)]
            spread = float(q.max() - q.min())
            if spread > tol * E:
                out.append((S, spread))
        return out

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
        """Drift matrix ``Y = conj(K)/2 - i diag(Omega)`` of ``dC/dt = -(Y C + C Y^+) + conj(G)``; with the Lamb
        shift ``Y = conj(K/2 + i(diag(Omega) + L))``."""
        if self.lamb is None:
            return self.damping_matrix.conj() / 2 - 1j * np.diag(self.omega)
        return (self.damping_matrix / 2 + 1j * self.frequency_matrix).conj()

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

    def evolve(self, t: ArrayLike, C0: ArrayLike | None = None) -> CovarianceEvolution:
        """``C(t)`` on the grid ``t`` (1/energy, from ``t[0]``; :meth:`covariance`) as a time-domain result."""
        t = np.asarray(t, dtype=float)
        C = self.covariance(t - t[0], C0)
        return CovarianceEvolution(t=t, N=np.real(np.diagonal(C, axis1=-2, axis2=-1)).sum(axis=-1), C=C, system=self)

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
class ModesSteadyState(Result):
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

    route = "covariance"

    @property
    def N_total(self) -> float:
        """``sum_k N_k``."""
        return float(np.sum(self.N))

    def model_record(self) -> dict:
        """The :meth:`ModeSystem.record` of the system behind the result."""
        return self.system.record()

    def to_frame(self):
        """One row: :meth:`to_record` (the sweep table's columns)."""
        import pandas as pd

        return pd.DataFrame([self.to_record()])

    def to_dict(self) -> dict:
        """The JSON record of ``ehp steady --json`` for several modes (non-finite numbers -> None).

        ``stable``, ``near_threshold`` (``|margin| <= margin_roundoff``: then ``stable`` is False and
        every N, J, Ie null), ``growth_rate`` (``-2 min Re eig(Y)``, 1/time), ``margin`` (``2 min Re eig(Y)``,
        the one-mode ``kappa``), ``margin_roundoff`` (:attr:`ModeSystem.margin_roundoff`), ``unstable_mode``
        (weights ``u_m`` of ``b^+ = sum_m u_m a_m^+`` as ``{re, im}``), totals ``N, J, J_ph, Ie``, ``modes``
        (config order: ``omega, gamma, n_th, N, T_eff, mu_eff``), ``channels`` (``mu``, jump rates
        ``emission_rate, absorption_rate``, ``J, Ie``), ``coherences`` (``{m, n, re, im}`` of
        ``C_mn = <a_m^+ a_n>``, m < n), ``clusters``, ``cluster_frequencies`` (``w_S`` of each) and
        ``coherence_width`` (the width used, the resolved default included); where the Lamb shift is included,
        ``lamb_shift`` (true) and ``lamb_shift_matrix`` (``{re, im}`` of ``L``, K x K) -- both absent where neglected.
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
            "clusters": [list(S) for S in s.clusters], "cluster_frequencies": list(s.cluster_frequencies),
            "coherence_width": s.coherence_width, **lamb_record(s.lamb),
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


@dataclass(frozen=True, kw_only=True, eq=False)
class CovarianceEvolution(TimeSeries):
    r"""``C(t)`` of the covariance equation ``dC/dt = -(Y C + C Y^+) + conj(G)`` on a time grid (the rate
    route of several modes; exact second moments, no truncation, both sides of the threshold).

    Attributes
    ----------
    t : ndarray, shape (T,)
        Times (1/energy).
    N : ndarray, shape (T,)
        Total population ``sum_k C_kk(t)``.
    C : ndarray, shape (T, K, K)
        ``C_mn(t) = <a_m^+ a_n>``.
    system
        The :class:`ModeSystem` (rates at the run's constant bias).
    """

    t: NDArray[np.float64]
    N: NDArray[np.float64]
    C: NDArray[np.complex128]
    system: ModeSystem
    route = "rate"

    @property
    def N_modes(self) -> NDArray[np.float64]:
        """``N_k(t) = C_kk(t)``, shape (T, K)."""
        return np.real(np.diagonal(self.C, axis1=-2, axis2=-1))

    def model_record(self) -> dict:
        return self.system.record()

    def to_frame(self):
        """Columns ``t``, ``N`` (total), ``N_0 .. N_{K-1}``, ``J``, ``J_ph``, ``Ie`` and per channel
        ``J_LL .. J_RL``, ``Ie_LL .. Ie_RL`` (the fluxes at ``C(t)``, :meth:`ModeSystem.fluxes`)."""
        import pandas as pd

        Nk = self.N_modes
        cols: dict[str, NDArray] = {"t": self.t, "N": self.N}
        cols.update({f"N_{k}": Nk[:, k] for k in range(self.system.K)})
        flux = [self.system.fluxes(c) for c in self.C]
        for q in ("J", "J_ph", "Ie"):
            cols[q] = np.array([float(f[q]) for f in flux])
        for q, key in (("J", "J_channel"), ("Ie", "Ie_channel")):
            for i, c in enumerate(CHANNELS):
                cols[f"{q}_{c}"] = np.array([f[key][i] for f in flux])
        return pd.DataFrame(cols)


def lamb_record(lamb: ArrayLike | None) -> dict:
    """``{"lamb_shift": True, "lamb_shift_matrix": {"re", "im"}}``: the Lamb-shift keys of the ``ehp steady --json``
    record where it is included (the same for every K); ``{}`` where it is neglected (the record is then as it
    was before the option existed)."""
    if lamb is None:
        return {}
    L = np.asarray(lamb, dtype=complex)
    return {"lamb_shift": True, "lamb_shift_matrix": {"re": L.real.tolist(), "im": L.imag.tolist()}}


def cluster_lamb_shift(model: RateMatrixModel, omega: ArrayLike, clusters_: tuple[tuple[int, ...], ...], mu_L: float,
                       mu_R: float, T_L: float, T_R: float | None = None, progress: bool | None = None
                       ) -> NDArray[np.complex128]:
    r"""The Lamb-shift matrix of the modes: ``L_S = PV int dw/2pi sum_c Lambda^c_S(w)/(w_S - w)`` in each cluster
    ``S`` at its common frequency ``w_S`` (:func:`cluster_frequency`), zero between clusters (secular).

    Hermitian K x K (energy units); :meth:`sim.rate_matrices.RateMatrixModel.lamb_shift` per cluster (a bar on
    stderr once the quadratures take more than 2 s).
    """
    omega = np.asarray(omega, dtype=float)
    L = np.zeros((model.K, model.K), dtype=complex)
    with progress_bar(len(clusters_), "Lamb shift", "cluster", progress, delay=2.0) as bar:
        for S in clusters_:
            idx = np.array(S)
            L[np.ix_(idx, idx)] = model.lamb_shift(cluster_frequency(omega, S), mu_L, mu_R, T_L, T_R, modes=idx)
            bar.update(1)
    return L


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
    delta: float | None = 0.0,
    T_e: float | None = None,
    lamb_shift: bool = False,
) -> ModeSystem:
    """Build the :class:`ModeSystem` of a conductor with couplings ``M^k`` (K, n, n).

    Parameters
    ----------
    conductor
        The conductor (its ``M`` ignored), or a prepared :class:`RateMatrixModel` (then ``couplings`` is None).
    omega, gamma
        Quanta ``Omega_k`` and ph-bath dampings ``gamma_k`` (shape (K,) or scalar).
    T_ph
        ph-bath temperature: ``n_k = nB(w_S, T_ph)`` at the frequency of the mode's cluster.
    mu_L, mu_R, T_L, T_R
        Bias (``T_R`` defaults to ``T_L``).
    delta
        Coherence width of the clusters (>= 0); None: :func:`default_coherence_width`.
    T_e
        Electron temperature for ``mu_eff`` (default ``T_L``).
    lamb_shift
        Include the Lamb shift (:func:`cluster_lamb_shift`; default False: neglected, ``lamb`` None).
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
    _check_memory(K)
    E = energy_scale(model, T_L, T_R, T_ph)
    g_max, own = float("nan"), None
    if delta is None:
        with progress_bar(np.unique(omega).size, "rate matrices (default width)", "quantum", None, delay=2.0) as bar:
            own = _own_rates(model, omega, mu_L, mu_R, T_L, T_R, bar)
        delta, g_max, _ = default_coherence_width(model, omega, gamma, T_ph, mu_L, mu_R, T_L, T_R, own=own)
    em, ab, lam, cl = cluster_rates(model, omega, delta, mu_L, mu_R, T_L, T_R, own=own)
    w = np.empty(K)
    for S in cl:
        w[list(S)] = cluster_frequency(omega, S)
    mu = np.array([mu_L - mu_L, mu_R - mu_R, mu_L - mu_R, mu_R - mu_L])
    L = cluster_lamb_shift(model, omega, cl, mu_L, mu_R, T_L, T_R) if lamb_shift else None
    return ModeSystem(omega, gamma, bose(w, T_ph), em, ab, lam, mu, cl, float(T_L if T_e is None else T_e),
                      float(delta), g_max, E, L)


def mode_system_of(model: JumpModel) -> ModeSystem:
    """The 1 x 1 :class:`ModeSystem` of a one-mode :class:`sim.model.JumpModel` at one bias point.

    Its rate matrices are the channel rates at ``Omega`` (Eqs. 5, 7), ``n_th = n_ph``: the
    covariance route of one mode is then the rate equation (``C = N``, margin ``kappa``). This
    serves conductors without orbitals (flat kernels), which have one mode only.
    """
    if np.ndim(model.kappa) != 0:
        raise ValueError(f"mode_system_of takes a model at one bias point, got rates of shape {np.shape(model.kappa)}")
    r = model.rates
    one = np.ones((1, 1))
    em, ab, lam = (np.asarray(x, dtype=float).reshape(4)[:, None, None] * one for x in (r.emission, r.absorption,
                                                                                      r.damping))
    mu = np.asarray(r.mu, dtype=float).reshape(4)
    return ModeSystem(np.array([model.omega]), np.array([model.gamma_ph]), np.array([float(model.n_ph)]), em, ab, lam,
                      mu, ((0,),), float(model.T_e))


def mode_system_from_config(config: Config) -> ModeSystem:
    """The :class:`ModeSystem` of a config (any number of modes ``K``, one included).

    Quanta ``mode.omega`` (a number or a list of K), couplings from ``[conductor]``
    (:meth:`sim.config.ConductorConfig.build_modes`), ``gamma_k`` from ``phonon_bath.gamma``
    (a number applies to every mode), ``n_k = nB(w_S, phonon_bath.T)``, the bias and
    temperatures of ``[bias]``, the cluster width ``mode.coherence_width`` (unset:
    :func:`default_coherence_width`; see :class:`sim.config.ModesConfig`) and ``mode.lamb_shift``
    (:func:`cluster_lamb_shift` when true).

    Raises
    ------
    ConfigError
        For a flat conductor (no orbital couplings).
    """
    return config_mode_system(config)


def config_mode_system(config: Config, model: RateMatrixModel | None = None, mu_L: float | None = None,
                       mu_R: float | None = None) -> ModeSystem:
    """:func:`mode_system_from_config` on a prepared :class:`RateMatrixModel` (built from the config's
    conductor when None) at chemical potentials ``mu_L``, ``mu_R`` (the config's when None).

    The one place where a config's quanta, ph-baths, temperatures and cluster width meet the rate
    matrices; :class:`sim.system.System` calls it with the model it built once.
    """
    if model is None:
        cond, M = config.conductor.build_modes()
        model = RateMatrixModel(cond, M)
    omegas = np.asarray(config.mode.omegas, dtype=float)
    K = omegas.size
    delta = getattr(config.mode, "delta", None)  # None: the default width (one mode: one cluster either way)
    b = config.bias
    return mode_system(model, None, omegas, config.phonon_bath.gammas(K), config.phonon_bath.T,
                       b.mu_L if mu_L is None else mu_L, b.mu_R if mu_R is None else mu_R,
                       b.T_L, b.T_R, delta=delta, T_e=b.T_e, lamb_shift=bool(config.mode.lamb_shift))
