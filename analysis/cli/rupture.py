"""``ehp rupture``: the rupture rate of a ladder config ([mode.potential], docs/ladder.md), or a table over a grid."""

from __future__ import annotations

import argparse
import sys

from .common import load, num, print_json

__all__ = ["register", "cmd_rupture"]


def register(sub: argparse._SubParsersAction, with_config) -> None:
    """Add the ``rupture`` sub-command."""
    q = with_config("rupture", "rupture rate, MFPT, exponent and yield of an anharmonic ladder")
    q.set_defaults(handler=cmd_rupture)
    q.add_argument("--vary", metavar="SECTION.KEY", help="scan this key (with --grid)")
    q.add_argument("--grid", metavar="A:B:N", help="values of --vary as numpy.linspace(A, B, N)")
    q.add_argument("--json", action="store_true", help="JSON on stdout")


def _grid(text: str) -> list[float]:
    from sim.config import ConfigError

    parts = text.split(":")
    try:
        a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(f"--grid must be A:B:N (numbers A, B and an integer N >= 1), got {text!r}") from None
    if n < 1 or n > 100000:
        raise ConfigError(f"--grid {text!r}: N must be an integer in 1..100000, got {n}")
    import numpy as np

    return [float(v) for v in np.linspace(a, b, n)]


def _note(d: dict) -> None:
    v = d["validity"]
    if not v["valid"]:
        print(f"note: the Pauli rates are not controlled here (secular = {num(v['secular'])}, Gamma_top/(threshold - "
              f"E_top) = {num(v['top'])}, both should be << 1, flagged above {v['limit']:g}): the numbers are those of "
              "the Pauli model (docs/ladder.md)", file=sys.stderr)
    if d["eigen_rate"] is None and d["rate"]:
        print("note: the escape eigenvalue is below round-off of the largest rate: eigen_rate is null (the rate R is "
              "exact by elimination)", file=sys.stderr)


def cmd_rupture(args: argparse.Namespace) -> int:
    from sim.config import ConfigError
    from sim.rupture import rupture, rupture_ladder

    cfg = load(args)
    if (args.vary is None) != (args.grid is None):
        raise ConfigError("--vary and --grid go together (--vary bias.V --grid 0.5:3:26)")
    if args.vary is None:
        d = rupture(cfg).to_dict()
        _note(d)
        if args.json:
            print_json(d)
            return 0
        for k in ("rate", "mfpt", "eigen_rate", "exponent", "current", "yield", "kappa_harmonic", "bound_levels"):
            print(f"{k:16s}{num(d[k])}")
        print(f"{'validity':16s}secular={num(d['validity']['secular'])} top={num(d['validity']['top'])}")
        print()
        print(f"{'level':>6s}{'E':>12s}{'P':>14s}{'escape_rate':>14s}{'mfpt':>14s}")
        for lv in d["levels"]:
            print(f"{lv['index']:>6d}" + "".join(f"{num(lv[k]):>{w}s}" for k, w in
                                                (("E", 12), ("P", 14), ("escape_rate", 14), ("mfpt", 14))))
        print()
        print("escape shares  " + "  ".join(f"{c}={num(s)}" for c, s in d["shares"].items()))
        return 0
    values = _grid(args.grid)
    configs = [cfg.with_value(args.vary, v) for v in values]
    shared = None
    if args.vary.startswith("bias."):  # the levels do not depend on the bias: one box for the largest bias
        shared = rupture_ladder(cfg, max(c.bias.V for c in configs))
    rows = []
    for v, c in zip(values, configs, strict=True):
        d = rupture(c, shared, mfpt_all=False).to_dict()
        rows.append({args.vary: v, **{k: d[k] for k in ("rate", "mfpt", "eigen_rate", "exponent", "current",
                                                          "yield", "kappa_harmonic")},
                     "valid": d["validity"]["valid"]})
    if args.json:
        print_json({"vary": args.vary, "rows": rows})
        return 0
    keys = list(rows[0])
    print("".join(f"{k:>15s}" for k in keys))
    for r in rows:
        print("".join(f"{num(r[k]):>15s}" for k in keys))
    return 0
