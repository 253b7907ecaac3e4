"""Benchmark: ssa on short stationary trajectories of the paper model (per-trajectory overhead).

Run: ``python benchmarks/bench_ssa_short.py [--ntraj 100000]``. The workload of
``ehp trajectories runs/paper_double_dot.toml --engine ssa --ntraj 100000 --t-end 200
--seed 1 --set run.initial=steady`` in one batch, in this process after compilation:
prints the time per trajectory of each stage (seed derivation, the kernel, the three
tables), jumps per trajectory, and jumps/s of the kernel alone and including the tables
(what ``summary.json`` reports), each as a ratio to the goal of 1e7 jumps/s.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

from sim import load_config, rate_model  # noqa: E402
from sim.trajectories import _rng, ssa, table  # noqa: E402
from sim.trajectories.engine import RunSpec  # noqa: E402
from sim.trajectories.initial import parse_initial  # noqa: E402

GOAL = 1e7


def best(fn, repeat: int = 3):
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
    t_seed, _ = best(lambda: _rng.child_states(plan.entropy, 0, n))
    t_sim, b = best(lambda: ssa.simulate(plan, 0, n))
    t_jt, _ = best(lambda: table.jumps_frame(b.traj, b.t, b.label, float(m.omega)))
    t_gr, _ = best(lambda: table.grid_frame(0, b.t_grid, b.N))
    t_st, _ = best(lambda: table.stops_frame(b.stop_traj, b.stop_t, b.stop_n))
    jumps = b.traj.size
    for name, t in (("seeds (in the kernel call)", t_seed), ("simulate (seeds + kernel)", t_sim),
                    ("jump table", t_jt), (f"N grid table ({spec.n_points} points)", t_gr), ("stops table", t_st)):
        print(f"{name:34s} {t * 1e3:8.1f} ms  {t / n * 1e6:6.2f} us/trajectory")
    print(f"jumps {jumps} ({jumps / n:.2f} per trajectory)")
    for name, t in (("kernel", t_sim), ("kernel + jump table", t_sim + t_jt),
                    ("kernel + all tables (summary.json)", t_sim + t_jt + t_gr + t_st)):
        print(f"{name:34s} {jumps / t:10.3g} jumps/s  ratio to 1e7 {jumps / t / GOAL:.3f}")


if __name__ == "__main__":
    main()
