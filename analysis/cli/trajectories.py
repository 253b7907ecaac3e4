"""``ehp trajectories``: quantum-jump trajectories streamed to a run directory (docs/tutorial.md).

    ehp trajectories CONFIG [--engine ssa|mcsolve|qutip] [--ntraj N] [--t-end T] [--seed S]
                            [--n-points K] [--store-grid] [--batch-size B] [--overwrite] [--no-progress] --out DIR

Flags fall back to the config's ``[run]`` keys. Writes ``DIR/jumps.parquet/``, ``DIR/stops.parquet/``
and, for ssa, ``DIR/initial.parquet/`` (``traj, n0``; every trajectory's N on the grid follows from it
and the jumps: ``sim.trajectories.stored``), for mcsolve (or ssa with ``--store-grid``)
``DIR/trajectories.parquet/`` (one part per batch each), ``metadata.json`` and ``summary.json``;
prints a short summary to stdout.
A refused directory, a missing ``t_end`` or a coherent state with ``ssa`` exits 2.

Several modes (``mode.omega`` a list, docs/modes.md): ``sim.trajectories.modes.mode_run`` writes
``jumps.parquet/`` (with ``mode``, the mode a jump acted on or -1 for an operator spanning several
modes, and ``op``, the row of ``operators.parquet``), ``trajectories.parquet/`` (``traj, t, mode, N``)
and ``operators.parquet/`` (channel, direction, rate, weights over modes); ``run.initial`` must be
``vacuum`` or ``steady`` (the Gaussian steady state); ``ssa`` only without cross terms (every cluster one
mode), else exit 2 naming mcsolve. Batches run on ``--scheduler`` as for one mode.
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
    from sim.trajectories import trajectories_from_config

    cfg = load_config(args.config, args.set or ())
    flags = {"engine": args.engine, "ntraj": args.ntraj, "t_end": args.t_end, "n_points": args.n_points,
             "seed": args.seed, "store_grid": args.store_grid}
    run = dataclasses.replace(cfg.run, **{k: v for k, v in flags.items() if v is not None})
    cfg = dataclasses.replace(cfg, run=run)
    from sim.guards import check_count

    # the N(t) grid and its running totals (mean, variance, counts) and the per-batch grid values: about 64 bytes a point
    check_count("--n-points (run.n_points)", run.n_points, lo=2, bytes_each=64.0,
                hint="use fewer time points (the grid of N(t) and its totals are kept in memory)")
    if cfg.n_modes > 1:
        return _cmd_modes(args, cfg)
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


def _cmd_modes(args: argparse.Namespace, cfg) -> int:
    """``ehp trajectories`` for several modes (``sim.trajectories.modes``)."""
    import numpy as np

    from sim.config import ConfigError
    from sim.covariance import mode_system_from_config
    from sim.parallel import Scheduler
    from sim.registry import engine_name
    from sim.trajectories.modes import has_cross_terms, mode_run

    run = cfg.run
    engine = engine_name(run.engine)
    if run.t_end is None:
        raise ConfigError("run.t_end is not set: give --t-end T or run.t_end in the config")
    if run.initial not in ("vacuum", "steady"):
        raise ConfigError(f"run.initial = {run.initial!r}: several-mode trajectories start from 'vacuum' or 'steady' "
                          "(the Gaussian steady state)")
    system = mode_system_from_config(cfg)
    if engine == "ssa" and has_cross_terms(system):
        several = [list(S) for S in system.clusters if len(S) > 1]
        raise ConfigError(f"--engine ssa: the modes have cross terms (clusters {several} hold several modes, "
                          "jumps act on superpositions of modes); use --engine mcsolve, or mode.coherence_width "
                          "below the spacing of the quanta")
    if run.initial == "steady" and not system.stable:
        raise ConfigError(f"run.initial = 'steady': the modes are unstable (growth rate {system.growth_rate:.6g} > 0), "
                          "there is no steady state; start from 'vacuum'")
    try:
        path, res, n_batches, resumed = mode_run(
            system, args.out, engine=engine, ntraj=run.ntraj, t_end=run.t_end, n_points=run.n_points, seed=run.seed,
            initial=run.initial, batch_size=args.batch_size, overwrite=args.overwrite, config=cfg.to_dict(),
            progress=False if args.no_progress else None, scheduler=Scheduler.parse(args.scheduler, args.workers))
    except ValueError as exc:  # budgets (check_dimension), rates: one line
        raise ConfigError(str(exc)) from None
    jumps, N, ops = res
    done = f"{n_batches - resumed} of {n_batches} batches computed"
    if resumed:
        done += f", {resumed} resumed from {args.out}"
    last = N[:, :, -1]
    print(f"engine        {engine}  ({system.K} modes, {len(ops)} collapse operators, initial {run.initial})")
    print(f"trajectories  {run.ntraj}  ({done})")
    print(f"jumps         {len(jumps)}")
    for k in range(system.K):
        x = last[:, k][np.isfinite(last[:, k])]
        sem = x.std(ddof=1) / np.sqrt(x.size) if x.size > 1 else float("nan")
        print(f"N_{k}(t_end)    {_fmt(x.mean() if x.size else None)} +- {_fmt(sem)}")
    if not system.stable:
        print(f"unstable      growth rate {system.growth_rate:.6g} > 0: no steady state")
    print(f"operators     {path / 'operators.parquet'}")
    print(f"summary       {path / 'summary.json'}")
    return 0


def _fmt(v) -> str:
    return "-" if v is None or v != v else f"{v:.6g}"
