"""``ehp sweep`` and ``ehp run``: a plugin of :mod:`analysis.cli.app` (listed in ``PLUGINS``).

::

    ehp sweep CONFIG --grid section.key=start:stop:num [--grid ...] --out DIR
              [--scheduler auto|serial|processes|dask|tcp://HOST:PORT] [--workers N] [--chunk-size K]
              [--landauer lowest|full] [--overwrite] [--no-progress] [--set k=v ...]
    ehp run CONFIG [--out DIR] [--overwrite] [--scheduler ...] [--workers N] [--no-progress] [--set k=v ...]

Both write into a run directory that is resumed when it holds the same run and refused
(exit 2) when it holds a different one, unless ``--overwrite``. ``ehp run`` on a config
without ``[study]`` runs the default study (``bias_sweep``: the steady state against
``bias.V`` with the instability flagged) and says so on stderr. The default output
directory is the config's path without ``.toml`` (for a bundled example: ``./NAME/``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .common import add_overwrite

__all__ = ["register", "cmd_sweep", "cmd_run"]

_SCHED_HELP = ("auto (serial unless a process pool pays for its start-up), serial, processes, dask (a LocalCluster) "
               "or the address of a Dask scheduler, tcp://HOST:PORT")


def _scheduler_args(q: argparse.ArgumentParser, default: str) -> None:
    q.add_argument("--scheduler", default=default, metavar="S", help=f"{_SCHED_HELP} (default {default})")
    q.add_argument("--workers", type=int, metavar="N", help="worker processes (default: the cores available)")
    add_overwrite(q, "replace a different run's results in the directory")
    q.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def register(sub: argparse._SubParsersAction, with_config: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Add the ``sweep`` and ``run`` sub-commands."""
    q = with_config("sweep", "sweep config keys over a grid -> one tidy table (parquet parts, resumable)")
    q.add_argument("--grid", action="append", required=True, metavar="SECTION.KEY=START:STOP:NUM",
                   help="a swept key: start:stop:num (numpy.linspace, end included) or [a, b, c]; "
                        "several form an outer product, the last varying fastest")
    q.add_argument("--out", required=True, metavar="DIR", help="run directory (DIR/sweep.parquet/, DIR/metadata.json)")
    q.add_argument("--landauer", choices=("lowest", "full"), help="add the Landauer-like fluxes (Eqs. 13-14)")
    q.add_argument("--chunk-size", type=int, metavar="K", help="points per chunk / parquet part (default: automatic)")
    _scheduler_args(q, "auto")
    q.set_defaults(handler=cmd_sweep)

    q = with_config("run", "run a study: runs/NAME.toml -> runs/NAME/ (table, PNG, summary); no [study]: a bias sweep")
    q.add_argument("--out", metavar="DIR", help="output directory (default: the TOML's path without .toml)")
    _scheduler_args(q, "auto")
    q.set_defaults(handler=cmd_run)


def cmd_sweep(args: argparse.Namespace) -> int:
    from sim.config import load_config
    from sim.parallel import Scheduler
    from sim.sweep import sweep

    cfg = load_config(args.config, args.set or ())
    sched = Scheduler.parse(args.scheduler, args.workers)
    table = sweep(cfg, args.grid, landauer=args.landauer, scheduler=sched, chunk_size=args.chunk_size,
                  out=args.out, overwrite=args.overwrite, progress=not args.no_progress)
    n_unstable = int((~table["stable"]).sum())
    print(f"sweep: {len(table)} points ({n_unstable} unstable, kappa <= 0) -> {Path(args.out) / 'sweep.parquet'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sim.config import ConfigError, load_config, parse_config
    from sim.examples import resolve_config
    from sim.parallel import Scheduler

    from ..figures import default_out, default_study, run_study, validate_study

    cfg = load_config(args.config, args.set or ())
    sched = Scheduler.parse(args.scheduler, args.workers)  # refused before any note is printed
    if not cfg.study:
        study = default_study(cfg)
        cfg = parse_config({**cfg.to_dict(), "study": study})
        try:  # the whole study is checked before the note, so that a refusal is one line
            validate_study(cfg)
        except ConfigError as e:
            raise ConfigError(f"{e} (in the default study kind = {study['kind']!r} of a config without [study]; "
                              "set the key with --set, or add a [study] table: see docs/config.md)") from None
        what = "" if cfg.n_modes == 1 else (f" over bias.V in [0, {study['between'][1]:g}] for the {cfg.n_modes} modes "
                                            "(see docs/modes.md)")
        print(f"run: the config has no [study] table: running the default study kind = "
              f"{study['kind']!r}{what} (add a [study] table to choose another; see docs/config.md)", file=sys.stderr)
    # a bundled example's output goes to the current directory, not into the package
    name = Path(args.config).stem
    bundled = resolve_config(args.config) != Path(args.config)
    out = Path(args.out) if args.out else Path(name) if bundled else default_out(args.config)
    res = run_study(cfg, name, out, scheduler=sched,
                    overwrite=args.overwrite, progress=not args.no_progress)
    if res.resumed:
        print(f"run {name}: resumed in {res.out} (saved sweep chunks reused)", file=sys.stderr)
    print(f"run {name}: {len(res.table)} rows -> {res.table_path}")
    print(f"run {name}: figure -> {res.figure_path}")
    if res.summary.get("verdict"):  # computed from the run's numbers (collective_runaway)
        print(f"run {name}: {res.summary['verdict']}")
    return 0
