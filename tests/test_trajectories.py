"""Trajectory engines (docs/theory.md sec. 9): the exact ssa against the rate equation and QuTiP's mcsolve.

Expected jump counts up to T (exact, from the rate equation of sec. 4 with
``N(t) = N_ss + (N0 - N_ss) e^{-kappa t}``)::

    <#(c, emission)>   = em_c  int_0^T (N(t) + 1) dt
    <#(c, absorption)> = ab_c  int_0^T N(t) dt
    int_0^T N dt = N_ss T + (N0 - N_ss)(1 - e^{-kappa T})/kappa

with ``em = (tau_em_c, gamma_ph n_ph)``, ``ab = (tau_abs_c, gamma_ph (n_ph + 1))``.
Statistical comparisons use 4 standard errors estimated from the samples.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from sim.channels import ChannelRates
from sim.config import ConfigError, parse_config
from sim.rate_equation import RateModel, rate_model
from sim.trajectories import ENGINES, run_trajectories
from sim.trajectories._rng import child_states, entropy_words
from sim.trajectories.engine import bath_rates
from sim.trajectories.table import DIRECTIONS, JUMP_CHANNELS, N_LABELS, jumps_frame, label_of

from .conftest import make_config

T_END = 15.0
NPTS = 6


@pytest.fixture(scope="module")
def model() -> RateModel:
    """A flat-DOS conductor with all four channels active and a ph-bath (kappa ~ 0.27, N_ss ~ 0.44)."""
    cfg = make_config(conductor={"kind": "flat", "K_LL": 0.6, "K_RR": 0.4, "K_LR": 0.5, "K_RL": 0.3},
                      bias={"V": 2.0, "T_e": 0.5}, phonon_bath={"T": 0.3, "gamma": 0.05})
    return rate_model(cfg)


def unstable_model(omega: float = 1.0) -> RateModel:
    """Emission exceeds absorption: kappa = 0.6 - 0.9 + 0.05 = -0.25 < 0."""
    em = np.array([0.3, 0.0, 0.6, 0.0])
    ab = np.array([0.3, 0.0, 0.3, 0.0])
    rates = ChannelRates(np.float64(omega), np.zeros(4), em, ab, ab - em)
    return RateModel(omega, rates, 0.05, 0.0, 0.1)


def per_traj_counts(jumps: pd.DataFrame, ntraj: int) -> np.ndarray:
    """(ntraj, 10) jump counts per trajectory and label."""
    lab = 2 * jumps["channel"].cat.codes.to_numpy().astype(np.int64) + jumps["direction"].cat.codes.to_numpy()
    idx = jumps["traj"].to_numpy().astype(np.int64) * N_LABELS + lab
    return np.bincount(idx, minlength=ntraj * N_LABELS).reshape(ntraj, N_LABELS)


def expected_counts(model: RateModel, T: float, N0: float = 0.0) -> np.ndarray:
    em, ab = bath_rates(model)
    k, Nss = float(model.kappa), float(model.N_ss())
    intN = Nss * T + (N0 - Nss) * (-math.expm1(-k * T)) / k
    out = np.empty(N_LABELS)
    out[0::2] = em * (intN + T)
    out[1::2] = ab * intN
    return out


# ----------------------------------------------------------------------------- random streams and the table

@pytest.mark.parametrize("seed", [0, 7, 2**32 + 5, 2**70 + 3])
def test_child_streams_are_the_seedsequence_children(seed):
    """The numba SeedSequence reimplementation gives numpy's spawn children word for word."""
    children = np.random.SeedSequence(seed).spawn(1240)
    for start, count in [(0, 4), (1234, 3)]:
        ref = np.array([children[i].generate_state(4, np.uint64) for i in range(start, start + count)])
        np.testing.assert_array_equal(child_states(entropy_words(seed), start, count), ref)
    start = 2**32 - 1  # spawn keys of two 32-bit words
    ref = np.array([np.random.SeedSequence(seed, spawn_key=(i,)).generate_state(4, np.uint64) for i in (start, start + 1)])
    np.testing.assert_array_equal(child_states(entropy_words(seed), start, 2), ref)


def test_jump_table_schema_and_labels():
    """dn, dQ, dE follow from (channel, direction); emission means dn = +1, for the ph-bath too."""
    labels = np.arange(N_LABELS, dtype=np.uint8)
    df = jumps_frame(np.zeros(N_LABELS, np.int32), np.arange(N_LABELS, dtype=float), labels, 2.5)
    assert list(df.columns) == ["traj", "t", "channel", "direction", "dn", "dQ", "dE"]
    assert df["traj"].dtype == np.int32 and df["t"].dtype == np.float64 and df["dn"].dtype == np.int8
    assert list(df["channel"].cat.categories) == list(JUMP_CHANNELS) == ["LL", "RR", "LR", "RL", "ph"]
    assert list(df["direction"].cat.categories) == list(DIRECTIONS) == ["emission", "absorption"]
    rec = {(r.channel, r.direction): (r.dn, r.dQ, r.dE) for r in df.itertuples()}
    assert rec[("LR", "emission")] == (1, 1.0, 2.5) and rec[("LR", "absorption")] == (-1, -1.0, -2.5)
    assert rec[("RL", "emission")] == (1, -1.0, 2.5) and rec[("RL", "absorption")] == (-1, 1.0, -2.5)
    assert rec[("ph", "emission")] == (1, 0.0, 2.5) and rec[("ph", "absorption")] == (-1, 0.0, -2.5)
    for c in ("LL", "RR"):
        assert rec[(c, "emission")][1] == 0.0 and rec[(c, "absorption")][1] == 0.0
    assert not np.signbit(df["dQ"].to_numpy()[df["dQ"].to_numpy() == 0]).any()
    assert label_of("ph", "absorption") == 9


def test_engine_registry():
    assert set(ENGINES) == {"ssa", "mcsolve", "qutip"}
    assert ENGINES["qutip"] is ENGINES["mcsolve"]
    with pytest.raises(ConfigError, match="engine must be one of"):
        run_trajectories(unstable_model(), engine="euler", ntraj=1, t_end=1.0, progress=False)


# ----------------------------------------------------------------------------- ssa: exact statistics

def test_ssa_counts_and_mean_N_match_the_rate_equation(model):
    ntraj = 4000
    res = run_trajectories(model, engine="ssa", ntraj=ntraj, t_end=T_END, n_points=NPTS, seed=11, progress=False)
    counts = per_traj_counts(res.jumps, ntraj)
    mean, sem = counts.mean(axis=0), counts.std(axis=0, ddof=1) / math.sqrt(ntraj)
    exp = expected_counts(model, T_END)
    assert np.all(np.abs(mean - exp) <= 4 * sem + 1e-12), (mean, exp, sem)
    np.testing.assert_array_equal(res.counts["count"].to_numpy(), counts.sum(axis=0))
    assert res.n_jumps == len(res.jumps) == counts.sum()
    N_rate = model.N_t(res.t)
    assert np.all(np.abs(res.N_mean - N_rate) <= 4 * res.N_sem + 1e-12), (res.N_mean, N_rate, res.N_sem)
    # the grid (rebuilt from n0 and the jumps) is the running sum of dn: N(t_k) = sum of dn over jumps with t < t_k
    j = res.jumps
    assert res.trajectories is None and (res.initial["n0"] == 0).all()
    grid = res.trajectory_table().pivot(index="traj", columns="t", values="N").to_numpy()
    for k, tk in enumerate(res.t):
        n = j.loc[j["t"] < tk].groupby("traj")["dn"].sum().reindex(range(ntraj), fill_value=0).to_numpy()
        np.testing.assert_array_equal(grid[:, k], n)
    assert res.stops.empty and res.n_stopped == 0
    assert (j.groupby("traj")["t"].apply(lambda s: s.is_monotonic_increasing)).all()
    assert j["t"].between(0, T_END).all()


def test_ssa_thermal_start_samples_bose_einstein(model):
    ntraj, N0 = 4000, 1.5
    res = run_trajectories(model, engine="ssa", ntraj=ntraj, t_end=5.0, n_points=NPTS, seed=3,
                           initial=f"thermal:{N0}", progress=False)
    n0 = res.initial_table()["n0"].to_numpy()
    grid = res.trajectory_table()
    np.testing.assert_array_equal(grid.loc[grid["t"] == 0, "N"].to_numpy(), n0)
    assert abs(n0.mean() - N0) <= 4 * math.sqrt(N0 * (N0 + 1) / ntraj)
    d = n0 - n0.mean()  # geometric law: variance N (N + 1); its standard error from the 4th moment
    assert abs(n0.var() - N0 * (N0 + 1)) <= 4 * math.sqrt((np.mean(d**4) - np.mean(d**2) ** 2) / ntraj)
    assert np.all(np.abs(res.N_mean - model.N_t(res.t, N0)) <= 4 * res.N_sem)
    counts = per_traj_counts(res.jumps, ntraj)
    sem = counts.std(axis=0, ddof=1) / math.sqrt(ntraj)
    assert np.all(np.abs(counts.mean(axis=0) - expected_counts(model, 5.0, N0)) <= 4 * sem + 1e-12)


def test_same_seed_same_tables_for_any_batch_size(model):
    kw = dict(engine="ssa", ntraj=300, t_end=T_END, n_points=NPTS, seed=5, initial="thermal:0.7", progress=False)
    a = run_trajectories(model, **kw)
    b = run_trajectories(model, **kw, batch_size=7)
    c = run_trajectories(model, **{**kw, "seed": 6})
    assert b.n_batches == 43 and a.n_batches == 1
    pdt.assert_frame_equal(a.jumps, b.jumps)
    pdt.assert_frame_equal(a.initial, b.initial)
    pdt.assert_frame_equal(a.trajectory_table(), b.trajectory_table())
    assert not a.jumps["t"].equals(c.jumps["t"])
    # trajectory i of a bigger run is trajectory i of a smaller one
    d = run_trajectories(model, **{**kw, "ntraj": 100})
    pdt.assert_frame_equal(d.jumps, a.jumps[a.jumps["traj"] < 100].reset_index(drop=True))


@pytest.mark.parametrize(("initial", "cutoff", "unstable"), [("thermal:0.7", None, False), ("fock:3", None, False),
                                                            ("vacuum", 12, True), ("fock:11", 12, True)])
def test_stored_grid_equals_the_grid_rebuilt_from_the_jumps(model, initial, cutoff, unstable):
    """The kernel's N(t) rows (store_grid) equal the rows rebuilt from n0 and the jumps, and give the same sums.

    Two independent computations: the kernel writes each row while it simulates; the rebuild
    (sim.trajectories.table.grid_from_jumps) replays the jump table afterwards; stopped
    trajectories must be NaN from their stop on in both.
    """
    m = unstable_model() if unstable else model
    kw = dict(engine="ssa", ntraj=400, t_end=T_END, n_points=NPTS, seed=8, initial=initial, cutoff=cutoff,
              progress=False, batch_size=150)
    a = run_trajectories(m, **kw, store_grid=True)
    b = run_trajectories(m, **kw)
    assert a.trajectories is not None and b.trajectories is None
    assert (b.n_stopped > 0) == unstable
    pdt.assert_frame_equal(a.jumps, b.jumps)
    pdt.assert_frame_equal(a.trajectories, b.trajectory_table())
    grid = a.trajectories["N"].to_numpy().reshape(400, NPTS)
    ok = ~np.isnan(grid)
    g0 = np.where(ok, grid, 0.0)
    np.testing.assert_array_equal(b.N_sum, g0.sum(axis=0))
    np.testing.assert_array_equal(b.N_sumsq, (g0**2).sum(axis=0))
    np.testing.assert_array_equal(b.N_count, ok.sum(axis=0))


def test_ssa_threads_give_the_same_batch(model):
    """A batch split over threads (the kernel releases the GIL) equals the one-thread batch, field by field."""
    from sim.trajectories import ssa as ssa_engine
    from sim.trajectories.engine import RunSpec
    from sim.trajectories.initial import parse_initial

    spec = RunSpec(T_END, NPTS, 4, parse_initial("thermal:0.8", model), store_grid=True)
    plan = ssa_engine.prepare(model, spec)
    one = ssa_engine.simulate(plan, 50, 3001, threads=1)
    for threads in (2, 3):
        many = ssa_engine.simulate(plan, 50, 3001, threads=threads)
        for f in ("traj", "t", "label", "N", "n0", "N_acc", "stop_traj", "stop_t", "stop_n"):
            x, y = getattr(one, f), getattr(many, f)
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), f


def test_initial_draw_shortcut_is_the_formula():
    """n0 = 0 below u_zero without a logarithm: identical to floor(log1p(-u) / log x) for every stream."""
    from sim.trajectories._rng import child_states, uniform
    from sim.trajectories.initial import InitialState, initial_populations

    states = child_states(entropy_words(12), 0, 20000)
    u = uniform(states, 1)[:, 0]
    for N in (1e-3, 0.006, 0.5, 3.0, 1e6):
        n0 = initial_populations(InitialState("geometric", mean=N), 12, 0, 20000)
        x = math.log(N / (N + 1.0))
        np.testing.assert_array_equal(n0, np.floor(np.log1p(-u) / x).astype(np.int64))
        assert 0 < (n0 > 0).sum() < n0.size or N in (1e-3, 1e6)  # both branches taken where both are likely


def test_ssa_refuses_a_coherent_state(model):
    with pytest.raises(ValueError, match="mcsolve"):
        run_trajectories(model, engine="ssa", ntraj=2, t_end=1.0, initial="coherent:1.0", progress=False)


def test_steady_start_needs_a_stable_mode():
    with pytest.raises(ConfigError, match="kappa"):
        run_trajectories(unstable_model(), engine="ssa", ntraj=2, t_end=1.0, initial="steady", progress=False)


def test_unstable_runaway_stops_at_the_cap():
    """Above threshold every trajectory runs away and stops at the top state cutoff - 1."""
    m = unstable_model()
    assert not bool(m.stable)
    cutoff, ntraj = 25, 200
    res = run_trajectories(m, engine="ssa", ntraj=ntraj, t_end=60.0, n_points=31, seed=2, cutoff=cutoff, progress=False)
    st = res.stops
    assert res.n_stopped == len(st) == ntraj and list(st.columns) == ["traj", "t_stop", "n"]
    assert (st["n"] == cutoff - 1).all() and (st["t_stop"] > 0).all()
    last = res.jumps.groupby("traj")["t"].max()
    np.testing.assert_array_equal(last.loc[st["traj"]].to_numpy(), st["t_stop"].to_numpy())
    assert res.jumps.groupby("traj")["dn"].sum().eq(cutoff - 1).all()
    tr = res.trajectory_table().merge(st, on="traj")
    assert tr.loc[tr["t"] >= tr["t_stop"], "N"].isna().all()
    assert tr.loc[tr["t"] < tr["t_stop"], "N"].notna().all()
    assert (res.N_count[-1] == 0) and np.isnan(res.N_mean[-1])
    # without a cutoff the shared rule (sim.population.choose_cutoff) caps the runaway
    res2 = run_trajectories(m, engine="ssa", ntraj=20, t_end=200.0, n_points=5, seed=2, progress=False)
    assert res2.n_stopped == 20 and res2.stops["n"].nunique() == 1 and res2.stops["n"].iloc[0] > 100


# ----------------------------------------------------------------------------- ssa against QuTiP's mcsolve

@pytest.fixture(scope="module")
def pair(model):
    kw = dict(t_end=T_END, n_points=NPTS, seed=21, initial="thermal:0.5", progress=False)
    n_ssa, n_mc = 4000, 300
    ssa = run_trajectories(model, engine="ssa", ntraj=n_ssa, **kw)
    mc = run_trajectories(model, engine="mcsolve", ntraj=n_mc, cutoff=25, **kw)
    return ssa, mc, n_ssa, n_mc


def test_ssa_and_mcsolve_agree(pair):
    ssa, mc, n_ssa, n_mc = pair
    assert mc.engine == "mcsolve" and mc.n_stopped == 0
    se = np.sqrt(ssa.N_sem**2 + mc.N_sem**2)
    assert np.all(np.abs(ssa.N_mean - mc.N_mean) <= 4 * se + 1e-12), (ssa.N_mean, mc.N_mean, se)
    a, b = per_traj_counts(ssa.jumps, n_ssa), per_traj_counts(mc.jumps, n_mc)
    se = np.sqrt(a.var(axis=0, ddof=1) / n_ssa + b.var(axis=0, ddof=1) / n_mc)
    assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) <= 4 * se + 1e-12), (a.mean(axis=0), b.mean(axis=0), se)
    assert mc.jumps.dtypes.equals(ssa.jumps.dtypes)
    assert list(mc.trajectories.columns) == ["traj", "t", "N"]


def test_mcsolve_starts_from_the_same_fock_states_as_ssa(pair):
    """Same seed, same n0 per trajectory: both engines draw it from the child stream."""
    ssa, mc, _, n_mc = pair
    n0_ssa = ssa.initial_table().loc[lambda d: d["traj"] < n_mc, "n0"]
    n0_mc = mc.trajectories.loc[mc.trajectories["t"] == 0, "N"]
    np.testing.assert_array_equal(n0_ssa.to_numpy(), n0_mc.to_numpy())


def test_mcsolve_is_reproducible_and_batch_independent(model):
    kw = dict(engine="qutip", ntraj=12, t_end=10.0, n_points=4, seed=9, cutoff=12, progress=False)
    a = run_trajectories(model, **kw)
    b = run_trajectories(model, **kw, batch_size=5)
    pdt.assert_frame_equal(a.jumps, b.jumps)
    pdt.assert_frame_equal(a.trajectories, b.trajectories)
    assert a.jumps["traj"].nunique() > 1


def test_mcsolve_coherent_start(model):
    alpha = 1.2 + 0.5j
    ntraj = 150
    res = run_trajectories(model, engine="mcsolve", ntraj=ntraj, t_end=8.0, n_points=5, seed=4,
                           initial=f"coherent:{alpha}", progress=False)
    tr = res.trajectories
    np.testing.assert_allclose(tr.loc[tr["t"] == 0, "N"], abs(alpha) ** 2, rtol=1e-6)
    N_rate = model.N_t(res.t, abs(alpha) ** 2)
    assert np.all(np.abs(res.N_mean - N_rate) <= 4 * res.N_sem + 1e-6), (res.N_mean, N_rate, res.N_sem)
    assert res.n_jumps > 0 and set(res.jumps["dn"].unique()) <= {-1, 1}


def test_mcsolve_stops_at_the_top_state_like_ssa():
    m = unstable_model()
    res = run_trajectories(m, engine="mcsolve", ntraj=6, t_end=40.0, n_points=5, seed=1, cutoff=8, progress=False)
    assert res.n_stopped == 6 and (res.stops["n"] == 7).all()
    assert res.jumps.groupby("traj")["dn"].sum().eq(7).all()


@pytest.mark.parametrize(("engine", "initial", "N0"), [("ssa", "fock:2", 2.0), ("mcsolve", "fock:2", 2.0),
                                                      ("mcsolve", "coherent:1.0", 1.0)])
def test_no_bath_no_jumps(engine, initial, N0):
    z = np.zeros(4)
    m = RateModel(1.0, ChannelRates(np.float64(1.0), z, z, z, z), 0.0, 0.0, 0.1)
    res = run_trajectories(m, engine=engine, ntraj=3, t_end=2.0, n_points=3, initial=initial, cutoff=12, progress=False)
    assert res.n_jumps == 0 and res.jumps.empty and list(res.jumps.columns)[:3] == ["traj", "t", "channel"]
    np.testing.assert_allclose(res.N_mean, N0, rtol=1e-9)


def test_engines_take_one_model_at_a_time(model):
    vec = dataclasses.replace(model, rates=ChannelRates(*(np.stack([np.asarray(getattr(model.rates, f))] * 2, axis=-1)
                                                          for f in ("w", "mu", "emission", "absorption", "damping"))))
    with pytest.raises(ValueError, match="one bias point"):
        run_trajectories(vec, engine="ssa", ntraj=1, t_end=1.0, progress=False)


@pytest.mark.parametrize("scheduler", ["processes", "dask"])
def test_schedulers_give_the_serial_tables(tmp_path, scheduler):
    """Batches on worker processes or a Dask LocalCluster: the same tables as a serial run."""
    from sim.parallel import Scheduler

    cfg = parse_config({"conductor": {"kind": "flat", "K_LL": 0.6, "K_RR": 0.4, "K_LR": 0.5, "K_RL": 0.3},
                        "mode": {"omega": 1.0}, "bias": {"V": 2.0, "T_e": 0.5},
                        "phonon_bath": {"T": 0.3, "gamma": 0.05}})
    m = rate_model(cfg)
    kw = {"engine": "ssa", "ntraj": 300, "t_end": 20.0, "n_points": 11, "seed": 5, "batch_size": 70,
          "progress": False}
    serial = run_trajectories(m, **kw)
    other = run_trajectories(m, scheduler=Scheduler.parse(scheduler, 2), out_dir=tmp_path / scheduler, **kw)
    pd.testing.assert_frame_equal(serial.jump_table(), other.jump_table())
    pd.testing.assert_frame_equal(serial.trajectory_table(), other.trajectory_table())
    assert serial.n_jumps == other.n_jumps > 0


def test_ssa_uses_one_thread_inside_a_dask_worker():
    """A Dask worker already gets its share of the cores from the scheduler: no threads on top of it."""
    from dask.distributed import Client, LocalCluster

    from sim.trajectories.ssa import MIN_PER_THREAD, threads_for

    with LocalCluster(n_workers=1, processes=False, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert client.submit(threads_for, 64 * MIN_PER_THREAD).result() == 1
    assert threads_for(MIN_PER_THREAD - 1) == 1  # a small batch stays on one thread anywhere
