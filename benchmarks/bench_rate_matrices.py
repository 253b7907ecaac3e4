"""Benchmark: several-mode EHP rate matrices (all four channels, emission/absorption/damping, K x K, one w).

Run: ``python benchmarks/bench_rate_matrices.py``. BLAS is limited to one thread. Prints the time for
K = 100 modes on n = 50 orbitals (random Hermitian complex couplings, random broadenings; goal < 30 s),
and a table of the time against K (10, 30, 100) and n (10, 20, 50). The cost is O(n^3) for the
eigendecomposition, O(K n^3) for the per-channel factors and O(K^2 n^2) for the contractions.
Also the K = 100, n = 50 time with unequal electrode temperatures.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402

from sim.conductor import Conductor  # noqa: E402
from sim.rate_matrices import RateMatrixModel  # noqa: E402


def model(n: int, K: int, seed: int = 0) -> tuple[Conductor, np.ndarray]:
    rng = np.random.default_rng(seed)

    def herm(*shape):
        A = rng.normal(size=shape) + 1j * rng.normal(size=shape)
        return (A + np.swapaxes(A, -1, -2).conj()) / 2

    def psd():
        B = rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))
        return 0.3 * B @ B.conj().T / n

    cond = Conductor(herm(n, n) / np.sqrt(n), psd(), psd(), np.zeros((n, n)))
    return cond, 0.1 * herm(K, n, n) / np.sqrt(n)


def timed(n: int, K: int, repeat: int = 3, T_R: float = 0.1) -> float:
    cond, M = model(n, K)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        RateMatrixModel(cond, M).rates(1.0, 0.5, -0.5, 0.1, T_R)  # eigendecomposition included
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    timed(4, 2, repeat=1)  # warm-up (numba-compiled digamma)
    t = timed(50, 100)
    print(f"K = 100 modes, n = 50 orbitals, 4 channels x (em, abs, Lambda) K x K at one w: {t:.3f} s (goal < 30 s)")
    t2 = timed(50, 100, repeat=1, T_R=0.2)
    print(f"same with T_L = 0.1 != T_R = 0.2 (LR, RL emission: pole integrals by quad_vec): {t2:.3f} s")
    Ks, ns = (10, 30, 100), (10, 20, 50)
    print("\ntime [s] (rows K, columns n)")
    print("K \\ n " + "".join(f"{n:>10d}" for n in ns))
    for K in Ks:
        print(f"{K:5d} " + "".join(f"{timed(n, K):10.4f}" for n in ns))


if __name__ == "__main__":
    main()
