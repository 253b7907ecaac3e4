"""Benchmark: ``ehp stats`` against the run it analyses (the README's trajectory run).

Run: ``python benchmarks/bench_stats.py [--ntraj N]`` (default the README's 10^5). In one
process it runs, through the command line in-process (``analysis.cli.main``):

1. ``ehp trajectories runs/paper_double_dot.toml --engine ssa --ntraj N --t-end 200
   --seed 1 --set run.initial=steady --out DIR``
2. ``ehp stats DIR --out DIR2`` (tables and all figures), then ``ehp stats DIR`` (text only)

after a tiny warm-up of both (imports, JIT compilation) so that neither side pays for
them, and prints the wall times and the ratio ``stats_s / run_s`` (the goal is <= 3),
with the time of each analysis step (cumulants and waiting times, mode statistics,
figures) measured separately afterwards. Then the same two commands as a user types them,
each in a fresh process (``python -m analysis.cli``, imports and numba's cache loading
included; wall clock), and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "runs" / "paper_double_dot.toml"


def _cli(args: list[str]) -> float:
    from analysis.cli import main

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(args)
    if rc != 0:
        raise SystemExit(f"`ehp {' '.join(args)}` exited with {rc}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ntraj", type=int, default=100_000, help="trajectories (default: the README's 100000)")
    ap.add_argument("--t-end", type=float, default=200.0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def run(name: str, ntraj: int) -> list[str]:
            return ["trajectories", str(CONFIG), "--engine", "ssa", "--ntraj", str(ntraj), "--t-end", str(a.t_end),
                    "--seed", "1", "--set", "run.initial=steady", "--no-progress", "--out", str(tmp / name)]

        _cli(run("warm", 200))  # imports, JIT
        _cli(["stats", str(tmp / "warm"), "--no-progress", "--out", str(tmp / "warm_stats")])
        run_s = _cli(run("traj", a.ntraj))
        stats_s = _cli(["stats", str(tmp / "traj"), "--no-progress", "--out", str(tmp / "stats")])
        text_s = _cli(["stats", str(tmp / "traj"), "--no-progress"])

        from analysis.mode_stats import mode_stats
        from analysis.stats import run_stats
        from analysis.stats_plots import stats_figures

        t = time.perf_counter()
        st = run_stats(tmp / "traj", progress=False)
        t_cum = time.perf_counter() - t
        t = time.perf_counter()
        ms = mode_stats(tmp / "traj", st.t_min, progress=False)
        t_mode = time.perf_counter() - t
        import json

        meta = json.loads((tmp / "traj" / "metadata.json").read_text())
        (tmp / "figs").mkdir()
        t = time.perf_counter()
        stats_figures(st, meta, tmp / "figs", fock=ms.fock)
        t_fig = time.perf_counter() - t
        fresh = []
        for name in ("fresh_run", "fresh_stats"):
            argv = run(name, a.ntraj) if name == "fresh_run" else ["stats", str(tmp / "fresh_run"), "--no-progress",
                                                                   "--out", str(tmp / name)]
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "analysis.cli", *argv], check=True, capture_output=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg"))
            fresh.append(time.perf_counter() - t)
    print(f"README run: {a.ntraj} trajectories, t_end = {a.t_end:g}, paper_double_dot, ssa, steady start")
    print(f"  ehp trajectories   {run_s:8.2f} s")
    print(f"  ehp stats --out    {stats_s:8.2f} s   (cumulants + waiting times {t_cum:.2f} s, mode statistics "
          f"{t_mode:.2f} s, figures {t_fig:.2f} s)")
    print(f"  ehp stats (no --out, tables on stdout only) {text_s:.2f} s")
    print(f"  ratio stats --out / run    {stats_s / run_s:8.2f}   (goal <= 3)")
    print(f"  ratio stats (text) / run   {text_s / run_s:8.2f}")
    print(f"as typed, fresh processes: ehp trajectories {fresh[0]:.2f} s, ehp stats --out {fresh[1]:.2f} s, "
          f"ratio {fresh[1] / fresh[0]:.2f}   (goal <= 3)")


if __name__ == "__main__":
    main()
