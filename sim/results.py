r"""The shared base of every route's result: provenance (model record, config, options) and a table.

Routes (rate equation, population, Lindblad, trajectories; steady state and time domain)
return frozen dataclasses derived from :class:`Result`, so a Python user gets the same
tables (:meth:`Result.to_frame`) and the same provenance (:meth:`Result.provenance`) as the
command line writes to a run directory. Time-domain results derive from
:class:`TimeSeries`: a time grid ``t`` (1/energy), the mean population ``N(t)`` and the
fluxes of the rate picture at ``N(t)`` (docs/theory.md, "Fluxes")::

    J_c(t)  = Omega [tau_em_c (N + 1) - tau_abs_c N]     energy per time, e-bath c -> mode
    Ie_c(t) = s_c [tau_em_c (N + 1) - tau_abs_c N]       electrons L -> R per time
    J_ph(t) = Omega gamma_ph (N - n_ph)                 energy per time, mode -> ph-bath
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .conductor import CHANNELS
from .model import clean

if TYPE_CHECKING:
    from .config import Config
    from .model import JumpModel

__all__ = ["Result", "TimeSeries", "evolution_frame", "clean"]


@dataclass(frozen=True, kw_only=True)
class Result:
    """Base of route results.

    Attributes
    ----------
    config
        The validated config the result was computed from (None when a route was called
        with a bare model).
    options
        The route's options (method, cutoff, tolerances, engine, ...), as given.
    """

    config: Config | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    #: The route's name (``rate``, ``population``, ``lindblad``, ``ssa``, ...).
    route = ""

    def model_record(self) -> dict[str, Any] | None:
        """The :meth:`sim.model.JumpModel.record` of the model behind the result, if known."""
        m = getattr(self, "model", None)
        if m is None or np.ndim(m.kappa) != 0:
            return None
        return m.record()

    def provenance(self) -> dict[str, Any]:
        """``{route, config, model, options}``: what ``metadata.json`` records for this result."""
        return clean({"route": self.route, "config": None if self.config is None else self.config.to_dict(),
                      "model": self.model_record(), "options": dict(self.options)})

    def to_frame(self) -> pd.DataFrame:
        """The result as a tidy table (the one the command line writes)."""
        raise NotImplementedError(f"{type(self).__name__} has no table")


def evolution_frame(model: JumpModel, t: NDArray[np.float64], N: NDArray[np.float64]) -> pd.DataFrame:
    """Tidy time series: ``t``, ``N``, totals ``J, J_ph, Ie`` and per-channel ``J_c``, ``Ie_c`` at each ``N(t)``.

    ``model`` may hold rates per time point (a time-dependent bias): then its shape matches ``t``.
    """
    t = np.asarray(t, dtype=float)
    N = np.asarray(N, dtype=float)
    f = model.fluxes(N)
    cols = {"t": t, "N": N, "J": f["J"], "J_ph": f["J_ph"], "Ie": f["Ie"]}
    for i, c in enumerate(CHANNELS):
        cols[f"J_{c}"] = f["J_channel"][i]
    for i, c in enumerate(CHANNELS):
        cols[f"Ie_{c}"] = f["Ie_channel"][i]
    return pd.DataFrame(cols)


@dataclass(frozen=True, kw_only=True)
class TimeSeries(Result):
    """Base of time-domain results: subclasses have fields ``t`` and ``N``.

    Attributes
    ----------
    model
        The jump model whose rates made the result (rates per time point for a
        time-dependent bias); :meth:`to_frame` takes the fluxes from it.
    """

    model: JumpModel | None = None

    def to_frame(self) -> pd.DataFrame:
        """``t, N, J, J_ph, Ie, J_LL .. J_RL, Ie_LL .. Ie_RL`` (:func:`evolution_frame`)."""
        if self.model is None:
            raise ValueError(f"{type(self).__name__}.to_frame needs the model (pass model=...)")
        t = np.asarray(self.t)  # type: ignore[attr-defined]
        model = self.model
        if np.ndim(model.kappa) == 1 and np.shape(model.kappa)[0] != t.size:  # rates on a longer grid: cut
            raise ValueError("the model's rates do not match the time grid")
        return evolution_frame(model, t, np.asarray(self.N))  # type: ignore[attr-defined]
