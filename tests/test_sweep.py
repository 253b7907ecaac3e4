"""Sweep engine (sim.sweep): grids, schedulers, resumable run directories, the ``ehp sweep`` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis.cli.app as cli
from sim.config import ConfigError, load_config
from sim.io import part_files
from sim.sweep import Grid, GridAxis, Scheduler, SteadyPoint, default_chunk_size, read_sweep, run_tasks, sweep

from .conftest import make_config

ROOT = Path(__file__).resolve().parents[1]
PAPER = str(ROOT / "runs" / "paper_double_dot.toml")


_main = cli.main  # the sweep plugin is registered in analysis.cli.PLUGINS


# --------------------------------------------------------------------------- grids

def test_grid_linspace_list_and_outer_product_order():
    g = Grid.parse(["bias.V=0:1:3", "bias.T_e=[0.1, 0.2]"])
    assert g.axes[0].values == (0.0, 0.5, 1.0)
    assert g.shape == (3, 2) and len(g) == 6
    assert g.points() == [(0.0, 0.1), (0.0, 0.2), (0.5, 0.1), (0.5, 0.2), (1.0, 0.1), (1.0, 0.2)]
    assert GridAxis.parse("phonon_bath.gamma=0.05").values == (0.05,)
    assert GridAxis.parse("bias.V=-1:1:5").values == tuple(np.linspace(-1, 1, 5))


@pytest.mark.parametrize("spec, match", [
    (["bias.V"], "section.key=start:stop:num"),
    (["bias.V=0:1:0"], "num must be an integer >= 1"),
    (["bias.V=0:1:2.5"], "num must be an integer"),
    (["bias.V=a:b:3"], "cannot read .a. as a number"),
    (["bias.V=\"a\":1:3"], "start and stop must be numbers"),
    (["bias.V=[0, 1]", "bias.V=[2]"], "keys must differ"),
    (["bias.V=[0, 1]", "bias.mu_L=[2]"], "cannot mix"),
    (["bias.V=[0, true]"], "finite numbers"),
])
def test_grid_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        Grid.parse(spec)


def test_grid_validated_against_config():
    cfg = make_config()
    with pytest.raises(ConfigError, match="numeric config key"):
        Grid.parse(["conductor.kind=[1]"]).validate(cfg)
    with pytest.raises(ConfigError, match="phonon_bath.T must be >= 0"):
        Grid.parse(["phonon_bath.T=-0.1:0.1:3"]).validate(cfg)
    with pytest.raises(ConfigError, match="not a known key"):
        Grid.parse(["bias.nope=[1]"]).validate(cfg)
    g = Grid.parse(["run.ntraj=10:30:3"]).validate(cfg)
    assert g.axes[0].values == (10, 20, 30) and all(isinstance(v, int) for v in g.axes[0].values)


def test_scheduler_parse():
    assert Scheduler.parse("tcp://127.0.0.1:8786") == Scheduler("dask", None, "tcp://127.0.0.1:8786")
    assert Scheduler.parse("processes", 2).n_workers == 2
    with pytest.raises(ConfigError, match="--scheduler"):
        Scheduler.parse("threads")
    with pytest.raises(ConfigError, match="--workers"):
        Scheduler.parse("dask", 0)


def test_default_chunk_size_depends_only_on_points():
    assert default_chunk_size(1) == 1 and default_chunk_size(64) == 1
    assert default_chunk_size(10_000) == 157 and default_chunk_size(10**7) == 1000


# --------------------------------------------------------------------------- the table

def test_table_columns_and_values_match_steady_state():
    from sim.rate_equation import steady_state

    cfg = load_config(PAPER)
    t = sweep(cfg, ["bias.V=[0.5, 1.5]", "phonon_bath.gamma=[0.05]"])
    assert list(t.columns[:4]) == ["bias.V", "phonon_bath.gamma", "gamma_e", "emission_total"]
    for c in ("kappa", "stable", "N", "J", "Ie", "eta", "LR.emission", "LR.J", "RL.damping", "LL.Ie"):
        assert c in t.columns
    assert t["stable"].dtype == bool and t["stable"].tolist() == [True, False]
    ref = steady_state(cfg.with_value("bias.V", 0.5)).to_dict()
    assert t.loc[0, "kappa"] == ref["kappa"] and t.loc[0, "LR.emission"] == ref["channels"]["LR"]["emission"]
    assert np.isnan(t.loc[1, "N"]) and t.loc[1, "growth_rate"] > 0  # unstable: no steady state


def test_landauer_columns():
    from sim.landauer import landauer

    cfg = load_config(PAPER)
    t = sweep(cfg, {"bias.V": [0.5]}, landauer="lowest")
    assert t.loc[0, "landauer.J"] == landauer(cfg, "lowest").J and bool(t.loc[0, "landauer.valid"])
    with pytest.raises(ConfigError, match="--landauer"):
        SteadyPoint("middle")


def test_same_table_from_serial_processes_and_dask():
    cfg = load_config(PAPER)
    grid = ["bias.V=0.2:1.6:4", "bias.T_e=[0.05, 0.2]"]
    serial = sweep(cfg, grid, chunk_size=3)
    procs = sweep(cfg, grid, chunk_size=3, scheduler="processes", workers=2)
    dask = sweep(cfg, grid, chunk_size=3, scheduler="dask", workers=2)
    pd.testing.assert_frame_equal(serial, procs)
    pd.testing.assert_frame_equal(serial, dask)
    assert len(serial) == 8 and (~serial["stable"]).sum() > 0


def test_existing_dask_scheduler_by_address():
    from distributed import LocalCluster

    cfg = load_config(PAPER)
    grid = ["bias.V=[0.5, 1.5]", "bias.T_e=[0.1, 0.2]"]
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        addr = cluster.scheduler_address
        assert "://" in addr and Scheduler.parse(addr) == Scheduler("dask", None, addr)
        got = sweep(cfg, grid, chunk_size=1, scheduler=addr)
    pd.testing.assert_frame_equal(got, sweep(cfg, grid))


def _square(x):
    if x == 3:
        raise RuntimeError("task 3 failed")
    return x * x


def test_run_tasks_indices_and_errors():
    got = dict(run_tasks(_square, [0, 1, 2], "processes", progress=False))
    assert got == {0: 0, 1: 1, 2: 4}
    with pytest.raises(RuntimeError, match="task 3 failed"):
        list(run_tasks(_square, [1, 3, 2], "serial"))
    with pytest.raises(RuntimeError, match="task 3 failed"):
        list(run_tasks(_square, [1, 3, 2, 5, 6], Scheduler("processes", 2)))


def _slow_square(x):
    import time

    time.sleep(0.05)
    return x * x


def test_auto_scheduler_stays_serial_for_small_work_and_switches_when_it_pays(monkeypatch):
    """``auto``: tiny tasks run in this process; once the estimated remaining work outweighs
    the (here zero) pool start-up on two idle cores the rest goes to a process pool, and the
    results are the same either way."""
    import os

    import sim.parallel as par

    pids = {}

    def where(x):
        pids[x] = os.getpid()
        return x * x

    got = dict(run_tasks(where, list(range(6)), "auto"))  # a closure: would fail to pickle in a pool
    assert got == {i: i * i for i in range(6)} and set(pids.values()) == {os.getpid()}
    monkeypatch.setattr(par, "POOL_STARTUP_S", 0.0)
    monkeypatch.setattr(par, "idle_workers", lambda cores=None: 2)
    monkeypatch.setattr(par, "_run_processes", lambda fn, tasks, sched, bar, w: (
        (j, ("pool", sched.kind, sched.workers, fn(t))) for j, t in enumerate(tasks)))
    got = dict(run_tasks(_slow_square, list(range(6)), "auto"))
    assert [got[i] for i in (0, 1)] == [0, 1]  # the first two always run here (warm-up, then a timing)
    assert [got[i] for i in range(2, 6)] == [("pool", "processes", 2, i * i) for i in range(2, 6)]


def test_progress_counts_are_integers(capsys):
    list(run_tasks(_square, [0, 1, 2], "serial", progress=True, weights=[2.0, 3.0, 5.0], unit="pt"))
    err = capsys.readouterr().err
    assert "10/10" in err and ".0/" not in err


def test_cli_scheduler_defaults_to_auto():
    p = cli.build_parser()
    for argv in (["run", "x.toml"], ["sweep", "x.toml", "--grid", "bias.V=0:1:3", "--out", "d"],
                 ["trajectories", "x.toml", "--out", "d"]):
        assert p.parse_args(argv).scheduler == "auto"


# --------------------------------------------------------------------------- run directories and resume

CALLS = {"n": 0, "fail_after": None}


class Interrupted(Exception):
    pass


def counting_point(config):
    """A point function that counts its calls and can 'die' after a number of them."""
    CALLS["n"] += 1
    if CALLS["fail_after"] is not None and CALLS["n"] > CALLS["fail_after"]:
        raise Interrupted
    r = SteadyPoint()(config)
    return {"kappa": r["kappa"], "stable": r["stable"], "N": r["N"]}


def test_interrupted_sweep_resumes_without_recomputation(tmp_path):
    cfg = load_config(PAPER)
    grid = ["bias.V=0.2:1.6:6", "bias.T_e=[0.1, 0.2]"]  # 12 points, chunks of 2 -> 6 parts
    CALLS.update(n=0, fail_after=None)
    ref = sweep(cfg, grid, fn=counting_point, chunk_size=2)
    assert CALLS["n"] == 12

    out = tmp_path / "run"
    CALLS.update(n=0, fail_after=5)  # dies in the middle of chunk 2: chunks 0 and 1 are saved
    with pytest.raises(Interrupted):
        sweep(cfg, grid, fn=counting_point, chunk_size=2, out=out)
    assert [p.name for p in part_files(out, "sweep", partial=True)] == ["part-00000.parquet", "part-00001.parquet"]
    assert json.loads((out / "metadata.json").read_text())["status"] == "failed"

    CALLS.update(n=0, fail_after=None)
    again = sweep(cfg, grid, fn=counting_point, chunk_size=2, out=out)
    assert CALLS["n"] == 12 - 4  # only the unsaved points
    pd.testing.assert_frame_equal(again, ref)
    pd.testing.assert_frame_equal(read_sweep(out), ref)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "complete" and meta["grid"][0]["spec"] == "0.2:1.6:6"

    CALLS.update(n=0)
    sweep(cfg, grid, fn=counting_point, chunk_size=2, out=out, scheduler="processes", workers=2)
    assert CALLS["n"] == 0  # complete: nothing recomputed, whatever the scheduler


def test_changed_config_or_grid_is_refused(tmp_path):
    cfg = load_config(PAPER)
    out = tmp_path / "run"
    sweep(cfg, ["bias.V=[0.5, 1.0]"], out=out)
    with pytest.raises(ConfigError, match="refusing to write.*phonon_bath.gamma"):
        sweep(cfg.with_value("phonon_bath.gamma", 0.1), ["bias.V=[0.5, 1.0]"], out=out)
    with pytest.raises(ConfigError, match="refusing to write"):
        sweep(cfg, ["bias.V=[0.5, 1.5]"], out=out)
    with pytest.raises(ConfigError, match="refusing to write"):
        sweep(cfg, ["bias.V=[0.5, 1.0]"], landauer="lowest", out=out)
    t = sweep(cfg, ["bias.V=[0.5, 1.5]"], out=out, overwrite=True)
    assert t["bias.V"].tolist() == [0.5, 1.5] and read_sweep(out)["bias.V"].tolist() == [0.5, 1.5]


def test_foreign_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        sweep(load_config(PAPER), ["bias.V=[0.5]"], out=tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


# --------------------------------------------------------------------------- command line

def test_cli_sweep_writes_parts_and_metadata(tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["sweep", PAPER, "--grid", "bias.V=0:1.5:4", "--grid", "bias.T_e=[0.1,0.2]", "--out", str(out),
            "--landauer", "lowest", "--chunk-size", "3", "--no-progress"]
    assert _main(argv) == 0
    stdout = capsys.readouterr().out
    assert "8 points" in stdout
    parts = sorted(p.name for p in (out / "sweep.parquet").iterdir())
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["identity"]["command"] == "sweep" and meta["config"]["bias"]["V"] == 0.5
    assert [a["key"] for a in meta["grid"]] == ["bias.V", "bias.T_e"]
    t = read_sweep(out)
    assert list(t.columns[:2]) == ["bias.V", "bias.T_e"] and "landauer.J" in t.columns and len(t) == 8

    assert _main(argv) == 0  # same sweep: resumed, nothing to do
    argv2 = [a if a != "bias.T_e=[0.1,0.2]" else "bias.T_e=[0.1,0.3]" for a in argv]
    assert _main(argv2) == 2
    err = capsys.readouterr().err
    assert err.startswith("ehp: error: refusing to write") and err.count("\n") == 1
    assert _main([*argv2, "--overwrite"]) == 0


@pytest.mark.parametrize("extra, match", [
    (["--grid", "bias.V=0:1"], "start:stop:num"),
    (["--grid", "bias.V=[0,1]", "--scheduler", "threads"], "--scheduler"),
    (["--grid", "conductor.eps=[0,1]"], "numeric config key"),
    (["--grid", "bias.V=[0,1]", "--set", "phonon_bath.gamma=-1"], "phonon_bath.gamma must be >= 0"),
])
def test_cli_sweep_bad_input_exit_2(tmp_path, capsys, extra, match):
    assert _main(["sweep", PAPER, "--out", str(tmp_path / "x"), "--no-progress", *extra]) == 2
    assert match in capsys.readouterr().err
