"""Benchmark: the ssa engine over the level graph of a ladder (jumps/s in memory, one thread).

Run: ``python benchmarks/bench_ladder_ssa.py [--small 2000] [--large 20000]``. Two ladders:
a truncated harmonic ladder (3 bound levels, nearest-neighbour jumps: 15 labels) and a Morse
well (D = 3 Omega with its box continuum: about 60 levels and 1100 labels, overtones included),
flat kernels at V = 1.5 and 2 Omega. For each, the kernel alone and the kernel plus the jump
table (what ``summary.json`` reports as ``jumps_per_s``) on ``--small`` and ``--large``
trajectories run to t_end = 20 MFPT (every trajectory ruptures); the marginal rate is
``(jumps_large - jumps_small) / (time_large - time_small)``, which removes the fixed costs
(allocation, the grid of every trajectory). Goal: >= 1e7 jumps/s marginal, kernel alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sim.config import parse_config  # noqa: E402
from sim.ladder_time import ladder_chain, ladder_initial  # noqa: E402
from sim.rupture import escape  # noqa: E402
from sim.trajectories import ladder_ssa  # noqa: E402
from sim.trajectories.engine import RunSpec  # noqa: E402

GOAL = 1e7
FLAT = {"kind": "flat", "K_LL": 0.0, "K_RR": 1.0, "K_LR": 0.2, "K_RL": 0.2}
CASES = {
    "truncated N=3": {"conductor": FLAT, "mode": {"omega": 1.0, "potential": {"kind": "truncated", "bound": 3}},
                      "bias": {"V": 1.5, "T_e": 0.1}, "phonon_bath": {"T": 0.1, "gamma": 0.02}},
    "morse D=3": {"conductor": {**FLAT, "K_LR": 0.05, "K_RL": 0.05},
                  "mode": {"omega": 1.0, "potential": {"kind": "morse", "D": 3.0}},
                  "bias": {"V": 2.0, "T_e": 0.05}, "phonon_bath": {"T": 0.05, "gamma": 0.01}},
}


def best(fn, repeat: int = 3):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def bench(name: str, base: dict, small: int, large: int) -> dict:
    cfg = parse_config(json.loads(json.dumps(base)))
    ch = ladder_chain(cfg)
    T = escape(ch).mfpt[0]
    spec = RunSpec(20 * T, 201, 1, ladder_initial("vacuum", ch))
    plan = ladder_ssa.prepare_ladder_ssa(ch, spec)
    out = {"case": name, "levels": ch.n_levels, "labels": plan.n_operators, "mfpt": T}
    for what, fn in (("kernel", lambda n: ladder_ssa.simulate_ladder_ssa(plan, 0, n, threads=1)),
                     ("kernel+table", lambda n: plan.frames(ladder_ssa.simulate_ladder_ssa(plan, 0, n, threads=1)))):
        ts, _ = best(lambda n=small, f=fn: f(n))
        tl, _ = best(lambda n=large, f=fn: f(n))
        js = ladder_ssa.simulate_ladder_ssa(plan, 0, small, threads=1).n_jumps
        jl = ladder_ssa.simulate_ladder_ssa(plan, 0, large, threads=1).n_jumps
        out[what] = {"jumps_large": jl, "s_large": tl, "per_s_large": jl / tl,
                     "marginal_per_s": (jl - js) / (tl - ts) if tl > ts else float("nan")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--large", type=int, default=20000)
    a = ap.parse_args()
    for name, base in CASES.items():
        r = bench(name, base, a.small, a.large)
        print(f"{name}: {r['levels']} levels, {r['labels']} labels, MFPT {r['mfpt']:.4g}")
        for what in ("kernel", "kernel+table"):
            x = r[what]
            m = x["marginal_per_s"]
            print(f"  {what:13s} {x['jumps_large']:>10d} jumps in {x['s_large']:.3f} s: {x['per_s_large']:.3g} jumps/s; "
                  f"marginal {m:.3g} jumps/s ({m / GOAL:.2f} x goal 1e7)")
    print(f"numpy {np.__version__}; one thread (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")


if __name__ == "__main__":
    main()
