r"""Read a one-mode trajectory run directory: N(t) on the grid and the initial populations.

An ssa run writes ``initial.parquet/`` (``traj, n0``) beside the jumps instead of every
trajectory's N on the grid: between its jumps a trajectory sits in one Fock state, so its
row ``N(t_k) = n0 + sum of dn over its jumps with t <= t_k`` (NaN from a stop at the
population cap on) follows exactly, and is rebuilt here one batch (or a slice of one) at a
time (:func:`sim.trajectories.table.grid_from_jumps`). mcsolve runs, ssa runs with
``run.store_grid = true`` and runs written before the ``initial`` table existed keep the
``trajectories`` table, which is read as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from numpy.typing import NDArray

from ..io import RunIncomplete, part_files, run_metadata
from .table import grid_from_jumps, grid_segments

__all__ = ["has_grid_table", "t_grid_of", "grid_chunks", "grid_samples", "initial_populations_of", "CHUNK_CELLS"]

#: Grid cells (trajectories x time points) rebuilt at once: ~24 MB of arrays.
CHUNK_CELLS = 1_000_000


def _meta(run_dir: Path) -> dict:
    return run_metadata(Path(run_dir))


def has_grid_table(run_dir: str | Path) -> bool:
    """True when the run kept every trajectory's N on the grid (``trajectories.parquet/``)."""
    expected = _meta(Path(run_dir)).get("parts_expected") or {}
    if expected:
        return "trajectories" in expected
    return (Path(run_dir) / "trajectories.parquet").exists()


def t_grid_of(run_dir: str | Path) -> NDArray[np.float64]:
    """The run's grid ``linspace(0, t_end, n_points)`` (1/energy), from ``metadata.json``."""
    run = _meta(Path(run_dir))["identity"]["run"]
    return np.linspace(0.0, float(run["t_end"]), int(run["n_points"]))


def _batches(run_dir: Path) -> Iterator[tuple[Path, Path, Path]]:
    files = [part_files(run_dir, t) for t in ("initial", "jumps", "stops")]
    if not len(files[0]) == len(files[1]) == len(files[2]):
        raise RunIncomplete(f"{str(run_dir)!r}: the initial, jumps and stops tables have different numbers of parts "
                         f"({', '.join(str(len(f)) for f in files)})")
    yield from zip(*files, strict=True)


def grid_chunks(run_dir: str | Path, *, max_cells: int = CHUNK_CELLS
                ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]]:
    """``(traj, t, N)`` of the long grid table, in trajectory order, a slice of trajectories at a time.

    Read from ``trajectories.parquet/`` where the run has it, else rebuilt from the
    ``initial``, ``jumps`` and ``stops`` parts of each batch (at most ``max_cells`` cells at
    once). ``N`` is NaN at and after a stop at the population cap.
    """
    run_dir = Path(run_dir)
    if has_grid_table(run_dir):
        for f in part_files(run_dir, "trajectories"):
            tab = pq.read_table(f, columns=["traj", "t", "N"])
            yield (tab["traj"].to_numpy().astype(np.int64), tab["t"].to_numpy(),
                   tab["N"].to_numpy(zero_copy_only=False).astype(float))
        return
    grid = t_grid_of(run_dir)
    per = max(1, int(max_cells) // grid.size)
    for f_in, f_j, f_st in _batches(run_dir):
        ini = pq.read_table(f_in, columns=["traj", "n0"])
        jt = pq.read_table(f_j, columns=["traj", "t", "dn"])
        st = pq.read_table(f_st, columns=["traj", "t_stop"])
        tr0, n0 = ini["traj"].to_numpy().astype(np.int64), ini["n0"].to_numpy()
        jtr, jt_t, jdn = jt["traj"].to_numpy(), jt["t"].to_numpy(), jt["dn"].to_numpy()
        str_, st_t = st["traj"].to_numpy(), st["t_stop"].to_numpy()
        for a in range(0, tr0.size, per):
            b = min(a + per, tr0.size)
            lo, hi = int(tr0[a]), int(tr0[b - 1]) + 1
            ja, jb = np.searchsorted(jtr, [lo, hi])
            sa, sb = np.searchsorted(str_, [lo, hi])
            N = grid_from_jumps(lo, grid, n0[a:b], jtr[ja:jb], jt_t[ja:jb], jdn[ja:jb], str_[sa:sb], st_t[sa:sb])
            yield np.repeat(tr0[a:b], grid.size), np.tile(grid, b - a), N.reshape(-1)


def grid_samples(run_dir: str | Path, t_min: float = 0.0
                 ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]]:
    """The finite samples ``N(t_k)`` with ``t_k >= t_min`` as ``(traj, n, weight)``, one batch at a time.

    A sum over samples ``sum f(N)`` is ``sum weight f(n)``. From the grid table every sample
    has weight 1; rebuilt from the jumps (:func:`sim.trajectories.table.grid_segments`) a
    weight counts the consecutive grid points at which a trajectory holds ``n``: the same
    sums (integers) in ``O(jumps)`` instead of ``O(trajectories x grid)``.
    """
    run_dir = Path(run_dir)
    if has_grid_table(run_dir):
        for tr, t, N in grid_chunks(run_dir):
            ok = (t >= t_min) & np.isfinite(N)
            yield tr[ok], N[ok], np.ones(int(ok.sum()))
        return
    grid = t_grid_of(run_dir)
    k_min = int(np.searchsorted(grid, t_min, side="left"))
    for f_in, f_j, f_st in _batches(run_dir):
        ini = pq.read_table(f_in, columns=["traj", "n0"])
        jt = pq.read_table(f_j, columns=["traj", "t", "dn"])
        st = pq.read_table(f_st, columns=["traj", "t_stop"])
        tr0 = ini["traj"].to_numpy()
        if not tr0.size:
            continue
        tr, n, c = grid_segments(int(tr0[0]), grid, k_min, ini["n0"].to_numpy(), jt["traj"].to_numpy(),
                                 jt["t"].to_numpy(), jt["dn"].to_numpy(), st["traj"].to_numpy(),
                                 st["t_stop"].to_numpy())
        yield tr, n.astype(float), c.astype(float)


def initial_populations_of(run_dir: str | Path) -> NDArray[np.float64]:
    """``N`` at t = 0 of every trajectory, in order (the ``initial`` table, or the grid at t = 0)."""
    run_dir = Path(run_dir)
    if (run_dir / "initial.parquet").exists():
        files = part_files(run_dir, "initial")
        return np.concatenate([pq.read_table(f, columns=["n0"])["n0"].to_numpy() for f in files]).astype(float)
    out = [N[t == 0.0] for _, t, N in grid_chunks(run_dir)]
    return np.concatenate(out) if out else np.zeros(0)
