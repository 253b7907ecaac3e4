"""Equilibrium by construction (docs/modes.md, "Cross terms"): at zero bias with one temperature everywhere,
every route, every K and every clustering gives the Gibbs state, zero current and zero energy flow.

Within a cluster every rate matrix and the ph-bath occupation are taken at one common frequency ``w_S``
(the unified GKLS rule), so each bath obeys detailed balance as a matrix, ``tau_em^c = nB(w_S) Lambda^c``,
and ``C = nB(w_S) 1`` on the cluster solves the Lyapunov equation exactly. The old geometric-mean rule gave
a current of 7.7e-6 at V = 0 for the 3-orbital model below (quanta 0.7 and 1.3 in one cluster).

Round-off bounds (measured residuals are 1e-4 of them or less):
- ``C``: the Lyapunov solver is backward stable, residual ``<~ eps ||Y||_F ||C||``, and ``C`` moves by at most
  that over the margin ``2 min Re eig(Y)``; ``1e3 eps ||Y||_F max(nB) / margin`` (measured: 1e-15 of max nB).
- fluxes: each is a sum of ``K^2`` products ``rate x (C + 1)`` that cancel; ``1e3 eps r_max (1 + max nB)
  Omega_max`` with ``r_max`` the largest rate-matrix entry (measured: <= 2e-18 against 7.7e-6 before).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from analysis.cli import main
from sim.conductor import Conductor
from sim.covariance import mode_system
from sim.special import bose

EPS = np.finfo(float).eps
H = np.array([[0.5, 0.2, 0.0], [0.2, -0.3, 0.1], [0.0, 0.1, 0.9]])
G_L = np.diag([0.4, 0.1, 0.0])
G_R = np.diag([0.0, 0.1, 0.5])
M = np.array([[[0.0, 0.3, 0.1], [0.3, 0.0, 0.2], [0.1, 0.2, 0.0]],
              [[0.2, 0.0, 0.3], [0.0, -0.1, 0.1], [0.3, 0.1, 0.0]],
              [[0.1, 0.05j, 0.0], [-0.05j, 0.2, 0.15], [0.0, 0.15, -0.2]]])  # complex: rate matrices complex
COND = Conductor(H, G_L, G_R, np.zeros((3, 3)))
QUANTA = [(0.7,), (0.7, 1.3), (0.7, 1.3, 1.32), (1.0, 1.0, 1.02)]
WIDTHS = [0.0, None, 10.0]  # secular, default, one cluster
TEMPS = [0.2, 0.05, 0.01]

EQ_TOML = """[conductor]
kind = "matrix"
H = [[0.5, 0.2, 0.0], [0.2, -0.3, 0.1], [0.0, 0.1, 0.9]]
gamma_L = [[0.4, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.0]]
gamma_R = [[0.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.5]]
M = {M}

[mode]
omega = {omega}

[bias]
V = 0.0
mu0 = 0.0
T_e = 0.2

[phonon_bath]
T = 0.2
gamma = 0.01
"""
M2 = "[[[0.0, 0.3, 0.1], [0.3, 0.0, 0.2], [0.1, 0.2, 0.0]], [[0.2, 0.0, 0.3], [0.0, -0.1, 0.1], [0.3, 0.1, 0.0]]]"
M1 = "[[0.0, 0.3, 0.1], [0.3, 0.0, 0.2], [0.1, 0.2, 0.0]]"


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _system(omega, width, T, gamma=0.01):
    return mode_system(COND, M[:len(omega)], list(omega), gamma, T, 0.0, 0.0, T, delta=width)


def _gibbs(s):
    w = np.empty(s.K)
    for S, ws in zip(s.clusters, s.cluster_frequencies, strict=True):
        w[list(S)] = ws
    return np.diag(bose(w, s.T_e)).astype(complex)


def _flux_tol(s, G):
    r_max = max(np.abs(s.emission).max(), np.abs(s.absorption).max(), s.gamma.max())
    return 1e3 * EPS * r_max * (1 + G.real.max()) * s.omega.max()


@pytest.mark.parametrize(("omega", "width", "T"), list(itertools.product(QUANTA, WIDTHS, TEMPS)))
def test_covariance_route_is_gibbs_with_no_flux(omega, width, T):
    s = _system(omega, width, T)
    r = s.steady_state()
    assert r.stable
    G = _gibbs(s)
    tol_C = 1e3 * EPS * np.linalg.norm(s.Y) * G.real.max() / s.margin
    assert np.abs(r.C - G).max() <= tol_C
    np.testing.assert_allclose(r.N, np.diagonal(G).real, rtol=1e-12, atol=0)  # each cluster at its own nB
    np.testing.assert_allclose(s.n_th, np.diagonal(G).real, rtol=1e-15)  # ph-bath occupation at w_S too
    tol = _flux_tol(s, G)
    for q in (r.Ie_channel, r.J_channel, [r.J, r.J_ph, r.Ie]):
        assert np.abs(q).max() <= tol, (q, tol)
    np.testing.assert_allclose(r.emission_rate, r.absorption_rate, rtol=1e-12, atol=tol)  # per channel, no net
    f = s.fluxes(G)  # the fluxes vanish at the Gibbs state itself, not only at the solver's C
    assert max(np.abs(f["Ie_channel"]).max(), np.abs(f["J_channel"]).max(), abs(f["J_ph"])) <= tol
    split = {S for S in s.clusters if np.ptp(s.omega[list(S)]) > 0}
    if not split:  # every cluster of one quantum (secular, or the default for well separated modes): exact Bose
        np.testing.assert_allclose(r.N, bose(s.omega, T), rtol=1e-12, atol=0)


@pytest.mark.parametrize("omega", QUANTA[1:])
def test_default_width_splits_well_separated_quanta(omega):
    """Default: 0.7 and 1.3 (spacing 0.6, width 0.17) are split, so N_k is the Bose value at its own quantum;
    1.3 and 1.32 (spacing 0.02 < width) and the degenerate pair share a cluster."""
    s = _system(omega, None, 0.2)
    want = {(0.7, 1.3): ((0,), (1,)), (0.7, 1.3, 1.32): ((0,), (1, 2)), (1.0, 1.0, 1.02): ((0, 1, 2),)}[omega]
    assert s.clusters == want
    assert 0.02 < s.coherence_width < 0.6
    assert s.coherence_width == pytest.approx(np.sqrt(s.rate_scale * s.energy_scale), rel=1e-15)
    N = s.steady_state().N
    if omega == (0.7, 1.3):
        np.testing.assert_allclose(N, bose(np.array(omega), 0.2), rtol=1e-12)


@pytest.mark.parametrize(("omega", "width"), [((0.7, 1.3), None), ((0.7, 1.3), 10.0), ((0.7, 1.3, 1.32), None),
                                              ((1.0, 1.0, 1.02), 0.0)])
def test_lindblad_route_is_gibbs(omega, width):
    """The truncated Fock-space Lindblad steady state (tail 1e-10) is the same Gibbs state."""
    from sim.lindblad import steady_lindblad_modes

    s = _system(omega, width, 0.2)
    li = steady_lindblad_modes(s)
    G = _gibbs(s)
    assert np.abs(li.C - G).max() <= 1e-9 * G.real.max()
    np.testing.assert_allclose(li.N, np.diagonal(G).real, rtol=1e-8)


@pytest.mark.parametrize(("engine", "omega", "width"), [("mcsolve", (0.7, 1.3), 10.0), ("mcsolve", (1.0, 1.0, 1.02), None),
                                                        ("ssa", (0.7, 1.3), None), ("ssa", (0.7, 1.3, 1.32), 0.0)])
def test_trajectories_have_no_net_charge_or_energy_flow(engine, omega, width):
    """Seeded quantum jumps from the Gibbs state: the net charge and energy per unit time vanish within 4
    standard errors (over trajectories) plus 3 jumps' worth over ntraj t_end; N_k stays at nB within 4 errors."""
    from sim.trajectories import run_trajectories

    s = _system(omega, width, 0.5, gamma=0.05)  # T = 0.5: nB ~ 0.1-0.3, enough jumps
    ntraj, t_end = (24, 100.0) if engine == "mcsolve" else (400, 200.0)
    res = run_trajectories(s, engine=engine, ntraj=ntraj, t_end=t_end, n_points=41, seed=7, initial="steady", tol=1e-6)
    jumps, N, ops = res.jumps, res.populations(), res.operators
    traj = jumps["traj"].to_numpy(np.intp)
    ph = (jumps["channel"].astype(str) == "ph").to_numpy()
    assert len(jumps) > 200  # enough jumps for the test to mean something
    for q, w in (("dQ", jumps["dQ"].to_numpy(float)), ("dE", np.where(ph, 0.0, jumps["dE"].to_numpy(float))),
                 ("dE_ph", np.where(ph, jumps["dE"].to_numpy(float), 0.0))):
        per = np.bincount(traj, weights=w, minlength=ntraj) / t_end
        unit = float(np.abs(ops["dE" if q != "dQ" else "dQ"].to_numpy(float)).max())
        assert abs(per.mean()) <= 4 * per.std(ddof=1) / np.sqrt(ntraj) + 3 * unit / (ntraj * t_end), q
    Nbar = N.mean(axis=2)  # (ntraj, K): time average per trajectory
    nb = np.diagonal(_gibbs(s)).real
    err = Nbar.std(axis=0, ddof=1) / np.sqrt(ntraj)
    assert np.all(np.abs(Nbar.mean(axis=0) - nb) <= 4 * err + 1e-12)


def test_one_mode_routes_are_bose_with_no_current(capsys, tmp_path):
    """K = 1 (scalar omega): the one-mode rate model (ehp steady) and the covariance route give nB(Omega), 0."""
    from sim import load_config
    from sim.covariance import mode_system_from_config

    p = tmp_path / "one.toml"
    p.write_text(EQ_TOML.format(M=M1, omega="0.7"))
    code, out, err = run(capsys, ["steady", str(p), "--json"])
    assert code == 0, err
    d = json.loads(out)
    assert d["N"] == pytest.approx(float(bose(0.7, 0.2)), rel=1e-12)
    assert abs(d["Ie"]) <= 1e-16 and abs(d["J"]) <= 1e-16 and abs(d["J_ph"]) <= 1e-16
    r = mode_system_from_config(load_config(str(p))).steady_state()
    assert r.N[0] == pytest.approx(float(bose(0.7, 0.2)), rel=1e-12) and abs(r.Ie) <= 1e-16


@pytest.mark.parametrize("gamma", ["0.01", "0"])
def test_cli_example_of_the_defect(capsys, tmp_path, gamma):
    """The reported example (quanta 0.7, 1.3; V = 0; T_e = T_ph = 0.2): Ie was 7.7e-6 and N_1 = 0.001520 against
    the Bose 0.001506. Now the default splits the modes: Bose populations and zero fluxes to round-off; forced into
    one cluster the populations are Bose at w_S = 1.0, the fluxes still zero, and one note on stderr."""
    p = tmp_path / "eq.toml"
    p.write_text(EQ_TOML.format(M=M2, omega="[0.7, 1.3]"))
    code, out, err = run(capsys, ["steady", str(p), "--json", "--set", f"phonon_bath.gamma={gamma}"])
    assert code == 0, err
    d = json.loads(out)
    assert d["clusters"] == [[0], [1]] and "common frequency" not in err
    assert [m["N"] for m in d["modes"]] == pytest.approx(list(bose(np.array([0.7, 1.3]), 0.2)), rel=1e-12)
    assert max(abs(d["Ie"]), abs(d["J"]), abs(d["J_ph"])) <= 1e-16
    code, out, err = run(capsys, ["steady", str(p), "--json", "--set", f"phonon_bath.gamma={gamma}", "--set",
                                  "mode.coherence_width=1"])
    d = json.loads(out)
    assert d["clusters"] == [[0, 1]] and d["cluster_frequencies"] == [1.0] and d["coherence_width"] == 1.0
    assert [m["N"] for m in d["modes"]] == pytest.approx([float(bose(1.0, 0.2))] * 2, rel=1e-12)
    assert max(abs(d["Ie"]), abs(d["J"]), abs(d["J_ph"])) <= 1e-16
    assert err.count("note: cluster [0, 1] spans 0.6") == 1


def test_default_keeps_the_waterwheel_in_one_cluster(capsys):
    """waterwheel (omega = [1, 1], degenerate) and its study's largest splitting 0.04 stay in one cluster (default
    width 0.07): panel (a) of the study keeps its cross terms; no spread note for the degenerate pair."""
    from sim import load_config
    from sim.covariance import mode_system_from_config

    cfg = load_config("waterwheel")
    s = mode_system_from_config(cfg)
    assert s.clusters == ((0, 1),) and s.cluster_frequencies == (1.0,)
    assert s.wide_clusters() == []
    split = mode_system_from_config(cfg.with_value("mode.omega", [0.98, 1.02]))
    assert split.clusters == ((0, 1),) and split.coherence_width > 0.04
    assert split.cluster_frequencies == (pytest.approx(1.0, rel=1e-15),)
    assert split.wide_clusters() == [((0, 1), pytest.approx(0.04))]  # 0.04 > 0.1 E = 0.005: noted
