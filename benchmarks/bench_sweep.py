"""Sweep benchmarks (a plain script; every ratio is measured in this one run).

1. Scaling with 1 and 2 Dask workers on a sweep whose points each take >= 10 ms
   (full-broadening Landauer fluxes, ~0.1 s per point). The clusters are started and
   warmed up before timing, so the ratio is the scheduler's scaling, not start-up.
2. Scheduler overhead per point against a plain Python loop on a fast sweep
   (rate-equation steady state, ~1-2 ms per point) of 10^4 points, chunked
   (default chunk size: 157 points per task/part).

Each timing is the best of ``--repeat`` runs (the machine may be shared); the load
average is printed so that a noisy run can be recognised.

Usage::

    python benchmarks/bench_sweep.py [--points 10000] [--slow-points 40] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sim.config import load_config
from sim.sweep import Grid, SteadyPoint, apply_point, available_workers, sweep

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn, repeat: int = 1):
    """Best wall time of ``repeat`` calls, and the last result."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_scaling(cfg, n_points: int, repeat: int) -> None:
    from distributed import Client, LocalCluster

    grid = [f"bias.V=0:0.9:{n_points}"]
    chunks = (1, 4)  # 1: the default for this many points (one task per point); 4: fewer, longer tasks
    times: dict[tuple[int, int], float] = {}
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            addr = cluster.scheduler_address  # tcp://127.0.0.1:PORT: the "existing scheduler" route
            client.run(lambda: __import__("sim.landauer"))  # imports and numba caches on every worker
            sweep(cfg, ["bias.V=[0.1, 0.2, 0.3, 0.4]"], landauer="full", scheduler=addr, chunk_size=1)  # warm-up
            for cs in chunks:
                times[n, cs], table = _timed(
                    lambda a=addr, c=cs: sweep(cfg, grid, landauer="full", scheduler=a, chunk_size=c), repeat)
                assert table["landauer.valid"].all()
    t_ser, _ = _timed(lambda: sweep(cfg, grid, landauer="full"), repeat)
    per_point = t_ser / n_points
    print(f"[1] Dask scaling, {n_points} points of full-broadening Landauer ({1e3 * per_point:.0f} ms/point serial); "
          f"serial sweep {t_ser:.2f} s")
    print(f"    {'points/task':>12s}{'1 worker s':>12s}{'2 workers s':>13s}{'2 vs 1':>9s}{'2 vs serial':>13s}")
    for cs in chunks:
        t1, t2 = times[1, cs], times[2, cs]
        print(f"    {cs:12d}{t1:12.2f}{t2:13.2f}{t1 / t2:8.2f}x{t_ser / t2:12.2f}x")
    print(f"    goal: >= 1.6x from 1 to 2 workers on two cores ({available_workers()} cores available)")


def bench_overhead(cfg, n_points: int, repeat: int) -> None:
    side = int(round(np.sqrt(n_points)))
    grid = Grid.parse([f"bias.V=0:2:{side}", f"bias.T_e=0.05:0.5:{side}"]).validate(cfg)
    n = len(grid)
    fn = SteadyPoint()
    keys = grid.keys

    def loop():
        return pd.DataFrame([fn(apply_point(cfg, keys, p)) for p in grid.points()])

    t_loop, ref = _timed(loop, repeat)
    rows = [("plain loop", t_loop, 1)]
    t, tab = _timed(lambda: sweep(cfg, grid), repeat)
    rows.append(("sweep serial (in memory)", t, 1))
    assert np.array_equal(tab["kappa"].to_numpy(), ref["kappa"].to_numpy())
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))

    def into(name: str, **kw):
        shutil.rmtree(tmp / name, ignore_errors=True)  # a fresh directory each time: no resume
        return sweep(cfg, grid, out=tmp / name, **kw)

    try:
        t, _ = _timed(lambda: into("serial"), repeat)
        rows.append(("sweep serial -> parquet parts", t, 1))
        t, _ = _timed(lambda: into("processes", scheduler="processes", workers=2), repeat)
        rows.append(("sweep processes x2 -> parts", t, 2))
        t, _ = _timed(lambda: into("dask", scheduler="dask", workers=2), repeat)
        rows.append(("sweep Dask LocalCluster x2 -> parts", t, 2))
    finally:
        shutil.rmtree(tmp)
    print(f"[2] Overhead per point, {n} rate-equation points ({1e3 * t_loop / n:.2f} ms/point in a plain loop); "
          f"parallel runs include pool/cluster start-up:")
    print(f"    {'':38s}{'wall s':>8s}{'vs loop':>9s}{'overhead/pt':>14s}")
    for name, t, w in rows:
        over = (t * w - t_loop) / n  # extra CPU time per point, assuming perfect scaling over w workers
        print(f"    {name:38s}{t:8.2f}{t_loop / t:8.2f}x{1e6 * over:11.0f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--slow-points", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} ({available_workers()} cores)")
    cfg = load_config(ROOT / "runs" / "paper_double_dot.toml")
    sweep(cfg, ["bias.V=[0.5]"], landauer="full")  # JIT / caches in this process
    bench_scaling(cfg, args.slow_points, args.repeat)
    bench_overhead(cfg, args.points, args.repeat)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
