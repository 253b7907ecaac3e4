"""``ehp trajectories``: quantum-jump trajectories of K >= 1 modes streamed to a run directory (docs/tutorial.md).

    ehp trajectories CONFIG [--engine ssa|mcsolve|qutip] [--ntraj N] [--t-end T] [--seed S] [--initial SPEC]
                            [--n-points K] [--store-grid] [--batch-size B] [--overwrite] [--no-progress] --out DIR

One route for every K (:func:`sim.trajectories.run_trajectories` on the config's
:class:`sim.system.System`). Flags fall back to the config's ``[run]`` keys. Writes
``DIR/jumps.parquet/`` and ``DIR/stops.parquet/`` (one part per batch each), ``metadata.json`` and
``summary.json``, and prints a short summary to stdout. One mode (the birth-death fast path): ssa
writes ``DIR/initial.parquet/`` (``traj, n0``; every trajectory's N on the grid follows from it and the
jumps: ``sim.trajectories.stored``), mcsolve (or ssa with ``--store-grid``) ``DIR/trajectories.parquet/``.
Several modes (``mode.omega`` a list, docs/modes.md): the jumps carry ``mode`` (the mode a jump acted on,
or -1 for an operator spanning several modes) and ``op`` (the row of ``operators.parquet``: channel,
direction, rate, weights over modes), ``trajectories.parquet/`` holds ``traj, t, mode, N``.
``sim.read_run(DIR)`` reads every run back as tables.

Refused with exit 2 and one line: a refused directory, a missing ``t_end``, and what the engine does not
support (:data:`sim.registry.SUPPORT`): cross terms or a coherent ``--initial`` with ``ssa`` (naming
mcsolve), ``steady`` without a steady state. Batches run on ``--scheduler``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable

from sim.registry import ENGINE_NAMES

from .common import add_overwrite

__all__ = ["register", "cmd_trajectories"]


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return v


def _nonneg_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return v


def _positive_float(text: str) -> float:
    v = float(text)
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return v


def register(sub: argparse._SubParsersAction, with_config: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Add the ``trajectories`` sub-command."""
    q = with_config("trajectories", "quantum-jump trajectories (exact ssa or QuTiP mcsolve) to a run directory")
    q.add_argument("--engine", choices=tuple(ENGINE_NAMES), help="default: run.engine")
    q.add_argument("--ntraj", type=_positive_int, help="number of trajectories (default: run.ntraj)")
    q.add_argument("--t-end", type=_positive_float, help="final time in 1/energy (default: run.t_end)")
    q.add_argument("--n-points", type=_positive_int, help="points of the N(t) grid (default: run.n_points)")
    q.add_argument("--seed", type=_nonneg_int, help="SeedSequence seed (default: run.seed)")
    q.add_argument("--initial", metavar="SPEC",
                   help="initial state of every mode (default: run.initial): vacuum, steady, thermal:N, "
                        "thermal:T=<temperature>, fock:n, coherent:alpha (mcsolve); refused in one line where the "
                        "engine does not take it")
    q.add_argument("--store-grid", action="store_true", default=None,
                   help="ssa: also write every trajectory's N on the grid (trajectories.parquet/; default: run.store_grid); "
                        "without it the grid is rebuilt from initial.parquet/ and the jumps when needed")
    q.add_argument("--batch-size", type=_positive_int, help="trajectories per batch and parquet part (default: automatic)")
    q.add_argument("--out", required=True, metavar="DIR", help="run directory (new, empty, or the same run to resume)")
    add_overwrite(q, "replace a run directory that holds a different run")
    q.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    q.add_argument("--scheduler", default="auto", metavar="auto|serial|processes|dask|tcp://HOST:PORT",
                   help="where batches run (default: auto, serial unless a process pool pays for its start-up); "
                        "the tables are the same whichever runs them")
    q.add_argument("--workers", type=_positive_int, help="worker processes for processes/dask (default: all cores)")
    q.set_defaults(handler=cmd_trajectories)


def cmd_trajectories(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code (a ``sim.config.ConfigError`` propagates: the CLI's exit 2)."""
    from sim.config import load_config
    from sim.guards import check_count
    from sim.parallel import Scheduler
    from sim.system import System
    from sim.trajectories import run_trajectories

    cfg = load_config(args.config, args.set or ())
    flags = {"engine": args.engine, "ntraj": args.ntraj, "t_end": args.t_end, "n_points": args.n_points,
             "seed": args.seed, "store_grid": args.store_grid, "initial": args.initial}
    run = dataclasses.replace(cfg.run, **{k: v for k, v in flags.items() if v is not None})
    cfg = dataclasses.replace(cfg, run=run)
    # the N(t) grid and its running totals (mean, variance, counts) and the per-batch grid values: about 64 bytes a point
    check_count("--n-points (run.n_points)", run.n_points, lo=2, bytes_each=64.0,
                hint="use fewer time points (the grid of N(t) and its totals are kept in memory)")
    sched = Scheduler.parse(args.scheduler, args.workers)
    res = run_trajectories(System(cfg), out_dir=args.out, overwrite=args.overwrite, batch_size=args.batch_size,
                           progress=not args.no_progress, scheduler=sched)
    s = res.summary()
    done = f"{s['n_batches'] - s['n_batches_resumed']} of {s['n_batches']} batches computed"
    if s["n_batches_resumed"]:
        done += f", {s['n_batches_resumed']} resumed from {args.out}"
    ops = f", {len(s['counts_per_operator'])} collapse operators" if res.labelled else ""
    print(f"engine        {s['engine']}  (K = {res.K} mode{'s' if res.K > 1 else ''}{ops}, initial {run.initial})")
    print(f"trajectories  {s['ntraj']}  ({done})")
    print(f"jumps         {s['n_jumps']}")
    print(f"N(t_end)      {_fmt(s['N_final'])} +- {_fmt(s['N_final_sem'])}"
          + (f"  ({s['N_final_note']})" if s.get("N_final_note") else ""))
    for e in s["modes"] if res.K > 1 else ():
        print(f"N_{e['mode']}(t_end)    {_fmt(e['N_final'])} +- {_fmt(e['N_final_sem'])}  (Omega = {e['omega']:g})")
    if s.get("stable") is False:
        print(f"unstable      margin = {s['margin']:.6g} <= 0: no steady state, N grows at rate {s['growth_rate']:.6g} "
              "(fit it with `ehp stats DIR`)")
    print(f"jumps/s       {_fmt(s['jumps_per_s'])}  (simulating {s['sim_s']:.3g} s, wall {s['wall_s']:.3g} s)")
    if "rupture" in s:  # a ladder of levels: trajectories stop at rupture
        r = s["rupture"]
        print(f"ruptured      {r['n_ruptured']} of {r['ntraj']} by t_end (exact fraction {_fmt(r['exact_fraction'])}); "
              f"mean time {_fmt(r['mean_time'])} +- {_fmt(r['se'])} (exact {_fmt(r['exact_mean_time'])}, MFPT "
              f"{_fmt(r['mfpt'])}); see {res.out_dir / 'stops.parquet'}")
    elif s["n_stopped"]:
        print(f"stopped       {s['n_stopped']} trajectories reached the top Fock state (cutoff - 1); "
              f"see {res.out_dir / 'stops.parquet'}")
        print(f"warning: {s['n_stopped']} of {s['ntraj']} trajectories stopped at the population cap", file=sys.stderr)
    if res.labelled:
        print(f"operators     {res.out_dir / 'operators.parquet'}")
    print(f"summary       {res.out_dir / 'summary.json'}")
    return 0


def _fmt(v) -> str:
    return "-" if v is None or v != v else f"{v:.6g}"
