"""Quantum-jump trajectories of several modes: mcsolve rates from the Gaussian steady state, ssa per mode
against the covariance route, the jump and operator tables, and the one-mode limit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sim.conductor import CHANNELS
from sim.covariance import ModeSystem, mode_system
from sim.io import part_files, read_table
from sim.model import rate_model
from sim.parallel import Scheduler
from sim.runsafe import RUN_KEY
from sim.trajectories import run_trajectories
from sim.trajectories.labelled import has_cross_terms, operators_frame
from sim.trajectories.table import CHANNEL_DTYPE, DIRECTION_DTYPE, JUMP_COLUMNS, MODE_JUMP_COLUMNS, modes_grid_frame

from .conftest import make_config


def run_mode_trajectories(s, engine, ntraj, t_end, n_points, seed, initial="vacuum", **kw):
    """The entry point moved to the one runner: ``(jumps, N, operators)`` of ``run_trajectories`` on a ModeSystem."""
    r = run_trajectories(s, engine=engine, ntraj=ntraj, t_end=t_end, n_points=n_points, seed=seed, initial=initial,
                         progress=False, **kw)
    return r.jumps, r.populations(), r.operators


def mode_run(s, out_dir, **kw):
    """The entry point moved: a streamed ``run_trajectories``; ``(path, result, n_batches, n_resumed)``."""
    r = run_trajectories(s, out_dir=out_dir, **kw)
    return r.out_dir, r, r.n_batches, r.n_batches_resumed


def _psd(rng, K, scale):
    B = rng.normal(size=(K, K)) + 1j * rng.normal(size=(K, K))
    return scale * B @ B.conj().T / K


def _system(omega, clusters, seed=1, nth=0.05, em_scale=0.2):
    """Modes with random complex positive semi-definite rate matrices (zero between clusters), ph-baths."""
    rng = np.random.default_rng(seed)
    K = len(omega)
    em = em_scale * np.array([_psd(rng, K, 0.1) for _ in range(4)])
    ab = np.array([_psd(rng, K, 0.1) for _ in range(4)]) + 1.5 * em
    mask = np.zeros((K, K), bool)
    for S in clusters:
        mask[np.ix_(S, S)] = True
    em, ab = em * mask, ab * mask
    return ModeSystem(np.array(omega, float), np.full(K, 0.05), np.full(K, nth), em, ab, ab - em, np.zeros(4),
                      clusters, 1.0)


def test_mcsolve_jump_rates_from_the_gaussian_steady_state():
    """Stationary rates per (channel, direction): emission sum_mn T_em_mn (C_mn + delta_mn), absorption
    sum_mn T_abs_mn C_mn (ModeSystem.fluxes), with cross terms (one cluster of split quanta)."""
    s = _system([1.0, 1.05], ((0, 1),))
    ref = s.steady_state()
    assert abs(ref.C[0, 1]) > 0.15 * ref.N.max()  # coherences matter
    ntraj, T = 150, 20.0
    jumps, N, ops = run_mode_trajectories(s, "mcsolve", ntraj, T, 5, seed=3, initial="steady", tol=1e-6)
    assert (ops["mode"] == -1).sum() == 16  # every electronic operator spans both modes
    per = jumps.groupby(["traj", "channel", "direction"], observed=False).size().unstack(["channel", "direction"])
    per = per.reindex(range(ntraj), fill_value=0)
    z = []
    for c, name in enumerate(CHANNELS):
        for direction, want in (("emission", ref.emission_rate[c]), ("absorption", ref.absorption_rate[c])):
            x = per[(name, direction)].to_numpy() / T  # per-trajectory rate; trajectories are independent
            z.append((x.mean() - want) / (x.std(ddof=1) / np.sqrt(ntraj)))
    # ph-bath: emission gamma n_th (N + 1), absorption gamma (n_th + 1) N per mode
    for direction, want in (("emission", np.sum(s.gamma * s.n_th * (ref.N + 1))),
                            ("absorption", np.sum(s.gamma * (s.n_th + 1) * ref.N))):
        x = per[("ph", direction)].to_numpy() / T
        z.append((x.mean() - want) / (x.std(ddof=1) / np.sqrt(ntraj)))
    z = np.array(z)
    assert np.all(np.abs(z) < 4.0), z  # 10 labels at 4 standard errors: a false alarm has probability < 1e-3
    # the populations stay at the steady state on average
    np.testing.assert_allclose(N.mean(axis=0).T, np.tile(ref.N, (5, 1)), atol=5 * N.std(axis=0).max() / np.sqrt(ntraj))


def test_mcsolve_populations_from_the_vacuum_follow_the_covariance_route():
    """With cross terms and split quanta (the rotating frame keeps the 0.05 detuning): mean N_k(t) = C(t)_kk."""
    s = _system([1.0, 1.05], ((0, 1),), seed=2)
    ntraj, t = 120, np.linspace(0.0, 12.0, 4)
    _, N, _ = run_mode_trajectories(s, "mcsolve", ntraj, 12.0, 4, seed=5, tol=1e-5)
    want = np.diagonal(s.covariance(t), axis1=1, axis2=2).real
    mean, sem = N.mean(axis=0).T, N.std(axis=0, ddof=1).T / np.sqrt(ntraj)
    assert np.all(N[:, :, 0] == 0) and want[-1].min() > 0.1
    assert np.all(np.abs(mean - want)[1:] < 4 * sem[1:]), (mean, want, sem)


def test_ssa_per_mode_population_equals_the_covariance_route():
    s = _system([1.0, 1.4], ((0,), (1,)), nth=0.3, em_scale=1.0)
    assert not has_cross_terms(s)
    ntraj = 1500
    t = np.linspace(0.0, 30.0, 7)
    jumps, N, ops = run_mode_trajectories(s, "ssa", ntraj, 30.0, 7, seed=4)
    want = np.diagonal(s.covariance(t), axis1=1, axis2=2).real  # (n_t, K)
    mean, sem = N.mean(axis=0).T, N.std(axis=0, ddof=1).T / np.sqrt(ntraj)
    assert np.all(N[:, :, 0] == 0)
    assert np.all(np.abs(mean - want)[1:] < 4 * sem[1:]), (mean, want, sem)
    # the table: every jump acts on one mode; its dE is that mode's quantum times dn; dn sums to N
    assert set(jumps["mode"].unique()) == {0, 1} and (ops["mode"] >= 0).all()
    np.testing.assert_array_equal(jumps["dE"], s.omega[jumps["mode"]] * jumps["dn"])
    final = jumps.groupby(["traj", "mode"])["dn"].sum().unstack(fill_value=0).reindex(range(ntraj), fill_value=0)
    np.testing.assert_array_equal(final.to_numpy(), N[:, :, -1])
    assert (jumps.groupby("traj")["t"].apply(lambda x: x.is_monotonic_increasing)).all()
    assert jumps["traj"].is_monotonic_increasing
    # the steady start: each mode geometric of mean C_kk
    _, N0, _ = run_mode_trajectories(s, "ssa", ntraj, 1.0, 2, seed=4, initial="steady")
    C = np.diagonal(s.steady_covariance()).real
    assert np.all(np.abs(N0[:, :, 0].mean(axis=0) - C) < 4 * N0[:, :, 0].std(axis=0) / np.sqrt(ntraj))


def test_ssa_refuses_cross_terms_and_tables_have_the_documented_columns(tmp_path):
    s = _system([1.0, 1.05], ((0, 1),))
    with pytest.raises(ValueError, match="mcsolve"):
        run_mode_trajectories(s, "ssa", 2, 1.0, 2, seed=0)
    with pytest.raises(ValueError, match="engine"):
        run_mode_trajectories(s, "euler", 2, 1.0, 2, seed=0)
    jumps, N, ops = run_mode_trajectories(s, "mcsolve", 3, 2.0, 3, seed=0, tol=1e-4)
    assert tuple(jumps.columns) == MODE_JUMP_COLUMNS and MODE_JUMP_COLUMNS[:len(JUMP_COLUMNS)] == JUMP_COLUMNS
    assert jumps["mode"].dtype == np.int16 and jumps["op"].dtype == np.int16 and N.shape == (3, 2, 3)
    assert list(ops["op"]) == list(range(len(ops))) and len(ops) == len(s.collapse_operators())
    w = ops[["w_0", "w_1"]].to_numpy() * np.exp(1j * ops[["phi_0", "phi_1"]].to_numpy())
    for row, op in zip(w, s.collapse_operators(), strict=True):
        np.testing.assert_allclose(row, op.weights, atol=1e-15)
    np.testing.assert_allclose(ops["quantum"], (ops[["w_0", "w_1"]].to_numpy() ** 2) @ s.omega, rtol=1e-14)
    frame = operators_frame(s)
    pd.testing.assert_frame_equal(frame, ops)
    # every jump's channel, direction, dn, dQ, dE and mode are its operator's
    merged = jumps.merge(ops, on="op", suffixes=("", "_op"))
    for col in ("channel", "direction", "dn", "dQ", "dE", "mode"):
        np.testing.assert_array_equal(merged[col].to_numpy(), merged[f"{col}_op"].to_numpy())
    long = modes_grid_frame(0, np.linspace(0.0, 2.0, N.shape[2]), N)
    assert len(long) == N.size and list(long.columns) == ["traj", "t", "mode", "N"]
    np.testing.assert_array_equal(long.set_index(["traj", "mode", "t"])["N"].to_numpy(), N.reshape(-1))
    res = run_trajectories(s, engine="mcsolve", ntraj=3, t_end=2.0, n_points=3, seed=0, tol=1e-4, progress=False)
    summ = res.summary()
    assert sum(c["count"] for c in summ["counts"]) == len(jumps) == sum(summ["counts_per_operator"])
    np.testing.assert_allclose(summ["N_final_mean"], N[:, :, -1].mean(axis=0), rtol=1e-12)
    # a run directory: the three tables read back as written
    from sim.io import check_run, read_table

    kw = dict(engine="mcsolve", ntraj=3, t_end=2.0, n_points=3, seed=0, initial="vacuum")
    out = run_trajectories(s, out_dir=tmp_path / "run", tol=1e-4, progress=False, **kw).out_dir
    assert check_run(out).complete
    pd.testing.assert_frame_equal(read_table(out, "jumps"), jumps, check_categorical=False)
    pd.testing.assert_frame_equal(read_table(out, "operators"), ops, check_categorical=False)
    pd.testing.assert_frame_equal(read_table(out, "trajectories"), long)


def test_one_mode_ssa_gives_the_one_mode_engine_jumps():
    """K = 1 with the same seed: mode 0 draws from the one-mode engine's stream (SeedSequence(seed, spawn_key=(i,)))."""
    cfg = make_config(bias={"mu_L": 0.4, "mu_R": -0.4, "T_e": 0.1}, phonon_bath={"T": 0.15, "gamma": 0.05})
    b, cond = cfg.bias, cfg.conductor.build()
    s = mode_system(cond, cond.M, cfg.mode.omega, cfg.phonon_bath.gamma, cfg.phonon_bath.T, b.mu_L, b.mu_R, b.T_L,
                    b.T_R, T_e=b.T_e)
    for initial in ("vacuum", "steady"):
        one = run_trajectories(rate_model(cfg), engine="ssa", ntraj=40, t_end=30.0, n_points=4, seed=9, initial=initial,
                               progress=False)
        jumps, N, _ = run_mode_trajectories(s, "ssa", 40, 30.0, 4, seed=9, initial=initial)
        ref = one.jumps
        assert len(jumps) == len(ref) > 100
        for col in ("traj", "channel", "direction", "dn", "dQ"):
            np.testing.assert_array_equal(jumps[col].to_numpy(), ref[col].to_numpy())
        np.testing.assert_allclose(jumps["t"], ref["t"], rtol=1e-12)
        np.testing.assert_allclose(jumps["dE"], ref["dE"], rtol=1e-15)
        assert (jumps["mode"] == 0).all()
        np.testing.assert_array_equal(N[:, 0, :], one.trajectory_table()["N"].to_numpy().reshape(40, 4))


def test_batches_without_jumps_write_parts_of_the_same_schema(tmp_path):
    """A batch without jumps writes a jumps part with the arrow schema of one with jumps, and the run's jump table
    reads back categorical (channel, direction) and equal to the one-batch table of the same seed.

    A parquet file without rows stores no dictionary values, so its categories travel in the field metadata;
    without them an empty part reads back with no categories and the parts concatenate to object columns.
    """
    s = _system([1.0, 1.3], ((0,), (1,)))
    kw = dict(engine="ssa", n_points=2, seed=3, batch_size=1, progress=False)
    path, res, n_batches, _ = mode_run(s, tmp_path / "mixed", ntraj=8, t_end=1.0, **kw)
    files = part_files(path, "jumps")
    rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
    assert n_batches == len(files) == 8 and 0 in rows and max(rows) > 0  # parts with and without jumps
    # the same fields, field metadata (categories) and table metadata, but for each part's own identity record
    schemas = [pq.read_schema(f) for f in files]
    schemas = [sch.with_metadata({k: v for k, v in sch.metadata.items() if k != RUN_KEY}) for sch in schemas]
    assert all(sch.equals(schemas[0], check_metadata=True) for sch in schemas)
    jumps = read_table(path, "jumps")
    assert jumps["channel"].dtype == CHANNEL_DTYPE and jumps["direction"].dtype == DIRECTION_DTYPE
    pd.testing.assert_frame_equal(jumps, run_mode_trajectories(s, "ssa", 8, 1.0, 2, seed=3)[0])
    pd.testing.assert_frame_equal(jumps, res.jump_table())
    # a run without any jump: every part empty, the table still has the documented dtypes
    path, *_ = mode_run(s, tmp_path / "none", ntraj=2, t_end=1e-3, **kw)
    assert [pq.ParquetFile(f).metadata.num_rows for f in part_files(path, "jumps")] == [0, 0]
    jumps = read_table(path, "jumps")
    assert jumps["channel"].dtype == CHANNEL_DTYPE and jumps["direction"].dtype == DIRECTION_DTYPE


def test_mcsolve_run_same_tables_serial_and_processes(tmp_path):
    """The batches of a several-mode run on a process pool give the serial run's tables exactly: trajectory ``i``
    draws from ``SeedSequence(seed, spawn_key=(i,))`` whichever process runs its batch."""
    s = _system([1.0, 1.05], ((0, 1),), em_scale=0.5)
    kw = dict(engine="mcsolve", ntraj=6, t_end=3.0, n_points=4, seed=11, initial="steady", batch_size=3,
              progress=False, tol=1e-4)
    runs = {kind: mode_run(s, tmp_path / kind, scheduler=Scheduler(kind, 2) if kind != "serial" else kind, **kw)
            for kind in ("serial", "processes")}
    assert all(r[2] == 2 and r[3] == 0 for r in runs.values())  # two batches, both computed
    jumps = read_table(runs["serial"][0], "jumps")
    assert len(jumps) > 5 and jumps["traj"].nunique() > 1  # something to compare
    for name in ("jumps", "trajectories", "operators"):
        pd.testing.assert_frame_equal(read_table(runs["processes"][0], name), read_table(runs["serial"][0], name))
    pd.testing.assert_frame_equal(runs["processes"][1].jump_table(), runs["serial"][1].jump_table())
    np.testing.assert_array_equal(runs["processes"][1].populations(), runs["serial"][1].populations())
