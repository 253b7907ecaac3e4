"""Run directories (README "Time domain"): streamed parquet parts, metadata, resume, refusal, `ehp trajectories`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

import analysis.cli.app as cli
import sim.trajectories.runner as runner
from sim.config import ConfigError
from sim.io import RunDirectory, part_files, read_table
from sim.rate_equation import rate_model
from sim.trajectories import run_trajectories

from .conftest import make_config

CFG = make_config(conductor={"kind": "flat", "K_LL": 0.6, "K_RR": 0.4, "K_LR": 0.5, "K_RL": 0.3},
                  bias={"V": 2.0, "T_e": 0.5}, phonon_bath={"T": 0.3, "gamma": 0.05})
KW = dict(engine="ssa", ntraj=250, t_end=10.0, n_points=5, seed=4, initial="thermal:0.5", batch_size=60,
          progress=False)
TOML = """
[conductor]
kind = "flat"
K_LL = 0.6
K_RR = 0.4
K_LR = 0.5
K_RL = 0.3
[mode]
omega = 1.0
[bias]
V = 2.0
T_e = 0.5
[phonon_bath]
T = 0.3
gamma = 0.05
[run]
t_end = 10.0
ntraj = 200
n_points = 5
"""


@pytest.fixture(scope="module")
def model():
    return rate_model(CFG)


@pytest.fixture(scope="module")
def reference(model):
    return run_trajectories(model, **KW)


def _mtimes(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_mtime_ns for p in d.rglob("part-*.parquet")}


def test_streamed_run_writes_parts_metadata_and_summary(model, reference, tmp_path):
    out = tmp_path / "run"
    res = run_trajectories(model, **KW, out_dir=out, config=CFG)
    assert res.jumps is None and res.trajectories is None and res.out_dir == out
    for table in ("jumps", "initial", "stops"):
        assert [p.name for p in part_files(out, table)] == [f"part-{i:05d}.parquet" for i in range(5)]
    assert not (out / "trajectories.parquet").exists()  # ssa: the grid follows from initial + jumps
    pdt.assert_frame_equal(res.jump_table(), reference.jumps)
    pdt.assert_frame_equal(read_table(out, "initial"), reference.initial)
    pdt.assert_frame_equal(res.trajectory_table(), reference.trajectory_table())
    assert read_table(out, "stops").empty
    j = read_table(out, "jumps")
    assert isinstance(j["channel"].dtype, pd.CategoricalDtype)
    assert list(j["channel"].cat.categories) == ["LL", "RR", "LR", "RL", "ph"]
    summary = json.loads((out / "summary.json").read_text())
    assert {"engine", "ntraj", "n_jumps", "wall_s", "jumps_per_s"} <= set(summary)
    assert summary["engine"] == "ssa" and summary["ntraj"] == 250 and summary["n_jumps"] == len(reference.jumps)
    assert summary["jumps_per_s"] > 0 and summary["wall_s"] > 0
    meta = json.loads((out / "metadata.json").read_text())
    assert {"config", "seed", "engine", "versions", "git_commit", "start_time", "wall_s"} <= set(meta)
    assert meta["status"] == "complete" and meta["seed"] == 4 and meta["engine"] == "ssa"
    assert meta["config"]["run"]["ntraj"] == 250 and meta["config"]["conductor"]["kind"] == "flat"
    assert {"numpy", "scipy", "qutip", "pandas", "numba", "sim"} <= set(meta["versions"])
    assert res.counts["count"].sum() == summary["n_jumps"]


def test_resume_after_a_killed_run_recomputes_nothing_finished(model, reference, tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls: list[int] = []
    real = runner.ENGINES["ssa"]

    def dying(plan, start, count):
        if start >= 180:  # killed during the fourth batch
            raise KeyboardInterrupt
        calls.append(start)
        return real.simulate(plan, start, count)

    monkeypatch.setitem(runner.ENGINES, "ssa", dataclasses.replace(real, simulate=dying))
    with pytest.raises(KeyboardInterrupt):
        run_trajectories(model, **KW, out_dir=out)
    assert calls == [0, 60, 120] and len(part_files(out, "jumps", partial=True)) == 3
    assert json.loads((out / "metadata.json").read_text())["status"] == "interrupted"  # SIGINT (KeyboardInterrupt)
    with pytest.raises(ConfigError, match=r"not a complete run: its status is 'interrupted'.*part-00003"):
        part_files(out, "jumps")
    before = _mtimes(out)

    calls.clear()
    monkeypatch.setitem(runner.ENGINES, "ssa", dataclasses.replace(real, simulate=lambda p, s, c: (
        calls.append(s), real.simulate(p, s, c))[1]))
    res = run_trajectories(model, **KW, out_dir=out)
    assert calls == [180, 240] and res.n_batches_resumed == 3
    after = _mtimes(out)
    assert all(after[k] == v for k, v in before.items())  # finished parts untouched
    pdt.assert_frame_equal(res.jump_table(), reference.jumps)
    assert res.n_jumps == reference.n_jumps
    pdt.assert_frame_equal(res.counts, reference.counts)

    # a lost part (deleted file) is recomputed, and only that one
    (out / "jumps.parquet" / "part-00001.parquet").unlink()
    calls.clear()
    res = run_trajectories(model, **KW, out_dir=out)
    assert calls == [60] and res.n_batches_resumed == 4
    pdt.assert_frame_equal(res.jump_table(), reference.jumps)
    assert json.loads((out / "metadata.json").read_text())["status"] == "complete"


def test_a_different_run_is_refused_unless_overwrite(model, tmp_path):
    out = tmp_path / "run"
    run_trajectories(model, **KW, out_dir=out)
    with pytest.raises(ConfigError, match=r"refusing.*run\.seed: 4 -> 5.*--overwrite"):
        run_trajectories(model, **{**KW, "seed": 5}, out_dir=out)
    with pytest.raises(ConfigError, match="batch_size: 60 -> 50"):
        run_trajectories(model, **{**KW, "batch_size": 50}, out_dir=out)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"refusing to --overwrite.*notes\.txt.*which no run of ehp wrote"):
        run_trajectories(model, **{**KW, "seed": 5, "batch_size": 100}, out_dir=out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and len(part_files(out, "jumps")) == 5  # nothing deleted
    (out / "notes.txt").unlink()
    res = run_trajectories(model, **{**KW, "seed": 5, "batch_size": 100}, out_dir=out, overwrite=True)
    assert res.n_batches_resumed == 0 and len(part_files(out, "jumps")) == 3
    assert json.loads((out / "metadata.json").read_text())["identity"]["run"]["seed"] == 5


def test_directories_that_are_not_runs(model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not run_trajectories(model, **KW, out_dir=empty).n_batches_resumed
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("1,2\n")
    with pytest.raises(ConfigError, match="not empty and holds no run"):
        run_trajectories(model, **KW, out_dir=other)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        RunDirectory.open(afile, {"command": "x"})
    with pytest.raises(FileNotFoundError):
        read_table(empty, "sweep")


def _cli(monkeypatch, argv):
    monkeypatch.setattr(cli, "PLUGINS", ("analysis.cli.trajectories",))
    return cli.main(argv)


def test_cli_trajectories(monkeypatch, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML)
    out = tmp_path / "run"
    argv = ["trajectories", str(cfg), "--out", str(out), "--ntraj", "120", "--seed", "3", "--batch-size", "50"]
    assert _cli(monkeypatch, argv) == 0
    stdout, stderr = capsys.readouterr()
    assert str(out / "summary.json") in stdout and "jumps/s" in stdout
    assert "ssa" in stderr and "100%" in stderr  # tqdm progress on stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ntraj"] == 120 and summary["seed"] == 3 and summary["n_batches"] == 3
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["config"]["run"] == {"t_end": 10.0, "n_points": 5, "ntraj": 120, "seed": 3, "engine": "ssa",
                                     "initial": "vacuum", "store_grid": False}
    # same command: resumed, nothing recomputed
    assert _cli(monkeypatch, argv + ["--no-progress"]) == 0
    stdout, _ = capsys.readouterr()
    assert "0 of 3 batches computed, 3 resumed" in stdout
    # a different config in the same directory: exit 2, one line on stderr
    assert _cli(monkeypatch, argv + ["--set", "bias.V=1.5"]) == 2
    _, stderr = capsys.readouterr()
    assert stderr.startswith("ehp: error: refusing") and "--overwrite" in stderr
    assert _cli(monkeypatch, argv + ["--set", "bias.V=1.5", "--overwrite", "--no-progress"]) == 0
    capsys.readouterr()
    # a coherent state with ssa, and no t_end: exit 2
    argv2 = ["trajectories", str(cfg), "--out", str(tmp_path / "r2"), "--set", "run.initial=coherent:1.0"]
    assert _cli(monkeypatch, argv2) == 2
    assert "mcsolve" in capsys.readouterr().err
    cfg.write_text(TOML.replace("t_end = 10.0\n", ""))
    assert _cli(monkeypatch, ["trajectories", str(cfg), "--out", str(tmp_path / "r3")]) == 2
    assert "t_end" in capsys.readouterr().err


def test_cli_mcsolve_alias(monkeypatch, tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(TOML)
    out = tmp_path / "mc"
    argv = ["trajectories", str(cfg), "--engine", "qutip", "--ntraj", "8", "--t-end", "3", "--out", str(out),
            "--set", "run.cutoff=10", "--no-progress"]
    assert _cli(monkeypatch, argv) == 0
    assert "engine        mcsolve" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["engine"] == "mcsolve"
    assert json.loads((out / "metadata.json").read_text())["config"]["run"]["engine"] == "mcsolve"
