"""Benchmark: EHP channel rates, exact pole (digamma) method vs scipy.integrate.quad.

Run: ``python benchmarks/bench_channels.py``. Prints, measured in one run on one core:
the time for all four channels of the paper's double dot at 10^4 bias points, the
cost per rate, and the ratio against ``scipy.integrate.quad`` per rate, both with a
generic matrix kernel and with a hand-written scalar Lorentzian integrand (the
most favourable case for quad).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import integrate  # noqa: E402

from sim.channels import channel_rates, kernel  # noqa: E402
from sim.conductor import double_dot  # noqa: E402
from sim.special import fermi  # noqa: E402


def best_of(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    cond = double_dot()  # paper: eps = +-0.5, gamma = 0.5, m = 0.5, t = 0
    w, T = 1.0, 0.1
    n = 10_000
    V = np.linspace(-3, 3, n)
    channel_rates(cond, w, V / 2, -V / 2, T)  # warm-up
    t_all = best_of(lambda: channel_rates(cond, w, V / 2, -V / 2, T))
    # rates computed: 4 channels x n points x (emission, damping); absorption = emission + damping
    per_rate = t_all / (4 * n * 2)
    condh = double_dot(hopping=0.1)
    t_hop = best_of(lambda: channel_rates(condh, w, V / 2, -V / 2, T))

    mus = np.linspace(-1.5, 1.5, 20)

    def quad_matrix():
        for mu in mus:
            integrate.quad(lambda e, m=mu: kernel(cond, "LR", e, w) * fermi(e - m, T) * (1 - fermi(e - w + m, T)),
                           -np.inf, np.inf)

    m, e1, e2, g = 0.5, 0.5, -0.5, 0.5

    def lorentz_k(e):
        return m * m * g / ((e - e1) ** 2 + g * g / 4) * g / ((e - w - e2) ** 2 + g * g / 4)

    def quad_scalar():
        for mu in mus:
            integrate.quad(lambda e, m_=mu: lorentz_k(e) / (np.exp((e - m_) / T) + 1)
                           * (1 - 1 / (np.exp((e - w + m_) / T) + 1)), -np.inf, np.inf)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q_matrix = best_of(quad_matrix, 2) / len(mus)
        q_scalar = best_of(quad_scalar, 3) / len(mus)

    print("EHP channel rates benchmark (one core, best of several runs)")
    print(f"  all 4 channels, {n} bias points, paper double dot (t = 0): {t_all * 1e3:8.2f} ms")
    print(f"  all 4 channels, {n} bias points, double dot with t = 0.1:  {t_hop * 1e3:8.2f} ms")
    print(f"  exact method, per rate:                      {per_rate * 1e9:10.1f} ns")
    print(f"  scipy quad, per rate (matrix kernel):        {q_matrix * 1e9:10.1f} ns  ratio {q_matrix / per_rate:10.0f}x")
    print(f"  scipy quad, per rate (scalar Lorentzian):    {q_scalar * 1e9:10.1f} ns  ratio {q_scalar / per_rate:10.0f}x")


if __name__ == "__main__":
    main()
