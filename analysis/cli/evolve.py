"""``ehp evolve CONFIG [--t-end T] [--method rate|population|lindblad] --out DIR``: N(t) and fluxes.

Writes ``DIR/evolution.parquet`` (columns ``t``, ``N``, ``J``, ``J_ph``, ``Ie`` and per
channel ``J_LL`` ... ``Ie_RL``: the rate-picture fluxes at the population N(t)),
``metadata.json`` and ``summary.json``. Above threshold the population and Lindblad
routes stop where the cutoff guard fires; the table ends there and the summary and
stderr say when and why. The rate route has no truncation: it shows the growth at
rate -kappa to the end (until N leaves the float range: the table ends at the last finite row).

A stable mode whose Fock cutoff is reached (``TruncationError``: the cutoff is too small)
exits 2 with one line giving the time and the cutoff; the table computed up to that time
is kept in ``evolution.parquet`` and ``summary.json`` says ``truncated: true`` and
``stopped_at``. The time grid, the cutoff and the initial Fock state are checked against
the memory budget of :mod:`sim.guards` before anything is allocated.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from sim.routes import ROUTES  # a light registry: the solvers are imported when a route runs

from .common import add_overwrite

__all__ = ["register", "cmd_evolve"]

def register(sub: argparse._SubParsersAction, with_config) -> None:
    q = with_config("evolve", "N(t) and fluxes by the rate, population or Lindblad route")
    q.add_argument("--t-end", type=float, help="final time in 1/energy (default: run.t_end)")
    q.add_argument("--n-points", type=int, help="points of the time grid (default: run.n_points)")
    q.add_argument("--method", choices=tuple(ROUTES), default=None,
                   help="default: population for one mode, rate for several (population: modes without cross terms)")
    q.add_argument("--initial", help="initial state (default: run.initial)")
    q.add_argument("--cutoff", type=int, help="Fock levels kept (default: chosen from the predicted distribution)")
    q.add_argument("--bias-table", metavar="CSV",
                   help="time-dependent bias: a CSV with columns t, mu_L, mu_R (linear interpolation, constant "
                        "outside; a repeated t is a step); the rates follow it adiabatically")
    q.add_argument("--out", required=True, metavar="DIR", help="run directory")
    add_overwrite(q, "replace a run directory that holds a different run")
    q.add_argument("--no-progress", action="store_true", help="no progress bar on stderr (lindblad route)")
    q.set_defaults(handler=cmd_evolve)


def _bias_schedule(path: str | None):
    """A :class:`sim.timedep.BiasSchedule` from a CSV (columns t, mu_L, mu_R), and its rows.

    The file must be a regular file of at most 8 MiB (:mod:`sim.files`); every value a finite
    number in the config's domain: ``t`` in ``[0, 1e12]`` and non-decreasing (a time at most
    twice: a step), ``mu_L``, ``mu_R`` and ``V = mu_L - mu_R`` within ``+-1e12`` (as
    ``bias.mu_L``, ``bias.mu_R``, ``bias.V``). An error names the file, the line, the column,
    the value and the rule.
    """
    if path is None:
        return None, None
    import csv
    import io
    import math

    from sim import guards
    from sim.config import ConfigError
    from sim.files import read_text
    from sim.timedep import BiasSchedule

    text = read_text(path, "--bias-table", exc=ConfigError).removeprefix("\ufeff")
    where = f"--bias-table {path!r}"
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        rows = [(reader.line_num, [c.strip() for c in r]) for r in reader if r and any(c.strip() for c in r)]
    except csv.Error as e:
        raise ConfigError(f"{where} cannot be read as CSV: {e}") from None
    if not rows or rows[0][1] != ["t", "mu_L", "mu_R"]:
        got = rows[0][1] if rows else "an empty file"
        raise ConfigError(f"{where} must start with the header line t,mu_L,mu_R (columns t, mu_L, mu_R), got {got!r}")
    if len(rows) == 1:
        raise ConfigError(f"{where} holds no rows after the header t,mu_L,mu_R: give at least one (t, mu_L, mu_R)")
    lim = guards.DOMAIN_MAX
    vals: list[list[float]] = []
    for line, r in rows[1:]:
        at = f"{where} line {line}"
        if len(r) != 3:
            raise ConfigError(f"{at}: a row must have 3 values t, mu_L, mu_R, got {len(r)} ({','.join(r)[:60]!r})")
        row = []
        for col, cell in zip(("t", "mu_L", "mu_R"), r, strict=True):
            try:
                x = float(cell) if "_" not in cell else math.nan
            except ValueError:
                x = None
            if x is None or not math.isfinite(x):
                raise ConfigError(f"{at}, column {col}: must be a finite number, got {cell[:40]!r}")
            if col == "t" and not 0.0 <= x <= lim:
                raise ConfigError(f"{at}, column t: a time must be >= 0 and <= {lim:g} (the run starts at t = 0; the "
                                  f"numeric domain of run.t_end), got {cell}")
            if col != "t" and not abs(x) <= lim:
                raise ConfigError(f"{at}, column {col}: must be within +-{lim:g} (the numeric domain of bias.{col}), "
                                  f"got {cell}")
            row.append(x)
        if not abs(row[1] - row[2]) <= lim:
            raise ConfigError(f"{at}: V = mu_L - mu_R = {row[1] - row[2]:g} must be within +-{lim:g} (the numeric "
                              "domain of bias.V)")
        if vals and row[0] < vals[-1][0]:
            raise ConfigError(f"{at}, column t: t must not decrease, got {r[0]} after {vals[-1][0]:g}")
        if len(vals) >= 2 and row[0] == vals[-2][0]:
            raise ConfigError(f"{at}, column t: a time may appear at most twice (a step), got t = {r[0]} three times")
        vals.append(row)
    try:
        return BiasSchedule.from_table(*zip(*vals, strict=True)), vals
    except ValueError as e:  # pragma: no cover (every rule of from_table is checked above)
        raise ConfigError(f"{where}: {e}") from None


def _check_size(method: str, n_points: int, cutoff: int) -> None:
    """Refuse a time grid or cutoff whose arrays would exceed :data:`sim.guards.MEMORY_BUDGET`.

    Per time point: the table (about 20 columns of 8 bytes) and, on the population route,
    the Fock populations twice (rows and propagated copies: 16 bytes x cutoff). The
    generator: dense ``exp(G dt)`` up to 1000 levels (3 x 8 cutoff^2 bytes), sparse above.
    Lindblad: about 64 density-matrix copies of 16 cutoff^2 bytes (Liouvillian and integrator).
    """
    from sim import guards

    if method == "population":
        guards.check_memory(f"--cutoff {cutoff} (method population)",
                            24.0 * cutoff**2 if cutoff <= 1000 else 200.0 * cutoff, "use a smaller cutoff")
    elif method == "lindblad":
        guards.check_memory(f"--cutoff {cutoff} (method lindblad)", 1024.0 * cutoff**2, "use a smaller cutoff")
    guards.check_count("--n-points", n_points, lo=2, bytes_each=160 + (16 * cutoff if method == "population" else 0),
                       hint="use fewer time points (the table is written once, not streamed)")


#: A --bias-table of more rows is identified in metadata.json by its row count and sha256 (canonical JSON of
#: the rows), not by the rows themselves (a 700k-row table made a 42 MB metadata.json).
_TABLE_ROWS_INLINE = 1000


def cmd_evolve(args: argparse.Namespace) -> int:

    import numpy as np

    from sim import guards
    from sim.config import ConfigError, load_config
    from sim.initial import InitialSpec
    from sim.io import RunDirectory
    from sim.model import rate_model
    from sim.population import TruncationError
    from sim.routes import evolve

    start = time.perf_counter()
    cfg = load_config(args.config, args.set or ())
    from sim.ladder_time import is_ladder

    if is_ladder(cfg):  # a ladder of levels: its level chain (docs/ladder_time.md)
        from .evolve_ladder import evolve_ladder_command

        return evolve_ladder_command(args, cfg, start)
    if args.method is None:
        args.method = "population" if cfg.n_modes == 1 else "rate"
    t_end = args.t_end if args.t_end is not None else cfg.run.t_end
    if t_end is None:
        raise ConfigError("--t-end is required (or set run.t_end in the config)")
    t_end = guards.check_time("--t-end", t_end)
    n_points = args.n_points if args.n_points is not None else cfg.run.n_points
    initial = args.initial or cfg.run.initial
    cutoff = args.cutoff if args.cutoff is not None else cfg.run.cutoff
    if cutoff is not None and cutoff < 2:
        raise ConfigError(f"--cutoff must be an integer >= 2 (Fock levels kept), got {cutoff}")
    if cutoff is not None:  # at least the Fock populations, 8 bytes a level, on every route (rate: the initial state)
        guards.check_count("--cutoff", cutoff, lo=2, bytes_each=8.0, hint="use a smaller cutoff")
    if cfg.n_modes > 1 and args.cutoff is not None:
        raise ConfigError(f"--cutoff {args.cutoff} applies only to one mode: with K = {cfg.n_modes} modes the routes "
                          "choose a cutoff per mode (docs/modes.md), so it would do nothing; leave it out")
    if cfg.n_modes > 1:
        return _evolve_modes(args, cfg, t_end, n_points, initial, start)
    if args.method == "lindblad":
        from sim.lindblad import LINDBLAD_MAX_CUTOFF as max_cutoff
    else:
        from sim.cutoff import MAX_CUTOFF as max_cutoff
    _check_size(args.method, n_points, cutoff if cutoff is not None else max_cutoff)
    model = rate_model(cfg)
    try:
        spec = InitialSpec.parse(initial)
        if spec.kind != "steady":
            spec.populations(cutoff if cutoff is not None else max_cutoff, model)  # it must fit in the cutoff
    except ValueError as e:
        hint = "" if cutoff is not None else f" (the automatic cutoff of --method {args.method} is at most {max_cutoff}: " \
            "give --cutoff)"
        raise ConfigError(f"run.initial = {initial!r}: {e}{hint}") from None
    if spec.kind == "steady" and not model.stable:
        raise ConfigError(f"run.initial = 'steady' needs a stable mode, but kappa = {float(model.kappa):.6g} is not "
                          "> 0 beyond round-off")
    if spec.kind == "coherent" and ROUTES[args.method].fock_diagonal:
        raise ConfigError("a coherent initial state is not Fock-diagonal: use --method lindblad (or rate for N(t))")
    schedule, table_rows = _bias_schedule(args.bias_table)
    if table_rows is not None and len(table_rows) > _TABLE_ROWS_INLINE:  # a long table: its digest, not its rows
        from sim.runsafe import run_id

        table_rows = {"n_rows": len(table_rows), "sha256": run_id(table_rows)}
    identity = {"command": "evolve", "config": cfg.to_dict(), "method": args.method, "t_end": t_end,
                "n_points": n_points, "initial": initial, "cutoff": cutoff, "bias_table": table_rows}
    rd = RunDirectory.open(args.out, identity, overwrite=args.overwrite,
                           metadata={"command": "evolve", "config": cfg.to_dict(), "method": args.method})
    with rd:  # an exception marks the run failed and releases the lock
        old = rd.verified_summary() if rd.resumed and rd.has_part("evolution", 0) else {}
        if old:  # finished before, its summary as recorded (an edited or missing one: computed again)
            table = rd.read_table("evolution")
            rd.finish()
            stopped = old.get("stopped_at")
            if old.get("truncated") is True and old.get("error") is True and isinstance(old.get("message"), str) \
                    and isinstance(stopped, int | float) and not isinstance(stopped, bool):
                raise guards.GuardError(f"{old['message']} (the partial table up to t = {old['stopped_at']:.6g} is in "
                                        f"{rd.path / 'evolution.parquet'}; nothing recomputed)")
            print(f"{args.out}: this run is already complete ({len(table)} time points); nothing recomputed")
            return 0
        error, stop_info = False, (None, None)
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # a runaway past the float range is cut below
                res = evolve(cfg, np.linspace(0.0, t_end, n_points), args.method, spec, cutoff, schedule,
                             progress=False if args.no_progress else None)
        except TruncationError as e:  # a stable mode reached its cutoff: keep what was computed, then exit 2
            res, error, stop_info = e.partial, True, (e.t_stop, str(e))
            if schedule is not None:
                from sim.timedep import rates_at

                model = rates_at(cfg, schedule, np.asarray(res.t))
            res = dataclasses.replace(res, model=model)
        used_cutoff = getattr(res, "cutoff", None)
        stopped_at, message = getattr(res, "stopped_at", None), getattr(res, "message", None)
        if error:
            stopped_at, message = stop_info
        with np.errstate(over="ignore", invalid="ignore"):
            table = res.to_frame()
        if schedule is not None:
            table.insert(2, "mu_L", schedule(table["t"].to_numpy())[0])
            table.insert(3, "mu_R", schedule(table["t"].to_numpy())[1])
        model = res.model
        finite = np.isfinite(table.drop(columns="t").to_numpy()).all(axis=1)
        if not finite.all():  # a runaway beyond the float range: the table ends at the last finite row
            k = int(np.argmin(finite))
            stopped_at = float(table["t"].iloc[k])
            message = (message or "") + (f"; N(t) or a flux leaves the float range at t = {stopped_at:.6g}, the "
                                         "table ends before it")
            table = table.iloc[:k]
            if table.empty:
                raise guards.NumericalError(f"N(t) is not finite even at t = 0 ({message.lstrip('; ')})")
        rd.expect("evolution", 1)
        rd.write_part("evolution", 0, table)
        wall = time.perf_counter() - start
        kappas = np.asarray(model.kappa).ravel()
        kappa_end = float(kappas[min(len(table), kappas.size) - 1] if len(table) else kappas[0])
        summary = {"method": args.method, "t_end": t_end, "n_points": int(len(table)), "initial": initial,
                   "cutoff": used_cutoff, "kappa": kappa_end, "stable": bool(kappa_end > 0),
                   "N_final": float(table["N"].iloc[-1]) if len(table) and stopped_at is None else None,
                   "t_last": float(table["t"].iloc[-1]) if len(table) else None,
                   "N_last": float(table["N"].iloc[-1]) if len(table) else None, "truncated": stopped_at is not None,
                   "stopped_at": stopped_at, "message": message, "error": error, "wall_s": wall}
        rd.write_summary(summary)
        rd.finish(wall_s=wall, truncated=stopped_at is not None, stopped_at=stopped_at)
        if error:  # the partial table is this run's result (a rerun says so again without recomputing)
            raise guards.GuardError(f"{message} (the partial table up to t = {stopped_at:.6g} is kept in "
                                    f"{rd.path / 'evolution.parquet'}, summary.json says truncated: true)")
    if message:
        print(message, file=sys.stderr)
    print(f"method     {args.method}" + (f" (cutoff {used_cutoff})" if used_cutoff else ""))
    print(f"kappa      {kappa_end:.6g}  ({'stable' if kappa_end > 0 else 'unstable'})"
          + ("  (at t_end)" if schedule is not None else ""))
    if stopped_at is None:
        print(f"N(t_end)   {summary['N_final']:.6g}")
    else:  # no N(t_end): the run stopped before; the last grid point it reached is labelled as such
        print(f"N(t_end)   -  (the run stopped at t = {stopped_at:.6g}; last grid point t = {summary['t_last']:.6g}: "
              f"N = {summary['N_last']:.6g})")
    print(f"table      {rd.path / 'evolution.parquet'}")
    return 0


def _evolve_modes(args: argparse.Namespace, cfg, t_end: float, n_points: int, initial: str, start: float) -> int:
    """Several modes (``--method rate``): ``C(t)`` from the vacuum in closed form (docs/modes.md);
    ``--method lindblad``: the truncated tensor Fock space (:func:`sim.lindblad.evolve_lindblad` of the ModeSystem).

    Table columns: ``t``, ``N`` (total), ``N_0 .. N_{K-1}``, ``J``, ``J_ph``, ``Ie`` and per
    channel ``J_LL .. Ie_RL`` (the fluxes at ``C(t)``, exact at every time).
    """
    from sim.config import ConfigError
    from sim.io import RunDirectory

    if args.method not in ("rate", "lindblad", "population"):
        cfg.require_one_mode(f"evolve --method {args.method}")
    if args.bias_table is not None:
        cfg.require_one_mode("evolve --bias-table")
    from sim import guards

    K = cfg.n_modes  # per time point: C(t) (16 K^2 bytes, twice) and the table (K + 15 columns)
    guards.check_count("--n-points", n_points, lo=2, bytes_each=32 * K * K + 8 * (K + 15),
                       hint="use fewer time points (the table is written once, not streamed)")
    if initial != "vacuum" and args.method == "rate":
        raise ConfigError(f"run.initial = {initial!r}: several modes (K = {cfg.n_modes}) start from the vacuum only "
                          "on --method rate (initial = 'vacuum'; --method lindblad also takes steady and thermal:N, "
                          "--method population every Fock-diagonal start)")
    if args.method == "lindblad":
        _check_gaussian_start(initial, cfg.n_modes)
    if args.method == "population":
        _check_population_start(initial, cfg.n_modes)
    from sim.covariance import mode_system_from_config

    from .steady import lamb_shift_note

    system = mode_system_from_config(cfg)  # before the run directory: a refusal leaves nothing behind
    if args.method == "population":
        from sim.trajectories.labelled import cross_term_clusters

        several = cross_term_clusters(system)
        if several:
            raise ConfigError(f"evolve --method population with {system.K} modes needs modes without cross terms "
                              f"(every cluster one mode); the clusters {[list(S) for S in several]} couple modes, so "
                              "the populations do not close on themselves: use --method rate (covariance) or lindblad "
                              "(or mode.coherence_width = 0 for the secular approximation, if the quanta differ)")
    lamb_shift_note(system)
    identity = {"command": "evolve", "config": cfg.to_dict(), "method": args.method, "t_end": t_end,
                "n_points": n_points, "initial": initial}
    rd = RunDirectory.open(args.out, identity, overwrite=args.overwrite,
                           metadata={"command": "evolve", "config": cfg.to_dict(), "method": args.method})
    with rd:  # an exception marks the run failed; the lock is always released
        if rd.resumed and rd.has_part("evolution", 0) and rd.verified_summary():
            table = rd.read_table("evolution")
            rd.finish()
            print(f"{args.out}: this run is already complete ({len(table)} time points); nothing recomputed")
            return 0
        return _evolve_modes_into(args, rd, system, t_end, n_points, initial, start)


def _check_gaussian_start(initial: str, K: int) -> None:
    """ConfigError unless ``initial`` is a Gaussian start of the several-mode Lindblad route
    (:data:`sim.lindblad.GAUSSIAN_STARTS`)."""
    from sim.config import ConfigError
    from sim.initial import InitialSpec
    from sim.lindblad import GAUSSIAN_STARTS

    try:
        kind = InitialSpec.parse(initial).kind
    except ValueError as e:
        raise ConfigError(f"run.initial = {initial!r}: {e}") from None
    if kind not in GAUSSIAN_STARTS:
        raise ConfigError(f"run.initial = {initial!r}: several modes (K = {K}) on --method lindblad start from a "
                          f"Gaussian state ({', '.join(GAUSSIAN_STARTS)}); {kind} starts need one mode")


def _check_population_start(initial: str, K: int) -> None:
    """ConfigError unless ``initial`` is a Fock-diagonal start the population route of K modes takes."""
    from sim.config import ConfigError
    from sim.initial import InitialSpec
    from sim.registry import route_refusal

    try:
        kind = InitialSpec.parse(initial).kind
    except ValueError as e:
        raise ConfigError(f"run.initial = {initial!r}: {e}") from None
    why = route_refusal("population", K, initial=kind)
    if why:
        raise ConfigError(f"run.initial = {initial!r}: {why} (a coherent start: --method lindblad)")


def _evolve_modes_into(args: argparse.Namespace, rd, system, t_end: float, n_points: int, initial: str,
                       start: float) -> int:
    """The several-mode evolution of ``system`` (a ModeSystem) written into the open run directory ``rd``."""
    import numpy as np
    import pandas as pd

    from sim.conductor import CHANNELS

    t = np.linspace(0.0, t_end, n_points)
    if args.method == "lindblad":
        return _evolve_modes_lindblad(args, rd, system, t, initial, start)
    if args.method == "population":
        return _evolve_modes_population(args, rd, system, t, initial, start)
    C = system.covariance(t)
    Nk = np.real(np.diagonal(C, axis1=-2, axis2=-1))
    cols: dict[str, np.ndarray] = {"t": t, "N": Nk.sum(axis=1)}
    cols.update({f"N_{k}": Nk[:, k] for k in range(system.K)})
    flux = [system.fluxes(c) for c in C]
    for q in ("J", "J_ph", "Ie"):
        cols[q] = np.array([float(f[q]) for f in flux])
    for q, key in (("J", "J_channel"), ("Ie", "Ie_channel")):
        for i, c in enumerate(CHANNELS):
            cols[f"{q}_{c}"] = np.array([f[key][i] for f in flux])
    table = pd.DataFrame(cols)
    rd.write_part("evolution", 0, table)
    wall = time.perf_counter() - start
    summary = {"method": args.method, "t_end": t_end, "n_points": int(len(table)), "initial": initial,
               "n_modes": system.K}
    return _finish_modes(rd, system, table, Nk[-1], summary, wall,
                         f"{args.method} (covariance C(t) of {system.K} modes, closed form)")


def _finish_modes(rd, system, table, N_last, summary: dict, wall: float, method_line: str) -> int:
    """Write the summary and metadata of a several-mode evolution and print its lines."""
    summary = {**summary, "stable": system.stable, "growth_rate": system.growth_rate, "margin": -system.growth_rate,
               "N_final": float(table["N"].iloc[-1]), "N_final_modes": [float(x) for x in N_last], "wall_s": wall}
    rd.write_summary(summary)
    rd.finish(wall_s=wall)
    print(f"method     {method_line}")
    print(f"margin     2 min Re eig(Y) = {-system.growth_rate:.6g}  ({'stable' if system.stable else 'unstable'})")
    print(f"N(t_end)   {summary['N_final']:.6g}  (per mode: {', '.join(f'{x:.6g}' for x in N_last)})")
    print(f"table      {rd.path / 'evolution.parquet'}")
    return 0


def _evolve_modes_lindblad(args: argparse.Namespace, rd, system, t, initial: str, start: float) -> int:
    """Several modes, ``--method lindblad``: columns ``t, N_0 .. N_{K-1}, N, P_top_0 ..`` (top-level weights)."""
    from sim.config import ConfigError
    from sim.lindblad import evolve_lindblad

    try:
        res = evolve_lindblad(system, t, initial, progress=False if args.no_progress else None)
    except ValueError as e:
        raise ConfigError(f"evolve --method lindblad with {system.K} modes: {e}") from None
    table = res.to_frame()
    rd.write_part("evolution", 0, table)
    wall = time.perf_counter() - start
    summary = {"method": "lindblad", "t_end": float(t[-1]), "n_points": int(len(table)), "initial": initial,
               "n_modes": system.K, "cutoffs": list(res.cutoffs), "P_top_max": float(res.P_top.max())}
    return _finish_modes(rd, system, table, res.N[-1], summary, wall,
                         f"lindblad ({system.K} modes, cutoffs {list(res.cutoffs)})")


def _evolve_modes_population(args: argparse.Namespace, rd, system, t, initial: str, start: float) -> int:
    """Several modes without cross terms, ``--method population``: each mode's birth-death chain, exact
    propagators (:func:`sim.population.evolve_population` of the ModeSystem); the covariance route's columns.

    A runaway stops the table where a mode's top Fock level fills (``truncated: true`` in the summary, no
    ``N(t_end)`` printed), as for one mode.
    """
    from sim import guards
    from sim.config import ConfigError
    from sim.population import TruncationError, evolve_population

    try:
        res = evolve_population(system, t, initial)
    except TruncationError as e:  # a stable mode reached its automatic cutoff: keep the partial table, exit 2
        res = e.partial
        table = res.to_frame()
        rd.write_part("evolution", 0, table)
        rd.write_summary({"method": "population", "n_modes": system.K, "truncated": True, "error": True,
                          "stopped_at": res.stopped_at, "message": str(e), "n_points": int(len(table))})
        rd.finish(wall_s=time.perf_counter() - start, truncated=True, stopped_at=res.stopped_at)
        raise guards.GuardError(f"{e} (the partial table is kept in {rd.path / 'evolution.parquet'})") from None
    except ValueError as e:
        raise ConfigError(f"evolve --method population with {system.K} modes: {e}") from None
    table = res.to_frame()
    if table.empty:
        raise guards.NumericalError(f"no time point before the cutoff guard stopped the run ({res.message})")
    rd.write_part("evolution", 0, table)
    wall = time.perf_counter() - start
    summary = {"method": "population", "t_end": float(t[-1]), "n_points": int(len(table)), "initial": initial,
               "n_modes": system.K, "cutoffs": list(res.cutoffs), "truncated": res.stopped_at is not None,
               "stopped_at": res.stopped_at, "message": res.message}
    line = f"population ({system.K} modes without cross terms, cutoffs {list(res.cutoffs)})"
    if res.stopped_at is None:
        return _finish_modes(rd, system, table, res.N_modes[-1], summary, wall, line)
    summary = {**summary, "stable": system.stable, "growth_rate": system.growth_rate, "margin": -system.growth_rate,
               "N_final": None, "N_last": float(table["N"].iloc[-1]), "t_last": float(table["t"].iloc[-1]),
               "wall_s": wall}
    rd.write_summary(summary)
    rd.finish(wall_s=wall, truncated=True, stopped_at=res.stopped_at)
    print(res.message, file=sys.stderr)
    print(f"method     {line}")
    print(f"margin     2 min Re eig(Y) = {-system.growth_rate:.6g}  ({'stable' if system.stable else 'unstable'})")
    print(f"N(t_end)   -  (the run stopped at t = {res.stopped_at:.6g}; last grid point t = {summary['t_last']:.6g}: "
          f"N = {summary['N_last']:.6g})")
    print(f"table      {rd.path / 'evolution.parquet'}")
    return 0
