"""Instability threshold by the bracketing root finder."""

from __future__ import annotations

import pytest

from analysis.threshold import find_threshold, kappa_at
from sim.config import ConfigError
from sim.rate_equation import steady_state

from .conftest import make_config


def test_threshold_is_a_root_with_the_right_slope():
    cfg = make_config(bias={"V": 0.5, "T_e": 0.1})
    th = find_threshold(cfg, "bias.V", (0.0, 2.0))
    assert abs(kappa_at(cfg, "bias.V", th.threshold)) < 1e-10
    h = 1e-3
    fd = (kappa_at(cfg, "bias.V", th.threshold + h) - kappa_at(cfg, "bias.V", th.threshold - h)) / (2 * h)
    assert th.slope == pytest.approx(fd, rel=1e-4)
    assert steady_state(cfg.with_value("bias.V", th.threshold - 1e-3)).stable
    assert not steady_state(cfg.with_value("bias.V", th.threshold + 1e-3)).stable


def test_threshold_in_any_numeric_key():
    """Raising gamma_ph stabilises: the threshold in phonon_bath.gamma at fixed bias is -Gamma_e."""
    cfg = make_config(bias={"V": 1.5, "T_e": 0.1}, phonon_bath={"T": 0.1, "gamma": 0.0})
    from sim.rate_equation import rate_model

    gamma_e = float(rate_model(cfg).gamma_e)
    assert gamma_e < 0
    th = find_threshold(cfg, "phonon_bath.gamma", (0.0, 2.0))
    assert th.threshold == pytest.approx(-gamma_e, rel=1e-10)
    assert th.slope == pytest.approx(1.0, rel=1e-8)


def test_no_sign_change_shows_both_kappas():
    cfg = make_config(bias={"V": 0.5, "T_e": 0.1})
    with pytest.raises(ConfigError, match=r"kappa\(0\) = .*kappa\(0.5\) = "):
        find_threshold(cfg, "bias.V", (0.0, 0.5))
    with pytest.raises(ConfigError, match="not a known key"):
        find_threshold(cfg, "bias.nonsense", (0.0, 2.0))


def test_list_elements_are_numeric_keys():
    """conductor.eps[0] can be set, varied and root-found like any numeric key."""
    cfg = make_config(bias={"V": 1.2, "T_e": 0.1})
    assert cfg.get("conductor.eps[0]") == 0.5
    moved = cfg.with_value("conductor.eps[0]", 0.8)
    assert moved.get("conductor.eps[0]") == 0.8 and moved.get("conductor.eps[1]") == -0.5
    # at V = 1.2 the mode is unstable for the paper's levels; detuning eps_1 stabilises it
    th = find_threshold(cfg, "conductor.eps[0]", (0.5, 3.0))
    assert abs(kappa_at(cfg, "conductor.eps[0]", th.threshold)) < 1e-10 and th.slope > 0
    with pytest.raises(ConfigError, match="has no element 2"):
        cfg.with_value("conductor.eps[2]", 1.0)
    with pytest.raises(ConfigError, match="integer i"):
        cfg.get("conductor.eps[x]")
