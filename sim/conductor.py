"""The central region of the two-terminal conductor (docs/theory.md).

A :class:`Conductor` holds the wide-band model ``H``, ``Gamma_L``, ``Gamma_R`` and
the mode coupling ``M`` (all n x n, Hermitian; ``Gamma`` positive semi-definite; both up to
round-off relative to each matrix's scale, :func:`sim.guards.check_hermitian`).
A :class:`FlatConductor` holds energy-independent kernels ``K_c`` (the
metal-electrode limit). Energies are in the config's unit (hbar = 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import guards

__all__ = ["Conductor", "FlatConductor", "double_dot", "CHANNELS", "CHARGE_SIGN", "CHANNEL_SIGN", "ELECTRODES"]

#: The four EHP channels, electron electrode first, hole electrode second.
CHANNELS: tuple[str, ...] = ("LL", "RR", "LR", "RL")
#: Electrons moved L -> R by one emission event of the channel (Eq. 14's signs).
CHARGE_SIGN: dict[str, int] = {"LL": 0, "RR": 0, "LR": 1, "RL": -1}
#: The signs ``s_c`` as a float array in the order of :data:`CHANNELS`.
CHANNEL_SIGN: NDArray[np.float64] = np.array([CHARGE_SIGN[c] for c in CHANNELS], dtype=float)
#: (electron electrode a, hole electrode b) of each channel.
ELECTRODES: dict[str, tuple[str, str]] = {"LL": ("L", "L"), "RR": ("R", "R"), "LR": ("L", "R"), "RL": ("R", "L")}


def _matrix(name: str, value: ArrayLike, n: int | None = None) -> NDArray[np.complex128]:
    a = np.array(value, dtype=complex)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 1:
        raise ValueError(f"{name} must be a square n x n matrix with n >= 1, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} must be {n} x {n} like H, got {a.shape[0]} x {a.shape[1]}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (no NaN or inf), got {value!r}")
    return guards.check_hermitian(name, a, ValueError, shown=value)  # relative to the matrix's scale


@dataclass(frozen=True, eq=False)
class Conductor:
    """Wide-band conductor: ``G(e) = [e - H + i (Gamma_L + Gamma_R)/2]^-1``.

    Parameters
    ----------
    H, gamma_L, gamma_R, M
        n x n Hermitian matrices (energy units). ``gamma_a`` are the broadening
        matrices (positive semi-definite, full widths); ``M`` the mode coupling of
        Eq. 1, oscillator length included.
    """

    H: NDArray[np.complex128]
    gamma_L: NDArray[np.complex128]
    gamma_R: NDArray[np.complex128]
    M: NDArray[np.complex128]
    n: int = field(init=False)

    def __post_init__(self) -> None:
        H = _matrix("H", self.H)
        n = H.shape[0]
        object.__setattr__(self, "H", H)
        object.__setattr__(self, "n", n)
        for name in ("gamma_L", "gamma_R", "M"):
            object.__setattr__(self, name, _matrix(name, getattr(self, name), n))
        for name in ("gamma_L", "gamma_R"):
            guards.check_psd(name, getattr(self, name), ValueError)

    def gamma(self, electrode: str) -> NDArray[np.complex128]:
        """Broadening matrix of electrode ``"L"`` or ``"R"``."""
        return self.gamma_L if electrode == "L" else self.gamma_R

    @cached_property
    def h_eff(self) -> NDArray[np.complex128]:
        """Non-Hermitian ``H - i (Gamma_L + Gamma_R)/2``."""
        return self.H - 0.5j * (self.gamma_L + self.gamma_R)

    def green(self, e: ArrayLike) -> NDArray[np.complex128]:
        """Retarded Green's function ``G(e)``, shape ``e.shape + (n, n)``."""
        e = np.asarray(e, dtype=float)
        eye = np.eye(self.n)
        return np.linalg.inv(e[..., None, None] * eye - self.h_eff)

    def spectral(self, e: ArrayLike, electrode: str) -> NDArray[np.complex128]:
        """Electrode spectral function ``A_a(e) = G Gamma_a G^dagger``."""
        G = self.green(e)
        return G @ self.gamma(electrode) @ np.conj(np.swapaxes(G, -1, -2))

    def mirrored(self) -> Conductor:
        """The L <-> R mirror image: orbitals reversed, broadenings swapped."""
        p = np.eye(self.n)[::-1]
        return Conductor(p @ self.H @ p, p @ self.gamma_R @ p, p @ self.gamma_L @ p, p @ self.M @ p)


@dataclass(frozen=True)
class FlatConductor:
    """Energy-independent kernels ``K_c(e, w) = K0_c`` (metal electrodes, flat DOS).

    Then ``Lambda_c(w) = K0_c (w - mu_c) / 2 pi`` exactly.
    """

    K_LL: float
    K_RR: float
    K_LR: float
    K_RL: float

    def __post_init__(self) -> None:
        for c in CHANNELS:
            v = getattr(self, f"K_{c}")
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"K_{c} must be finite and >= 0, got {v!r}")

    def kernel(self, channel: str) -> float:
        return float(getattr(self, f"K_{channel}"))

    def mirrored(self) -> FlatConductor:
        return FlatConductor(self.K_RR, self.K_LL, self.K_RL, self.K_LR)


def double_dot(
    eps: tuple[float, float] = (0.5, -0.5),
    hopping: float = 0.0,
    gamma_L: float = 0.5,
    gamma_R: float = 0.5,
    coupling: float = 0.5,
) -> Conductor:
    """The paper's double dot (Fig. 2): dot 1 on L, dot 2 on R, mode-assisted hopping.

    ``H = [[eps_1, t], [t, eps_2]]``, ``Gamma_L = gamma_L |1><1|``,
    ``Gamma_R = gamma_R |2><2|``, ``M = m (|1><2| + |2><1|)``. Defaults: the paper's.
    """
    H = np.array([[eps[0], hopping], [hopping, eps[1]]], dtype=complex)
    gL = np.array([[gamma_L, 0.0], [0.0, 0.0]], dtype=complex)
    gR = np.array([[0.0, 0.0], [0.0, gamma_R]], dtype=complex)
    M = np.array([[0.0, coupling], [coupling, 0.0]], dtype=complex)
    return Conductor(H, gL, gR, M)
