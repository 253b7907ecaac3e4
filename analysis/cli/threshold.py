"""``ehp threshold``: where kappa crosses zero in one config key."""

from __future__ import annotations

import argparse
import sys

from .common import load, print_json

__all__ = ["register", "cmd_threshold"]


def register(sub: argparse._SubParsersAction, with_config) -> None:
    """Add the ``threshold`` sub-command."""
    q = with_config("threshold", "where kappa crosses zero")
    q.set_defaults(handler=cmd_threshold)
    q.add_argument("--vary", required=True, metavar="SECTION.KEY")
    q.add_argument("--between", required=True, nargs=2, type=float, metavar=("A", "B"))
    q.add_argument("--json", action="store_true")


def cmd_threshold(args: argparse.Namespace) -> int:
    from analysis.threshold import find_threshold

    cfg = load(args)
    th = find_threshold(cfg, args.vary, tuple(args.between))
    if cfg.n_modes > 1:
        return _print_modes(args, cfg, th)
    if th.near_threshold_at_bound:
        print(f"near threshold: kappa at the bound {th.threshold:g} is within round-off of 0 "
              f"(|kappa| <= {th.kappa_roundoff:.3g}); that bound is reported as the threshold", file=sys.stderr)
    if args.json:
        print_json(th.to_dict())
    else:
        print(f"threshold  {args.vary} = {th.threshold:.10g}")
        print(f"slope      d kappa / d {args.vary} = {th.slope:.6g}")
        print(f"kappa at   {args.between[0]:g}: {th.kappa_low:.6g},  {args.between[1]:g}: {th.kappa_high:.6g}")
        print(f"round-off  |kappa| <= {th.kappa_roundoff:.3g} counts as 0 (near threshold)")
        print(f"Lamb shift {_lamb_line(th.lamb_shift, 1)}")
    return 0


def _lamb_line(included: bool, K: int) -> str:
    """Whether the threshold includes the Lamb shift (``mode.lamb_shift``), in words."""
    if K == 1:
        return ("included (mode.lamb_shift = true): it moves only the quantum, not kappa" if included else
                "neglected (mode.lamb_shift = false): for one mode it moves only the quantum, not kappa")
    return ("included (mode.lamb_shift = true): Y = conj(K/2 + i(diag(Omega) + L))" if included else
            "neglected (mode.lamb_shift = false): Y = conj(K)/2 - i diag(Omega)")


def _print_modes(args: argparse.Namespace, cfg, th) -> int:
    """Several modes: the zero of the stability margin 2 min Re eig(Y) (= kappa for one mode)."""
    from sim.covariance import mode_system_from_config

    from .steady import lamb_shift_note

    lamb_shift_note(mode_system_from_config(cfg.with_value(args.vary, th.threshold)))
    if th.near_threshold_at_bound:
        print(f"near threshold: the margin 2 min Re eig(Y) at the bound {th.threshold:g} is within round-off of 0 "
              f"(<= {th.kappa_roundoff:.3g}); that bound is reported as the threshold", file=sys.stderr)
    if args.json:
        print_json(th.to_dict())
        return 0
    print(f"threshold  {args.vary} = {th.threshold:.10g}  ({th.n_modes} modes: zero of 2 min Re eig(Y))")
    print(f"slope      d margin / d {args.vary} = {th.slope:.6g}")
    print(f"margin at  {args.between[0]:g}: {th.kappa_low:.6g},  {args.between[1]:g}: {th.kappa_high:.6g}")
    print(f"round-off  |margin| <= {th.kappa_roundoff:.3g} counts as 0 (near threshold)")
    print(f"Lamb shift {_lamb_line(th.lamb_shift, th.n_modes)}")
    return 0
