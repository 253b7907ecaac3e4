r"""Instability maps: ``kappa`` over two parameters and the stable/unstable boundary.

The mode's relaxation rate (docs/theory.md)

.. math::

    \kappa = \Gamma_e + \gamma_{ph} = \sum_c \Lambda_c(\Omega) + \gamma_{ph}

is swept over a grid of two numeric config keys ``(y, x)`` (``x`` varying fastest) with
:func:`sim.sweep.sweep`. The boundary ``kappa = 0`` is located two ways:

- on the grid: along ``x`` for each ``y``, the first sign change of ``kappa``,
  linearly interpolated (:func:`zero_crossing`); error ``O(dx^2 kappa''/kappa')``;
- by the root finder: :func:`analysis.threshold.find_threshold` along ``x`` for each ``y``
  (Brent's method, ``xtol = 1e-12``).

Either side of the boundary the mean population obeys ``dN/dt = S - kappa N``
(``S = E + gamma_ph n_ph``): it relaxes at rate ``kappa > 0`` or runs away at growth rate
``-kappa > 0``.

Several modes (``config.n_modes > 1``): ``kappa`` is replaced by the stability margin
``2 min Re eig(Y)`` (column ``margin`` of the sweep table; equal to ``kappa`` for one mode),
the threshold by its zero (:func:`analysis.threshold.find_threshold`), and ``N`` by the total
``sum_k N_k`` of the covariance ``C(t)`` (:meth:`sim.covariance.ModeSystem.covariance`),
with per-mode ``N_k`` columns.

:func:`confirm_runs` evolves ``N(t)`` on each side (closed form
:meth:`sim.rate_equation.RateModel.N_t`, or the birth-death master equation of
:mod:`sim.population`) and measures the rate from the time series alone, as the slope of
``dN/dt`` against ``N`` (:func:`fitted_kappa`). Units: rates in energy units, time in
1/energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from sim.config import Config, ConfigError
from sim.parallel import Scheduler
from sim.sweep import Grid, GridAxis, sweep
from sim.system import System

from .threshold import find_threshold

__all__ = [
    "InstabilityMap", "zero_crossing", "instability_map", "threshold_curve", "fitted_kappa", "confirm_runs",
    "initial_population",
]


def zero_crossing(x: ArrayLike, k: ArrayLike) -> float:
    """First ``x`` where ``k`` changes sign (linear interpolation); NaN if it never does.

    An exact zero on the grid is returned as is.
    """
    x = np.asarray(x, dtype=float)
    k = np.asarray(k, dtype=float)
    ok = np.isfinite(k)
    x, k = x[ok], k[ok]
    for i in range(len(k)):
        if k[i] == 0.0:
            return float(x[i])
        if i + 1 < len(k) and np.sign(k[i]) != np.sign(k[i + 1]) and k[i + 1] != 0.0:
            return float(x[i] - k[i] * (x[i + 1] - x[i]) / (k[i + 1] - k[i]))
    return float("nan")


@dataclass(frozen=True)
class InstabilityMap:
    """``kappa`` on a ``(y, x)`` grid.

    Attributes
    ----------
    x_key, y_key
        The swept config keys.
    x, y
        Grid values (``x`` fastest in the sweep table).
    kappa
        Array ``(len(y), len(x))`` of ``kappa`` (energy units); ``kappa <= 0`` is unstable.
    table
        The full sweep table (rate-equation columns, see :mod:`sim.sweep`).
    """

    x_key: str
    y_key: str
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    kappa: NDArray[np.float64]
    table: pd.DataFrame

    @classmethod
    def from_table(cls, table: pd.DataFrame, x_key: str, y_key: str) -> InstabilityMap:
        """Rebuild the map from a sweep table with columns ``y_key``, ``x_key``, ``kappa`` (several
        modes: ``margin``, which then fills :attr:`kappa`)."""
        col = "kappa" if "kappa" in table.columns else "margin"
        piv = table.pivot_table(index=y_key, columns=x_key, values=col, sort=True)
        return cls(x_key, y_key, piv.columns.to_numpy(float), piv.index.to_numpy(float), piv.to_numpy(float), table)

    @property
    def stable(self) -> NDArray[np.bool_]:
        return self.kappa > 0

    def boundary(self) -> pd.DataFrame:
        """Per ``y``: the grid estimate of the threshold in ``x`` (column ``threshold_grid``)."""
        return pd.DataFrame({self.y_key: self.y, "threshold_grid": [zero_crossing(self.x, k) for k in self.kappa]})


def instability_map(
    config: Config,
    x: GridAxis | tuple[str, str],
    y: GridAxis | tuple[str, str],
    *,
    scheduler: str | Scheduler = "serial",
    progress: bool | None = None,
) -> InstabilityMap:
    """Sweep ``kappa`` over ``y`` (slow) x ``x`` (fast) and return the map.

    ``x`` and ``y`` are :class:`GridAxis` objects or ``(key, spec)`` pairs such as
    ``("bias.V", "0:2:41")``. ``progress``: tqdm bar on stderr (``None``: when stderr is a terminal).
    """
    from .stats import progress_enabled

    progress = progress_enabled(progress)
    ax = x if isinstance(x, GridAxis) else GridAxis.make(*x)
    ay = y if isinstance(y, GridAxis) else GridAxis.make(*y)
    table = sweep(config, Grid((ay, ax)), scheduler=scheduler, progress=progress)
    return InstabilityMap.from_table(table, ax.key, ay.key)


def threshold_curve(config: Config, x_key: str, between: tuple[float, float], y_key: str,
                    y_values: ArrayLike, progress: bool | None = None) -> pd.DataFrame:
    """The root finder's threshold ``x`` (and ``d kappa/dx`` there) for each ``y``.

    Rows where ``kappa`` does not change sign in ``between`` get NaN. ``progress``: tqdm bar
    on stderr over the ``y`` values (``None``: when stderr is a terminal).
    """
    from .stats import progress_bar

    rows = []
    ys = np.asarray(y_values, dtype=float)
    with progress_bar(len(ys), "threshold curve", "root", progress) as bar:
        for yv in ys:
            rows.append(_threshold_row(config, x_key, between, y_key, float(yv)))
            bar.update(1)
    return pd.DataFrame(rows, columns=[y_key, "threshold", "slope"])


def _threshold_row(config: Config, x_key: str, between: tuple[float, float], y_key: str, yv: float) -> tuple:
    cfg = config.with_value(y_key, float(yv))
    try:
        th = find_threshold(cfg, x_key, between)
    except ConfigError:
        return (yv, np.nan, np.nan)
    return (yv, th.threshold, th.slope)


def fitted_kappa(t: ArrayLike, N: ArrayLike) -> float:
    r"""``kappa`` measured from a time series alone: ``dN/dt = S - kappa N`` -> ``-slope``.

    ``dN/dt`` by second-order finite differences (``numpy.gradient``), then a
    least-squares line ``dN/dt = a + b N``; returns ``-b``. Works for relaxation
    (``kappa > 0``) and growth (``kappa < 0``); needs at least 3 points and a varying ``N``.
    """
    t = np.asarray(t, dtype=float)
    N = np.asarray(N, dtype=float)
    if len(t) < 3 or np.ptp(N) == 0:
        return float("nan")
    dN = np.gradient(N, t, edge_order=2)
    b, _a = np.polyfit(N, dN, 1)
    return float(-b)


def initial_population(spec: str) -> float:
    """Mean ``N0`` of a ``run.initial`` spec for the rate equation (``steady`` not allowed here)."""
    if spec == "vacuum":
        return 0.0
    kind, _, val = spec.partition(":")
    if kind in ("thermal", "fock"):
        return float(val)
    if kind == "coherent":
        return abs(complex(val.replace(" ", ""))) ** 2
    raise ConfigError(f"run.initial = {spec!r} has no fixed initial population for a transient; "
                      "use vacuum, thermal:N, fock:n or coherent:alpha")


def confirm_runs(
    config: Config,
    key: str,
    values: ArrayLike,
    t: ArrayLike,
    *,
    N0: float = 0.0,
    method: str = "rate",
    progress: bool | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evolve ``N(t)`` at each ``key = value`` and measure the relaxation/growth rate.

    Parameters
    ----------
    config
        Base config.
    key, values
        The varied key and its values (one run each), typically either side of a threshold.
    t
        Time grid (1/energy), starting at the initial time.
    N0
        Initial mean population (``method="rate"``); the population route starts from the
        Fock state ``round(N0)``.
    method
        ``"rate"``: closed form ``RateModel.N_t``; ``"population"``: the birth-death master
        equation (:func:`sim.population.evolve_population`; a runaway stops at its
        truncation guard, so its series may end early).
    progress
        tqdm bar on stderr over the runs (``None``: when stderr is a terminal).

    Returns
    -------
    (series, rates)
        ``series``: long table ``key, t, N, method``; ``rates``: per run ``key, kappa,
        growth_rate`` (= -kappa), ``fitted_kappa`` from the series alone, ``stable``,
        ``relaxes`` (the last increment of ``N`` is smaller than the first: ``N`` levels off;
        on a uniform grid), ``method``.
    """
    if method not in ("rate", "population"):
        raise ConfigError(f"method must be rate or population, got {method!r}")
    from .stats import progress_bar

    t = np.asarray(t, dtype=float)
    series, rates = [], []
    vals = np.asarray(values, dtype=float)
    bar = progress_bar(len(vals), "confirm runs", "run", progress)
    built = System(config)  # a bias key varies at solve time on the system built once
    if method != "rate" and built.K != 1:
        raise ConfigError(f"confirm runs with method = {method!r} take one mode (K = {built.K} here); several modes "
                          "run on the covariance route: method = 'rate' (docs/modes.md)")
    for v in vals:
        bar.update(1)
        at, params = built.varied(key, float(v))
        if method == "rate":
            tt = t
            N, Nk = at.mean_population(t, params, N0)
        else:
            from sim.population import evolve_population

            res = evolve_population(at.jump_model(params), t, f"fock:{round(N0)}")
            tt, N = res.t, res.N
            Nk = np.asarray(N)[:, None]
        k = float(at.margins(params)[0])
        kf = fitted_kappa(tt, N)
        dN = np.diff(N)
        relaxes = bool(len(dN) >= 2 and abs(dN[-1]) < abs(dN[0]))  # increments shrink: N levels off
        per_mode = {f"N_{i}": Nk[:, i] for i in range(Nk.shape[1])} if Nk.shape[1] > 1 else {}
        series.append(pd.DataFrame({key: v, "t": tt, "N": N, **per_mode, "method": method}))
        rates.append({key: v, "kappa": k, "growth_rate": -k, "fitted_kappa": kf, "stable": k > 0,
                      "relaxes": relaxes, "method": method})
    bar.close()
    return pd.concat(series, ignore_index=True), pd.DataFrame(rates)

