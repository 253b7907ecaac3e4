"""``ehp evolve`` on a ladder config (``[mode.potential]`` other than harmonic; docs/ladder_time.md).

``--method population`` (default) propagates the level populations exactly (``exp(G dt)``),
``--method lindblad`` solves the same dynamics with QuTiP (collapse operators ``sqrt(k) |j><i|`` per
label). Writes ``DIR/evolution.parquet`` (``t, N, S, hazard, escape_flux, E_mode``, the fluxes
``J, J_ph, Ie`` and per channel, ``P_0 .. P_{nb-1}`` over the levels that do not absorb and
``P_absorbed``), ``metadata.json`` and ``summary.json`` (the survival and hazard at ``t_end``, the exact
MFPT and ``int_0^T S dt``, the escape eigenvalue).
"""

from __future__ import annotations

import argparse
import math
import time

__all__ = ["evolve_ladder_command"]


def evolve_ladder_command(args: argparse.Namespace, cfg, start: float) -> int:
    """Run ``ehp evolve`` for a ladder config; returns the exit code (ConfigError: exit 2)."""
    import numpy as np

    from sim import guards
    from sim.config import ConfigError
    from sim.io import RunDirectory
    from sim.ladder_time import exact_mfpt, ladder_chain, restricted_mean
    from sim.registry import route_refusal
    from sim.routes import evolve

    method = args.method or "population"
    kind = cfg.mode.potential.kind
    if method == "rate":
        raise ConfigError(f"evolve --method rate is the harmonic mode's closed form; a ladder of levels "
                          f"(mode.potential.kind = {kind!r}) runs on --method population or lindblad")
    if args.bias_table is not None:
        raise ConfigError("--bias-table: a ladder of levels (mode.potential) takes a constant bias on the time-domain "
                          "routes")
    if args.cutoff is not None:
        raise ConfigError(f"--cutoff {args.cutoff} is the Fock cutoff of the harmonic mode; a ladder of levels "
                          f"(mode.potential.kind = {kind!r}) has its own levels, so it would do nothing; leave it out")
    t_end = args.t_end if args.t_end is not None else cfg.run.t_end
    if t_end is None:
        raise ConfigError("--t-end is required (or set run.t_end in the config)")
    t_end = guards.check_time("--t-end", t_end)
    n_points = args.n_points if args.n_points is not None else cfg.run.n_points
    initial = args.initial or cfg.run.initial
    chain = ladder_chain(cfg)
    n = chain.n_levels
    guards.check_count("--n-points", n_points, lo=2, bytes_each=16.0 * n + 200.0,
                       hint="use fewer time points (the table is written once, not streamed)")
    from sim.initial import InitialSpec

    try:
        spec_kind = InitialSpec.parse(initial).kind
    except ValueError as e:
        raise ConfigError(f"run.initial = {initial!r}: {e}") from None
    why = route_refusal(method, 1, initial=spec_kind, ladder=True)
    if why is not None:
        raise ConfigError(why)
    identity = {"command": "evolve", "config": cfg.to_dict(), "method": method, "t_end": t_end, "n_points": n_points,
                "initial": initial, "ladder": kind}
    rd = RunDirectory.open(args.out, identity, overwrite=args.overwrite,
                           metadata={"command": "evolve", "config": cfg.to_dict(), "method": method})
    with rd:
        if rd.resumed and rd.has_part("evolution", 0) and rd.verified_summary():
            table = rd.read_table("evolution")
            rd.finish()
            print(f"{args.out}: this run is already complete ({len(table)} time points); nothing recomputed")
            return 0
        res = evolve(cfg, np.linspace(0.0, t_end, n_points), method, initial)
        table = res.to_frame()
        rd.expect("evolution", 1)
        rd.write_part("evolution", 0, table)
        from sim.rupture import escape

        esc = escape(res.chain, mfpt_all=False) if res.chain.ladder.absorbing.any() else None
        mfpt = exact_mfpt(res.chain, res.p0)
        wall = time.perf_counter() - start
        summary = {"method": method, "t_end": t_end, "n_points": int(len(table)), "initial": initial, "ladder": kind,
                   "n_levels": n, "bound_levels": res.chain.ladder.n_bound, "S_final": float(res.S[-1]),
                   "hazard_final": float(res.hazard[-1]) if math.isfinite(res.hazard[-1]) else None,
                   "N_final": float(res.N[-1]), "mfpt": mfpt if math.isfinite(mfpt) else None,
                   "integral_S": restricted_mean(res.chain, res.p0, t_end),
                   "rate": esc.rate if esc is not None else None,
                   "eigen_rate": esc.eigen_rate if esc is not None else None, "wall_s": wall}
        rd.write_summary(summary)
        rd.finish(wall_s=wall)

    def fmt(v):
        return "-" if v is None else f"{v:.6g}"

    print(f"method     {method} (ladder {kind}: {res.chain.ladder.n_bound} bound of {n} levels)")
    print(f"S(t_end)   {fmt(summary['S_final'])}  (survival: no rupture by t_end)")
    print(f"hazard     {fmt(summary['hazard_final'])}  (-d ln S/dt at t_end; escape eigenvalue "
          f"{fmt(summary['eigen_rate'])})")
    print(f"MFPT       {fmt(summary['mfpt'])}  (exact; int_0^t_end S dt = {fmt(summary['integral_S'])})")
    print(f"table      {rd.path / 'evolution.parquet'}")
    return 0
