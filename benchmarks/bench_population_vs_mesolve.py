"""Wall time of N(t) by the population route (sim.population) against qutip.mesolve.

Same model, same cutoff, same time grid, measured in one run. mesolve is called
directly (plain ``qutip.mesolve`` with e_ops = [a^dag a], no stored states) at QuTiP's
default tolerances and at the tolerances sim.lindblad uses (atol 1e-12, rtol 1e-10);
the population route is exact to round-off. Each timing is the best of ``REPEAT`` runs.

Run: ``python benchmarks/bench_population_vs_mesolve.py``. On small VMs multithreaded
OpenBLAS can stall tiny ``scipy.linalg.expm`` calls by milliseconds, at random from one
process to the next; ``OPENBLAS_NUM_THREADS=1`` gives stable numbers for both routes.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import qutip  # noqa: E402

from sim.config import parse_config  # noqa: E402
from sim.lindblad import collapse_operators, hamiltonian, initial_state  # noqa: E402
from sim.population import evolve_population  # noqa: E402
from sim.rate_equation import rate_model  # noqa: E402

REPEAT = 5
CASES = [("vacuum", 1.0), ("thermal:1", 1.0), ("fock:3", 1.0), ("coherent:1+0.5j", 1.0)]


def best(f) -> tuple[float, object]:
    out, times = None, []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    t = np.linspace(0.0, 60.0, 301)
    print(f"qutip {qutip.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
          f"{t.size} time points on [0, {t[-1]:g}], double dot V = 1 (kappa = 0.113, N_ss = 0.518)")
    print(f"{'initial':>18} {'cutoff':>6} {'population s':>13} {'mesolve(default) s':>19} {'ratio':>8}"
          f" {'mesolve(tight) s':>17} {'ratio':>8} {'max|dN|':>9}")
    for initial, V in CASES:
        cfg = parse_config({"conductor": {"kind": "double_dot", "coupling": 0.3}, "mode": {"omega": 1.0},
                            "bias": {"V": V, "mu0": 0.0, "T_e": 0.1}, "phonon_bath": {"T": 0.1, "gamma": 0.1}})
        m = rate_model(cfg)
        pop_s, pop = best(lambda m=m, initial=initial: evolve_population(m, t, initial))
        K = pop.cutoff
        H = hamiltonian(m, K)
        c_ops = [op for _, _, op in collapse_operators(m, K)]
        rho0 = initial_state(initial, K, m)
        num = qutip.num(K)
        row = []
        for opts in ({}, {"atol": 1e-12, "rtol": 1e-10}):
            options = {"store_states": False, "progress_bar": False, **opts}
            me_s, res = best(lambda H=H, rho0=rho0, c_ops=c_ops, num=num, options=options:
                             qutip.mesolve(H, rho0, t, c_ops, e_ops=[num], options=options))
            row.append((me_s, np.abs(np.real(res.expect[0]) - pop.N).max()))
        (d_s, _), (t_s, err) = row
        print(f"{initial:>18} {K:>6d} {pop_s:>13.5f} {d_s:>19.5f} {pop_s / d_s:>8.4f} {t_s:>17.5f} {pop_s / t_s:>8.4f}"
              f" {err:>9.1e}")
    print("ratio = population time / mesolve time (smaller is faster; goal <= 0.02, i.e. >= 50x)")


if __name__ == "__main__":
    main()
