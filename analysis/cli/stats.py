"""``ehp stats DIR [--json] [--out DIR2] [--partial]``: counting statistics of a trajectory run, exact values beside.

The run is verified first (every part against its size and sha256 in the manifest): an
incomplete or damaged run is refused (exit 2, naming what is missing) unless ``--partial``
is given; then only the intact batches are analysed, every output says ``partial`` and the
estimators use the number of trajectories present, not the configured ``ntraj``.

Several modes (a run of ``ehp trajectories`` with K > 1, docs/modes.md): per-label jump rates (per
channel and direction, and per collapse operator) and the charge and energy cumulant rates ``c_1, c_2``
from the per-trajectory totals, with the exact values of the tilted Liouvillian beside where the
truncated space fits (:mod:`analysis.stats_modes`); ``--first-passage`` and ``--partial`` are one-mode only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

from .common import add_overwrite

__all__ = ["register", "cmd_stats"]


FIRST_PASSAGE_MAX = 2000
"""Largest ``--first-passage`` level: the exact comparison solves and exponentiates a dense LEVEL x LEVEL
generator (32 MB and a few seconds at 2000; O(LEVEL^2) memory, O(LEVEL^3) time)."""


def register(sub: argparse._SubParsersAction, with_config) -> None:  # noqa: ARG001 - plugin signature
    q = sub.add_parser("stats", help="counting statistics of a trajectory run directory")
    q.add_argument("run_dir", metavar="DIR", help="directory written by `ehp trajectories`")
    q.add_argument("--json", action="store_true", help="JSON on stdout")
    q.add_argument("--t-min", type=float, help="discard jumps before this time (default: see the output)")
    q.add_argument("--out", metavar="DIR2", help="write stats.parquet, waiting_times.parquet and PNG figures here")
    add_overwrite(q, "replace DIR2 if it holds a different result")
    q.add_argument("--first-passage", type=int, metavar="LEVEL",
                   help="first-passage time to population LEVEL (time to runaway above threshold)")
    q.add_argument("--no-progress", action="store_true", help="no progress bars on stderr (default: on a terminal)")
    q.add_argument("--partial", action="store_true",
                   help="analyse the intact batches of an incomplete run (outputs say partial)")
    q.set_defaults(handler=cmd_stats)


def cmd_stats(args: argparse.Namespace) -> int:
    from sim.config import ConfigError
    from sim.io import check_run, trajectory_partial_view

    run = Path(args.run_dir)
    if not run.is_dir():
        raise ConfigError(f"run directory {str(run)!r} does not exist (give the --out of an `ehp trajectories` run)")
    from sim.runlock import read_json_or_none

    source = read_json_or_none(run / "metadata.json")  # a regular file only: a FIFO or link there is refused
    if not isinstance(source, dict) or not isinstance(source.get("identity"), dict) \
            or source["identity"].get("command") != "trajectories":
        raise ConfigError(f"{str(run)!r} is not a trajectory run directory (written by `ehp trajectories`)")
    check = check_run(run)  # first: its identity and every part are verified before anything in it is used
    try:
        t_end = float(source["identity"]["run"]["t_end"])
        if not math.isfinite(t_end):
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{str(run / 'metadata.json')!r}: identity.run.t_end is missing or not a number; the run "
                          "directory was edited or damaged") from None
    if args.t_min is not None and not 0 <= args.t_min < t_end:
        raise ConfigError(f"--t-min must be >= 0 and below the run's t_end = {t_end:g}, got {args.t_min:g}")
    if args.first_passage is not None and not 1 <= args.first_passage <= FIRST_PASSAGE_MAX:
        raise ConfigError(f"--first-passage must be a population level >= 1 and <= {FIRST_PASSAGE_MAX} (its exact "
                          "birth-death value is a dense LEVEL x LEVEL matrix exponential), got "
                          f"{args.first_passage}")
    if "ladder" in source["identity"]:  # a ladder of levels: rupture times against the exact survival
        from analysis.rupture_stats import cmd_ladder_stats

        return cmd_ladder_stats(args, run, source, check)
    if "modes" in source["identity"]:  # labelled collapse operators (a run of several modes)
        return _cmd_modes(args, run, source, check)
    if not check.complete and not args.partial:
        raise ConfigError(f"{str(run)!r} is not a complete run: {check.problem()}; resume it by running the same "
                          "`ehp trajectories` command again, or pass --partial to analyse the intact batches")
    with tempfile.TemporaryDirectory(prefix="ehp-partial-") as tmp:
        partial = None
        data = run
        if not check.complete:
            data = Path(tmp) / "view"
            partial = trajectory_partial_view(check, data)
            print(f"ehp: warning: PARTIAL analysis of {str(run)!r}: {partial['ntraj_present']} of "
                  f"{partial['ntraj_configured']} trajectories ({partial['batches_present']} of {partial['batches']} "
                  f"batches); {check.problem()}", file=sys.stderr)
        rd = None
        if args.out:
            from sim.io import RunDirectory

            identity = {"command": "stats", "source": source["identity"], "t_min": args.t_min,
                        "first_passage": args.first_passage, "partial": partial}
            rd = RunDirectory.open(args.out, identity, overwrite=args.overwrite, inputs=(run,),
                                   metadata={"command": "stats", "source_dir": str(run.resolve()), "partial": partial})
        if rd is None:
            return _analyse(args, run, data, partial, None)
        with rd:  # an exception marks the output failed and releases its lock
            return _analyse(args, run, data, partial, rd)


def _analyse(args: argparse.Namespace, run: Path, data: Path, partial: dict | None, rd) -> int:
    """The analysis proper: ``data`` is ``run`` itself, or a verified view of its intact batches."""
    from analysis.stats import run_stats
    from sim.io import run_metadata

    source = run_metadata(data)
    progress = False if args.no_progress else None
    st = run_stats(data, args.t_min, progress=progress)
    from analysis.mode_stats import first_passage_times, growth_stats, mode_stats

    ms = gs = None
    if st.stable:
        ms = mode_stats(data, st.t_min, progress=progress)
        extra = {"mode": ms.to_dict()}
    else:  # no steady state: non-stationary quantities only
        gs = growth_stats(data, progress=progress)
        extra = {"growth": gs.to_dict()}
    fp = None
    if args.first_passage is not None:
        fp = first_passage_times(data, args.first_passage)
        extra["first_passage"] = _first_passage_record(data, fp, args.first_passage, source)
    extra = {"partial": partial is not None, **({"partial_run": partial} if partial else {}), **extra}
    record = {**st.to_dict(), "run": str(run), **extra}
    if rd is not None:
        from analysis.stats_plots import stats_figures

        out = rd.path
        written = [out / n for n in ("stats.parquet", "waiting_times.parquet", "counts.parquet")]
        st.cumulants.to_parquet(written[0])
        st.waiting.to_parquet(written[1])
        st.counts.to_parquet(written[2])
        if ms is not None:
            ms.fock.to_parquet(out / "fock.parquet")
            written.append(out / "fock.parquet")
        else:
            gs.curve.to_parquet(out / "growth.parquet")
            written.append(out / "growth.parquet")
        written += [Path(f) for f in stats_figures(st, source, out, fock=None if ms is None else ms.fock, growth=gs)
                    or ()]
        if fp is not None:
            from analysis.stats_plots import plot_first_passage

            written.append(Path(plot_first_passage(fp, extra["first_passage"], out / "first_passage.png")))
        rd.record(*(f for f in dict.fromkeys(written) if f.is_file()))
        rd.write_summary({k: record[k] for k in ("run", "ntraj", "t_min", "t_end", "partial", "partial_run")
                          if k in record})
        rd.finish()
    if args.json:
        print(json.dumps(record, indent=2, allow_nan=False))
        return 0
    if partial is not None:
        print(f"PARTIAL analysis: {partial['ntraj_present']} of {partial['ntraj_configured']} trajectories present "
              f"({partial['batches_present']} of {partial['batches']} batches; missing: "
              + ", ".join(partial["missing"][:3]) + (", ..." if len(partial["missing"]) > 3 else "") + ")")
    print(f"run {run}: {st.ntraj} trajectories{' (partial)' if partial else ''}, t in [{st.t_min:g}, {st.t_end:g}]")
    print(f"transient: {st.transient}")
    print("\ncounts per (channel, direction), whole run:")
    print(st.counts[st.counts["count"] > 0].to_string(index=False))
    if not st.stable:
        _print_growth(extra["growth"])
    else:
        _print_stationary(st, extra["mode"])
    if fp is not None:
        _print_first_passage(extra["first_passage"])
    return 0


def _first_passage_record(data: Path, fp, level: int, source: dict) -> dict:
    """First passage to ``level``: the fraction that reached it by t_end and, only if all did, the mean time.

    A mean over the trajectories that reached the level is biased low when some did not (the
    slow ones are missing), so it is not reported then; the fraction reached is unbiased, and
    both have exact birth-death values from the run's initial state.
    """
    import numpy as np

    from analysis.mode_stats import exact_first_passage, exact_first_passage_mean

    ok = fp[np.isfinite(fp)]
    n, k = int(fp.size), int(ok.size)
    run = source["identity"]["run"]
    exact = exact_first_passage(data, level)
    p = k / n if n else float("nan")
    every = n > 0 and k == n
    return {
        "level": level, "t_end": float(run["t_end"]), "initial": run["initial"], "n_reached": k, "ntraj": n,
        "probability_reached": p, "probability_reached_stderr": float(np.sqrt(p * (1 - p) / n)) if n else None,
        "probability_reached_exact": None if exact is None else exact[1],
        "mean": float(ok.mean()) if every else None,
        "stderr": float(ok.std(ddof=1) / np.sqrt(k)) if every and k > 1 else None,
        "exact_mean": None if exact is None else exact[0],
        "exact_mean_from_vacuum": exact_first_passage_mean(data, level) if run["initial"] == "vacuum" else None,
        "note": None if every else (f"{n - k} of {n} trajectories had not reached n = {level} by t_end: the mean first-"
                                    "passage time is not estimable from this run (a mean over the others is biased low)"),
    }


def _print_first_passage(f: dict) -> None:
    p, se, ex = f["probability_reached"], f["probability_reached_stderr"], f["probability_reached_exact"]
    print(f"\nfirst passage to n = {f['level']} (start: {f['initial']}): {f['n_reached']} of {f['ntraj']} trajectories "
          f"reached it by t_end = {f['t_end']:g}")
    print(f"  P(reached by t_end)  {_f(p)} +- {_f(se)}   exact {_f(ex)}")
    if f["mean"] is not None:
        print(f"  mean time            {_f(f['mean'])} +- {_f(f['stderr'])}   exact {_f(f['exact_mean'])}")
    else:
        print(f"  mean time            -   ({f['note']}; exact {_f(f['exact_mean'])})")


def _cmd_modes(args: argparse.Namespace, run: Path, source: dict, check) -> int:
    """``ehp stats`` of a several-mode run (:mod:`analysis.stats_modes`); ``check`` is its :func:`sim.io.check_run`."""
    from analysis.stats_modes import stats_of_run_dir
    from sim.config import ConfigError

    if args.first_passage is not None:
        raise ConfigError("--first-passage is for one-mode runs; this run has several modes (no single population "
                          "ladder)")
    if not check.complete:
        raise ConfigError(f"{str(run)!r} is not a complete run: {check.problem()}; resume it by running the same "
                          "`ehp trajectories` command again (--partial is for one-mode runs)")
    identity = source["identity"]
    if args.out:
        from sim.io import RunDirectory

        rd = RunDirectory.open(args.out, {"command": "stats", "source": identity, "t_min": args.t_min},
                               overwrite=args.overwrite, inputs=(run,),
                               metadata={"command": "stats", "source_dir": str(run.resolve())})
        with rd:
            ms = stats_of_run_dir(run, identity, args.t_min)
            for name in ("rates", "operator_rates", "cumulants", "populations"):
                getattr(ms, name).to_parquet(rd.path / f"{name}.parquet")
            rd.record(*(rd.path / f"{n}.parquet" for n in ("rates", "operator_rates", "cumulants", "populations")))
            rd.write_summary({"run": str(run), "ntraj": ms.ntraj, "t_min": ms.t_min, "t_end": ms.t_end, "n_modes": ms.K})
            rd.finish()
    else:
        ms = stats_of_run_dir(run, identity, args.t_min)
    record = {**ms.to_dict(), "run": str(run), "partial": False}
    if args.json:
        print(json.dumps(record, indent=2, allow_nan=False))
        return 0
    fmt = {"float_format": lambda v: f"{v:.5g}", "na_rep": "-", "index": False}
    print(f"run {run}: {ms.ntraj} trajectories, {ms.K} modes, t in [{ms.t_min:g}, {ms.t_end:g}]"
          + ("" if ms.stable else f"; unstable (growth rate {ms.growth_rate:.6g})"))
    print("\njump rates per (channel, direction) (per unit time): estimate +- stderr, exact")
    print(ms.rates.to_string(**fmt))
    print("\njump rates per collapse operator (mode -1: spanning several modes; operators.parquet):")
    print(ms.operator_rates[ms.operator_rates["count"] > 0].to_string(**fmt))
    print("\ncumulant rates (per unit time; charge: electrons L -> R, energy: electrons -> modes): "
          "estimate +- stderr, exact")
    print(ms.cumulants.to_string(**fmt))
    print("\nmean population per mode (grid samples, t >= t_min): estimate +- stderr, exact (covariance route)")
    print(ms.populations.to_string(**fmt))
    if ms.exact_note:
        print(f"\n{ms.exact_note}")
    return 0


def _print_stationary(st, mode: dict) -> None:
    from analysis.stats import MIN_TAIL_TRAJECTORIES

    c = st.cumulants
    print("\ncumulant rates (per unit time): estimate +- stderr, exact; tail: trajectories with >= order counted jumps")
    cols = ["quantity", "order", "estimate", "stderr", "exact", "tail_trajectories"]
    print(c[cols].rename(columns={"tail_trajectories": "tail"}).to_string(
        index=False, float_format=lambda v: f"{v:.5g}", na_rep="-"))
    if len(c) and not c["estimable"].all():
        print(f"not estimable ('-'): fewer than {MIN_TAIL_TRAJECTORIES} trajectories with at least `order` counted "
              "jumps in the window; the order-k cumulant then rests on a handful of trajectories and its error bar "
              "would mislead. More trajectories or a longer t_end estimate them")
    w = st.waiting.sort_values("n", ascending=False).head(10)
    print("\nwaiting times, the 10 most frequent consecutive pairs (after a jump of label i the next jump is "
          "watched for H; censored: fraction of starts whose next jump fell after t_end):")
    cols = ["first", "second", "n", "horizon", "censored", "probability", "probability_stderr", "probability_exact",
            "mean", "mean_stderr", "mean_exact"]
    print(w[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    bad = st.waiting[~st.waiting["estimable"].astype(bool) & (st.waiting["n_first"] > 0)]
    if len(bad):
        firsts = ", ".join(dict.fromkeys(bad["first"]))
        print(f"not estimable ('-'): pairs after {firsts}: waits longer than H are cut off by the end of the run "
              f"(the slowest wait, 1/escape(n=0) = {st.slowest_wait:.4g}, is long against t_end - t_min = "
              f"{st.t_end - st.t_min:.4g}); their density for tau <= H is in waiting_times.png. A run with "
              f"t_end >= t_min + {40 * st.slowest_wait:.4g} estimates them")
    print("\nmode (samples of N on the grid, t >= t_min): estimate +- stderr, exact")
    for k, r in mode.items():
        print(f"  {k:8s}{_f(r['estimate'])} +- {_f(r['stderr'])}   exact {_f(r['exact'])}")


def _print_growth(g: dict) -> None:
    r = g["growth_rate"]
    print("\nno steady state: no cumulant rates, waiting times or mode statistics (they would not be stationary)")
    if r["estimate"] is None:
        print(f"growth rate   not fitted ({g['note']}); -kappa = {_f(r['exact'])}")
    else:
        print(f"growth rate   {_f(r['estimate'])} +- {_f(r['stderr'])} (fit of the mean N(t), t in "
              f"[{g['fit_window'][0]:g}, {g['fit_window'][1]:g}], {g['fit_points']} grid points before any trajectory "
              f"reached the cap);  -kappa = {_f(r['exact'])}")
    fp = g["first_passage_to_cap"]
    if g["cap"] is None:
        print("first passage  no trajectory reached the population cap before t_end")
    else:
        print(f"first passage to the cap n = {g['cap']}: {g['n_capped']} of {g['ntraj']} trajectories; mean "
              f"{_f(fp['mean'])} +- {_f(fp['stderr'])}, exact from vacuum {_f(fp['exact_mean_from_vacuum'])}")
    if g["note"] and r["estimate"] is not None:
        print(f"note          {g['note']}")


def _f(v) -> str:
    return "-" if v is None else f"{v:.5g}"
