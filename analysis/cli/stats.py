"""``ehp stats DIR [--json] [--out DIR2]``: counting statistics of a trajectory run, exact values beside."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sim.config import ConfigError

__all__ = ["register", "cmd_stats"]


def register(sub: argparse._SubParsersAction, with_config) -> None:  # noqa: ARG001 - plugin signature
    q = sub.add_parser("stats", help="counting statistics of a trajectory run directory")
    q.add_argument("run_dir", metavar="DIR", help="directory written by `ehp trajectories`")
    q.add_argument("--json", action="store_true", help="JSON on stdout")
    q.add_argument("--t-min", type=float, help="discard jumps before this time (default: see the output)")
    q.add_argument("--out", metavar="DIR2", help="write stats.parquet, waiting_times.parquet and PNG figures here")
    q.add_argument("--overwrite", action="store_true", help="replace DIR2 if it holds a different result")
    q.add_argument("--first-passage", type=int, metavar="LEVEL",
                   help="first-passage time to population LEVEL (time to runaway above threshold)")
    q.set_defaults(handler=cmd_stats)


def cmd_stats(args: argparse.Namespace) -> int:
    from analysis.stats import run_stats

    run = Path(args.run_dir)
    try:
        source = json.loads((run / "metadata.json").read_text())
    except (OSError, ValueError):
        source = None
    if not source or source.get("identity", {}).get("command") != "trajectories":
        raise ConfigError(f"{str(run)!r} is not a trajectory run directory (written by `ehp trajectories`)")
    t_end = float(source["identity"]["run"]["t_end"])
    if args.t_min is not None and not 0 <= args.t_min < t_end:
        raise ConfigError(f"--t-min must be >= 0 and below the run's t_end = {t_end:g}, got {args.t_min:g}")
    rd = None
    if args.out:
        from sim.io import RunDirectory

        identity = {"command": "stats", "source": source["identity"], "t_min": args.t_min,
                    "first_passage": args.first_passage}
        rd = RunDirectory.open(args.out, identity, overwrite=args.overwrite, metadata={"command": "stats",
                               "source_dir": str(run.resolve())})
    st = run_stats(run, args.t_min)
    from analysis.mode_stats import exact_first_passage_mean, first_passage_times, mode_stats

    ms = mode_stats(run, st.t_min)
    extra = {"mode": ms.to_dict()}
    fp = None
    if args.first_passage is not None:
        if args.first_passage < 1:
            raise ConfigError(f"--first-passage must be a population level >= 1, got {args.first_passage}")
        fp = first_passage_times(run, args.first_passage)
        ok = fp[np.isfinite(fp)]
        init = json.loads((run / "metadata.json").read_text())["identity"]["run"]["initial"]
        extra["first_passage"] = {
            "level": args.first_passage, "n_reached": int(ok.size), "ntraj": int(fp.size),
            "mean": float(ok.mean()) if ok.size else None,
            "stderr": float(ok.std(ddof=1) / np.sqrt(ok.size)) if ok.size > 1 else None,
            "exact_mean_from_vacuum": exact_first_passage_mean(run, args.first_passage) if init == "vacuum" else None,
            "note": "mean over trajectories that reached the level before t_end (biased low if some did not)",
        }
    if rd is not None:
        from analysis.stats_plots import stats_figures

        out = rd.path
        targets = [out / n for n in ("stats.parquet", "waiting_times.parquet", "counts.parquet")]
        st.cumulants.to_parquet(targets[0])
        st.waiting.to_parquet(targets[1])
        st.counts.to_parquet(targets[2])
        ms.fock.to_parquet(out / "fock.parquet")
        stats_figures(st, json.loads((run / "metadata.json").read_text()), out)
        if fp is not None:
            from analysis.stats_plots import plot_first_passage

            plot_first_passage(fp, extra["first_passage"], out / "first_passage.png")
        rd.write_metadata(status="complete")
    if args.json:
        print(json.dumps({**st.to_dict(), **extra}, indent=2, allow_nan=False))
        return 0
    print(f"run {st.run_dir}: {st.ntraj} trajectories, t in [{st.t_min:g}, {st.t_end:g}]")
    print(f"transient: {st.transient}")
    print("\ncounts per (channel, direction), whole run:")
    print(st.counts[st.counts["count"] > 0].to_string(index=False))
    print("\ncumulant rates (per unit time): estimate +- stderr, exact")
    c = st.cumulants.copy()
    print(c.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    w = st.waiting.sort_values("n", ascending=False).head(10)
    print(f"\nwaiting times, the 10 most frequent consecutive pairs (a pair starts at a jump with "
          f"t <= t_end - {st.horizon:.4g}, so waits up to {st.horizon:.4g} are seen):")
    if st.censored:
        print(f"warning: waits longer than {st.horizon:.4g} are cut off by the end of the run (the slowest no-jump "
              f"time is 1/escape(0) = {st.slowest_wait:.4g}); run to t_end >= t_min + {40 * st.slowest_wait:.4g} "
              "for unbiased waiting times")
    print(w.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nmode (samples of N on the grid, t >= t_min): estimate +- stderr, exact")
    for k, r in extra["mode"].items():
        print(f"  {k:8s}{_f(r['estimate'])} +- {_f(r['stderr'])}   exact {_f(r['exact'])}")
    if fp is not None:
        f = extra["first_passage"]
        print(f"\nfirst passage to n = {f['level']}: {f['n_reached']} of {f['ntraj']} trajectories reached it; "
              f"mean {_f(f['mean'])} +- {_f(f['stderr'])}, exact from vacuum {_f(f['exact_mean_from_vacuum'])}")
    return 0


def _f(v) -> str:
    return "-" if v is None else f"{v:.5g}"
