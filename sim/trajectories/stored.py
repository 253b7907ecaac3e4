r"""Read a trajectory run directory: :func:`read_run` (every K), and N(t) on the grid of one-mode runs.

:func:`read_run` returns the tables of any run of ``ehp trajectories`` (K >= 1 modes, either
engine) as pandas DataFrames with the same columns for every K (:class:`RunTables`). It reads
only through the verified readers of :mod:`sim.io`: a run that is not complete, or a part that is
missing or damaged, is refused (:class:`sim.io.RunIncomplete`).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from numpy.typing import NDArray

from ..io import RunIncomplete, part_files, run_metadata
from ..results import Result
from .table import CHANNEL_DTYPE, DIRECTION_DTYPE, grid_from_jumps, grid_segments

__all__ = ["has_grid_table", "t_grid_of", "grid_chunks", "grid_samples", "initial_populations_of", "CHUNK_CELLS",
           "RunTables", "read_run"]

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


# --------------------------------------------------------------------------- every K: read_run


@dataclass(frozen=True, eq=False)
class RunTables(Result):
    r"""The tables of a trajectory run of K >= 1 modes (:func:`read_run`); the same columns for every K.

    Attributes
    ----------
    path
        The run directory.
    engine, n_modes, ntraj, omega, t
        Engine, number of modes K, trajectories, quanta (K,) and the grid ``linspace(0, t_end, n_points)``
        (1/energy).
    jumps
        ``traj, t, channel, direction, dn, dQ, dE, mode, op``, sorted by ``(traj, t)``: ``mode`` is the mode a
        jump acted on (-1: an operator spanning several modes), ``op`` the row of :attr:`operators`; a ladder run
        (``[mode.potential]``) adds ``from`` and ``to`` (levels), and its populations are the level of every
        trajectory (NaN from its rupture on, the ``stops``).
    operators
        One row per collapse operator: ``op, channel, direction, mode, rate, dn, dQ, dE`` (and for
        several modes the weights and phases, :func:`sim.trajectories.labelled.operators_frame`). One
        mode's chain has the 10 labels as operators, ``rate`` its coefficient (the rate out of Fock
        state ``n`` is ``rate (n + 1)`` for emission, ``rate n`` for absorption).
    populations
        ``traj, t, mode, N``: every trajectory's population of every mode on the grid (NaN from a stop at
        the population cap on).
    mean
        ``t``, ``N`` (mean total population ``sum_k N_k`` over the trajectories not stopped there),
        ``N_sem`` (its standard error ``s / sqrt(n)``), ``count`` (that ``n``), and ``N_k``, ``N_k_sem``
        per mode.
    totals
        One row per trajectory: ``traj``, ``n_jumps``, ``dn`` (net quanta into the modes), ``Q``
        (electrons moved L -> R, ``sum dQ``), ``E`` (energy into the modes from the electron baths,
        ``sum dE`` over LL, RR, LR, RL), ``E_ph`` (energy into the modes from the ph-bath), ``E_LL .. E_RL``
        (per channel), ``stopped`` (reached the population cap).
    stops
        ``traj, t_stop, n, mode``.
    identity
        The run's identity record (``metadata.json``: command, config, model or modes, run parameters).
    """

    path: Path
    engine: str
    n_modes: int
    ntraj: int
    omega: NDArray[np.float64]
    t: NDArray[np.float64]
    jumps: pd.DataFrame
    operators: pd.DataFrame
    populations: pd.DataFrame
    mean: pd.DataFrame
    totals: pd.DataFrame
    stops: pd.DataFrame
    identity: dict[str, Any]

    route = "trajectories"

    @property
    def K(self) -> int:
        return self.n_modes

    @property
    def N(self) -> NDArray[np.float64]:
        """:attr:`populations` as an array of shape (ntraj, K, n_points)."""
        return self.populations["N"].to_numpy(dtype=float).reshape(self.ntraj, self.n_modes, self.t.size)

    def model_record(self) -> dict[str, Any] | None:
        return self.identity.get("model") or self.identity.get("modes")

    def to_frame(self) -> pd.DataFrame:
        """The per-trajectory totals (:attr:`totals`)."""
        return self.totals


_ELECTRON = ("LL", "RR", "LR", "RL")


def _chain_operators(record: dict[str, Any]) -> pd.DataFrame:
    """The 10 labels of one mode's birth-death chain as an operator table (rates: the chain's coefficients)."""
    from ..model import CHARGE, DN, N_LABELS, JumpModel

    m = JumpModel.from_record(record)
    em, ab = m.coefficients()
    rate = np.empty(N_LABELS)
    rate[0::2], rate[1::2] = np.asarray(em, dtype=float), np.asarray(ab, dtype=float)
    lab = np.arange(N_LABELS)
    return pd.DataFrame({
        "op": lab.astype(np.int16),
        "channel": pd.Categorical.from_codes(lab // 2, dtype=CHANNEL_DTYPE),
        "direction": pd.Categorical.from_codes(lab % 2, dtype=DIRECTION_DTYPE),
        "mode": np.zeros(N_LABELS, np.int16), "rate": rate, "dn": DN.astype(np.int8), "dQ": CHARGE.astype(float),
        "dE": float(m.omega) * DN.astype(float),
    })


def _mean_frame(t: NDArray[np.float64], N: NDArray[np.float64]) -> pd.DataFrame:
    def stats(x):  # x: (ntraj, n_points)
        ok = np.isfinite(x)
        n = ok.sum(axis=0)
        x0 = np.where(ok, x, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = x0.sum(axis=0) / n
            var = (np.where(ok, (x0 - mean) ** 2, 0.0)).sum(axis=0) / (n - 1)
            return mean, np.sqrt(var / n), n

    out: dict[str, Any] = {"t": t}
    out["N"], out["N_sem"], out["count"] = stats(N.sum(axis=1))
    for k in range(N.shape[1]):
        out[f"N_{k}"], out[f"N_{k}_sem"], _ = stats(N[:, k, :])
    return pd.DataFrame(out)


def _totals_frame(jumps: pd.DataFrame, stops: pd.DataFrame, ntraj: int) -> pd.DataFrame:
    tr = jumps["traj"].to_numpy(np.intp)
    ch = jumps["channel"].astype(str).to_numpy()
    dE = jumps["dE"].to_numpy(float)

    def tot(w):
        return np.bincount(tr, weights=w, minlength=ntraj)[:ntraj]

    out = {"traj": np.arange(ntraj, dtype=np.int32), "n_jumps": np.bincount(tr, minlength=ntraj)[:ntraj],
           "dn": tot(jumps["dn"].to_numpy(float)).astype(np.int64), "Q": tot(jumps["dQ"].to_numpy(float)),
           "E": tot(np.where(ch != "ph", dE, 0.0)), "E_ph": tot(np.where(ch == "ph", dE, 0.0))}
    for c in _ELECTRON:
        out[f"E_{c}"] = tot(np.where(ch == c, dE, 0.0))
    stopped = np.zeros(ntraj, bool)
    stopped[stops["traj"].to_numpy(np.intp)] = True
    out["stopped"] = stopped
    return pd.DataFrame(out)


def read_run(run_dir: str | Path) -> RunTables:
    """The tables of a run of ``ehp trajectories`` (K >= 1 modes, either engine), verified, as :class:`RunTables`.

    Every table is read through :func:`sim.io.read_table` / :func:`sim.io.part_files`, which check every
    part against the run's manifest (size and sha256) and refuse a run that is not complete.

    Raises
    ------
    sim.io.RunIncomplete
        The run is not complete, or a part is missing or damaged (the message names them).
    sim.config.ConfigError
        The directory holds no run, or not a trajectory run.
    """
    from ..config import ConfigError
    from ..io import check_run, read_table

    run_dir = Path(run_dir)
    chk = check_run(run_dir)
    if not chk.complete:
        raise RunIncomplete(f"{str(run_dir)!r} is not a complete run: {chk.problem()}; resume it by running the "
                            "same command again")
    ident = chk.metadata.get("identity") or {}
    if ident.get("command") != "trajectories" or not isinstance(ident.get("run"), dict):
        raise ConfigError(f"{str(run_dir)!r} is not a trajectory run directory (written by `ehp trajectories`)")
    run = ident["run"]
    ntraj = int(run["ntraj"])
    t = t_grid_of(run_dir)
    jumps = read_table(run_dir, "jumps").astype({"channel": CHANNEL_DTYPE, "direction": DIRECTION_DTYPE})
    stops = read_table(run_dir, "stops")
    if "modes" in ident:  # labelled collapse operators
        operators = read_table(run_dir, "operators").reset_index(drop=True)
        omega = np.asarray(ident["modes"]["omega"], dtype=float)
        pops = read_table(run_dir, "trajectories").sort_values(["traj", "mode", "t"], kind="stable")
    elif "ladder" in ident:  # a ladder's level chain: operators (from, to), levels on the grid from the jumps
        operators = read_table(run_dir, "operators").reset_index(drop=True)
        omega = np.array([float(ident["ladder"]["omega"])])
        parts = [pd.DataFrame({"traj": tr.astype(np.int32), "t": tt, "N": n}) for tr, tt, n in grid_chunks(run_dir)]
        pops = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"traj": [], "t": [], "N": []})
        pops.insert(2, "mode", np.zeros(len(pops), np.int16))
        stops = stops.assign(mode=np.zeros(len(stops), np.int16))
    else:  # one mode's birth-death chain: the labels are the operators, mode 0
        operators = _chain_operators(ident["model"])
        omega = np.array([float(ident["model"]["omega"])])
        lab = 2 * jumps["channel"].cat.codes.to_numpy(np.int16) + jumps["direction"].cat.codes.to_numpy(np.int16)
        jumps = jumps.assign(mode=np.zeros(len(jumps), np.int16), op=lab.astype(np.int16))
        parts = [pd.DataFrame({"traj": tr.astype(np.int32), "t": tt, "N": n}) for tr, tt, n in grid_chunks(run_dir)]
        pops = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"traj": [], "t": [], "N": []})
        pops.insert(2, "mode", np.zeros(len(pops), np.int16))
        stops = stops.assign(mode=np.zeros(len(stops), np.int16))
    K = omega.size
    pops = pops.reset_index(drop=True).astype({"traj": np.int32, "mode": np.int16, "N": float})
    if len(pops) != ntraj * K * t.size:
        raise RunIncomplete(f"{str(run_dir)!r}: the populations hold {len(pops)} rows, expected ntraj x K x n_points "
                            f"= {ntraj} x {K} x {t.size}; the run directory was edited or damaged")
    N = pops["N"].to_numpy(float).reshape(ntraj, K, t.size)
    return RunTables(path=run_dir, engine=str(run["engine"]), n_modes=K, ntraj=ntraj, omega=omega, t=t,
                     jumps=jumps.reset_index(drop=True), operators=operators, populations=pops, mean=_mean_frame(t, N),
                     totals=_totals_frame(jumps, stops, ntraj), stops=stops.reset_index(drop=True), identity=ident,
                     options=dict(run))
