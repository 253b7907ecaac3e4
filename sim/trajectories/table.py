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
    "mode_jumps_frame", "modes_grid_frame", "initial_frame", "grid_from_jumps", "grid_table", "grid_segments",
    "INITIAL_COLUMNS",
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
        Population on the grid, shape ``(ntraj, n_points)`` (float64; NaN at and after a
        stop), or ``None`` where the engine did not keep it (ssa without ``store_grid``;
        :func:`grid_from_jumps` rebuilds it from ``n0`` and the jumps).
    stop_traj, stop_t, stop_n
        Trajectories that reached the population cap: index, time and population there.
    sim_s
        Seconds spent simulating this batch (no JIT compilation, no file output).
    n0
        Initial Fock population per trajectory (int64), where the engine drew one.
    N_acc
        ``(3, n_points)`` int64: sums over trajectories of ``n`` and ``n^2`` on the grid and
        the number of trajectories not stopped there (the engine's exact integer sums);
        ``None``: computed from ``N``.
    """

    start: int
    ntraj: int
    traj: NDArray[np.int32]
    t: NDArray[np.float64]
    label: NDArray[np.uint8]
    t_grid: NDArray[np.float64]
    N: NDArray[np.float64] | None
    stop_traj: NDArray[np.int32] = field(default_factory=lambda: np.zeros(0, np.int32))
    stop_t: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    stop_n: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    sim_s: float = 0.0
    n0: NDArray[np.int64] | None = None
    N_acc: NDArray[np.int64] | None = None

    @property
    def n_jumps(self) -> int:
        return int(self.t.shape[0])

    def counts(self) -> NDArray[np.int64]:
        """Jumps per label, shape ``(N_LABELS,)``."""
        return np.bincount(self.label, minlength=N_LABELS).astype(np.int64)

    def grid_sums(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
        """Sums over trajectories of ``N`` and ``N^2`` on the grid, and how many are not stopped there."""
        if self.N_acc is not None:
            return self.N_acc[0].astype(float), self.N_acc[1].astype(float), self.N_acc[2].copy()
        ok = ~np.isnan(self.N)
        N0 = np.where(ok, self.N, 0.0)
        return N0.sum(axis=0), (N0**2).sum(axis=0), ok.sum(axis=0)


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


#: Columns of the ``initial`` table (ssa): the Fock population each trajectory started in.
INITIAL_COLUMNS: tuple[str, ...] = ("traj", "n0")


def initial_frame(start: int, n0: NDArray[np.int64]) -> pd.DataFrame:
    """Initial populations: ``traj`` (int32), ``n0`` (int64), one row per trajectory."""
    n0 = np.asarray(n0, dtype=np.int64)
    return pd.DataFrame({"traj": np.arange(start, start + n0.shape[0], dtype=np.int32), "n0": n0}, copy=False)


def grid_from_jumps(start: int, t_grid: NDArray[np.float64], n0: NDArray[np.int64], traj: NDArray[np.int32],
                    t: NDArray[np.float64], dn: NDArray[np.int8], stop_traj: NDArray[np.int32],
                    stop_t: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""Every trajectory's population on the grid, rebuilt from its start and its jumps.

    For trajectory ``i = start + r`` (row ``r``)::

        N[r, k] = n0[r] + sum of dn over its jumps with t_jump <= t_grid[k]
        N[r, k] = NaN   where t_grid[k] >= t_stop (stopped at the population cap)

    which is what a birth-death trajectory is between its jumps, and exactly the row the ssa
    engine writes with ``store_grid``. The jumps must be sorted by trajectory then time (as
    every engine writes them).

    Returns
    -------
    ndarray
        Shape ``(len(n0), len(t_grid))``, float64.
    """
    grid = np.asarray(t_grid, dtype=np.float64)
    return _grid_kernel(int(start), grid, np.asarray(n0, dtype=np.int64), np.asarray(traj, dtype=np.int64),
                        np.asarray(t, dtype=np.float64), np.asarray(dn, dtype=np.int64),
                        np.asarray(stop_traj, dtype=np.int64), np.asarray(stop_t, dtype=np.float64))


@njit(cache=True)
def _stop_times(start, ntraj, stop_traj, stop_t):  # pragma: no cover - compiled
    """Per row of the batch, the time of its stop at the population cap (inf: none)."""
    stop = np.full(ntraj, np.inf)
    for j in range(stop_traj.shape[0]):
        r = stop_traj[j] - start
        if r < 0 or r >= ntraj:
            raise ValueError("stopped trajectory outside the batch")
        stop[r] = stop_t[j]
    return stop


@njit(cache=True)
def _grid_kernel(start, grid, n0, traj, t, dn, stop_traj, stop_t):  # pragma: no cover - compiled
    ntraj = n0.shape[0]
    npts = grid.shape[0]
    N = np.empty((ntraj, npts), np.float64)
    stop = _stop_times(start, ntraj, stop_traj, stop_t)
    j = 0
    nj = t.shape[0]
    for r in range(ntraj):
        gi = start + r
        if j < nj and traj[j] < gi:
            raise ValueError("jumps not sorted by trajectory, or outside the batch")
        n = n0[r]
        k = 0
        while j < nj and traj[j] == gi:
            while k < npts and grid[k] < t[j]:
                N[r, k] = n
                k += 1
            n += dn[j]
            j += 1
        while k < npts and grid[k] < stop[r]:
            N[r, k] = n
            k += 1
        N[r, k:] = np.nan
    if j != nj:
        raise ValueError("jumps not sorted by trajectory, or outside the batch")
    return N


def grid_segments(start: int, t_grid: NDArray[np.float64], k_min: int, n0: NDArray[np.int64],
                  traj: NDArray[np.int32], t: NDArray[np.float64], dn: NDArray[np.int8], stop_traj: NDArray[np.int32],
                  stop_t: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The finite grid samples ``N(t_k)``, ``k >= k_min``, of :func:`grid_from_jumps` as runs of equal values.

    Returns ``(traj, n, count)``: trajectory ``traj`` holds population ``n`` at ``count``
    consecutive grid points (runs with ``count = 0`` are dropped). Any sum over the samples,
    ``sum f(N(t_k))``, is ``sum count f(n)``: ``O(jumps)`` work instead of ``O(trajectories x
    grid)``, with the same integers.
    """
    grid = np.asarray(t_grid, dtype=np.float64)
    return _segment_kernel(int(start), grid, int(k_min), np.asarray(n0, dtype=np.int64),
                           np.asarray(traj, dtype=np.int64), np.asarray(t, dtype=np.float64),
                           np.asarray(dn, dtype=np.int64), np.asarray(stop_traj, dtype=np.int64),
                           np.asarray(stop_t, dtype=np.float64))


@njit(cache=True)
def _segment_kernel(start, grid, k_min, n0, traj, t, dn, stop_traj, stop_t):  # pragma: no cover - compiled
    ntraj = n0.shape[0]
    npts = grid.shape[0]
    nj = t.shape[0]
    stop = _stop_times(start, ntraj, stop_traj, stop_t)
    out_tr = np.empty(nj + ntraj, np.int64)
    out_n = np.empty(nj + ntraj, np.int64)
    out_c = np.empty(nj + ntraj, np.int64)
    m = 0
    j = 0
    for r in range(ntraj):
        gi = start + r
        if j < nj and traj[j] < gi:
            raise ValueError("jumps not sorted by trajectory, or outside the batch")
        n = n0[r]
        k = 0  # first grid point not yet assigned
        while True:
            last = j >= nj or traj[j] != gi
            t_next = stop[r] if last else min(t[j], stop[r])
            k_next = k
            while k_next < npts and grid[k_next] < t_next:
                k_next += 1
            c = k_next - max(k, k_min)
            if c > 0:
                out_tr[m] = gi
                out_n[m] = n
                out_c[m] = c
                m += 1
            k = k_next
            if last or t[j] >= stop[r]:
                break
            n += dn[j]
            j += 1
        while j < nj and traj[j] == gi:  # jumps at the stop itself: nothing sampled after them
            j += 1
    if j != nj:
        raise ValueError("jumps not sorted by trajectory, or outside the batch")
    return out_tr[:m], out_n[:m], out_c[:m]


def grid_table(jumps: pd.DataFrame, initial: pd.DataFrame, stops: pd.DataFrame,
               t_grid: NDArray[np.float64]) -> pd.DataFrame:
    """The long ``traj, t, N`` table (:func:`grid_frame`) of the trajectories in ``initial``, from their jumps.

    ``initial`` must hold a contiguous range of trajectories (a batch, or a whole run), and
    ``jumps`` and ``stops`` the rows of those trajectories.
    """
    tr = initial["traj"].to_numpy()
    start = int(tr[0]) if tr.size else 0
    if tr.size and not np.array_equal(tr, np.arange(start, start + tr.size)):
        raise ValueError("the initial table must hold consecutive trajectories in order")
    N = grid_from_jumps(start, t_grid, initial["n0"].to_numpy(), jumps["traj"].to_numpy(), jumps["t"].to_numpy(),
                        jumps["dn"].to_numpy(), stops["traj"].to_numpy(), stops["t_stop"].to_numpy())
    return grid_frame(start, t_grid, N)


def stops_frame(traj: NDArray[np.int32], t: NDArray[np.float64], n: NDArray[np.int64],
                mode: NDArray[np.int16] | None = None) -> pd.DataFrame:
    """Trajectories stopped at the population cap: ``traj`` (int32), ``t_stop`` (float64), ``n`` (int64),
    and for a labelled run ``mode`` (int16, the mode that reached its cap)."""
    d = {
        "traj": np.asarray(traj, dtype=np.int32),
        "t_stop": np.asarray(t, dtype=float),
        "n": np.asarray(n, dtype=np.int64),
    }
    if mode is not None:
        d["mode"] = np.asarray(mode, dtype=np.int16)
    return pd.DataFrame(d)


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

    ``op`` is the row of ``operators`` (the operator table of :mod:`.labelled`: columns ``channel``,
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


def modes_grid_frame(start: int, t_grid: NDArray[np.float64], N: NDArray[np.float64]) -> pd.DataFrame:
    """Long table of the populations of K modes: ``traj`` (int32), ``t``, ``mode`` (int16), ``N`` (float64).

    One row per trajectory, mode and grid time, in that order (``N`` of shape (ntraj, K, n_points),
    trajectories numbered from ``start``).
    """
    ntraj, K, npts = N.shape
    return pd.DataFrame({
        "traj": np.repeat(np.arange(start, start + ntraj, dtype=np.int32), K * npts),
        "t": np.tile(np.asarray(t_grid, dtype=float), ntraj * K),
        "mode": np.tile(np.repeat(np.arange(K, dtype=np.int16), npts), ntraj),
        "N": np.ascontiguousarray(N, dtype=float).reshape(-1),
    }, copy=False)
