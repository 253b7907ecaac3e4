r"""The jump table shared by every trajectory engine (docs/conventions.md).

Engines return plain arrays (:class:`Batch`); this module turns them into tidy
pandas tables with one vectorised pass, so every engine produces the same columns
and dtypes.

A jump is labelled by an integer code ``label = 2 * channel + direction`` with
``channel`` in :data:`JUMP_CHANNELS` = (LL, RR, LR, RL, ph) and ``direction`` 0 for
``emission`` (the bath gives the mode a quantum, ``dn = +1``) and 1 for
``absorption`` (``dn = -1``). From the label::

    dn = +1 (emission) / -1 (absorption)
    dQ = s_c dn           charge moved L -> R (s_LR = +1, s_RL = -1, else 0)
    dE = Omega dn         energy into the mode (config energy unit)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit
from numpy.typing import NDArray

from ..model import BATHS, CHARGE, DIRECTIONS, DN, N_LABELS, label_index

__all__ = [
    "JUMP_CHANNELS", "DIRECTIONS", "N_LABELS", "CHANNEL_DTYPE", "DIRECTION_DTYPE", "Batch", "label_of",
    "jumps_frame", "grid_frame", "stops_frame", "counts_frame", "empty_jumps", "JUMP_COLUMNS", "MODE_JUMP_COLUMNS",
    "mode_jumps_frame",
]

#: Channels of the jump table: the four EHP channels, then the phonon bath (:data:`sim.model.BATHS`).
JUMP_CHANNELS: tuple[str, ...] = BATHS
CHANNEL_DTYPE = pd.CategoricalDtype(list(JUMP_CHANNELS), ordered=False)
DIRECTION_DTYPE = pd.CategoricalDtype(list(DIRECTIONS), ordered=False)
JUMP_COLUMNS: tuple[str, ...] = ("traj", "t", "channel", "direction", "dn", "dQ", "dE")

_DN = DN
_DQ = CHARGE
_CHAN = (np.arange(N_LABELS) // 2).astype(np.int8)
_DIR = (np.arange(N_LABELS) % 2).astype(np.int8)


label_of = label_index
"""Integer label of ``(channel, direction)``: ``2 * channel_index + direction_index``."""


@dataclass(frozen=True)
class Batch:
    """Raw output of one engine call for trajectories ``start .. start + ntraj - 1``.

    Attributes
    ----------
    start, ntraj
        Global index of the first trajectory and number of trajectories.
    traj, t, label
        One entry per jump, sorted by trajectory then time: global trajectory index
        (int32), jump time (float64, 1/energy), label code (uint8, see module doc).
    t_grid
        Time grid, shape ``(n_points,)``.
    N
        Population on the grid, shape ``(ntraj, n_points)`` (float64; NaN after a stop).
    stop_traj, stop_t, stop_n
        Trajectories that reached the population cap: index, time and population there.
    sim_s
        Seconds spent simulating this batch (no JIT compilation, no file output).
    """

    start: int
    ntraj: int
    traj: NDArray[np.int32]
    t: NDArray[np.float64]
    label: NDArray[np.uint8]
    t_grid: NDArray[np.float64]
    N: NDArray[np.float64]
    stop_traj: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    stop_t: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    stop_n: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    sim_s: float = 0.0

    @property
    def n_jumps(self) -> int:
        return int(self.t.shape[0])

    def counts(self) -> NDArray[np.int64]:
        """Jumps per label, shape ``(N_LABELS,)``."""
        return np.bincount(self.label, minlength=N_LABELS).astype(np.int64)


def jumps_frame(traj: NDArray[np.int32], t: NDArray[np.float64], label: NDArray[np.uint8], omega: float) -> pd.DataFrame:
    """The jump table from raw arrays (vectorised; no Python loop over jumps).

    Columns: ``traj`` (int32), ``t`` (float64), ``channel`` (categorical, LL, RR, LR, RL, ph),
    ``direction`` (categorical, emission, absorption), ``dn`` (int8), ``dQ`` (float64, charge
    moved L -> R), ``dE`` (float64, energy into the mode, ``+-Omega``).
    """
    chan, direction, dn, dQ, dE = _columns(np.asarray(label, dtype=np.uint8), float(omega), _DQ)
    return pd.DataFrame({
        "traj": np.asarray(traj, dtype=np.int32),
        "t": np.asarray(t, dtype=np.float64),
        "channel": pd.Categorical.from_codes(chan, dtype=CHANNEL_DTYPE, validate=False),
        "direction": pd.Categorical.from_codes(direction, dtype=DIRECTION_DTYPE, validate=False),
        "dn": dn,
        "dQ": dQ,
        "dE": dE,
    }, copy=False)


@njit(cache=True)
def _columns(label, omega, dq_of):  # pragma: no cover - compiled
    """One pass over the labels: channel code, direction code, dn, dQ, dE."""
    n = label.shape[0]
    chan = np.empty(n, np.int8)
    direction = np.empty(n, np.int8)
    dn = np.empty(n, np.int8)
    dQ = np.empty(n, np.float64)
    dE = np.empty(n, np.float64)
    for k in range(n):
        lab = label[k]
        if lab >= 2 * 5:
            raise ValueError("jump label out of range")
        d = lab & 1
        chan[k] = lab >> 1
        direction[k] = d
        s = 1 - 2 * d
        dn[k] = s
        dQ[k] = dq_of[lab]
        dE[k] = omega * s
    return chan, direction, dn, dQ, dE


def empty_jumps() -> pd.DataFrame:
    """A jump table with no rows and the right dtypes."""
    return jumps_frame(np.zeros(0, np.int32), np.zeros(0), np.zeros(0, np.uint8), 1.0)


def grid_frame(start: int, t_grid: NDArray[np.float64], N: NDArray[np.float64]) -> pd.DataFrame:
    """Long table of N on the grid: columns ``traj`` (int32), ``t``, ``N`` (float64)."""
    ntraj, npts = N.shape
    return pd.DataFrame({
        "traj": np.repeat(np.arange(start, start + ntraj, dtype=np.int32), npts),
        "t": np.tile(np.asarray(t_grid, dtype=float), ntraj),
        "N": np.ascontiguousarray(N, dtype=float).reshape(-1),
    }, copy=False)


def stops_frame(traj: NDArray[np.int32], t: NDArray[np.float64], n: NDArray[np.int64]) -> pd.DataFrame:
    """Trajectories stopped at the population cap: ``traj`` (int32), ``t_stop`` (float64), ``n`` (int64)."""
    return pd.DataFrame({
        "traj": np.asarray(traj, dtype=np.int32),
        "t_stop": np.asarray(t, dtype=float),
        "n": np.asarray(n, dtype=np.int64),
    })


def counts_frame(counts: NDArray[np.int64]) -> pd.DataFrame:
    """Jump counts per ``(channel, direction)``: columns channel, direction, count (10 rows)."""
    k = np.arange(N_LABELS)
    return pd.DataFrame({
        "channel": pd.Categorical.from_codes(_CHAN[k], dtype=CHANNEL_DTYPE),
        "direction": pd.Categorical.from_codes(_DIR[k], dtype=DIRECTION_DTYPE),
        "count": np.asarray(counts, dtype=np.int64),
    })


# --------------------------------------------------------------------------- several modes

#: Columns of the several-mode jump table: the one-mode columns, then ``mode`` and ``op``.
MODE_JUMP_COLUMNS: tuple[str, ...] = (*JUMP_COLUMNS, "mode", "op")


def mode_jumps_frame(traj: NDArray[np.int32], t: NDArray[np.float64], op: NDArray[np.int16],
                     operators: pd.DataFrame) -> pd.DataFrame:
    """The several-mode jump table: :data:`JUMP_COLUMNS`, then ``mode`` (int16) and ``op`` (int16).

    ``op`` is the row of ``operators`` (the operator table of :mod:`.modes`: columns ``channel``,
    ``direction``, ``dn``, ``dQ``, ``dE``, ``mode``) whose collapse operator made the jump; every other
    column is looked up there (vectorised). ``mode`` is the mode the jump acted on, or -1 for an
    operator spanning several modes; ``dE`` is the operator's quantum times ``dn``.
    """
    op = np.asarray(op, dtype=np.int16)
    idx = op.astype(np.intp)
    if idx.size and (idx.min() < 0 or idx.max() >= len(operators)):
        raise ValueError(f"jump operator index out of range 0..{len(operators) - 1}")
    ch = operators["channel"].cat.codes.to_numpy()[idx]
    di = operators["direction"].cat.codes.to_numpy()[idx]
    return pd.DataFrame({
        "traj": np.asarray(traj, dtype=np.int32),
        "t": np.asarray(t, dtype=np.float64),
        "channel": pd.Categorical.from_codes(ch, dtype=CHANNEL_DTYPE, validate=False),
        "direction": pd.Categorical.from_codes(di, dtype=DIRECTION_DTYPE, validate=False),
        "dn": operators["dn"].to_numpy(dtype=np.int8)[idx],
        "dQ": operators["dQ"].to_numpy(dtype=np.float64)[idx],
        "dE": operators["dE"].to_numpy(dtype=np.float64)[idx],
        "mode": operators["mode"].to_numpy(dtype=np.int16)[idx],
        "op": op,
    }, copy=False)
