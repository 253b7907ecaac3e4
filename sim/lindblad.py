r"""QuTiP model of the truncated mode: labelled collapse operators, mesolve, steadystate.

docs/theory.md, with ``D[L] rho = L rho L^dagger - {L^dagger L, rho}/2``:

.. math::

    \dot\rho = -i[\Omega a^\dagger a, \rho]
        + \sum_c \big(\tau^{em}_c D[a^\dagger] + \tau^{abs}_c D[a]\big)\rho
        + \gamma_{ph}(n_{ph} + 1) D[a]\rho + \gamma_{ph} n_{ph} D[a^\dagger]\rho .

Each collapse operator carries a label ``(channel, direction)``: channel in
LL, RR, LR, RL, ph and direction ``emission`` (the bath gives the mode a quantum,
``sqrt(rate) a^dagger``) or ``absorption`` (``sqrt(rate) a``). Rates in energy units
(1/time, hbar = 1); ``Omega`` in energy units.

The Fock space is truncated to ``n = 0 .. cutoff - 1``. In the truncated space
``a^dagger |cutoff - 1> = 0``, so the populations obey exactly the reflecting
birth-death chain of :mod:`sim.population`; the same cutoff rule and the same guard on
the top-level probability apply (see there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import qutip
from numpy.typing import ArrayLike, NDArray
from scipy import optimize

from .cutoff import DEFAULT_TOL, choose_cutoff, predicted_tail
from .grids import time_grid
from .initial import InitialSpec
from .model import LABELS as MODEL_LABELS
from .model import JumpModel as RateModel
from .population import OnTruncation, TruncationError, stop_message, unstable_message
from .progress import progress_bar
from .results import Result, TimeSeries

__all__ = [
    "LABELS", "LINDBLAD_MAX_CUTOFF", "LindbladResult", "LindbladSteady", "collapse_operators", "evolve_lindblad",
    "guarded_result", "hamiltonian", "initial_state", "label_rates", "mesolve_options", "run_guarded", "steady_lindblad",
]

LABELS: tuple[tuple[str, str], ...] = tuple((lab.channel, lab.direction) for lab in MODEL_LABELS)
"""All ``(channel, direction)`` labels in their fixed order (those of :data:`sim.model.LABELS`)."""

LINDBLAD_MAX_CUTOFF = 150
"""Largest automatic cutoff of the Lindblad route (``cutoff^2`` density-matrix elements)."""

DEFAULT_OPTIONS: dict[str, Any] = {"atol": 1e-12, "rtol": 1e-10}
"""mesolve integrator tolerances used unless ``options`` overrides them. ``atol`` must stay
well below the guard's ``tol`` (it is lowered to ``tol/100`` when needed): the top-level
probability the guard watches is itself known only to about ``atol``."""


def label_rates(model: RateModel) -> list[tuple[str, str, NDArray[np.float64]]]:
    """``(channel, direction, rate)`` for every label of :data:`LABELS` (zeros included).

    ``rate`` is ``tau_em_c`` / ``tau_abs_c`` for the electronic channels and
    ``gamma_ph n_ph`` / ``gamma_ph (n_ph + 1)`` for the ph-bath; arrays where the
    model is vectorised over bias points.
    """
    return [(c, d, np.asarray(r, dtype=float)) for (c, d), r in zip(LABELS, model.label_rates, strict=True)]


def _check_cutoff(cutoff: int) -> int:
    if isinstance(cutoff, bool) or not isinstance(cutoff, int | np.integer) or cutoff < 2:
        raise ValueError(f"cutoff must be an integer >= 2, got {cutoff!r}")
    return int(cutoff)


def collapse_operators(model: RateModel, cutoff: int) -> list[tuple[str, str, qutip.Qobj]]:
    """Labelled collapse operators of a scalar model on ``cutoff`` Fock levels.

    Returns ``(channel, direction, L)`` for every label with rate > 0, in the order
    LL, RR, LR, RL, ph and emission before absorption: ``L = sqrt(rate) a^dagger``
    (emission) or ``sqrt(rate) a`` (absorption), ``rate`` in 1/time.
    """
    cutoff = _check_cutoff(cutoff)
    a = qutip.destroy(cutoff)
    ad = a.dag()
    ops = []
    for c, d, rate in label_rates(model):
        if rate.size != 1:
            raise ValueError(f"collapse operators need a scalar-bias RateModel, got rates of shape {rate.shape}")
        g = float(rate)
        if g > 0:
            ops.append((c, d, math.sqrt(g) * (ad if d == "emission" else a)))
    return ops


def hamiltonian(model: RateModel, cutoff: int) -> qutip.Qobj:
    """``H = Omega a^dagger a`` (energy units)."""
    return float(model.omega) * qutip.num(_check_cutoff(cutoff))


def initial_state(spec: str | InitialSpec, cutoff: int, model: RateModel | None = None) -> qutip.Qobj:
    """Density matrix of a ``run.initial`` spec on ``cutoff`` Fock levels.

    ``vacuum``, ``fock:n``; ``thermal:N`` and ``steady`` (the Bose-Einstein state of
    ``model``, which must be stable) are diagonal; ``coherent:alpha`` (complex alpha,
    ``coherent:1+0.5j``) is the pure state with amplitudes
    ``e^{-|alpha|^2/2} alpha^n / sqrt(n!)``. Truncated states are renormalised.
    """
    cutoff = _check_cutoff(cutoff)
    s = InitialSpec.parse(spec)
    if s.kind != "coherent":
        return qutip.Qobj(np.diag(s.populations(cutoff, model)))
    alpha = complex(s.value)
    amp = np.sqrt(s.populations(cutoff, model)) * np.exp(1j * np.angle(alpha) * np.arange(cutoff))
    return qutip.ket2dm(qutip.Qobj(amp / np.linalg.norm(amp)))


def _spec_of_state(rho: qutip.Qobj) -> InitialSpec:
    p = np.clip(np.real(rho.diag()), 0.0, None)
    return InitialSpec("distribution", tuple(p / p.sum()))


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class LindbladResult(TimeSeries):
    """mesolve on a time grid.

    Attributes
    ----------
    t, N : (n_t,) arrays
        Times (1/energy) and ``N(t) = Tr[a^dagger a rho(t)]``, up to ``stopped_at``.
    P_top : (n_t,) array
        Probability of the top Fock level ``cutoff - 1`` (the guard's quantity).
    rho : qutip.Qobj or None
        The state at the last time; None when the guard stopped the run.
    cutoff : int
    tail_probability : float
        Predicted ``P(n >= cutoff - 1)`` (:func:`sim.population.predicted_tail`).
    stopped_at : float or None
        Time at which the top level reached ``tol`` (interpolated between grid points).
    message : str or None
    """

    t: NDArray[np.float64]
    N: NDArray[np.float64]
    P_top: NDArray[np.float64]
    rho: qutip.Qobj | None
    cutoff: int
    tail_probability: float
    stopped_at: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class LindbladSteady(Result):
    """``qutip.steadystate`` of the truncated mode, or the instability verdict.

    ``tail_probability`` is the probability of the top Fock level in the computed
    state. Unstable (``kappa <= 0``): ``stable = False``, ``N`` and ``tail_probability``
    NaN (``null`` in :meth:`to_dict`), ``rho`` None and a plain-words ``message``.
    """

    N: float
    cutoff: int | None
    tail_probability: float
    stable: bool
    rho: qutip.Qobj | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``lindblad`` record of ``ehp steady --json`` (non-finite -> None)."""
        def clean(x):
            return float(x) if x is not None and math.isfinite(x) else None

        return {"N": clean(self.N), "cutoff": self.cutoff if self.stable else None,
                "tail_probability": clean(self.tail_probability)}


# --------------------------------------------------------------------------- solvers

_CHUNK = 50  # time points per solver run, so that the guard can stop a runaway early
_RELAX = 100.0  # a stable mode has relaxed after 100/kappa: coherences decay at kappa/2 (e^-50), populations at kappa
_STEP_SPAN = 100.0  # solver output points are at most 100/||L|| apart, so its steps per output stay below nsteps
_MAX_POINTS = 200_000  # largest number of solver output points (about a minute of mesolve): beyond it, refuse


def mesolve_options(options: dict[str, Any] | None, tol: float = DEFAULT_TOL) -> dict[str, Any]:
    """Our defaults (tight tolerances, no stored states, final state kept) updated by ``options``."""
    base = {**DEFAULT_OPTIONS, "store_states": False, "store_final_state": True}
    base["atol"] = min(base["atol"], 1e-2 * tol)
    return {**base, **(options or {})}


@dataclass(frozen=True)
class _Run:
    t: NDArray[np.float64]
    N: NDArray[np.float64]
    P_top: NDArray[np.float64]
    rho: qutip.Qobj | None
    stop: float | None


def _top_at(solver: qutip.MESolver, rho: qutip.Qobj, t0: float, t1: float) -> float:
    res = solver.run(rho, [t0, t1])
    return float(np.real(res.final_state.diag()[-1]))


def _refine_stop(solver: qutip.MESolver, rho: qutip.Qobj, t0: float, t1: float, tol: float) -> float:
    """Time in ``(t0, t1]`` at which ``P_top`` reaches ``tol``, starting from ``rho`` at ``t0``."""
    if _top_at(solver, rho, t0, t1) <= tol:
        return t1
    return float(optimize.brentq(lambda tau: _top_at(solver, rho, t0, tau) - tol, t0, t1,
                                 xtol=1e-10 * max(1.0, abs(t1)), rtol=1e-10))


def run_guarded(solver: qutip.MESolver, rho0: qutip.Qobj, t: NDArray[np.float64], tol: float,
                progress: bool | None = None) -> _Run:
    """Run ``solver`` on ``t`` in chunks, watching ``P_top = <cutoff-1|rho|cutoff-1>``.

    At the first grid time where ``P_top > tol`` the run stops; the crossing time is
    found by Brent's method, restarting the solver from the last good state.
    The solver must keep the final state (``store_final_state=True``). ``progress``: a bar
    over the time grid on stderr (None: when stderr is a terminal).
    """
    with progress_bar(t.size - 1, "lindblad", "step", progress) as bar:
        return _run_guarded(solver, rho0, t, tol, bar)


def _run_guarded(solver, rho0, t, tol, bar) -> _Run:
    K = rho0.shape[0]
    e_ops = [qutip.num(K), qutip.fock_dm(K, K - 1)]
    Ns: list[NDArray[np.float64]] = []
    tops: list[NDArray[np.float64]] = []
    rho = rho0
    if float(np.real(rho0.diag()[-1])) > tol:
        return _Run(t[:0], t[:0], t[:0], None, float(t[0]))
    i = 0
    while True:
        j = min(i + _CHUNK, t.size - 1)
        chunk = t[i: j + 1]
        start = rho
        res = solver.run(rho, chunk, e_ops=e_ops)
        N = np.real(np.asarray(res.expect[0], dtype=complex))
        top = np.real(np.asarray(res.expect[1], dtype=complex))
        bad = np.flatnonzero(top > tol)
        if bad.size:
            k = int(bad[0])
            good = solver.run(start, chunk[: k]).final_state if k > 1 else start
            t0, t1 = float(chunk[k - 1]), float(chunk[k])
            stop = _refine_stop(solver, good, t0, t1, tol)
            Ns.append(N[(i > 0): k])
            tops.append(top[(i > 0): k])
            n = sum(x.size for x in Ns)
            return _Run(t[:n], np.concatenate(Ns), np.concatenate(tops), None, stop)
        Ns.append(N[(i > 0):])
        tops.append(top[(i > 0):])
        bar.update(j - i)
        rho = res.final_state
        if j >= t.size - 1:
            return _Run(t, np.concatenate(Ns), np.concatenate(tops), rho, None)
        i = j


def guarded_result(run: _Run, cutoff: int, tail: float, tol: float, kappa: float,
                   on_truncation: OnTruncation) -> LindbladResult:
    """Turn a guarded run into a :class:`LindbladResult`, raising where the rules say so."""
    if run.stop is None:
        return LindbladResult(run.t, run.N, run.P_top, run.rho, cutoff, tail)
    stable = kappa > 0
    msg = stop_message(kappa, stable, run.stop, cutoff, tol)
    result = LindbladResult(run.t, run.N, run.P_top, None, cutoff, tail, run.stop, msg)
    if run.t.size == 0 or (on_truncation or ("raise" if stable else "return")) == "raise":
        raise TruncationError(msg, run.stop, result)
    return result


def evolve_lindblad(
    model: RateModel,
    t: ArrayLike,
    initial: str | InitialSpec | qutip.Qobj = "vacuum",
    cutoff: int | None = None,
    *,
    tol: float = DEFAULT_TOL,
    max_cutoff: int = LINDBLAD_MAX_CUTOFF,
    options: dict[str, Any] | None = None,
    on_truncation: OnTruncation = None,
    progress: bool | None = None,
) -> LindbladResult:
    """Evolve the section-4 Lindblad equation with QuTiP's master-equation solver; returns ``N(t)``.

    The solver is ``qutip.MESolver`` (the engine behind ``qutip.mesolve``), run in
    chunks of the grid so that the top-level guard can stop a runaway early.

    Parameters
    ----------
    model
        Scalar :class:`RateModel`.
    t
        Strictly increasing time grid (1/energy); ``t[0]`` is the time of ``initial``.
    initial
        ``run.initial`` spec or a density matrix on ``cutoff`` levels.
    cutoff
        Fock levels; default :func:`sim.population.choose_cutoff` (capped at ``max_cutoff``).
    tol
        Guard on the top-level probability (as in :func:`sim.population.evolve_population`).
    options
        mesolve options, merged over :data:`DEFAULT_OPTIONS` (``atol = min(1e-12, tol/100)``,
        ``rtol = 1e-10``, ``store_states=False``, ``store_final_state=True``).
    on_truncation
        ``"raise"``, ``"return"``, or None: return for an unstable model, raise otherwise.
    progress
        A bar over the time grid on stderr (None: when stderr is a terminal).
    """
    t = time_grid(t)
    if isinstance(initial, qutip.Qobj):
        rho0 = initial if initial.isoper else qutip.ket2dm(initial)
        if cutoff is not None and rho0.shape[0] != cutoff:
            raise ValueError(f"initial state has {rho0.shape[0]} levels, cutoff is {cutoff}")
        cutoff = rho0.shape[0]
        tail = predicted_tail(model, _spec_of_state(rho0), cutoff, t)
    else:
        if cutoff is None:
            cutoff, tail = choose_cutoff(model, initial, t, tol=tol, max_cutoff=max_cutoff)
        else:
            tail = predicted_tail(model, initial, cutoff, t)
        rho0 = initial_state(initial, cutoff, model)
    cutoff = _check_cutoff(cutoff)
    c_ops = [op for _, _, op in collapse_operators(model, cutoff)]
    H = hamiltonian(model, cutoff)
    solver = qutip.MESolver(H, c_ops, options=mesolve_options(options, tol))
    tt, keep, relaxed = _solver_grid(model, t, cutoff, tol)
    run = run_guarded(solver, rho0, tt, tol, progress)
    n = int(np.count_nonzero(keep[: run.t.size]))
    if relaxed is not None and run.stop is None:  # the rest of the grid is the steady state (verified)
        run = _steady_tail(run, keep, relaxed, H, c_ops, t, float(model.kappa))
    else:
        run = _Run(t[:n], run.N[keep[: run.t.size]], run.P_top[keep[: run.t.size]], run.rho, run.stop)
    return guarded_result(run, cutoff, tail, tol, float(model.kappa), on_truncation)


def _solver_grid(model: RateModel, t: NDArray[np.float64], cutoff: int, tol: float
                 ) -> tuple[NDArray[np.float64], NDArray[np.bool_], float | None]:
    """The solver's output times: the grid up to the horizon, with points inserted where it is coarse.

    ``mesolve`` takes at most ``nsteps`` steps between two output times, and a step cannot be much
    longer than ``1/||L||`` (``||L|| = cutoff (sum of the rates + Omega)``, the fastest rate of the
    truncated Liouvillian): a grid spacing of ``kappa dt >> 1`` failed with "Excess work done".
    Points are inserted so that no two are more than ``100/||L||`` apart, up to the horizon:

    - stable: ``100/kappa`` after ``t[0]`` (everything has relaxed to ``e^-50``); the grid beyond it
      is given the steady state (:func:`_steady_tail`, after checking the state has reached it);
    - unstable: twice the rate-equation time for ``N`` to fill the cutoff (the guard stops earlier).

    More than :data:`_MAX_POINTS` points is refused (:class:`sim.guards.GuardError`), naming t_end.
    Returns ``(times, keep, relaxed_at)``: ``keep`` marks the times of ``t``; ``relaxed_at`` is the
    horizon when the grid goes beyond it on the stable side, else None.
    """
    k = float(model.kappa)
    rates = float(np.sum(model.label_rates)) + float(model.omega)
    norm = cutoff * rates
    span = float(t[-1] - t[0])
    if bool(model.stable):
        horizon = _RELAX / k
    else:
        n_cap = max(1.0, (cutoff - 1) / math.log(1.0 / tol))
        src = max(float(model.source), np.finfo(float).tiny)
        horizon = 2 * (math.log1p(n_cap * abs(k) / src) / abs(k) if k != 0 else n_cap / src)
    run_to = min(span, horizon)
    h = _STEP_SPAN / norm
    n_inner = math.ceil(run_to / h) if run_to > 0 else 0
    if n_inner > _MAX_POINTS:
        from .guards import GuardError

        what = "relaxes" if bool(model.stable) else "runs away"
        raise GuardError(
            f"t_end = {float(t[-1]):.6g} on the lindblad route: the mode {what} over t = {run_to:.3g} "
            f"(kappa = {k:.6g}) while the Liouvillian's fastest rate is {norm:.3g} (cutoff {cutoff}), "
            f"{n_inner:.3g} solver steps > {_MAX_POINTS}; use --method population (exact for any t_end) "
            "or a smaller cutoff or t_end")
    t0 = float(t[0])
    inner = t0 + np.linspace(0.0, run_to, n_inner + 1) if n_inner else np.array([t0])
    grid = t[t - t0 <= run_to]
    tt = np.union1d(grid, inner)
    keep = np.isin(tt, grid)
    relaxed = t0 + run_to if (bool(model.stable) and span > horizon) else None
    return tt, keep, relaxed


def _steady_tail(run: _Run, keep: NDArray[np.bool_], relaxed: float, H: qutip.Qobj, c_ops: list, t: NDArray[np.float64],
                 kappa: float) -> _Run:
    """Fill the grid beyond the horizon ``relaxed`` (``100/kappa``) with the steady state.

    ``qutip.steadystate`` gives ``rho_ss``; the state the solver reached at the horizon must agree
    with it to ``1e-8`` in every element (mesolve's own error, ``rtol = 1e-10`` over the run, is
    below that), else :class:`sim.guards.NumericalError`.
    """
    from .guards import NumericalError

    rho_ss = qutip.steadystate(H, c_ops, method="direct")
    diff = float(np.max(np.abs((run.rho - rho_ss).full())))
    if not diff <= 1e-8:
        raise NumericalError(f"the Lindblad state at t = {relaxed:.6g} (100/kappa, kappa = {kappa:.6g}) differs from "
                             f"the steady state by {diff:.3g} > 1e-8: it has not relaxed; use --method population")
    K = rho_ss.shape[0]
    N_ss = float(np.real(qutip.expect(qutip.num(K), rho_ss)))
    top_ss = float(np.real(rho_ss.diag()[-1]))
    N = np.concatenate([run.N[keep], np.full(t.size - int(np.count_nonzero(keep)), N_ss)])
    top = np.concatenate([run.P_top[keep], np.full(N.size - int(np.count_nonzero(keep)), top_ss)])
    return _Run(t, N, top, rho_ss, None)


def steady_lindblad(model: RateModel, cutoff: int | None = None, *, tol: float = DEFAULT_TOL,
                    method: str = "direct") -> LindbladSteady:
    """Steady state by ``qutip.steadystate``: ``N``, ``cutoff`` and the top-level probability.

    Unstable (``kappa <= 0``): no computation, ``stable = False`` and the message
    "unstable mode: kappa = ... <= 0 ... N grows at rate ...", never a number.
    A top-level probability above ``tol`` raises :class:`TruncationError`.
    """
    kappa = float(model.kappa)
    if not bool(model.stable):  # kappa <= 0, or within round-off of 0 (RateModel.near_threshold)
        return LindbladSteady(float("nan"), None, float("nan"), False, None, unstable_message(kappa))
    if cutoff is None:
        cutoff, _ = choose_cutoff(model, "vacuum", tol=tol, max_cutoff=LINDBLAD_MAX_CUTOFF)
    cutoff = _check_cutoff(cutoff)
    c_ops = [op for _, _, op in collapse_operators(model, cutoff)]
    rho = qutip.steadystate(hamiltonian(model, cutoff), c_ops, method=method)
    N = float(np.real(qutip.expect(qutip.num(cutoff), rho)))
    p_top = float(np.real(rho.diag()[-1]))
    result = LindbladSteady(N, cutoff, p_top, True, rho)
    if p_top > tol:
        raise TruncationError(
            f"truncation: the top Fock level {cutoff - 1} holds probability {p_top:.3g} > {tol:.3g} in the "
            f"Lindblad steady state (cutoff {cutoff}); raise the cutoff", math.inf, result)
    return result
