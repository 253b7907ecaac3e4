r"""Time-dependent bias: adiabatic Markov rates that follow ``mu_L(t), mu_R(t)`` (docs/theory.md).

The electrons are fast, so at every time the channel rates are those of the static
bias ``(mu_L(t), mu_R(t))`` (temperatures and everything else from the config). Three
routes integrate the same physics:

- rate equation: ``dN/dt = E(t) + gamma_ph n_ph - kappa(t) N`` (:func:`evolve_rate_timedep`);
- populations: ``dP/dt = [up_rate(t) A + down_rate(t) B] P`` with the unit-rate parts of
  :func:`sim.population.birth_death_parts` (:func:`evolve_population_timedep`);
- Lindblad: QuTiP with time-dependent collapse operators ``sqrt(rate_l(t)) a^(dagger)``
  (:func:`evolve_lindblad_timedep`).

Rate tables
-----------
``channel_rates`` costs about a millisecond per call but is vectorised over bias points,
so the rates are tabulated once on a fine grid (one vectorised call) and interpolated by
cubic splines. The time axis is cut into *segments* at the schedule's breakpoints
(steps or kinks of the bias): inside a segment the rates are smooth, and the solvers
restart at every breakpoint, so a step in bias is integrated exactly. The interpolation
error is ``O(h^4 |r''''|)`` for node spacing ``h`` (``n_fine`` nodes in all); rates constant
in a segment are exact. Units: time 1/energy, rates energy (hbar = 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import qutip
from numpy.typing import ArrayLike, NDArray
from scipy.integrate import solve_ivp
from scipy.interpolate import CubicSpline

from .config import Config
from .cutoff import DEFAULT_TOL, MAX_CUTOFF, cutoff_for
from .grids import time_grid
from .initial import InitialSpec
from .lindblad import (
    LABELS,
    LINDBLAD_MAX_CUTOFF,
    LindbladResult,
    guarded_result,
    hamiltonian,
    initial_state,
    mesolve_options,
    run_guarded,
)
from .model import JumpModel as RateModel
from .model import model_at
from .population import (
    OnTruncation,
    PopulationResult,
    TruncationError,
    birth_death_parts,
    stop_message,
)
from .results import TimeSeries

__all__ = [
    "BiasSchedule", "RateEvolution", "RateSegment", "evolve_lindblad_timedep", "evolve_population_timedep",
    "evolve_rate_timedep", "rate_table", "rates_at", "timedep_collapse_operators",
]

Schedule = Callable[[NDArray[np.float64]], ArrayLike]


# --------------------------------------------------------------------------- bias schedules

@dataclass(frozen=True)
class _Table:
    """Right-continuous piecewise-linear interpolation; a repeated time is a jump."""

    t: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        t, y = np.asarray(self.t), np.asarray(self.y)
        x = np.asarray(x, dtype=float)
        i = np.clip(np.searchsorted(t, x, side="right") - 1, 0, t.size - 1)
        j = np.minimum(i + 1, t.size - 1)
        dt = t[j] - t[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(dt > 0, (x - t[i]) / np.where(dt > 0, dt, 1.0), 0.0)
        f = np.clip(f, 0.0, 1.0)
        return y[i] + f * (y[j] - y[i])


def _vectorised(f: Schedule, t: NDArray[np.float64]) -> NDArray[np.float64]:
    try:
        out = np.asarray(f(t), dtype=float)
        return np.broadcast_to(out, t.shape).astype(float)
    except (TypeError, ValueError):
        return np.array([float(f(x)) for x in t.ravel()]).reshape(t.shape)


@dataclass(frozen=True)
class BiasSchedule:
    """Chemical potentials ``mu_L(t)``, ``mu_R(t)`` (energy units) as functions of time.

    Build with :meth:`from_functions`, :meth:`from_table`, :meth:`step` or
    :meth:`constant`. Functions should accept numpy arrays (scalar functions are
    called point by point). ``breakpoints`` are the times where the bias is not smooth
    (jumps, kinks); the solvers restart there. Schedules are right-continuous.
    """

    mu_L: Schedule
    mu_R: Schedule
    breakpoints: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (callable(self.mu_L) and callable(self.mu_R)):
            raise TypeError("BiasSchedule needs callables mu_L(t) and mu_R(t)")
        bp = tuple(sorted({float(b) for b in self.breakpoints}))
        if not all(math.isfinite(b) for b in bp):
            raise ValueError(f"breakpoints must be finite, got {bp}")
        object.__setattr__(self, "breakpoints", bp)

    def __call__(self, t: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(mu_L(t), mu_R(t))`` on the times ``t``."""
        t = np.asarray(t, dtype=float)
        return _vectorised(self.mu_L, t), _vectorised(self.mu_R, t)

    @classmethod
    def from_functions(cls, mu_L: Schedule, mu_R: Schedule, breakpoints: ArrayLike = ()) -> BiasSchedule:
        return cls(mu_L, mu_R, tuple(np.atleast_1d(np.asarray(breakpoints, dtype=float)).tolist()))

    @classmethod
    def from_table(cls, t: ArrayLike, mu_L: ArrayLike, mu_R: ArrayLike) -> BiasSchedule:
        """Linear interpolation of a table, constant outside it; a repeated time is a jump."""
        t, L, R = (np.asarray(x, dtype=float).ravel() for x in (t, mu_L, mu_R))
        if not (t.size == L.size == R.size) or t.size == 0:
            raise ValueError(f"table columns must have one common, non-zero length, got {t.size}, {L.size}, {R.size}")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(L)) and np.all(np.isfinite(R))):
            raise ValueError("table values must be finite")
        if np.any(np.diff(t) < 0):
            raise ValueError("table times must be non-decreasing")
        if np.any(t[2:] == t[:-2]):
            raise ValueError("a table time may appear at most twice (a jump)")
        return cls(_Table(tuple(t), tuple(L)), _Table(tuple(t), tuple(R)), tuple(t.tolist()))

    @classmethod
    def step(cls, t_step: float, before: tuple[float, float], after: tuple[float, float]) -> BiasSchedule:
        """``(mu_L, mu_R) = before`` for ``t < t_step``, ``after`` from ``t_step`` on."""
        return cls.from_table([t_step, t_step], [before[0], after[0]], [before[1], after[1]])

    @classmethod
    def constant(cls, mu_L: float, mu_R: float) -> BiasSchedule:
        return cls.from_table([0.0], [mu_L], [mu_R])


def rates_at(config: Config, schedule: BiasSchedule, t: ArrayLike) -> RateModel:
    """:class:`RateModel` with the adiabatic rates at the times ``t`` (vectorised).

    One ``channel_rates`` call over the bias points ``(mu_L(t), mu_R(t))``; the rate
    arrays have shape ``(4,) + shape(t)``. Temperatures, ``Omega`` and the ph-bath
    come from ``config``.
    """
    mu_L, mu_R = schedule(t)
    return model_at(config, mu_L, mu_R)


# --------------------------------------------------------------------------- rate tables

@dataclass(frozen=True)
class RateSegment:
    """Rates tabulated on nodes ``t`` of one smooth segment ``[t0, t1]`` of the schedule.

    ``label`` has shape ``(10, n)`` in the order of :data:`sim.lindblad.LABELS`;
    ``up``, ``down`` are the birth-death coefficients, ``kappa`` the relaxation rate.
    Nodes at the ends are evaluated just inside the segment (one-sided limits).
    """

    t0: float
    t1: float
    t: NDArray[np.float64]
    mu_L: NDArray[np.float64]
    mu_R: NDArray[np.float64]
    label: NDArray[np.float64]
    up: NDArray[np.float64]
    down: NDArray[np.float64]
    kappa: NDArray[np.float64]

    def spline(self, y: NDArray[np.float64]) -> Callable[[float], float]:
        """Cubic spline of node values ``y`` (constant data: a constant)."""
        if np.all(y == y[0]):
            c = float(y[0])
            return lambda _t: c
        return CubicSpline(self.t, y)


def rate_table(config: Config, schedule: BiasSchedule, t_start: float, t_end: float,
               n_fine: int = 2001) -> tuple[RateSegment, ...]:
    """Segments of ``[t_start, t_end]`` cut at the breakpoints, with rates on fine nodes.

    About ``n_fine`` nodes in all, shared in proportion to the segment lengths
    (at least 9 per segment); all bias points are evaluated in one vectorised call.
    """
    if not t_end > t_start:
        raise ValueError(f"t_end must be > t_start, got {t_start}, {t_end}")
    cuts = [t_start, *[b for b in schedule.breakpoints if t_start < b < t_end], t_end]
    span = t_end - t_start
    nodes, probes = [], []
    for a, b in zip(cuts[:-1], cuts[1:], strict=True):
        n = max(9, math.ceil(n_fine * (b - a) / span))
        x = np.linspace(a, b, n)
        eps = 1e-9 * (b - a)
        nodes.append(x)
        probes.append(np.clip(x, a + eps, b - eps))
    model = rates_at(config, schedule, np.concatenate(probes))
    mu_L, mu_R = schedule(np.concatenate(probes))
    lab = np.asarray(model.label_rates, dtype=float)
    up, down, kappa = (np.asarray(x, dtype=float) for x in (model.up_rate, model.down_rate, model.kappa))
    out, k = [], 0
    for (a, b), x in zip(zip(cuts[:-1], cuts[1:], strict=True), nodes, strict=True):
        s = slice(k, k + x.size)
        out.append(RateSegment(a, b, x, mu_L[s], mu_R[s], lab[:, s], up[s], down[s], kappa[s]))
        k += x.size
    return tuple(out)


def _segment_runs(t: NDArray[np.float64], segments: tuple[RateSegment, ...]
                  ) -> Iterator[tuple[RateSegment, NDArray[np.float64], NDArray[np.bool_]]]:
    """Per segment: the solver's times ``[t0, user times in (t0, t1], t1]`` and which are user times."""
    for seg in segments:
        inside = t[(t > seg.t0) & (t <= seg.t1)]
        run = np.unique(np.concatenate([[seg.t0], inside, [seg.t1]]))
        yield seg, run, np.isin(run, inside)


# --------------------------------------------------------------------------- rate equation

@dataclass(frozen=True)
class RateEvolution(TimeSeries):
    """Mean population under a time-dependent bias.

    ``t``, ``N``; the bias ``mu_L``, ``mu_R``; the instantaneous ``kappa(t)`` and
    ``N_ss(t) = source(t)/kappa(t)`` (NaN where ``kappa <= 0``) for comparison.
    """

    t: NDArray[np.float64]
    N: NDArray[np.float64]
    mu_L: NDArray[np.float64]
    mu_R: NDArray[np.float64]
    kappa: NDArray[np.float64]
    N_ss: NDArray[np.float64]


def evolve_rate_timedep(config: Config, schedule: BiasSchedule, t: ArrayLike, N0: float = 0.0, *,
                        n_fine: int = 2001, rtol: float = 1e-10, atol: float = 1e-12) -> RateEvolution:
    r"""Integrate ``dN/dt = [E(t) + gamma_ph n_ph] - kappa(t) N`` with ``solve_ivp`` (DOP853).

    Rates from :func:`rate_table` (cubic splines inside each smooth segment, restart at
    every breakpoint). ``t[0]`` is the time of ``N0``; times in 1/energy.
    """
    t = time_grid(t, min_points=2)
    segments = rate_table(config, schedule, float(t[0]), float(t[-1]), n_fine)
    N = [float(N0)]
    y = float(N0)
    for seg, run, keep in _segment_runs(t, segments):
        up, kap = seg.spline(seg.up), seg.spline(seg.kappa)
        sol = solve_ivp(lambda s, n, up=up, kap=kap: up(s) - kap(s) * n, (seg.t0, seg.t1), [y], method="DOP853",
                        t_eval=run, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"rate equation integration failed: {sol.message}")
        N.extend(sol.y[0][keep])
        y = float(sol.y[0][-1])
    model = rates_at(config, schedule, t)
    return RateEvolution(t, np.array(N), *schedule(t), np.asarray(model.kappa, dtype=float),
                         np.asarray(model.N_ss(), dtype=float))


# --------------------------------------------------------------------------- populations

def _timedep_cutoff(config, schedule, t, spec, model0, tol, max_cutoff, n_fine, cutoff=None) -> tuple[int, float]:
    """Cutoff (automatic unless given) and predicted ``P(n >= cutoff - 1)`` from the largest of
    ``N0``, ``N_rate(t)`` and the instantaneous ``N_ss(t)`` (rule of :func:`sim.population.choose_cutoff`)."""
    rate = evolve_rate_timedep(config, schedule, t, spec.mean(model0), n_fine=n_fine)
    Ns = np.concatenate([[spec.mean(model0)], rate.N, rate.N_ss[np.isfinite(rate.N_ss)]])
    N = float(np.max(Ns)) if np.all(np.isfinite(Ns)) else math.inf
    return cutoff_for(N, spec, model0, tol=tol, max_cutoff=max_cutoff, cutoff=cutoff)


def evolve_population_timedep(
    config: Config,
    schedule: BiasSchedule,
    t: ArrayLike,
    initial: str | InitialSpec | ArrayLike = "vacuum",
    cutoff: int | None = None,
    *,
    tol: float = DEFAULT_TOL,
    max_cutoff: int = MAX_CUTOFF,
    n_fine: int = 2001,
    rtol: float = 1e-10,
    atol: float | None = None,
    on_truncation: OnTruncation = None,
) -> PopulationResult:
    r"""Birth-death master equation with ``G(t) = up_rate(t) A + down_rate(t) B`` (``solve_ivp``).

    Same cutoff rule and guard as :func:`sim.population.evolve_population`; the guard is a
    terminal event ``P_{cutoff-1}(t) = tol`` of the integrator, so ``stopped_at`` is exact
    to the solver tolerance. ``initial = "steady"`` is the steady state at ``t[0]``.
    DOP853 while ``max(up + down) cutoff (t_end - t_0)`` is moderate, else BDF with the
    sparse Jacobian ``G(t)``. ``atol`` defaults to ``1e-6 tol``: in a growing mode the
    absolute errors of the nearly empty top levels are amplified, and the guard needs the
    top level accurate at the ``tol`` scale. The default (None) ``on_truncation`` returns
    the partial result when ``kappa(t) <= 0`` somewhere on the table, and raises otherwise.
    """
    atol = 1e-6 * tol if atol is None else atol
    t = time_grid(t, min_points=2)
    model0, spec = rates_at(config, schedule, float(t[0])), InitialSpec.parse(initial)
    cutoff, tail = _timedep_cutoff(config, schedule, t, spec, model0, tol, max_cutoff, n_fine, cutoff)
    segments = rate_table(config, schedule, float(t[0]), float(t[-1]), n_fine)
    kappa_min = float(min(s.kappa.min() for s in segments))
    stable = kappa_min > 0
    A, B = birth_death_parts(cutoff)
    p = spec.populations(cutoff, model0)
    rows, times, stop = [p], [float(t[0])], None
    if p[-1] > tol:
        rows, times, stop = [], [], float(t[0])
    stiff = max(float((s.up + s.down).max()) for s in segments) * cutoff * (t[-1] - t[0]) > 2e4
    for seg, run, keep in _segment_runs(t, segments) if stop is None else ():
        u, d = seg.spline(seg.up), seg.spline(seg.down)

        def rhs(s, q, u=u, d=d):
            return u(s) * (A @ q) + d(s) * (B @ q)

        def jac(s, q, u=u, d=d):
            return (u(s) * A + d(s) * B).tocsc()

        def guard(s, q):
            return q[-1] - tol

        guard.terminal, guard.direction = True, 1.0
        kw: dict[str, Any] = {"method": "BDF", "jac": jac} if stiff else {"method": "DOP853"}
        sol = solve_ivp(rhs, (seg.t0, seg.t1), p, t_eval=run, events=guard, rtol=rtol, atol=atol, **kw)
        if sol.status < 0:
            raise RuntimeError(f"population integration failed: {sol.message}")
        mask = keep[: sol.t.size]
        rows.extend(sol.y.T[mask])
        times.extend(sol.t[mask])
        if sol.status == 1:
            stop = float(sol.t_events[0][0])
            break
        p = sol.y[:, -1]
    P = np.array(rows).reshape(len(rows), cutoff)
    top = float(P[:, -1].max()) if len(rows) else float("nan")
    msg = None if stop is None else stop_message(kappa_min, stable, stop, cutoff, tol)
    result = PopulationResult(np.array(times), P, P @ np.arange(cutoff), cutoff, tail, top, stop, msg)
    if stop is not None and (not rows or (on_truncation or ("raise" if stable else "return")) == "raise"):
        raise TruncationError(msg, stop, result)
    return result


# --------------------------------------------------------------------------- Lindblad

def timedep_collapse_operators(segment: RateSegment, cutoff: int) -> list[tuple[str, str, qutip.QobjEvo]]:
    """Labelled time-dependent collapse operators on one segment.

    ``(channel, direction, QobjEvo)`` with ``L(t) = sqrt(rate(t)) a^dagger`` (emission) or
    ``sqrt(rate(t)) a`` (absorption); the coefficient is QuTiP's cubic spline of
    ``sqrt(rate)`` on the segment's nodes. Labels whose rate vanishes on the whole segment
    are left out; the order is that of :func:`sim.lindblad.collapse_operators`.
    """
    a = qutip.destroy(cutoff)
    out = []
    for (c, d), r in zip(LABELS, segment.label, strict=True):
        if np.any(r > 0):
            op = a.dag() if d == "emission" else a
            coeff = qutip.coefficient(np.sqrt(np.clip(r, 0.0, None)), tlist=segment.t)
            out.append((c, d, qutip.QobjEvo([op, coeff])))
    return out


def evolve_lindblad_timedep(
    config: Config,
    schedule: BiasSchedule,
    t: ArrayLike,
    initial: str | InitialSpec | qutip.Qobj = "vacuum",
    cutoff: int | None = None,
    *,
    tol: float = DEFAULT_TOL,
    max_cutoff: int = LINDBLAD_MAX_CUTOFF,
    n_fine: int = 2001,
    options: dict[str, Any] | None = None,
    on_truncation: OnTruncation = None,
) -> LindbladResult:
    """Lindblad route under a time-dependent bias: ``qutip.MESolver`` with time-dependent
    collapse operators (:func:`timedep_collapse_operators`), restarted at every breakpoint.

    Cutoff rule, guard and options as in :func:`sim.lindblad.evolve_lindblad`.
    """
    t = time_grid(t, min_points=2)
    model0 = rates_at(config, schedule, float(t[0]))
    if isinstance(initial, qutip.Qobj):
        rho = initial if initial.isoper else qutip.ket2dm(initial)
        p = np.clip(np.real(rho.diag()), 0.0, None)
        spec = InitialSpec("distribution", tuple(p / p.sum()))
        cutoff, tail = _timedep_cutoff(config, schedule, t, spec, model0, tol, max_cutoff, n_fine, rho.shape[0])
    else:
        spec = InitialSpec.parse(initial)
        cutoff, tail = _timedep_cutoff(config, schedule, t, spec, model0, tol, max_cutoff, n_fine, cutoff)
        rho = initial_state(spec, cutoff, model0)
    segments = rate_table(config, schedule, float(t[0]), float(t[-1]), n_fine)
    kappa_min = float(min(s.kappa.min() for s in segments))
    H = hamiltonian(model0, cutoff)
    opts = mesolve_options(options, tol)
    Ns, tops, times = [], [], []
    stop = None
    first = True
    for seg, run, keep in _segment_runs(t, segments):
        c_ops = [op for _, _, op in timedep_collapse_operators(seg, cutoff)]
        res = run_guarded(qutip.MESolver(H, c_ops, options=opts), rho, run, tol)
        n = res.t.size
        if first and n:
            Ns.append(res.N[:1])
            tops.append(res.P_top[:1])
            times.append(res.t[:1])
            first = False
        Ns.append(res.N[keep[:n]])
        tops.append(res.P_top[keep[:n]])
        times.append(res.t[keep[:n]])
        if res.stop is not None:
            stop = res.stop
            break
        rho = res.rho
    cat = (np.concatenate(x) if x else np.zeros(0) for x in (times, Ns, tops))
    run_all = replace(res, t=next(cat), N=next(cat), P_top=next(cat), stop=stop, rho=None if stop else rho)
    return guarded_result(run_all, cutoff, tail, tol, kappa_min, on_truncation)
