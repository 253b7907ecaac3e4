"""``ehp steady``: rates, steady state and stability (optionally Landauer and Lindblad)."""

from __future__ import annotations

import argparse
import math
import sys

import sim

from .common import load, num, print_json

__all__ = ["register", "cmd_steady"]


def register(sub: argparse._SubParsersAction, with_config) -> None:
    """Add the ``steady`` sub-command."""
    q = with_config("steady", "rates, steady state and stability")
    q.set_defaults(handler=cmd_steady)
    q.add_argument("--landauer", choices=("lowest", "full"), help="add the Landauer-like fluxes (Eqs. 13-14)")
    q.add_argument("--lindblad", action="store_true", help="add the QuTiP Lindblad steady state {N, cutoff, tail}")
    q.add_argument("--json", action="store_true", help="JSON on stdout")


def cmd_steady(args: argparse.Namespace) -> int:
    cfg = load(args)
    st = sim.system(cfg).steady_state()
    if st.one is None:
        return _steady_modes(args, cfg, st)
    ss = st.one
    out = st.to_dict()
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
              f"gamma_ph, here Gamma_e/gamma_ph = {ratio:.3g} (see docs/approximations.md): expect a gap of about that size",
              file=sys.stderr)
    if ss.near_threshold:
        print(f"near threshold: |kappa| = {abs(ss.kappa):.3g} is within round-off of 0 (<= "
              f"{float(ss.model.kappa_roundoff):.3g}), so stability is not determined; stable is false, "
              "near_threshold is true and N, J, Ie are null", file=sys.stderr)
    elif not ss.stable:
        print(f"unstable: kappa = {ss.kappa:.6g} <= 0, the mode runs away at growth rate {ss.growth_rate:.6g} "
              "(no steady state; N, J, Ie are null)", file=sys.stderr)
    if args.json:
        print_json(out)
        return 0
    print(f"{'channel':8s}{'mu':>12s}{'emission':>14s}{'absorption':>14s}{'damping':>14s}{'J':>14s}{'Ie':>14s}")
    for c, r in out["channels"].items():
        print(f"{c:8s}" + "".join(f"{num(r[k]):>14s}" if k != "mu" else f"{num(r[k]):>12s}"
                                   for k in ("mu", "emission", "absorption", "damping", "J", "Ie")))
    print()
    for k in ("gamma_e", "emission_total", "kappa", "kappa_over_omega", "stable", "near_threshold", "growth_rate", "N",
              "T_eff",
              "mu_eff", "J", "J_ph", "Ie", "eta", "n_ph"):
        print(f"{k:18s}{num(out[k])}")
    lamb_shift_line(out)
    if args.landauer:
        la = out["landauer"]
        print(f"{'landauer':18s}level={la['level']} J={num(la['J'])} (+-{num(la['J_err'])}) "
              f"Ie={num(la['Ie'])} (+-{num(la['Ie_err'])})")
    if args.lindblad:
        li = out["lindblad"]
        print(f"{'lindblad':18s}N={num(li['N'])} cutoff={li['cutoff']} tail={num(li['tail_probability'])}")
    return 0


def lamb_shift_line(out: dict) -> None:
    """The text output's ``lamb_shift`` line where ``mode.lamb_shift`` is true: the matrix ``L`` (real, or
    ``re+imj`` per entry), row by row (nothing where it is neglected: the output is as before)."""
    if not out.get("lamb_shift"):
        return
    L = out["lamb_shift_matrix"]
    rows = ["[" + ", ".join(num(r) if i == 0 else f"{num(r)}{'+' if i >= 0 else '-'}{num(abs(i))}j"
                            for r, i in zip(re, im, strict=True)) + "]" for re, im in zip(L["re"], L["im"], strict=True)]
    print(f"{'lamb_shift':18s}L = [{', '.join(rows)}] (included: mode.lamb_shift = true)")


def lamb_shift_note(system) -> None:
    """stderr notes on clusters of several modes: the stability verdict neglects the Lamb shift (unless
    ``mode.lamb_shift`` is true), and (one note) clusters whose spread is not small against ``E``
    (:func:`cluster_spread_note`)."""
    if system.lamb is None and any(len(S) > 1 for S in system.clusters):
        print("note: clusters of several modes: the stability verdict and threshold neglect the Lamb shift, which "
              "can move the onset of collective runaway by a few percent; set mode.lamb_shift = true to include it "
              "(docs/modes.md)", file=sys.stderr)
    cluster_spread_note(system)


def cluster_spread_note(system, tol: float = 0.1) -> None:
    """One stderr note when a cluster's spread of quanta exceeds ``tol E`` (:meth:`ModeSystem.wide_clusters`):
    its rates and ph-bath occupation are taken at one common frequency, which then moves the populations
    by more than about ``tol/2`` relative (docs/modes.md, "Error of the common frequency")."""
    wide = system.wide_clusters(tol)
    if not wide:
        return
    S, spread = max(wide, key=lambda x: x[1])
    w = system.cluster_frequencies[system.clusters.index(S)]
    rates = (f" and the rates Gamma_max = {system.rate_scale:.3g}" if math.isfinite(system.rate_scale) else "")
    shown = str(list(S)) if len(S) <= 8 else f"of {len(S)} modes [{S[0]}, {S[1]}, ..., {S[-1]}]"
    print(f"note: cluster {shown} spans {spread:.3g} in quanta, not small against E = {system.energy_scale:.3g} (the "
          f"smallest of the temperatures and the conductor's resonance width){rates}: its rates and ph-bath "
          f"occupation are taken at the common frequency {w:.6g}, which moves each population by up to about "
          f"{spread / 2 / system.energy_scale:.2g} relative (spread/2E; docs/modes.md); a mode.coherence_width below "
          f"the spacing of its quanta splits it" + (f" ({len(wide)} such clusters)" if len(wide) > 1 else ""),
          file=sys.stderr)


def _steady_modes(args: argparse.Namespace, cfg, st) -> int:
    """Several modes: the covariance route (exact second moments, docs/modes.md)."""
    import numpy as np

    system = st.several.system
    out = st.to_dict()
    if args.landauer:  # K x K Landauer fluxes, the same keys as for one mode (kappa: the margin 2 min Re eig(Y))
        out["landauer"] = sim.landauer(cfg, args.landauer).to_dict()
    if args.lindblad:  # QuTiP-side check: the truncated tensor Fock space (zero-charge sector)
        from sim.config import ConfigError
        from sim.lindblad import steady_lindblad

        try:
            out["lindblad"] = steady_lindblad(system).to_dict()
        except ValueError as e:
            raise ConfigError(f"steady --lindblad with {system.K} modes: {e}") from None
    lamb_shift_note(system)
    if out["near_threshold"]:
        print(f"near threshold: |2 min Re eig(Y)| = {abs(system.margin):.3g} is within round-off of 0 (<= "
              f"{system.margin_roundoff:.3g}), so stability is not determined; stable is false, "
              "near_threshold is true and N, J, Ie are null", file=sys.stderr)
    elif not out["stable"]:
        print(f"unstable: 2 min Re eig(Y) = {-out['growth_rate']:.6g} <= 0, the modes run away together at growth rate "
              f"{out['growth_rate']:.6g} (no steady state; N, J, Ie are null)", file=sys.stderr)
    if args.json:
        print_json(out)
        return 0
    print(f"{'mode':6s}{'omega':>12s}{'gamma':>12s}{'n_th':>12s}{'N':>14s}{'T_eff':>14s}{'mu_eff':>14s}"
          f"{'|u|':>10s}{'arg u':>10s}")
    for k, (m, u) in enumerate(zip(out["modes"], out["unstable_mode"], strict=True)):
        z = complex(u["re"], u["im"])
        print(f"{k:<6d}" + "".join(f"{num(m[q]):>12s}" for q in ("omega", "gamma", "n_th"))
              + "".join(f"{num(m[q]):>14s}" for q in ("N", "T_eff", "mu_eff")) + f"{num(abs(z)):>10s}"
              + f"{num(float(np.angle(z))):>10s}")
    print()
    print(f"{'channel':8s}{'mu':>12s}{'emission':>14s}{'absorption':>14s}{'J':>14s}{'Ie':>14s}   (jump rates per unit time)")
    for c, r in out["channels"].items():
        print(f"{c:8s}{num(r['mu']):>12s}" + "".join(f"{num(r[k]):>14s}"
                                                   for k in ("emission_rate", "absorption_rate", "J", "Ie")))
    print()
    for k in ("n_modes", "stable", "near_threshold", "growth_rate", "margin", "N", "J", "J_ph", "Ie"):
        print(f"{k:18s}{num(out[k])}")
    print(f"{'clusters':18s}{out['clusters']}")
    print(f"{'cluster_freqs':18s}[{', '.join(num(w) for w in out['cluster_frequencies'])}]")
    print(f"{'coherence_width':18s}{num(out['coherence_width'])}")
    lamb_shift_line(out)
    if args.landauer:
        la = out["landauer"]
        print(f"{'landauer':18s}level={la['level']} J={num(la['J'])} (+-{num(la['J_err'])}) "
              f"Ie={num(la['Ie'])} (+-{num(la['Ie_err'])}) valid={la['valid']}")
    if args.lindblad:
        li = out["lindblad"]
        print(f"{'lindblad':18s}N={li['N']} cutoffs={li['cutoffs']} P_top={li['P_top']}")
    for c in out["coherences"]:
        z = "-" if c["re"] is None else f"{num(c['re'])} {'+' if c['im'] >= 0 else '-'} {num(abs(c['im']))}i"
        print(f"{'C_' + str(c['m']) + str(c['n']):18s}{z}")
    return 0
