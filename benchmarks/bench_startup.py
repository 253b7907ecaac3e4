"""Benchmark: start-up time of the ``ehp`` command against ``python -c "import numpy"``.

Run: ``python benchmarks/bench_startup.py [--repeat 7]``. Prints the median wall time of
``python -m analysis.cli --version``, ``python -m analysis.cli --help`` and
``python -c "import numpy"`` (fresh processes, measured in one run) and the ratios
(goal: at most 3x ``import numpy``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "import numpy": [sys.executable, "-c", "import numpy"],
    "ehp --version": [sys.executable, "-m", "analysis.cli", "--version"],
    "ehp --help": [sys.executable, "-m", "analysis.cli", "--help"],
}


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for _ in range(args.repeat):  # interleaved, so load changes hit every case alike
        for k, cmd in CASES.items():
            times[k].append(wall(cmd))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["import numpy"]
    for k, v in med.items():
        print(f"{k:16s} median {v:6.3f} s   ratio to import numpy {v / base:5.2f}")


if __name__ == "__main__":
    main()
