"""Benchmark: trajectory engines (ssa vs QuTiP mcsolve) and memory of streamed runs.

Run: ``python benchmarks/bench_trajectories.py [--quick]``. Prints, measured in one
run on one core, on one model (a flat-DOS conductor with all four EHP channels and a
ph-bath, kappa = 0.27, N_ss = 0.44):

1. jumps per second of the ssa kernel alone, of ssa including building the jump
   table (what ``summary.json`` reports as ``jumps_per_s``), and of ``mcsolve``
   (QuTiP 5, default cutoff), and the ratio;
2. peak resident memory (``VmHWM`` of a fresh process, reset after imports and JIT
   compilation) of runs streamed to a
   run directory at 10^4, 10^5, 10^6 trajectories, with the default batch size and
   with a fixed one, beside an in-memory run for contrast.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

CONFIG = {
    "conductor": {"kind": "flat", "K_LL": 0.6, "K_RR": 0.4, "K_LR": 0.5, "K_RL": 0.3},
    "mode": {"omega": 1.0},
    "bias": {"V": 2.0, "T_e": 0.5},
    "phonon_bath": {"T": 0.3, "gamma": 0.05},
}

_CHILD = r"""
import json, sys, time
from sim.config import parse_config
from sim.rate_equation import rate_model
from sim.trajectories import run_trajectories

def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

cfg = parse_config(json.loads(sys.argv[1]))
ntraj, out, batch = int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = rate_model(cfg)
run_trajectories(m, ntraj=10, t_end=1.0, n_points=11, seed=0, progress=False)   # imports + JIT
base = hwm_kb()
try:  # reset the high-water mark to the current RSS (Linux >= 4.0), so peak - base is this run's own
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    pass
t = time.perf_counter()
res = run_trajectories(m, ntraj=ntraj, t_end=5.0, n_points=11, seed=1, progress=False,
                       out_dir=None if out == "-" else out, batch_size=None if batch == "-" else int(batch))
wall = time.perf_counter() - t
print(json.dumps({"base_kb": base, "peak_kb": hwm_kb(), "wall_s": wall, "n_jumps": res.n_jumps,
                  "batch_size": res.batch_size, "jumps_per_s": res.jumps_per_s}))
"""


def speed(quick: bool) -> None:
    from sim.config import parse_config
    from sim.rate_equation import rate_model
    from sim.trajectories import run_trajectories
    from sim.trajectories import ssa as ssa_engine
    from sim.trajectories.engine import RunSpec
    from sim.trajectories.initial import parse_initial

    m = rate_model(parse_config(CONFIG))
    n_ssa, t_ssa = (5_000, 600.0) if quick else (20_000, 1500.0)
    n_mc, t_mc = (50, 50.0) if quick else (200, 50.0)

    spec = RunSpec(t_ssa, 11, 1, parse_initial("vacuum", m))
    plan = ssa_engine.prepare(m, spec)
    kernel = []
    for _ in range(3):
        b = ssa_engine.simulate(plan, 0, n_ssa)
        kernel.append((b.n_jumps / b.sim_s, b.n_jumps))
        del b
    k_rate, k_jumps = max(kernel)
    full = []
    for _ in range(3):
        r = run_trajectories(m, engine="ssa", ntraj=n_ssa, t_end=t_ssa, n_points=11, seed=1, progress=False)
        full.append((r.jumps_per_s, r.n_jumps, r.sim_s))
        del r
    f_rate, f_jumps, f_s = max(full)
    run_trajectories(m, engine="mcsolve", ntraj=2, t_end=1.0, n_points=11, seed=0, progress=False)  # imports
    mc = run_trajectories(m, engine="mcsolve", ntraj=n_mc, t_end=t_mc, n_points=11, seed=1, progress=False)
    print("# engine speed (one core; jumps_per_s = jumps / seconds simulating, best of 3 for ssa)")
    print(f"{'engine':34s}{'ntraj':>9s}{'t_end':>8s}{'jumps':>12s}{'seconds':>10s}{'jumps/s':>12s}")
    print(f"{'ssa kernel only':34s}{n_ssa:>9d}{t_ssa:>8g}{k_jumps:>12d}{k_jumps / k_rate:>10.3f}{k_rate:>12.3e}")
    print(f"{'ssa incl. tables (jumps, n0, stops)':34s}{n_ssa:>9d}{t_ssa:>8g}{f_jumps:>12d}{f_s:>10.3f}{f_rate:>12.3e}")
    print(f"{'mcsolve (QuTiP 5, default cutoff)':34s}{n_mc:>9d}{t_mc:>8g}{mc.n_jumps:>12d}{mc.sim_s:>10.3f}"
          f"{mc.jumps_per_s:>12.3e}")
    print(f"ratio ssa (incl. tables) / mcsolve per jump: {f_rate / mc.jumps_per_s:.3g}")
    print()


def memory(quick: bool) -> None:
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    print("# peak memory of streamed runs (fresh process per row; t_end = 5, 11 grid points, ~2 jumps/trajectory)")
    print(f"{'mode':22s}{'ntraj':>10s}{'batch':>9s}{'jumps':>10s}{'wall s':>9s}{'base MB':>9s}{'peak MB':>9s}"
          f"{'peak-base':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("streamed, default", n, "-", True) for n in sizes]
        rows += [("streamed, batch 10^4", n, "10000", True) for n in sizes]
        rows += [("in memory", n, "-", False) for n in sizes]
        for i, (mode, n, batch, stream) in enumerate(rows):
            out = str(Path(tmp) / f"run{i}") if stream else "-"
            p = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(CONFIG), str(n), out, batch],
                               capture_output=True, text=True, check=True)
            d = json.loads(p.stdout.strip().splitlines()[-1])
            base, peak = d["base_kb"] / 1024, d["peak_kb"] / 1024
            print(f"{mode:22s}{n:>10d}{d['batch_size']:>9d}{d['n_jumps']:>10d}{d['wall_s']:>9.2f}{base:>9.0f}"
                  f"{peak:>9.0f}{peak - base:>10.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = ap.parse_args()
    t = time.perf_counter()
    speed(args.quick)
    memory(args.quick)
    print(f"\n(total {time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
