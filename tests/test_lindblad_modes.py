"""Several modes on the truncated tensor Fock space: Lindblad steady state and evolution, Gaussian states,
exact counting statistics, against the covariance (Lyapunov) route and the one-mode code."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import qutip

from sim.conductor import CHANNELS, double_dot
from sim.counting import birth_death, cumulant_rates, quantity_weights
from sim.counting_modes import mode_counting
from sim.covariance import mode_system
from sim.lindblad import (
    check_dimension,
    covariance_of,
    evolve_lindblad_modes,
    gaussian_state,
    mode_cutoffs,
    normal_modes,
    sector_size,
    steady_lindblad,
    steady_lindblad_modes,
)
from sim.model import rate_model
from sim.rate_matrices import RateMatrixModel

from .conftest import make_config

# the double dot of tests/test_covariance.py: two modes with strong coherences (|C_01| ~ 0.7 N) at this bias
WW_COND = dict(eps=(-0.25, -0.25), hopping=0.5, gamma_L=0.4, gamma_R=0.5)
WW_M = np.array([[[-0.1, 0.25], [0.25, 0.05]], [[-0.4, -0.1], [-0.1, -0.15]]])


def _pair(omega=(1.0, 1.03), V=1.2, delta=0.1, M=WW_M):
    model = RateMatrixModel(double_dot(**WW_COND), M)
    return mode_system(model, None, list(omega), 0.02, 0.3, V / 2, -V / 2, 0.3, delta=delta)


def _one_mode(mu_L=0.4, mu_R=-0.4):
    cfg = make_config(bias={"mu_L": mu_L, "mu_R": mu_R, "T_e": 0.1}, phonon_bath={"T": 0.15, "gamma": 0.05})
    b, cond = cfg.bias, cfg.conductor.build()
    s = mode_system(cond, cond.M, cfg.mode.omega, cfg.phonon_bath.gamma, cfg.phonon_bath.T, b.mu_L, b.mu_R, b.T_L,
                    b.T_R, T_e=b.T_e)
    return rate_model(cfg), s


def _truncation_bound(res, tol):
    """What truncation can move in C: each mode's cut tail holds <= tol of probability, carrying at most
    (cutoff + N) quanta on average (geometric tail); 2x for the coherences."""
    N = np.max(np.reshape(res.N, (-1, len(res.cutoffs))), axis=0)
    return 2 * sum((c + n) * tol for c, n in zip(res.cutoffs, N, strict=True))


def test_steady_state_equals_lyapunov_and_converges_with_the_cutoff():
    s = _pair()
    C = s.steady_covariance()
    assert abs(C[0, 1]) > 0.5 * C[0, 0].real > 0.05  # coherences matter
    errs = []
    for tol in (1e-5, 1e-8):
        r = steady_lindblad_modes(s, tol=tol)
        assert r.stable and r.P_top.max() <= tol
        err = np.abs(r.C - C).max()
        assert err <= _truncation_bound(r, tol)
        errs.append(err)
    assert errs[1] < 1e-2 * errs[0]  # it is the truncation: 1000x less tail, >100x less error
    # the sector solver and qutip.steadystate on the full Liouvillian agree at equal cutoffs
    a, b = steady_lindblad_modes(s, cutoffs=(5, 6)), steady_lindblad_modes(s, cutoffs=(5, 6), solver="qutip")
    np.testing.assert_allclose(a.C, b.C, rtol=0, atol=1e-12)
    assert a.rho.dims == [[5, 6], [5, 6]]
    assert a.rho.tr() == pytest.approx(1.0, abs=1e-12) and a.rho.isherm
    d = a.to_dict()
    assert d["cutoffs"] == [5, 6] and d["N"] == pytest.approx(a.N.tolist()) and d["stable"] is True


def test_one_mode_equals_the_single_mode_lindblad():
    model, s = _one_mode()
    ref = steady_lindblad(model)
    r = steady_lindblad_modes(s, cutoffs=ref.cutoff)
    assert r.N[0] == pytest.approx(ref.N, rel=1e-10)
    assert r.P_top[0] == pytest.approx(ref.tail_probability, rel=1e-6)
    assert mode_cutoffs(s) == (ref.cutoff,)  # the same tail rule


def test_evolution_from_the_vacuum_equals_the_covariance_route():
    s = _pair(omega=(1.0, 1.05))
    t = np.linspace(0.0, 60.0, 7)
    want = np.diagonal(s.covariance(t), axis1=1, axis2=2).real
    tol = 1e-8
    r = evolve_lindblad_modes(s, t, tol=tol)
    assert r.cutoffs == mode_cutoffs(s, t, np.zeros((2, 2)), tol=tol)
    assert np.abs(r.N - want).max() <= _truncation_bound(r, tol) and np.max(r.P_top) <= tol
    np.testing.assert_allclose(r.N_total, want.sum(axis=1), atol=2 * _truncation_bound(r, tol))
    # qutip.mesolve on the full space = the sector propagator (equal small cutoffs), also on a non-uniform grid
    tt = np.array([0.0, 2.0, 7.0, 30.0])
    a = evolve_lindblad_modes(s, tt, cutoffs=(4, 5), solver="mesolve")
    b = evolve_lindblad_modes(s, tt, cutoffs=(4, 5), solver="sector")
    np.testing.assert_allclose(a.N, b.N, rtol=0, atol=1e-9)
    f = a.to_frame()
    assert list(f.columns) == ["t", "N_0", "N_1", "N", "P_top_0", "P_top_1"]
    np.testing.assert_allclose(f["N"], f["N_0"] + f["N_1"], rtol=1e-14)


def test_gaussian_state_has_the_covariance_and_is_stationary():
    rng = np.random.default_rng(7)
    B = rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2))
    C = 0.15 * B @ B.conj().T
    n, U = normal_modes(C)
    np.testing.assert_allclose(U.conj().T @ C @ U, np.diag(n), atol=1e-14)  # <b_i^+ b_j> = n_j delta_ij
    cut = tuple(mode_cutoffs(_pair(), np.array([0.0]), C, tol=1e-12))
    rho = gaussian_state(C, cut)
    np.testing.assert_allclose(covariance_of(rho, cut), C, rtol=0, atol=1e-10)
    # one mode: the Bose-Einstein law of mean C
    p = np.real(gaussian_state([[0.4]], 40).diag())
    x = 0.4 / 1.4
    np.testing.assert_allclose(p, (1 - x) * x ** np.arange(40), rtol=1e-10, atol=1e-14)  # QuTiP tidies below 1e-14
    # a Gaussian state with <a_m^+ a_n> = C of the steady state is the steady state: N does not move
    s = _pair()
    r = evolve_lindblad_modes(s, np.array([0.0, 5.0, 50.0]), "steady", tol=1e-8)
    np.testing.assert_allclose(r.N, np.tile(np.diagonal(s.steady_covariance()).real, (3, 1)), atol=1e-6)
    with pytest.raises(ValueError, match="positive semi-definite"):
        normal_modes([[1.0, 0.0], [0.0, -0.5]])


def test_size_limits_and_unstable_modes():
    assert sector_size((3, 3)) == 1 + 4 + 9 + 4 + 1
    with pytest.raises(ValueError, match=r"cutoffs 40 x 40 x 40 = 64000 states.*limit of 1000000"):
        check_dimension((40, 40, 40))
    with pytest.raises(ValueError, match=r"cutoffs 60 x 60 = 3600 states, its zero-charge sector has \d+ elements"):
        steady_lindblad_modes(_pair(), cutoffs=60)
    model = RateMatrixModel(double_dot(**WW_COND), WW_M)  # the collective runaway of tests/test_covariance.py
    s = mode_system(model, None, [1.0, 1.0], 0.002, 0.05, 1.25, -1.25, 0.05, delta=0.1)
    assert not s.stable
    r = steady_lindblad_modes(s)
    assert not r.stable and np.isnan(r.N).all() and "grows at rate" in r.message
    with pytest.raises(ValueError, match="unstable"):
        mode_cutoffs(s)
    t = np.linspace(0, 20, 3)
    assert mode_cutoffs(s, t)[0] > mode_cutoffs(s, t[:2])[0]  # a growing run needs more levels later


# --------------------------------------------------------------------------- counting statistics

def test_counting_rates_and_current_equal_the_covariance_route():
    s = _pair()
    ref = s.steady_state()
    tol = 1e-10
    c = mode_counting(s, "charge", order=2, tol=tol)
    scale = np.abs(ref.emission_rate).max()
    np.testing.assert_allclose(c.emission_rate, ref.emission_rate, rtol=0, atol=1e-7 * scale)
    np.testing.assert_allclose(c.absorption_rate, ref.absorption_rate, rtol=0, atol=1e-7 * scale)
    assert c.cumulants[0] == pytest.approx(ref.Ie, rel=1e-7)
    assert c.cumulants[1] > 0
    rf = c.rates_frame()
    for name in ("emission", "absorption"):
        sums = rf[(rf.channel != "ph") & (rf.direction == name)].groupby("channel", sort=False)["jump_rate"].sum()
        np.testing.assert_allclose(sums.reindex(list(CHANNELS)), getattr(c, f"{name}_rate"), rtol=1e-12)
    # energy: each jump carries its operator's quantum (between 1.0 and 1.03 here); J (e-baths -> modes) is
    # reproduced up to the cluster's 3% spread, and the total into the modes (ph-baths included) vanishes
    e = mode_counting(s, "energy", order=1, tol=tol)
    electronic = np.array([op.channel != "ph" for op in e.operators])
    J = mode_counting(s, np.where(electronic, e.nu, 0.0), order=1, tol=tol).cumulants[0]
    assert J == pytest.approx(ref.J, rel=0.03)
    assert abs(e.cumulants[0]) <= 0.03 * ref.J


def test_counting_one_mode_and_independent_modes():
    model, s = _one_mode()
    chain = birth_death(model)
    want = cumulant_rates(chain, quantity_weights("charge", model.omega), 3)
    got = mode_counting(s, "charge", order=3, cutoffs=chain.cutoff).cumulants
    np.testing.assert_allclose(got, want, rtol=1e-8)
    # two well-separated modes (clusters of one): cumulants add
    pair = _pair(omega=(1.0, 1.4), delta=0.1)
    assert pair.clusters == ((0,), (1,))
    both = mode_counting(pair, "charge", order=2, tol=1e-9).cumulants
    single = [mode_counting(_pair(omega=(w,), M=WW_M[k:k + 1]), "charge", order=2, tol=1e-9).cumulants
              for k, w in enumerate((1.0, 1.4))]
    np.testing.assert_allclose(both, single[0] + single[1], rtol=1e-7)
    with pytest.raises(ValueError, match="zero-charge sector"):
        mode_counting(pair, cutoffs=(150, 150))
    with pytest.raises(ValueError, match="quantity"):
        mode_counting(pair, "heat", cutoffs=3)


def test_liouvillian_sector_is_closed():
    """The zero-charge sector is invariant: evolving a sector state with the full Liouvillian leaves no weight outside."""
    s = _pair()
    cut = (3, 4)
    from sim.lindblad import collapse_operators_modes, hamiltonian_modes
    L = qutip.liouvillian(hamiltonian_modes(s, cut), [x for _, x in collapse_operators_modes(s, cut)]).full()
    N = np.indices(cut).sum(axis=0).ravel()
    inside = (N[:, None] == N[None, :]).ravel(order="F")  # column stacking
    assert np.abs(L[np.ix_(~inside, inside)]).max() == 0.0


# --------------------------------------------------------------------------- one route for every K

# mesolve's global error at rtol = 1e-10 (the fast path's default), as in tests/test_lindblad.py: 1e-8 (1 + max N)
SOLVER = 1e-8


@pytest.mark.parametrize("initial", ["vacuum", "thermal:0.5", "steady"])
def test_one_mode_fast_path_and_tensor_space_give_one_answer(initial):
    """K = 1 on an orbital conductor (the double dot) has both a JumpModel and a ModeSystem: the one function
    takes either (two internal paths) and gives the same steady N and N(t). The fast path (mesolve on the
    reflecting chain) and the sector propagator differ by the integrator error plus what each cutoff cuts
    (:func:`_truncation_bound`); at equal cutoffs mesolve on the tensor space differs by the integrator only."""
    from sim.covariance import mode_system_from_config
    from sim.lindblad import LindbladResult, LindbladSteady, evolve_lindblad

    cfg = make_config()
    model, system = rate_model(cfg), mode_system_from_config(cfg)
    assert system.K == 1
    fast, general = steady_lindblad(model), steady_lindblad(system)
    assert isinstance(fast, LindbladSteady) and isinstance(general, LindbladSteady)
    assert general.cutoffs == (fast.cutoff,) == fast.cutoffs  # the same tail rule
    assert general.N[0] == pytest.approx(fast.N, rel=1e-10)
    assert general.P_top[0] == pytest.approx(fast.tail_probability, rel=1e-6)
    assert fast.provenance()["route"] == general.provenance()["route"] == "lindblad"
    assert fast.provenance()["model"]["omega"] == pytest.approx(1.0)
    for r in (fast, general):
        f = r.to_frame()
        assert list(f.columns) == ["mode", "N", "cutoff", "P_top"] and f["N"].iloc[0] == pytest.approx(fast.N, rel=1e-10)

    t = np.linspace(0.0, 60.0, 13)
    a, b = evolve_lindblad(model, t, initial), evolve_lindblad(system, t, initial)
    assert isinstance(a, LindbladResult) and isinstance(b, LindbladResult)
    assert a.N.shape == (13,) and b.N.shape == (13, 1)
    tol = SOLVER * (1 + a.N.max())
    assert np.abs(a.N - b.N[:, 0]).max() <= tol + _truncation_bound(a, 1e-10) + _truncation_bound(b, 1e-10)
    c = evolve_lindblad(system, t, initial, cutoff=a.cutoff, solver="mesolve")
    assert np.abs(a.N - c.N[:, 0]).max() <= tol
    assert np.abs(a.P_top - c.P_top[:, 0]).max() <= 1e-11  # atol-level, as in tests/test_lindblad.py
    # the tables: the one-mode columns of the fast path, the per-mode columns of the tensor space
    assert list(dataclasses.replace(a, model=model).to_frame().columns)[:5] == ["t", "N", "J", "J_ph", "Ie"]
    assert list(b.to_frame().columns) == ["t", "N_0", "N", "P_top_0"]


def test_two_well_separated_modes_are_two_one_mode_runs():
    """Quanta 1.0 and 1.4 (clusters of one mode each): the modes are independent, so the K = 2 tensor-space
    state is the product of the two one-mode fast-path states: N_k, and N_k(t) from a thermal start, equal
    the one-mode runs of each mode alone (:func:`sim.config.one_mode_config`)."""
    from sim.config import load_config, one_mode_config
    from sim.covariance import mode_system_from_config
    from sim.lindblad import evolve_lindblad

    from .test_modes_cli import WATERWHEEL

    cfg = load_config(WATERWHEEL, ["mode.omega=[1.0, 1.4]", "bias.V=1.2"])
    system = mode_system_from_config(cfg)
    assert system.clusters == ((0,), (1,)) and system.stable
    pair = steady_lindblad(system)
    t = np.linspace(0.0, 150.0, 7)
    run = evolve_lindblad(system, t, "thermal:0.3")
    assert run.N.shape == (7, 2)  # the truncated, renormalised thermal start loses what its tails held
    assert run.N[0] == pytest.approx([0.3, 0.3], rel=0, abs=_truncation_bound(run, 1e-10))
    np.testing.assert_allclose(run.N_total, run.N.sum(axis=1), rtol=1e-14)
    for k in range(2):
        model = rate_model(one_mode_config(cfg, k))
        one = steady_lindblad(model)
        assert pair.N[k] == pytest.approx(one.N, rel=1e-8)  # each cut tail <= 1e-10
        alone = evolve_lindblad(model, t, "thermal:0.3")
        bound = SOLVER * (1 + alone.N.max()) + _truncation_bound(alone, 1e-10) + _truncation_bound(run, 1e-10)
        assert np.abs(run.N[:, k] - alone.N).max() <= bound
    with pytest.raises(ValueError, match="starts from a Gaussian state"):
        evolve_lindblad(system, t, "coherent:0.5")
    with pytest.raises(ValueError, match="applies to a ModeSystem"):
        steady_lindblad(rate_model(one_mode_config(cfg, 0)), solver="qutip")


def test_evolve_cli_lindblad_of_several_modes_takes_gaussian_starts(tmp_path, capsys):
    """``ehp evolve --method lindblad`` for K = 2 from the steady (Gaussian) state: N_k(t) stays at the Lyapunov
    C_kk (stationary up to the 1e-10 tails); a non-Gaussian start is refused with exit code 2."""
    import pandas as pd

    from analysis.cli import main
    from sim.config import load_config
    from sim.covariance import mode_system_from_config

    from .test_modes_cli import WATERWHEEL, _error

    out = tmp_path / "steady"
    argv = ["evolve", str(WATERWHEEL), "--set", "bias.V=1.2", "--method", "lindblad", "--t-end", "30", "--n-points",
            "3", "--no-progress"]
    assert main(argv + ["--initial", "steady", "--out", str(out)]) == 0
    capsys.readouterr()
    table = pd.read_parquet(out / "evolution.parquet")
    C = mode_system_from_config(load_config(WATERWHEEL, ["bias.V=1.2"])).steady_covariance()
    for k in range(2):
        np.testing.assert_allclose(table[f"N_{k}"], C[k, k].real, rtol=1e-6)
    err = _error(capsys, argv + ["--initial", "fock:1", "--out", str(tmp_path / "fock")])
    assert "start from a Gaussian state (vacuum, steady, thermal)" in err
