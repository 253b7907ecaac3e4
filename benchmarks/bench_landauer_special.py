"""Benchmark: lowest-order Landauer fluxes at and next to special biases.

Run: ``python benchmarks/bench_landauer_special.py``. Paper double dot
(``runs/paper_double_dot.toml``): ``V = 0.95`` (= Omega - gamma_ph, one of the
integration breakpoints) and ``V = 0.9500000000000001`` (one ulp above: the breakpoint
``w = mu_LR`` lands next to it; 13-40 s before the fix), plus linspace neighbours. Prints
time, J and its error estimate per bias, and the ratio of each time to the time at
``V = 0.95`` (goal: within 2x), and ``|J - J(0.95)|`` against the summed error estimates.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sim import landauer, load_config  # noqa: E402

BIASES = [0.95, 0.9500000000000001, *np.linspace(0.9, 1.0, 21)[9:12].tolist(), 0.95000000001, 0.9500001]


def main() -> None:
    base = load_config("runs/paper_double_dot.toml")
    landauer(base, "lowest")  # imports, numba caches
    ref = None
    for V in BIASES:
        cfg = load_config("runs/paper_double_dot.toml", [f"bias.V={V!r}"])
        t = time.perf_counter()
        r = landauer(cfg, "lowest")
        dt = time.perf_counter() - t
        if ref is None:
            ref = (dt, r)
        d = abs(r.J - ref[1].J)
        print(f"V = {V!r:22s} {dt:6.2f} s  ratio {dt / ref[0]:5.2f}  J = {r.J:.15g} +- {r.J_err:.2g}  "
              f"|J - J(0.95)| = {d:.2g} (errors {r.J_err + ref[1].J_err:.2g})")


if __name__ == "__main__":
    main()
