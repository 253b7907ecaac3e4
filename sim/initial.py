r"""Initial states of the mode: one type and one parser (``run.initial``) for every route.

``vacuum``, ``steady`` (the Bose-Einstein state with ``N_ss``; stable mode only),
``thermal:N`` or ``thermal:N=<N>`` (Bose-Einstein, mean N), ``thermal:T=<temperature>``
(Bose-Einstein at temperature ``T``: mean ``N = nB(Omega, T) = 1/(e^{Omega/T} - 1)``, for
several modes each at its own quantum ``Omega_k``), ``fock:n`` and ``coherent:alpha``
(``alpha`` real or complex, ``coherent:1+0.5j``; Poissonian populations with mean
``|alpha|^2``), or an explicit diagonal distribution ``P_n``. The population and Lindblad
routes, the trajectory engines and config validation all use :class:`InitialSpec`.
Temperatures in the config's energy unit (k_B = 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .fock import geometric, geometric_cutoff, geometric_tail
from .special import bose


class RateModel(Protocol):
    """What an initial state reads of a one-mode model (:class:`sim.model.JumpModel` has it):
    the quantum ``omega``, the damping ``kappa``, the verdict ``stable`` and the steady mean ``N_ss()``.
    A protocol, not an import: the config imports this module, so it must not import the model."""

    omega: Any
    kappa: Any
    stable: Any

    def N_ss(self) -> Any: ...

__all__ = ["InitialSpec", "initial_distribution"]


_KINDS = ("vacuum", "steady", "thermal", "fock", "coherent", "distribution")


@dataclass(frozen=True)
class InitialSpec:
    """A parsed ``run.initial``: ``vacuum``, ``steady``, ``thermal:N``, ``thermal:T=<temperature>``,
    ``fock:n``, ``coherent:alpha``.

    ``kind = "distribution"`` holds an explicit diagonal ``P_n`` (tuple of floats).
    ``coherent`` takes a complex ``alpha`` (``coherent:1.5``, ``coherent:1+0.5j``);
    its populations are Poissonian with mean ``|alpha|^2``. A thermal state is given by its
    mean ``value = N`` or by its temperature ``T`` (then ``value`` is None and the mean is
    ``nB(Omega, T)`` at the quantum of the mode it is applied to: :meth:`mean`, :meth:`means`).
    """

    kind: str
    value: float | int | complex | tuple[float, ...] | None = None
    T: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"initial kind must be one of {', '.join(_KINDS)}, got {self.kind!r}")
        if self.T is not None:
            if self.kind != "thermal" or self.value is not None:
                raise ValueError(f"a temperature T is given only for a thermal state by its temperature "
                                 f"(thermal:T=<temperature>), got kind {self.kind!r} with value {self.value!r}")
            ok = isinstance(self.T, int | float) and not isinstance(self.T, bool) and math.isfinite(self.T)
            if not (ok and self.T >= 0):
                raise ValueError(f"thermal:T=<temperature> needs a finite temperature T >= 0, got {self.T!r}")
            object.__setattr__(self, "T", float(self.T))
            return
        if self.kind == "thermal" and isinstance(self.value, int | float) and not isinstance(self.value, bool):
            object.__setattr__(self, "value", float(self.value))
        if self.kind == "coherent" and isinstance(self.value, int | float | complex) and not isinstance(self.value, bool):
            object.__setattr__(self, "value", complex(self.value))
        if self.kind == "thermal" and not (isinstance(self.value, float) and self.value >= 0 and math.isfinite(self.value)):
            raise ValueError(f"thermal:N needs a finite N >= 0, got {self.value!r}")
        if self.kind == "fock" and not (isinstance(self.value, int) and self.value >= 0):
            raise ValueError(f"fock:n needs an integer n >= 0, got {self.value!r}")
        if self.kind == "coherent" and not (isinstance(self.value, complex) and np.isfinite(self.value)):
            raise ValueError(f"coherent:alpha needs a finite complex alpha, got {self.value!r}")
        if self.kind == "distribution":
            p = np.asarray(self.value, dtype=float)
            if p.ndim != 1 or p.size == 0 or np.any(p < -1e-14) or not np.isclose(p.sum(), 1.0, rtol=0, atol=1e-9):
                raise ValueError("an initial distribution must be a 1-d array of probabilities >= 0 summing to 1")

    @classmethod
    def parse(cls, spec: str | InitialSpec | ArrayLike) -> InitialSpec:
        """Parse ``run.initial`` (or wrap an explicit distribution ``P_n``)."""
        if isinstance(spec, InitialSpec):
            return spec
        if not isinstance(spec, str):
            return cls("distribution", tuple(float(x) for x in np.asarray(spec, dtype=float).ravel()))
        s = spec.strip()
        if s in ("vacuum", "steady"):
            return cls(s)
        kind, colon, raw = s.partition(":")
        try:
            if colon and kind == "thermal" and raw.startswith("T="):
                return cls("thermal", None, T=float(raw[2:]))
            if colon and kind == "thermal":
                return cls("thermal", float(raw[2:] if raw.startswith("N=") else raw))
            if colon and kind == "fock":
                return cls("fock", int(raw))
            if colon and kind == "coherent":
                return cls("coherent", complex(raw.replace(" ", "")))
        except ValueError:
            pass
        raise ValueError(
            f"initial must be 'vacuum', 'steady', 'thermal:N', 'thermal:T=<temperature>', 'fock:n' or "
            f"'coherent:alpha', got {spec!r}")

    @property
    def text(self) -> str:
        """The ``run.initial`` text of this state (``thermal:T=0.3``, ``fock:2``, ...)."""
        if self.kind in ("vacuum", "steady"):
            return self.kind
        if self.kind == "thermal":
            return f"thermal:T={self.T!r}" if self.T is not None else f"thermal:{self.value!r}"
        if self.kind in ("fock", "coherent"):
            return f"{self.kind}:{self.value!r}".replace("(", "").replace(")", "")
        return "distribution"

    def mean(self, model: RateModel | None = None) -> float:
        """Mean population ``N0`` of the initial state (``thermal:T=`` and ``steady`` need the mode's ``model``)."""
        if self.kind == "vacuum":
            return 0.0
        if self.kind == "steady":
            return _steady_mean(model)
        if self.kind == "thermal" and self.T is not None:
            if model is None:
                raise ValueError(f"initial = {self.text!r} needs the mode's quantum Omega (N = nB(Omega, T))")
            return float(np.asarray(bose(model.omega, self.T), dtype=float))
        if self.kind == "thermal":
            return float(self.value)
        if self.kind == "fock":
            return float(self.value)
        if self.kind == "coherent":
            return abs(self.value) ** 2
        p = np.asarray(self.value)
        return float(np.arange(p.size) @ p)

    def means(self, omega: ArrayLike) -> NDArray[np.float64]:
        """Mean population of each mode of quanta ``omega`` (shape (K,)) in this product state.

        ``thermal:T=`` gives ``nB(Omega_k, T)`` per mode (each at its own quantum); ``thermal:N``,
        ``fock:n`` and ``coherent:alpha`` the same ``N``, ``n`` or ``|alpha|^2`` in every mode;
        ``vacuum`` zeros. ``steady`` and explicit distributions raise ``ValueError`` (they are not
        fixed by the quanta: the steady state comes from the system's rates).
        """
        omega = np.atleast_1d(np.asarray(omega, dtype=float))
        if self.kind == "thermal" and self.T is not None:
            return np.asarray(bose(omega, self.T), dtype=float)
        if self.kind in ("vacuum", "thermal", "fock", "coherent"):
            return np.full(omega.shape, self.mean())
        raise ValueError(f"initial = {self.text!r} has no per-mode mean fixed by the quanta alone")

    def tail(self, cutoff: int, model: RateModel | None = None) -> float:
        """``P(n >= cutoff - 1)`` of the untruncated initial distribution."""
        m = cutoff - 1
        if self.kind in ("vacuum", "fock"):
            n0 = 0 if self.kind == "vacuum" else self.value
            return 1.0 if n0 >= m else 0.0
        if self.kind in ("steady", "thermal"):
            return geometric_tail(self.mean(model), cutoff)
        if self.kind == "coherent":
            from scipy import stats  # heavy: only for coherent states

            return float(stats.poisson.sf(m - 1, abs(self.value) ** 2))
        p = np.asarray(self.value)
        return float(p[m:].sum())

    def min_cutoff(self, tol: float, model: RateModel | None = None) -> int:
        """Smallest cutoff ``K >= 2`` with ``P(n >= K - 1) <= tol``."""
        if self.kind in ("vacuum", "fock"):
            return (0 if self.kind == "vacuum" else self.value) + 2
        if self.kind in ("steady", "thermal"):
            return geometric_cutoff(self.mean(model), tol)
        if self.kind == "coherent":
            mu = abs(self.value) ** 2
            ks = np.arange(2, int(mu + 40 * math.sqrt(mu) + 60))
            from scipy import stats

            ok = np.flatnonzero(stats.poisson.sf(ks - 2, mu) <= tol)
            return int(ks[ok[0]] if ok.size else ks[-1])
        p = np.asarray(self.value)
        tails = np.cumsum(p[::-1])[::-1]  # tails[m] = P(n >= m)
        ok = np.flatnonzero(tails <= tol)
        return max(2, int(ok[0]) + 1 if ok.size else p.size + 1)

    def populations(self, cutoff: int, model: RateModel | None = None) -> NDArray[np.float64]:
        """``P_n`` on ``n = 0 .. cutoff - 1``, renormalised after truncation.

        Raises ``ValueError`` when the state has no weight inside the cutoff.
        """
        n = np.arange(cutoff)
        if self.kind in ("vacuum", "fock"):
            n0 = 0 if self.kind == "vacuum" else self.value
            if n0 >= cutoff:
                raise ValueError(f"fock:{n0} does not fit in cutoff {cutoff} (levels 0..{cutoff - 1})")
            p = (n == n0).astype(float)
        elif self.kind in ("steady", "thermal"):
            p = geometric(self.mean(model), cutoff)
        elif self.kind == "coherent":
            from scipy import stats

            p = stats.poisson.pmf(n, abs(self.value) ** 2)
        else:
            q = np.clip(np.asarray(self.value), 0.0, None)
            p = np.zeros(cutoff)
            p[: min(cutoff, q.size)] = q[:cutoff]
        total = p.sum()
        if not total > 0:
            raise ValueError(f"initial state {self} has no weight inside cutoff {cutoff}")
        return p / total


def initial_distribution(spec: str | InitialSpec | ArrayLike, cutoff: int, model: RateModel | None = None
                         ) -> NDArray[np.float64]:
    """Fock populations of a ``run.initial`` spec on ``0 .. cutoff - 1`` (``steady`` needs ``model``)."""
    return InitialSpec.parse(spec).populations(cutoff, model)


def _steady_mean(model: RateModel | None) -> float:
    if model is None:
        raise ValueError("initial = 'steady' needs the model (its steady state)")
    k = float(model.kappa)
    if not bool(model.stable):  # kappa <= 0, or within round-off of 0 (JumpModel.near_threshold)
        raise ValueError(f"initial = 'steady' needs a stable mode, but kappa = {k:.6g} is not > 0 beyond round-off: "
                         f"there is no steady state (N grows at rate {-k:.6g})")
    return float(model.N_ss())
