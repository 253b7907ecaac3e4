"""Benchmark: the ``auto`` scheduler against ``serial`` on a small sweep.

Run: ``python benchmarks/bench_scheduler.py``. A 40-point bias sweep of the paper's
double dot (rate equation), 4 chunks, with ``serial`` then ``auto`` (each in this process,
after a warm-up); prints both times and the ratio auto/serial (goal: <= 1 within noise;
``auto`` starts a pool only when the remaining work pays for its start-up).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from sim import load_config  # noqa: E402
from sim.parallel import idle_workers  # noqa: E402
from sim.sweep import sweep  # noqa: E402


def main() -> None:
    cfg = load_config("runs/paper_double_dot.toml")
    grid = ["bias.V=0:2:40"]
    sweep(cfg, grid, chunk_size=10, scheduler="serial", progress=False)  # warm-up
    out = {}
    for kind in ("serial", "auto", "serial", "auto"):
        t = time.perf_counter()
        sweep(cfg, grid, chunk_size=10, scheduler=kind, progress=False)
        out.setdefault(kind, []).append(time.perf_counter() - t)
    s, a = min(out["serial"]), min(out["auto"])
    print(f"idle cores now: {idle_workers()}")
    print(f"serial {s:.3f} s   auto {a:.3f} s   ratio auto/serial {a / s:.2f}")


if __name__ == "__main__":
    main()
