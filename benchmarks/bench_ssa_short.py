"""Benchmark: ssa on short stationary trajectories of the paper model (per-trajectory overhead).

Run: ``python benchmarks/bench_ssa_short.py [--ntraj 100000]``. The workload of
``ehp trajectories runs/paper_double_dot.toml --engine ssa --ntraj 100000 --t-end 200
--seed 1 --set run.initial=steady`` in one batch, in this process after compilation:
prints the time per trajectory of each stage (the kernel, which derives each trajectory's
seed itself, and the tables the run writes), jumps per trajectory, and jumps/s of the
kernel alone and including the tables (what ``summary.json`` reports), each as a ratio to
the goal of 1e7 jumps/s, on one thread and on the threads the engine picks by default.
The per-trajectory N(t) grid table (written only with ``run.store_grid = true``) is timed
for reference: at 1.8 jumps per trajectory it costs ten times the simulation.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from sim import load_config, rate_model  # noqa: E402
from sim.parallel import available_workers  # noqa: E402
from sim.trajectories import ssa, table  # noqa: E402
from sim.trajectories.engine import RunSpec  # noqa: E402
from sim.trajectories.initial import parse_initial  # noqa: E402

GOAL = 1e7


def best(fn, repeat: int = 5):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ntraj", type=int, default=100_000)
    n = ap.parse_args().ntraj
    cfg = load_config("runs/paper_double_dot.toml", ["run.initial=steady"])
    m = rate_model(cfg)
    spec = RunSpec(200.0, cfg.run.n_points, 1, parse_initial("steady", m))
    plan = ssa.prepare(m, spec)
    auto = min(available_workers(), max(1, n // ssa.MIN_PER_THREAD))  # every core, idle or not
    t_one, b = best(lambda: ssa.simulate(plan, 0, n, threads=1))
    t_all, _ = best(lambda: ssa.simulate(plan, 0, n, threads=auto))
    t_jt, _ = best(lambda: table.jumps_frame(b.traj, b.t, b.label, float(m.omega)))
    t_in, _ = best(lambda: table.initial_frame(0, b.n0))
    t_st, _ = best(lambda: table.stops_frame(b.stop_traj, b.stop_t, b.stop_n))
    t_gr, _ = best(lambda: table.grid_frame(0, b.t_grid, table.grid_from_jumps(
        0, b.t_grid, b.n0, b.traj, b.t, table.DN[b.label], b.stop_traj, b.stop_t)), 2)
    tables = t_jt + t_in + t_st
    jumps = b.traj.size
    for name, t in (("simulate, 1 thread", t_one), (f"simulate, {auto} threads", t_all),
                    ("jump table", t_jt), ("initial table", t_in), ("stops table", t_st),
                    (f"[N grid table, {spec.n_points} points]", t_gr)):
        print(f"{name:36s} {t * 1e3:8.1f} ms  {t / n * 1e6:6.3f} us/trajectory")
    print(f"jumps {jumps} ({jumps / n:.2f} per trajectory)")
    for name, t in (("kernel, 1 thread", t_one), ("kernel + tables, 1 thread", t_one + tables),
                    (f"kernel, {auto} threads", t_all), (f"kernel + tables, {auto} threads", t_all + tables),
                    ("[1 thread + N grid table]", t_one + tables + t_gr)):
        print(f"{name:36s} {jumps / t:10.3g} jumps/s  ratio to 1e7 {jumps / t / GOAL:.3f}")


if __name__ == "__main__":
    main()
