r"""One model for K >= 1 modes: built once from a config, parameters passed at solve time.

:func:`system` turns a validated config into a :class:`System`: the conductor (and, for an
orbital conductor, its rate-matrix factorisation) is built once; the bias is a *parameter*
given when a result is asked for, as kwant passes ``params`` at solve time::

    s = sim.system(config)                    # K = len(mode.omega) modes, K = 1 included
    s.steady_state()                          # at the config's bias
    s.steady_state({"bias.V": 0.7})           # another bias point, nothing rebuilt
    s.margins({"bias.V": np.linspace(0, 1, 400)})   # stability margin over a batch of bias points

Parameters (:data:`SOLVE_TIME_KEYS`): ``bias.V`` and ``bias.mu0`` (``mu_L = mu0 + V/2``,
``mu_R = mu0 - V/2``) or ``bias.mu_L`` and ``bias.mu_R``; a key left out keeps the config's
value. Values are numbers or arrays (the batch axis over bias points; arrays broadcast).
Other keys change the system itself: set them on the config (:meth:`sim.config.Config.with_value`)
and build again.

Every route reads the system the same way for every K:

- :meth:`System.modes` gives the :class:`sim.covariance.ModeSystem` at one bias point (the
  K x K cluster rate matrices and ph-baths of docs/modes.md; the covariance, Lindblad and
  trajectory routes of several modes run on it). For a flat conductor (K = 1 only) it is
  the 1 x 1 system of the channel rates.
- :meth:`System.jump_model` gives the labelled birth-death jump model of one mode
  (:class:`sim.model.JumpModel`, a batch axis over bias points): the fast path of K = 1
  (closed-form rate equation, exact population propagators, the numba ssa, waiting times).
- :meth:`System.level_chain` gives the labelled Pauli chain over the levels of a ladder config
  (``[mode.potential]`` other than harmonic; :mod:`sim.ladder_time`): the jump process the
  population, Lindblad and trajectory routes run for a ladder, of which the birth-death chain
  of :meth:`System.jump_model` is the harmonic special case.
- :meth:`System.steady_state` is the steady state and stability verdict for every K: the
  rate equation for one mode (the fast path), the Lyapunov covariance otherwise; its
  :meth:`SystemSteady.to_dict` is the ``ehp steady --json`` record, with a ``modes`` list of
  length K whose entries have the same keys for every K.

Units: hbar = k_B = e = 1; energies, rates and chemical potentials in the config's unit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .results import Result

if TYPE_CHECKING:
    import pandas as pd

    from .config import Config
    from .covariance import ModesSteadyState, ModeSystem
    from .level_chain import LevelChain
    from .model import JumpModel
    from .rate_equation import SteadyState

__all__ = ["SOLVE_TIME_KEYS", "System", "SystemSteady", "system", "mode_entries", "solve_time_keys", "flatten_record"]

#: Config keys a built :class:`System` takes at solve time (the bias); others rebuild it.
SOLVE_TIME_KEYS: tuple[str, ...] = ("bias.V", "bias.mu0", "bias.mu_L", "bias.mu_R")

#: The keys of each entry of the ``modes`` list of :meth:`SystemSteady.to_dict` (the same for every K).
MODE_KEYS: tuple[str, ...] = ("omega", "gamma", "n_th", "N", "T_eff", "mu_eff")


def solve_time_keys(keys: Any) -> bool:
    """Whether every key of ``keys`` is a parameter a built :class:`System` takes (:data:`SOLVE_TIME_KEYS`)."""
    return all(k in SOLVE_TIME_KEYS for k in keys)


def _param_array(key: str, value: ArrayLike) -> NDArray[np.float64]:
    from .config_base import ConfigError

    try:
        x = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number or an array of numbers, got {value!r}") from None
    if isinstance(value, bool) or x.dtype == bool or not np.all(np.isfinite(x)):
        raise ConfigError(f"{key} must be finite numbers, got {value!r}")
    return x


@dataclass(frozen=True, eq=False)
class System:
    """The modes of a config with their conductor, built once (see the module docstring).

    Attributes
    ----------
    config
        The validated config: quanta ``mode.omega`` (K of them), couplings, ph-bath, and the
        default bias (the point used when a parameter is not given).
    """

    config: Config

    # ----------------------------------------------------------------- shape

    @property
    def K(self) -> int:
        """Number of modes."""
        return int(self.config.n_modes)

    @property
    def omegas(self) -> NDArray[np.float64]:
        """Quanta ``Omega_k`` (shape (K,), energy)."""
        return np.asarray(self.config.mode.omegas, dtype=float)

    @property
    def ladder(self) -> bool:
        """Whether the mode is a ladder of levels other than the harmonic one (``[mode.potential]``): its jump
        process is then the labelled level chain (:meth:`level_chain`)."""
        pot = getattr(self.config.mode, "potential", None)  # several modes (ModesConfig) are harmonic
        return pot is not None and pot.kind != "harmonic"

    @property
    def orbital(self) -> bool:
        """Whether the conductor has orbitals (rate matrices of any K); a flat conductor has one mode."""
        return self.config.conductor.kind != "flat"

    # ----------------------------------------------------------------- parameters

    def bias(self, params: Mapping[str, ArrayLike] | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``(mu_L, mu_R)`` of the bias points ``params`` (broadcast arrays; the config's values for keys not given).

        Raises
        ------
        ConfigError
            For a key that is not a solve-time parameter, a non-finite value, or ``V``/``mu0``
            given together with ``mu_L``/``mu_R``.
        """
        from .config_base import ConfigError

        p = dict(params or {})
        bad = [k for k in p if k not in SOLVE_TIME_KEYS]
        if bad:
            raise ConfigError(f"{bad[0]} is not a solve-time parameter of a built system (those are "
                              f"{', '.join(SOLVE_TIME_KEYS)}); set it on the config and build again")
        b = self.config.bias
        vals = {k: _param_array(k, v) for k, v in p.items()}
        if ({"bias.V", "bias.mu0"} & vals.keys()) and ({"bias.mu_L", "bias.mu_R"} & vals.keys()):
            raise ConfigError(f"give the bias as bias.V and bias.mu0 or as bias.mu_L and bias.mu_R, not both "
                              f"(got {', '.join(sorted(vals))})")
        if {"bias.V", "bias.mu0"} & vals.keys():
            V = vals.get("bias.V", np.asarray(b.V))
            mu0 = vals.get("bias.mu0", np.asarray(b.mu0))
            mu_L, mu_R = mu0 + V / 2, mu0 - V / 2
        else:
            mu_L = vals.get("bias.mu_L", np.asarray(b.mu_L))
            mu_R = vals.get("bias.mu_R", np.asarray(b.mu_R))
        mu_L, mu_R = np.broadcast_arrays(np.asarray(mu_L, dtype=float), np.asarray(mu_R, dtype=float))
        for name, x in (("bias.mu_L", mu_L), ("bias.mu_R", mu_R), ("bias.V = mu_L - mu_R", mu_L - mu_R)):
            if not np.all(np.isfinite(x)):
                raise ConfigError(f"{name} must be finite, got {x[~np.isfinite(x)].ravel()[:3].tolist()}")
        return mu_L.copy(), mu_R.copy()

    def point(self, params: Mapping[str, ArrayLike] | None = None) -> Config:
        """The config at one bias point ``params`` (what :meth:`sim.config.Config.with_value` would give)."""
        cfg = self.config
        for k, v in (params or {}).items():
            cfg = cfg.with_value(k, float(_param_array(k, v)))
        return cfg

    def varied(self, key: str, value: float) -> tuple[System, dict[str, float]]:
        """``(system, params)`` for ``key = value``: this system and a parameter for a bias key
        (:data:`SOLVE_TIME_KEYS`), or a system built from ``config.with_value(key, value)`` otherwise."""
        if key in SOLVE_TIME_KEYS:
            return self, {key: float(value)}
        return System(self.config.with_value(key, float(value))), {}

    # ----------------------------------------------------------------- built once

    @cached_property
    def _rate_matrices(self):
        """The conductor's :class:`sim.rate_matrices.RateMatrixModel` (orbital conductors; built once)."""
        from .rate_matrices import RateMatrixModel

        cond, M = self.config.conductor.build_modes()
        return RateMatrixModel(cond, M)

    # ----------------------------------------------------------------- models

    def jump_model(self, params: Mapping[str, ArrayLike] | None = None) -> JumpModel:
        """The labelled birth-death model of one mode (:class:`sim.model.JumpModel`), batched over bias points.

        The fast path of K = 1 (channel rates at ``Omega``, Eqs. 5 and 7, plus the ph-bath).

        Raises
        ------
        ConfigError
            For K > 1: several modes have no single birth-death chain (use :meth:`modes`).
        """
        from .config_base import ConfigError
        from .model import model_at

        if self.K != 1:
            raise ConfigError(f"the one-mode birth-death model needs K = 1, this system has K = {self.K} modes; "
                              "several modes run on System.modes() (docs/modes.md)")
        mu_L, mu_R = self.bias(params)
        if mu_L.ndim == 0:
            mu_L, mu_R = float(mu_L), float(mu_R)
        return model_at(self.config, mu_L, mu_R)

    def level_chain(self, params: Mapping[str, ArrayLike] | None = None) -> LevelChain:
        """The labelled Pauli chain over the levels of the mode's ladder at one bias point
        (:func:`sim.ladder_time.ladder_chain`; the harmonic kind gives the birth-death chain on its Fock levels)."""
        from .config_base import ConfigError
        from .ladder_time import ladder_chain

        mu_L, _ = self.bias(params)
        if mu_L.ndim != 0:
            raise ConfigError(f"System.level_chain takes one bias point, got parameters of shape {mu_L.shape}")
        return ladder_chain(self.point(params))

    def modes(self, params: Mapping[str, ArrayLike] | None = None) -> ModeSystem:
        """The :class:`sim.covariance.ModeSystem` at one bias point (any K; a flat conductor: the 1 x 1 system)."""
        from .config_base import ConfigError
        from .covariance import config_mode_system, mode_system_of

        mu_L, mu_R = self.bias(params)
        if mu_L.ndim != 0:
            raise ConfigError(f"System.modes takes one bias point, got parameters of shape {mu_L.shape}")
        if not self.orbital:
            return mode_system_of(self.jump_model(params))
        return config_mode_system(self.config, self._rate_matrices, float(mu_L), float(mu_R))

    def lamb(self, params: Mapping[str, ArrayLike] | None = None) -> NDArray[np.complex128] | None:
        """The Lamb-shift matrix ``L`` (K x K, Hermitian, energy units) at one bias point, or None where
        ``mode.lamb_shift`` is false (the default).

        For several modes it is the :attr:`sim.covariance.ModeSystem.lamb` of :meth:`modes` (it enters their
        drift matrix). For one mode it only renormalises the quantum, ``Omega -> Omega + L``: the rate
        equation's populations, fluxes and stability do not depend on it, and it is reported beside them.
        """
        if not self.config.mode.lamb_shift:
            return None
        if self.K > 1:
            return self.modes(params).lamb
        from .covariance import cluster_lamb_shift

        mu_L, mu_R = self.bias(params)
        b = self.config.bias
        return cluster_lamb_shift(self._rate_matrices, self.omegas, ((0,),), float(mu_L), float(mu_R), b.T_L, b.T_R)

    # ----------------------------------------------------------------- results

    def steady_state(self, params: Mapping[str, ArrayLike] | None = None) -> SystemSteady:
        """Steady state and stability verdict at one bias point, for every K (:class:`SystemSteady`).

        K = 1: the rate equation (Eq. 9 with the ph-bath; :func:`sim.rate_equation.steady_of`).
        K > 1: the Lyapunov covariance ``Y C + C Y^+ = conj(G)`` (docs/modes.md).
        """
        from .rate_equation import steady_of

        if self.K == 1:
            return SystemSteady(one=steady_of(self.jump_model(params)), config=self.config, options=dict(params or {}),
                                lamb=self.lamb(params))
        return SystemSteady(several=self.modes(params).steady_state(), config=self.config, options=dict(params or {}))

    def margins(self, params: Mapping[str, ArrayLike] | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Stability margin and its round-off bound over a batch of bias points (shape of the parameters).

        The margin is ``kappa = Gamma_e + gamma_ph`` for K = 1 (vectorised over the batch) and
        ``2 min Re eig(Y)`` for K > 1 (one eigenproblem per point); positive where stable (energy units).
        """
        mu_L, mu_R = self.bias(params)
        if self.K == 1:
            m = self.jump_model(params)
            return (np.broadcast_to(np.asarray(m.kappa, dtype=float), mu_L.shape).copy(),
                    np.broadcast_to(np.asarray(m.kappa_roundoff, dtype=float), mu_L.shape).copy())
        keys = ("bias.mu_L", "bias.mu_R")
        out, rnd = np.empty(mu_L.shape), np.empty(mu_L.shape)
        for idx in np.ndindex(mu_L.shape):
            s = self.modes(dict(zip(keys, (mu_L[idx], mu_R[idx]), strict=True)))
            out[idx], rnd[idx] = s.margin, s.margin_roundoff
        return out, rnd

    def mean_population(self, t: ArrayLike, params: Mapping[str, ArrayLike] | None = None, N0: float = 0.0
                        ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Mean populations on the grid ``t`` (1/energy, from ``t[0]``) at one bias point: ``(N(t), N_k(t))``.

        The rate route for every K: the closed form of Eq. 8 with the ph-bath from ``N(t[0]) = N0``
        for one mode (the fast path), ``C(t)`` of the covariance equation from the vacuum for several
        (``N_k = C_kk``; ``N0`` must then be 0). Valid on both sides of the threshold (no truncation).
        """
        from .config_base import ConfigError

        t = np.asarray(t, dtype=float)
        if self.K == 1:
            N = np.asarray(self.jump_model(params).N_t(t - t[0], N0), dtype=float)
            return N, N[:, None]
        if N0 != 0:
            raise ConfigError(f"several modes start from the vacuum on this route, got N0 = {N0:g} (run.initial)")
        Nk = np.real(np.diagonal(self.modes(params).covariance(t - t[0]), axis1=-2, axis2=-1))
        return Nk.sum(axis=1), Nk

    def steady_states(self, params: Mapping[str, ArrayLike]) -> list[SystemSteady]:
        """The :class:`SystemSteady` of every bias point of ``params`` (C order of the broadcast batch)."""
        mu_L, mu_R = self.bias(params)
        keys = ("bias.mu_L", "bias.mu_R")
        return [self.steady_state(dict(zip(keys, (float(a), float(b)), strict=True)))
                for a, b in zip(mu_L.ravel(), mu_R.ravel(), strict=True)]

    def steady_columns(self, params: Mapping[str, ArrayLike]) -> dict[str, NDArray] | list[dict[str, Any]]:
        """Sweep columns of every bias point of ``params`` (C order): :meth:`SystemSteady.to_record` per point.

        K = 1: a dict of columns computed for the whole batch at once (one vectorised call for the
        channel rates, :meth:`sim.rate_equation.SteadyState.columns`; the same numbers as point by
        point). Several modes: the list of records, the cluster matrices built point by point on
        the conductor built once.
        """
        if self.K == 1:
            from .rate_equation import steady_of

            mu_L, mu_R = self.bias(params)
            return steady_of(self.jump_model({"bias.mu_L": mu_L.ravel(), "bias.mu_R": mu_R.ravel()})).columns()
        return [st.to_record() for st in self.steady_states(params)]


def system(config: Config) -> System:
    """Build the :class:`System` of a validated config (K >= 1 modes; nothing is computed until asked)."""
    return System(config)


def flatten_record(d: dict[str, Any]) -> dict[str, Any]:
    """The ``ehp steady --json`` record as flat columns: ``channels.LR.J`` -> ``LR.J``; None -> NaN."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k == "channels":
            for c, rec in v.items():
                for q, x in rec.items():
                    out[f"{c}.{q}"] = np.nan if x is None else x
        elif isinstance(v, dict):
            for q, x in v.items():
                out[f"{k}.{q}"] = np.nan if x is None else x
        else:
            out[k] = np.nan if v is None else v
    scalars = {k: v for k, v in out.items() if "." not in k}
    return {**scalars, **{k: v for k, v in out.items() if "." in k}}


def mode_entries(omega: ArrayLike, gamma: ArrayLike, n_th: ArrayLike, N: ArrayLike, T_eff: ArrayLike,
                 mu_eff: ArrayLike) -> list[dict[str, Any]]:
    """The ``modes`` list of the steady-state record: one dict of :data:`MODE_KEYS` per mode (config order)."""
    cols = [np.atleast_1d(np.asarray(x, dtype=float)) for x in (omega, gamma, n_th, N, T_eff, mu_eff)]
    K = cols[0].size
    return [{k: float(np.broadcast_to(c, (K,))[i]) for k, c in zip(MODE_KEYS, cols, strict=True)} for i in range(K)]


@dataclass(frozen=True, kw_only=True)
class SystemSteady(Result):
    """Steady state of K >= 1 modes at one bias point: the rate equation (K = 1) or the covariance route.

    Exactly one of ``one`` (a :class:`sim.rate_equation.SteadyState`) and ``several`` (a
    :class:`sim.covariance.ModesSteadyState`) is set. :meth:`to_dict` is the JSON record of
    ``ehp steady --json``: the keys of that route (which stay as they were), plus for every K
    ``n_modes``, ``stable``, ``near_threshold``, ``growth_rate``, ``margin`` (``kappa`` for one
    mode, ``2 min Re eig(Y)`` for several; energy units), ``modes``, a list of K entries with
    keys ``omega, gamma, n_th, N, T_eff, mu_eff`` (``N`` etc. null where unstable) and, only where
    ``mode.lamb_shift`` is true, ``lamb_shift`` (true) and ``lamb_shift_matrix`` (``{re, im}`` of the
    K x K ``L``). ``lamb``: that ``L`` for one mode (several modes keep it in their system).
    """

    one: SteadyState | None = None
    several: ModesSteadyState | None = None
    lamb: NDArray[np.complex128] | None = None
    route = "steady"

    def __post_init__(self) -> None:
        if (self.one is None) == (self.several is None):
            raise ValueError("SystemSteady takes exactly one of one= (K = 1) and several= (K > 1)")

    @property
    def K(self) -> int:
        return 1 if self.one is not None else self.several.system.K  # type: ignore[union-attr]

    @property
    def stable(self) -> bool:
        return bool((self.one or self.several).stable)  # type: ignore[union-attr]

    @property
    def near_threshold(self) -> bool:
        return bool((self.one or self.several).near_threshold)  # type: ignore[union-attr]

    @property
    def growth_rate(self) -> float:
        return float((self.one or self.several).growth_rate)  # type: ignore[union-attr]

    @property
    def margin(self) -> float:
        """``kappa`` (K = 1) or ``2 min Re eig(Y)`` (energy units; positive where stable)."""
        return -self.growth_rate

    def model_record(self) -> dict[str, Any] | None:
        return self.one.model.record() if self.one is not None else None

    def to_dict(self) -> dict[str, Any]:
        """The ``ehp steady --json`` record (see the class docstring; non-finite numbers -> None)."""
        from .covariance import lamb_record
        from .model import clean

        if self.several is not None:
            return self.several.to_dict()
        ss = self.one
        m = ss.model  # type: ignore[union-attr]
        d = ss.to_dict()  # type: ignore[union-attr]
        d.update(n_modes=1, margin=d["kappa"], modes=clean(mode_entries(m.omega, m.gamma_ph, m.n_ph, ss.N, ss.T_eff,
                                                                         ss.mu_eff)), **lamb_record(self.lamb))
        return d

    def to_record(self) -> dict[str, Any]:
        """Flat columns of a sweep table (NaN for null): the one-mode record of
        :meth:`sim.rate_equation.SteadyState.to_dict` through :func:`flatten_record`, or the
        several-mode :meth:`sim.covariance.ModesSteadyState.to_record`."""
        if self.several is not None:
            return self.several.to_record()
        return flatten_record(self.one.to_dict())  # type: ignore[union-attr]

    def to_frame(self) -> pd.DataFrame:
        """One row: :meth:`to_record`."""
        import pandas as pd

        return pd.DataFrame([self.to_record()])
