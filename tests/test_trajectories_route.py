"""One trajectory route for every K: initial states (thermal:T=), the K = 1 fast path against the labelled
path, separated modes against one-mode runs, the run readers, and the command line's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from sim.initial import InitialSpec
from sim.special import bose

from .conftest import make_config

# --------------------------------------------------------------------------- thermal:T=


@pytest.mark.parametrize("T", [0.0, 0.3, 2.0])
def test_thermal_by_temperature_is_thermal_by_its_bose_mean(T):
    """thermal:T=<T> is the Bose-Einstein state of mean nB(Omega, T): the same populations, cutoffs and
    evolution as thermal:N with that N (one mode), and nB(Omega_k, T) per mode for several quanta."""
    from sim.model import rate_model
    from sim.routes import evolve

    cfg = make_config(omega=0.8)
    m = rate_model(cfg)
    by_T, by_N = InitialSpec.parse(f"thermal:T={T}"), InitialSpec.parse(f"thermal:N={float(bose(0.8, T))!r}")
    assert by_T.T == T and by_T.value is None and by_N == InitialSpec.parse(f"thermal:{float(bose(0.8, T))!r}")
    assert by_T.mean(m) == by_N.mean(m) == pytest.approx(1 / np.expm1(0.8 / T) if T else 0.0, rel=1e-14)
    np.testing.assert_array_equal(by_T.populations(30, m), by_N.populations(30, m))
    assert by_T.min_cutoff(1e-10, m) == by_N.min_cutoff(1e-10, m)
    t = np.linspace(0.0, 5.0, 6)
    a, b = evolve(cfg, t, "population", by_T.text), evolve(cfg, t, "population", by_N.text)
    np.testing.assert_array_equal(a.N, b.N)
    np.testing.assert_allclose(by_T.means([0.5, 1.0, 2.0]), bose(np.array([0.5, 1.0, 2.0]), T), rtol=1e-15)
    with pytest.raises(ValueError, match="quantum"):
        by_T.mean(None)


@pytest.mark.parametrize("text", ["thermal:T=-1", "thermal:T=nan", "thermal:T=", "thermal:N=-0.5", "thermal:T=x"])
def test_bad_thermal_states_are_refused(text):
    with pytest.raises(ValueError, match="thermal:T=<temperature>"):
        InitialSpec.parse(text)
