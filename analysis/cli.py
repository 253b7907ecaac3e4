"""The ``ehp`` command line: a thin layer over the public API (design.md).

Exit codes: 0 success (an unstable mode is an answer), 2 bad input or refused
(one line on stderr, no traceback), 1 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from collections.abc import Sequence

import sim
from sim.config import Config, ConfigError, load_config, to_toml

#: Modules that add sub-commands: each has ``register(sub, with_config)`` and sets
#: ``handler`` (a function ``args -> exit code``) with ``set_defaults``.
PLUGINS: tuple[str, ...] = (
    "analysis.cli_evolve",
    "analysis.cli_trajectories",
    "analysis.cli_stats",
    "analysis.cli_crosscheck",
    "analysis.cli_sweep",
)


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.set or ())


def _num(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    return f"{v + 0.0:.6g}"  # + 0.0: no "-0"


def _print_json(d) -> None:
    print(json.dumps(d, indent=2, allow_nan=False))


def cmd_steady(args: argparse.Namespace) -> int:
    cfg = _config(args)
    ss = sim.steady_state(cfg)
    out = ss.to_dict()
    if args.landauer:
        out["landauer"] = sim.landauer(cfg, args.landauer).to_dict()
    if args.lindblad:
        from sim.lindblad import steady_lindblad
        from sim.population import TruncationError

        try:
            out["lindblad"] = steady_lindblad(ss.model).to_dict()
        except TruncationError as e:
            part = e.partial
            out["lindblad"] = {"N": None, "cutoff": getattr(part, "cutoff", None),
                               "tail_probability": getattr(part, "tail_probability", None)}
            print(f"lindblad: {e}; N is null (the population route has no such cap)", file=sys.stderr)
    if args.landauer == "lowest" and ss.stable and abs(ss.model.gamma_e) > 0.1 * cfg.phonon_bath.gamma:
        ratio = float(ss.model.gamma_e) / cfg.phonon_bath.gamma if cfg.phonon_bath.gamma > 0 else float("inf")
        print(f"note: lowest-order Landauer holds N at n_ph; it matches the rate equation only if |Gamma_e| << "
              f"gamma_ph, here Gamma_e/gamma_ph = {ratio:.3g} (physics.md sec. 5): expect a gap of about that size",
              file=sys.stderr)
    if not ss.stable:
        print(f"unstable: kappa = {ss.kappa:.6g} <= 0, the mode runs away at growth rate {ss.growth_rate:.6g} "
              "(no steady state; N, J, Ie are null)", file=sys.stderr)
    if args.json:
        _print_json(out)
        return 0
    print(f"{'channel':8s}{'mu':>12s}{'emission':>14s}{'absorption':>14s}{'damping':>14s}{'J':>14s}{'Ie':>14s}")
    for c, r in out["channels"].items():
        print(f"{c:8s}" + "".join(f"{_num(r[k]):>14s}" if k != "mu" else f"{_num(r[k]):>12s}"
                                   for k in ("mu", "emission", "absorption", "damping", "J", "Ie")))
    print()
    for k in ("gamma_e", "emission_total", "kappa", "kappa_over_omega", "stable", "growth_rate", "N", "T_eff",
              "mu_eff", "J", "J_ph", "Ie", "eta", "n_ph"):
        print(f"{k:18s}{_num(out[k])}")
    if args.landauer:
        la = out["landauer"]
        print(f"{'landauer':18s}level={la['level']} J={_num(la['J'])} (+-{_num(la['J_err'])}) "
              f"Ie={_num(la['Ie'])} (+-{_num(la['Ie_err'])})")
    if args.lindblad:
        li = out["lindblad"]
        print(f"{'lindblad':18s}N={_num(li['N'])} cutoff={li['cutoff']} tail={_num(li['tail_probability'])}")
    return 0


def cmd_threshold(args: argparse.Namespace) -> int:
    from analysis.threshold import find_threshold

    cfg = _config(args)
    th = find_threshold(cfg, args.vary, tuple(args.between))
    if args.json:
        _print_json(th.to_dict())
    else:
        print(f"threshold  {args.vary} = {th.threshold:.10g}")
        print(f"slope      d kappa / d {args.vary} = {th.slope:.6g}")
        print(f"kappa at   {args.between[0]:g}: {th.kappa_low:.6g},  {args.between[1]:g}: {th.kappa_high:.6g}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(to_toml(_config(args).to_dict()), end="")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ehp", description="EHP-bath simulator: a biased conductor as four EHP baths.")
    p.add_argument("--version", action="version", version=f"ehp {sim.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_)
        q.add_argument("config", help="TOML config file")
        q.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
        return q

    q = with_config("steady", "rates, steady state and stability")
    q.set_defaults(handler=cmd_steady)
    q.add_argument("--landauer", choices=("lowest", "full"), help="add the Landauer-like fluxes (Eqs. 13-14)")
    q.add_argument("--lindblad", action="store_true", help="add the QuTiP Lindblad steady state {N, cutoff, tail}")
    q.add_argument("--json", action="store_true", help="JSON on stdout")
    q = with_config("threshold", "where kappa crosses zero")
    q.set_defaults(handler=cmd_threshold)
    q.add_argument("--vary", required=True, metavar="SECTION.KEY")
    q.add_argument("--between", required=True, nargs=2, type=float, metavar=("A", "B"))
    q.add_argument("--json", action="store_true")
    with_config("config", "print the resolved, validated config").set_defaults(handler=cmd_config)
    for name in PLUGINS:
        importlib.import_module(name).register(sub, with_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as e:
        print(f"ehp: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
