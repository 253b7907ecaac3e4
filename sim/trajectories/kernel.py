r"""The compiled birth-death Gillespie kernel shared by every K (:mod:`.ssa` for one mode, one chain per
mode in :mod:`.labelled`): the algorithm, random numbers and cap are described in :mod:`.ssa`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._rng import child_state, next_exponential, next_uniform
from .initial import _draw_initial

__all__ = ["_ssa_kernel"]


@njit(cache=True, inline="always")
def _grid_index(t, grid, inv_dt):  # pragma: no cover - compiled
    """The first ``k`` with ``grid[k] >= t`` (``len(grid)`` if none): O(1) for a linspace grid."""
    npts = grid.shape[0]
    k = min(max(int(math.ceil(t * inv_dt)), 0), npts)
    while k < npts and grid[k] < t:
        k += 1
    while k > 0 and grid[k - 1] >= t:
        k -= 1
    return k


@njit(cache=True, nogil=True)
def _ssa_kernel(pool0, hc0, key0, first, ntraj, kind, n_fixed, log_x, u_zero, grid, t_end, em, ab, cap, capacity,
                record):  # pragma: no cover
    """Trajectories ``first .. first + ntraj - 1``: jumps, N(t) sums, n0, stops (and N rows if ``record``).

    The sums of ``n``, ``n^2`` and the count of running trajectories on the grid are built from
    difference arrays (``O(jumps)`` per trajectory, not ``O(grid)``): a trajectory adds ``n0`` at
    grid index 0, at the first grid point at or after a group of jumps the net change of ``n``
    over the group (jumps between the same two grid points), and removes itself at the first
    grid point at or after its stop. Integers, so the sums equal those of the rows.
    Row ``i`` (trajectory ``first + i``) seeds its generator with child ``key0 + i`` of the
    run's SeedSequence (``pool0, hc0``: :func:`._rng.base_pool`; ``key0 = first`` for one mode).
    """
    npts = grid.shape[0]
    inv_dt = (npts - 1) / t_end
    n_lab = em.shape[0]
    U = 0.0
    D = 0.0
    cem = np.empty(n_lab)
    cab = np.empty(n_lab)
    last_em = 0
    last_ab = 0
    for c in range(n_lab):
        U += em[c]
        D += ab[c]
        cem[c] = U
        cab[c] = D
        if em[c] > 0:
            last_em = c
        if ab[c] > 0:
            last_ab = c
    traj = np.empty(capacity, np.int32)
    times = np.empty(capacity, np.float64)
    labels = np.empty(capacity, np.uint8)
    N = np.empty((ntraj if record else 0, npts), np.float64)
    d1 = np.zeros(npts + 1, np.int64)
    d2 = np.zeros(npts + 1, np.int64)
    dc = np.zeros(npts + 1, np.int64)
    n0s = np.empty(ntraj, np.int64)
    stop_traj = np.empty(ntraj, np.int32)
    stop_t = np.empty(ntraj, np.float64)
    stop_n = np.empty(ntraj, np.int64)
    n_stop = 0
    m = 0
    for i in range(ntraj):
        s0, s1, s2, s3 = child_state(pool0, hc0, key0 + i)
        n, s0, s1, s2, s3 = _draw_initial(s0, s1, s2, s3, kind, n_fixed, log_x, u_zero)
        n0s[i] = n
        d1[0] += n
        d2[0] += n * n
        dc[0] += 1
        gi = np.int32(first + i)
        t = 0.0
        k = 0
        kp = -1  # grid index of the jumps not yet added to d1, d2 (-1: none)
        t_kp = 0.0  # grid[kp]: a later jump at t <= t_kp falls on the same grid index
        n_fl = n  # population already added to d1, d2 (n0 at index 0)
        stopped = n >= cap
        while not stopped:
            up = U * (n + 1)
            R = up + D * n
            if R <= 0.0:
                break
            e, s0, s1, s2, s3 = next_exponential(s0, s1, s2, s3)
            t_new = t + e / R
            if record:
                while k < npts and grid[k] < t_new:
                    N[i, k] = n
                    k += 1
            if t_new > t_end:
                break
            u, s0, s1, s2, s3 = next_uniform(s0, s1, s2, s3)
            x = u * R
            n_old = n
            if x < up or n == 0:
                x /= n + 1
                c = 0
                while c < last_em and x >= cem[c]:
                    c += 1
                lab = 2 * c
                n += 1
            else:
                x = (x - up) / n
                c = 0
                while c < last_ab and x >= cab[c]:
                    c += 1
                lab = 2 * c + 1
                n -= 1
            if m == traj.shape[0]:
                new = 2 * m + 1024
                traj2 = np.empty(new, np.int32)
                times2 = np.empty(new, np.float64)
                labels2 = np.empty(new, np.uint8)
                traj2[:m] = traj
                times2[:m] = times
                labels2[:m] = labels
                traj, times, labels = traj2, times2, labels2
            traj[m] = gi
            times[m] = t_new
            labels[m] = lab
            m += 1
            t = t_new
            if kp < 0 or t > t_kp:  # a new grid interval: add the previous one's net change
                if kp >= 0:
                    d1[kp] += n_old - n_fl
                    d2[kp] += n_old * n_old - n_fl * n_fl
                    n_fl = n_old
                kp = _grid_index(t, grid, inv_dt)
                t_kp = grid[kp]
            if n >= cap:
                stopped = True
        if kp >= 0:
            d1[kp] += n - n_fl
            d2[kp] += n * n - n_fl * n_fl
        if stopped:
            ks = _grid_index(t, grid, inv_dt)
            d1[ks] -= n
            d2[ks] -= n * n
            dc[ks] -= 1
            stop_traj[n_stop] = gi
            stop_t[n_stop] = t
            stop_n[n_stop] = n
            n_stop += 1
        if record:
            N[i, k:] = np.nan if stopped else float(n)
    acc = np.empty((3, npts), np.int64)
    acc[0] = np.cumsum(d1[:npts])
    acc[1] = np.cumsum(d2[:npts])
    acc[2] = np.cumsum(dc[:npts])
    return traj, times, labels, m, N, n0s, acc, stop_traj[:n_stop], stop_t[:n_stop], stop_n[:n_stop]
