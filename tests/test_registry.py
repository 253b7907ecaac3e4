"""Every registered route and engine, through one registry each (sim.routes.ROUTES, sim.registry.ENGINE_NAMES).

Checks that hold for all of them: the mean population from the vacuum follows the rate
equation (exactly for the routes, within error bars for the engines), the tables have
the shared columns, the results carry their provenance and the model rebuilds from its record.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.cli.app import build_parser
from sim.model import JumpModel, rate_model
from sim.registry import ENGINE_NAMES
from sim.results import Result, TimeSeries
from sim.routes import ROUTES, evolve
from sim.trajectories import run_trajectories
from sim.trajectories.runner import ENGINES

from .conftest import make_config

T = np.linspace(0.0, 8.0, 17)


def _cfg():
    return make_config(conductor={"kind": "double_dot", "hopping": 0.1, "coupling": 0.3},
                       bias={"V": 0.6, "T_e": 0.2}, phonon_bath={"T": 0.1, "gamma": 0.1})


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_route_follows_rate_equation(name):
    """From the vacuum, ``<n>`` of the population and Lindblad routes obeys Eq. 8 exactly
    (the birth-death mean closes); the cutoff's tail is below 1e-10, so the only error is
    the integrators' (mesolve rtol 1e-10, atol 1e-12)."""
    cfg = _cfg()
    res = evolve(cfg, T, name)
    assert isinstance(res, TimeSeries) and isinstance(res, Result)
    exact = rate_model(cfg).N_t(T)
    np.testing.assert_allclose(res.N, exact, rtol=1e-7, atol=1e-10)
    frame = res.to_frame()
    assert list(frame.columns[:5]) == ["t", "N", "J", "J_ph", "Ie"]
    np.testing.assert_allclose(frame["J"], frame[[f"J_{c}" for c in ("LL", "RR", "LR", "RL")]].sum(axis=1), rtol=1e-12)
    prov = res.provenance()
    assert prov["options"]["method"] == name and prov["config"] == cfg.to_dict()
    assert JumpModel.from_record(prov["model"]).label_rates == pytest.approx(rate_model(cfg).label_rates, rel=1e-15)


def test_cli_method_choices_are_the_registry():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    evolve_parser = sub.choices["evolve"]
    method = next(a for a in evolve_parser._actions if a.dest == "method")
    assert tuple(method.choices) == tuple(ROUTES)
    traj = next(a for a in sub.choices["trajectories"]._actions if a.dest == "engine")
    assert tuple(traj.choices) == tuple(ENGINE_NAMES) == tuple(ENGINES)


@pytest.mark.parametrize("name", sorted(ENGINE_NAMES))
def test_engine_mean_population_and_table(name):
    """Mean N(t_end) of the trajectories against Eq. 8 within 5 standard errors; same jump table columns."""
    cfg = _cfg()
    m = rate_model(cfg)
    ntraj = 400 if ENGINE_NAMES[name] == "ssa" else 60
    res = run_trajectories(m, engine=name, ntraj=ntraj, t_end=4.0, n_points=5, seed=3, progress=False)
    exact = m.N_t(res.t)
    sem = np.maximum(res.N_sem, 1e-12)
    assert np.all(np.abs(res.N_mean[1:] - exact[1:]) < 5 * sem[1:] + 1e-12)
    jumps = res.to_frame()
    assert list(jumps.columns) == ["traj", "t", "channel", "direction", "dn", "dQ", "dE"]
    assert res.provenance()["options"]["engine"] == ENGINE_NAMES[name]
    np.testing.assert_array_equal(jumps["dE"].to_numpy(), m.omega * jumps["dn"].to_numpy())


@pytest.mark.parametrize("level", ["lowest", "full"])
def test_landauer_result_carries_its_provenance(level):
    """Like every route's result, the Landauer fluxes record the config and the level they came from."""
    from sim.landauer import landauer

    cfg = _cfg()
    prov = landauer(cfg, level).provenance()
    assert prov["route"] == "landauer" and prov["options"] == {"level": level} and prov["config"] == cfg.to_dict()


def test_docs_carry_the_support_table():
    """docs/modes.md holds the registry's table verbatim (the docs cannot drift from what the routes do)."""
    from pathlib import Path

    from sim.registry import SUPPORT, route_refusal, support_table

    text = (Path(__file__).resolve().parents[1] / "docs" / "modes.md").read_text()
    assert support_table() in text
    assert route_refusal("population", 2, cross_terms=True) is not None and route_refusal("population", 1) is None
    assert route_refusal("population", 2) is None  # several modes without cross terms: one chain per mode
    assert set(SUPPORT) >= {"steady", "rate", "population", "lindblad", "landauer", "ssa", "mcsolve"}
