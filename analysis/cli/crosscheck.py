"""``ehp crosscheck CONFIG [--json] [--out DIR]``: every level of theory side by side."""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_overwrite

__all__ = ["register", "cmd_crosscheck"]


def register(sub: argparse._SubParsersAction, with_config) -> None:
    q = with_config("crosscheck", "N, J, J_ph, Ie from Landauer, rate, population, Lindblad and trajectories")
    q.add_argument("--json", action="store_true", help="JSON on stdout")
    q.add_argument("--out", metavar="DIR", help="write crosscheck.parquet and crosscheck.png here")
    add_overwrite(q, "replace an existing report in DIR")
    q.add_argument("--ntraj", type=int, help="trajectories for the ssa row (default: run.ntraj; several modes: "
                                              "the mcsolve row, default 40)")
    q.add_argument("--t-end", type=float, help="trajectory length (default: run.t_end or 200/kappa)")
    q.add_argument("--seed", type=int, help="seed of the ssa row (default: run.seed)")
    q.add_argument("--no-progress", action="store_true", help="no progress bars on stderr (default: on a terminal)")
    q.set_defaults(handler=cmd_crosscheck)


def cmd_crosscheck(args: argparse.Namespace) -> int:
    from analysis.crosscheck import crosscheck, plot_crosscheck
    from sim.config import ConfigError, load_config

    cfg = load_config(args.config, args.set or ())
    from sim.guards import check_count

    if args.ntraj is not None and args.ntraj < 2:
        raise ConfigError(f"--ntraj must be >= 2 for error bars, got {args.ntraj}")
    if args.ntraj is not None:  # the ssa row keeps 201 grid points per trajectory (about 64 bytes each)
        check_count("--ntraj", args.ntraj, lo=2, bytes_each=64 * 201, hint="use fewer trajectories")
    if args.seed is not None and not 0 <= args.seed <= 2**63 - 1:
        raise ConfigError(f"--seed must be an integer >= 0 and <= {2**63 - 1} (as run.seed), got {args.seed}")
    if args.t_end is not None:
        from sim.guards import check_time

        check_time("--t-end", args.t_end)
    rd = None
    if args.out:
        from sim.io import RunDirectory

        identity = {"command": "crosscheck", "config": cfg.to_dict(), "ntraj": args.ntraj, "t_end": args.t_end,
                    "seed": args.seed}
        rd = RunDirectory.open(args.out, identity, overwrite=args.overwrite,
                               metadata={"command": "crosscheck", "config": cfg.to_dict()})
    progress = False if args.no_progress else None
    if rd is None:
        rep = crosscheck(cfg, ntraj=args.ntraj, t_end=args.t_end, seed=args.seed, progress=progress)
    else:
        with rd:  # an exception marks the run failed and releases the lock
            rep = crosscheck(cfg, ntraj=args.ntraj, t_end=args.t_end, seed=args.seed, progress=progress)
            rep.table.to_parquet(rd.path / "crosscheck.parquet")
            rd.record("crosscheck.parquet")
            if rep.stable:
                plot_crosscheck(rep, rd.path / "crosscheck.png")
                rd.record("crosscheck.png")
            rd.finish()
    if not rep.stable:
        print(rep.message, file=sys.stderr)
    if args.json:
        print(json.dumps(rep.to_dict(), indent=2, allow_nan=False))
        return 0
    print(format_table(rep))
    if rep.stable:
        print(f"\nexpected differences from {rep.reference_label}:")
        for (route, level), exp in rep.table.groupby(["route", "level"], sort=False)["expected"].first().items():
            print(f"  {route:14s}{level:24s}{exp}")
    print(f"\n{rep.message}")
    return 0


def format_table(rep) -> str:
    """The printed report: one line per row, then one line naming what ``within`` checks.

    Columns as in ``crosscheck.parquet``; ``within`` prints ``-`` for the reference rows (nothing
    to check) and ``n/a`` for rows not compared (outside their limit's range, not computed, not
    defined); missing numbers print ``-``.
    """
    import textwrap

    import pandas as pd

    table = rep.table
    ref_route = rep.reference
    cols = ["route", "level", "quantity", "value", "stderr", "difference", "center", "deviation", "tolerance", "within"]
    t = table[[c for c in cols if c in table]].copy()
    if "within" in t:
        w = t["within"].astype(object)
        t["within"] = ["-" if r == ref_route else ("n/a" if v is None or pd.isna(v) else str(bool(v)))
                       for r, v in zip(t["route"], w, strict=True)]
    text = t.to_string(index=False, float_format=lambda v: f"{v:.6g}", na_rep="-")
    if not rep.stable:
        return text
    ref = rep.reference_label
    center = f"{ref}; landauer lowest: {rep.pinned_label}"
    key = (f"within = |deviation| <= tolerance, deviation = value - center, center = {center}; "
           f"difference = value - {ref}; within -: the reference, n/a: not compared")
    return text + "\n" + "\n".join(textwrap.wrap(key, 120))
