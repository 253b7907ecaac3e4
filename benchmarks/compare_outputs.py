"""Compare every CLI output and table of this tree with those of an earlier commit (same commands, same seeds).

A refactor that changes no number must leave them identical. The script checks out ``REV``
in a temporary git worktree, runs the same ``ehp`` commands with each tree on
``PYTHONPATH`` (serial scheduler, fixed seeds), and compares:

- JSON printed by ``ehp steady --json`` and ``ehp threshold --json`` (every value the old
  output has; keys that only the new output has are listed, not counted as differences);
- every parquet table of every run directory (``ehp evolve``, ``ehp trajectories``,
  ``ehp run`` on the bundled studies): same columns, same dtypes, same values.

Usage::

    python benchmarks/compare_outputs.py REV [--studies fig3_rectification fig5_cooling ...] [--quick]

It prints one line per output: ``identical``, or the largest absolute and relative
difference per column; exit code 1 if anything differs beyond ``--rtol`` (default 0:
bit for bit).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CFG = "runs/paper_double_dot.toml"

COMMANDS: list[tuple[str, list[str]]] = [
    ("steady", ["steady", CFG, "--json"]),
    ("steady_V0.8_lindblad", ["steady", CFG, "--set", "bias.V=0.8", "--lindblad", "--json"]),
    ("steady_unstable", ["steady", CFG, "--set", "bias.V=1.5", "--json"]),
    ("threshold", ["threshold", CFG, "--vary", "bias.V", "--between", "0", "2", "--json"]),
    ("evolve_rate", ["evolve", CFG, "--t-end", "20", "--method", "rate", "--out", "{out}"]),
    ("evolve_population", ["evolve", CFG, "--t-end", "20", "--method", "population", "--out", "{out}"]),
    ("evolve_lindblad", ["evolve", CFG, "--t-end", "20", "--method", "lindblad", "--out", "{out}"]),
    ("evolve_runaway", ["evolve", CFG, "--set", "bias.V=1.5", "--t-end", "20", "--method", "population",
                        "--out", "{out}"]),
    ("traj_ssa", ["trajectories", CFG, "--engine", "ssa", "--ntraj", "3000", "--t-end", "50", "--seed", "1",
                  "--set", "run.initial=steady", "--no-progress", "--out", "{out}"]),
    ("traj_ssa_runaway", ["trajectories", CFG, "--engine", "ssa", "--ntraj", "500", "--t-end", "60", "--seed", "3",
                          "--set", "bias.V=1.5", "--set", "run.initial=fock:2", "--no-progress", "--out", "{out}"]),
    ("traj_mcsolve", ["trajectories", CFG, "--engine", "mcsolve", "--ntraj", "40", "--t-end", "10", "--seed", "2",
                      "--no-progress", "--out", "{out}"]),
]
STUDIES = ("fig3_rectification", "fig4_thermoelectric", "fig5_cooling", "instability_map", "transient")


def run(tree: Path, argv: list[str], out: Path | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree), MPLBACKEND="Agg")
    args = [a.replace("{out}", str(out)) for a in argv]
    return subprocess.run([sys.executable, "-m", "analysis.cli", *args], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=1800)


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, rtol: float) -> tuple[bool, str]:
    """Same rows and, for every column the old table has, the same dtype and values; columns only the
    new table has are listed (a new field changes no old number); a column it lost is a difference."""
    lost = [c for c in a.columns if c not in b.columns]
    new = [c for c in b.columns if c not in a.columns]
    if lost:
        return False, f"columns missing in the new table: {lost}"
    if len(a) != len(b):
        return False, f"rows differ: {len(a)} vs {len(b)}"
    notes, ok = ([f"new columns {new}"] if new else []), True
    for c in a.columns:
        x, y = a[c], b[c]
        if str(x.dtype) != str(y.dtype):
            ok = False
            notes.append(f"{c}: dtype {x.dtype} vs {y.dtype}")
            continue
        if pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
            xv, yv = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
            same_nan = np.array_equal(np.isnan(xv), np.isnan(yv))
            d = np.abs(np.where(np.isnan(xv), 0, xv) - np.where(np.isnan(yv), 0, yv))
            scale = np.maximum(np.abs(np.nan_to_num(xv)), np.abs(np.nan_to_num(yv)))
            rel = float(np.max(d / np.where(scale > 0, scale, 1.0))) if d.size else 0.0
            if not same_nan or rel > rtol:
                ok = False
            if rel > 0 or not same_nan:
                notes.append(f"{c}: max rel diff {rel:.2e}" + ("" if same_nan else ", NaN pattern differs"))
        elif not x.equals(y):
            ok = False
            notes.append(f"{c}: values differ")
    return ok, "identical" if not notes else "; ".join(notes)


def tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """Every parquet table of a run directory; for an ssa run that keeps ``initial.parquet/`` instead of
    the grid, ``trajectories.parquet`` is rebuilt from it and the jumps (this tree's reader), so it is
    compared with the grid an older tree wrote."""
    out = {}
    if (run_dir / "initial.parquet").is_dir() and not (run_dir / "trajectories.parquet").exists():
        sys.path.insert(0, str(ROOT))
        from sim.trajectories.stored import grid_chunks

        chunks = list(grid_chunks(run_dir))
        out["trajectories.parquet"] = pd.DataFrame({
            "traj": np.concatenate([c[0] for c in chunks]).astype(np.int32),
            "t": np.concatenate([c[1] for c in chunks]), "N": np.concatenate([c[2] for c in chunks])})
    for p in sorted(run_dir.rglob("*.parquet")):
        if p.is_dir() or p.parent.suffix == ".parquet":
            continue
        out[str(p.relative_to(run_dir))] = pd.read_parquet(p)
    for d in sorted(q for q in run_dir.rglob("*.parquet") if q.is_dir()):
        parts = sorted(d.glob("*.parquet"))
        out[str(d.relative_to(run_dir))] = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return out


def compare_json(a: object, b: object, rtol: float, path: str = "", added: list[str] | None = None) -> list[str]:
    """Differences of the values both have; keys only the new output has go to ``added`` (new fields are
    allowed: they do not change a number), keys the new output lost are differences."""
    if isinstance(a, dict) and isinstance(b, dict):
        if added is not None:
            added.extend(f"{path}.{k}" for k in sorted(set(b) - set(a)))
        lost = [f"{path}.{k}: missing in the new output" for k in sorted(set(a) - set(b))]
        return lost + [m for k in a if k in b for m in compare_json(a[k], b[k], rtol, f"{path}.{k}", added)]
    if isinstance(a, float) and isinstance(b, float):
        rel = abs(a - b) / max(abs(a), abs(b), 1e-300)
        return [] if rel <= rtol else [f"{path}: {a!r} vs {b!r} (rel {rel:.2e})"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rev", help="earlier commit to compare with")
    p.add_argument("--studies", nargs="*", default=list(STUDIES))
    p.add_argument("--rtol", type=float, default=0.0, help="accepted relative difference (default 0: bit for bit)")
    args = p.parse_args()
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            cmds = COMMANDS + [(f"run_{s}", ["run", f"runs/{s}.toml", "--scheduler", "serial", "--no-progress",
                                             "--out", "{out}"]) for s in args.studies]
            for name, argv in cmds:
                outs = [Path(tmp) / f"{name}_{k}" for k in ("old", "new")]
                r_old, r_new = run(old, argv, outs[0]), run(ROOT, argv, outs[1])
                if r_old.returncode != r_new.returncode:
                    print(f"{name:28s} exit {r_old.returncode} vs {r_new.returncode}: {r_new.stderr.strip()[-300:]}")
                    failures += 1
                    continue
                if "--json" in argv:
                    added: list[str] = []
                    diffs = compare_json(json.loads(r_old.stdout), json.loads(r_new.stdout), args.rtol, added=added)
                    note = "identical" if not diffs else "; ".join(diffs[:5])
                    print(f"{name:28s} JSON {note}" + (f" (new keys: {', '.join(added)})" if added else ""))
                    failures += bool(diffs)
                    continue
                t_old, t_new = tables(outs[0]), tables(outs[1])
                if set(t_old) - set(t_new):
                    print(f"{name:28s} tables missing in the new run: {sorted(set(t_old) - set(t_new))}")
                    failures += 1
                if set(t_new) - set(t_old):
                    print(f"{name:28s} new tables: {sorted(set(t_new) - set(t_old))}")
                for k in sorted(set(t_old) & set(t_new)):
                    ok, note = compare_frames(t_old[k], t_new[k], args.rtol)
                    print(f"{name:28s} {k:32s} {note}")
                    failures += not ok
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    print(f"{'all identical' if failures == 0 else f'{failures} outputs differ'} (rtol {args.rtol:g})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
