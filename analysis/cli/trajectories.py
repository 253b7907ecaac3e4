"""``ehp trajectories``: quantum-jump trajectories streamed to a run directory (docs/tutorial.md).

    ehp trajectories CONFIG [--engine ssa|mcsolve|qutip] [--ntraj N] [--t-end T] [--seed S]
                            [--n-points K] [--batch-size B] [--overwrite] [--no-progress] --out DIR

Flags fall back to the config's ``[run]`` keys. Writes ``DIR/jumps.parquet/``,
``DIR/trajectories.parquet/``, ``DIR/stops.parquet/`` (one part per batch),
``metadata.json`` and ``summary.json``; prints a short summary to stdout.
A refused directory, a missing ``t_end`` or a coherent state with ``ssa`` exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable

from sim.registry import ENGINE_NAMES

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
    q.add_argument("--batch-size", type=_positive_int, help="trajectories per batch and parquet part (default: automatic)")
    q.add_argument("--out", required=True, metavar="DIR", help="run directory (new, empty, or the same run to resume)")
    q.add_argument("--overwrite", action="store_true", help="replace a run directory that holds a different run")
    q.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    q.add_argument("--scheduler", default="auto", metavar="auto|serial|processes|dask|tcp://HOST:PORT",
                   help="where batches run (default: auto, serial unless a process pool pays for its start-up); "
                        "the tables are the same whichever runs them")
    q.add_argument("--workers", type=_positive_int, help="worker processes for processes/dask (default: all cores)")
    q.set_defaults(handler=cmd_trajectories)


def cmd_trajectories(args: argparse.Namespace) -> int:
    """Run the command; returns the exit code (a ``sim.config.ConfigError`` propagates: the CLI's exit 2)."""
    from sim.config import load_config
    from sim.trajectories import trajectories_from_config

    cfg = load_config(args.config, args.set or ())
    flags = {"engine": args.engine, "ntraj": args.ntraj, "t_end": args.t_end, "n_points": args.n_points,
             "seed": args.seed}
    run = dataclasses.replace(cfg.run, **{k: v for k, v in flags.items() if v is not None})
    cfg = dataclasses.replace(cfg, run=run)
    if run.t_end is not None:  # refuse a run whose jump tables would not fit (sim.guards.MEMORY_BUDGET)
        from sim.guards import check_jumps
        from sim.population import InitialSpec
        from sim.rate_equation import rate_model

        model = rate_model(cfg)
        try:
            N0 = InitialSpec.parse(run.initial).mean(model) if run.initial != "steady" or model.stable else 0.0
        except ValueError:
            N0 = 0.0
        check_jumps("--ntraj x --t-end", model, run.ntraj, run.t_end, N0)
    from sim.parallel import Scheduler

    sched = Scheduler.parse(args.scheduler, args.workers)
    res = trajectories_from_config(cfg, out_dir=args.out, overwrite=args.overwrite, batch_size=args.batch_size,
                                   progress=not args.no_progress, scheduler=sched)
    s = res.summary()
    done = f"{s['n_batches'] - s['n_batches_resumed']} of {s['n_batches']} batches computed"
    if s["n_batches_resumed"]:
        done += f", {s['n_batches_resumed']} resumed from {args.out}"
    print(f"engine        {s['engine']}")
    print(f"trajectories  {s['ntraj']}  ({done})")
    print(f"jumps         {s['n_jumps']}")
    print(f"N(t_end)      {_fmt(s['N_final'])} +- {_fmt(s['N_final_sem'])}"
          + (f"  ({s['N_final_note']})" if s.get("N_final_note") else ""))
    if s.get("stable") is False:
        print(f"unstable      kappa = {s['kappa']:.6g} <= 0: no steady state, N grows at rate -kappa = "
              f"{s['growth_rate']:.6g} (fit it with `ehp stats DIR`)")
    print(f"jumps/s       {_fmt(s['jumps_per_s'])}  (simulating {s['sim_s']:.3g} s, wall {s['wall_s']:.3g} s)")
    if s["n_stopped"]:
        print(f"stopped       {s['n_stopped']} trajectories reached the top Fock state (cutoff - 1); "
              f"see {res.out_dir / 'stops.parquet'}")
        print(f"warning: {s['n_stopped']} of {s['ntraj']} trajectories stopped at the population cap", file=sys.stderr)
    print(f"summary       {res.out_dir / 'summary.json'}")
    return 0


def _fmt(v) -> str:
    return "-" if v is None or v != v else f"{v:.6g}"
