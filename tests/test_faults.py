"""Fault injection on run directories: kills, lost and damaged parts, concurrent writers, stale locks,
incomplete runs read by `ehp stats`, and `--overwrite` on directories that hold other things.

Every test compares against an uninterrupted run with the same seed: trajectory ``i`` always draws
from child ``i`` of ``SeedSequence(seed)``, so a resumed run must give *identical* tables.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

import sim.trajectories.runner as runner
from analysis.cli import main
from sim.config import ConfigError
from sim.io import LOCK_NAME, RunDirectory, check_run, part_files, read_table
from sim.sweep import evaluate_chunk, read_sweep, sweep

ROOT = Path(__file__).resolve().parents[1]
PAPER = str(ROOT / "runs" / "paper_double_dot.toml")
TABLES = ("jumps", "initial", "stops")
NTRAJ, BATCH = 300, 50  # 6 batches (parts) per table


def _argv(out: Path, seed: int = 7, ntraj: int = NTRAJ, batch: int = BATCH) -> list[str]:
    return ["trajectories", PAPER, "--ntraj", str(ntraj), "--t-end", "100", "--n-points", "5", "--batch-size",
            str(batch), "--seed", str(seed), "--no-progress", "--set", "run.initial=thermal:1", "--out", str(out)]


def _tables(d: Path) -> dict[str, pd.DataFrame]:
    return {t: read_table(d, t) for t in TABLES}


def _assert_same(d: Path, ref: dict[str, pd.DataFrame]) -> None:
    got = _tables(d)
    for t in TABLES:
        pdt.assert_frame_equal(got[t], ref[t], obj=t)
    assert check_run(d).complete


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    """An uninterrupted run (never modified by the tests: they copy it)."""
    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(_argv(out)) == 0
    return out, _tables(out)


@pytest.fixture
def no_figures(monkeypatch):
    """`ehp stats --out` without its PNG figures (slow to draw, and not what these tests check)."""
    import analysis.stats_plots

    monkeypatch.setattr(analysis.stats_plots, "stats_figures", lambda *a, **k: [])


def _copy(reference, tmp_path: Path) -> Path:
    d = tmp_path / "run"
    shutil.copytree(reference[0], d)
    return d


# --------------------------------------------------------------------------- kills and resume


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path, capsys):
    """A real process killed with SIGKILL after its first part; the rerun finishes it, tables identical."""
    out = tmp_path / "run"
    argv = _argv(out, ntraj=NTRAJ, batch=5)  # 60 small batches: the kill lands mid-run
    proc = subprocess.Popen([sys.executable, "-m", "analysis.cli", *argv], env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = out / "jumps.parquet" / "part-00000.parquet"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    _, perr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, perr.decode()[-2000:]
    chk = check_run(out)
    assert chk.status == "running" and not chk.complete and chk.missing  # killed mid-run
    assert (out / LOCK_NAME).is_file()  # the dead writer's lock is left behind
    # a reader refuses the killed run (exit 2, naming what is missing)
    assert main(["stats", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ehp: error:") and "missing" in err and "part-000" in err and err.count("\n") == 1

    assert main(argv) == 0  # the same command resumes: stale lock taken over, unfinished parts computed
    err = capsys.readouterr().err
    assert "taking over the stale lock" in err
    full = tmp_path / "full"
    assert main(_argv(full, ntraj=NTRAJ, batch=5)) == 0
    capsys.readouterr()
    _assert_same(out, _tables(full))
    assert not (out / LOCK_NAME).exists()


def test_crash_marks_failed_and_the_corrected_command_works(tmp_path, monkeypatch, capsys, reference):
    out = tmp_path / "run"
    real = runner.ENGINES["ssa"]

    def crashing(plan, start, count):
        if start >= 2 * BATCH:
            raise RuntimeError("boom in batch 3")
        return real.simulate(plan, start, count)

    monkeypatch.setitem(runner.ENGINES, "ssa", dataclasses.replace(real, simulate=crashing))
    with pytest.raises(RuntimeError, match="boom"):
        main(_argv(out))
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "failed" and "boom" in meta["error"] and not (out / LOCK_NAME).exists()
    monkeypatch.setitem(runner.ENGINES, "ssa", real)
    assert main(_argv(out)) == 0  # same command: resumes the failed run
    assert "2 resumed" in capsys.readouterr().out
    _assert_same(out, reference[1])

    # a run that failed before finishing anything does not block a different (corrected) command
    out2 = tmp_path / "run2"
    monkeypatch.setitem(runner.ENGINES, "ssa", dataclasses.replace(real, simulate=lambda *a: 1 / 0))
    with pytest.raises(ZeroDivisionError):
        main(_argv(out2, seed=99))
    assert json.loads((out2 / "metadata.json").read_text())["status"] == "failed"
    monkeypatch.setitem(runner.ENGINES, "ssa", real)
    assert main(_argv(out2)) == 0
    assert "replacing the failed run" in capsys.readouterr().err
    _assert_same(out2, reference[1])


# --------------------------------------------------------------------------- damaged parts


def _delete(f: Path) -> None:
    f.unlink()


def _truncate(f: Path) -> None:
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])


def _flip(f: Path) -> None:
    data = bytearray(f.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 8):
        data[i] ^= 0xFF
    f.write_bytes(bytes(data))


def _unrecorded(f: Path) -> None:
    """Killed between renaming the part into place and recording it in the manifest."""
    manifest = f.parents[1] / "manifest.jsonl"
    name = f"{f.parent.name}/{f.name}"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(x for x in lines if json.loads(x)["file" if "table" in x else "output"] != name))


@pytest.mark.parametrize("table", ["jumps", "initial"])
@pytest.mark.parametrize("damage, words", [(_delete, "missing"), (_truncate, "truncated"), (_flip, "sha256"),
                                           (_unrecorded, "not recorded")])
def test_damaged_part_is_refused_by_readers_and_recomputed_on_resume(reference, tmp_path, capsys, damage, words,
                                                                     table):
    d = _copy(reference, tmp_path)
    name = f"{table}.parquet/part-00002.parquet"
    damage(d / name)
    # readers refuse, naming the part (or the unfinished batch); never a traceback
    assert main(["stats", str(d)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ehp: error:") and err.count("\n") == 1
    assert name in err or "part-00002" in err
    with pytest.raises(ConfigError, match="part-00002"):
        read_table(d, table)
    # resume recomputes that batch, says so, and ends with the uninterrupted tables
    assert main(_argv(d)) == 0
    out, err = capsys.readouterr()
    assert "1 of 6 batches computed, 5 resumed" in out
    assert name in err and "recomput" in err
    _assert_same(d, reference[1])


def test_torn_manifest_line_of_a_killed_writer(reference, tmp_path, capsys):
    """Killed while appending the last manifest line: that part counts as unfinished, the rest is kept."""
    d = _copy(reference, tmp_path)
    manifest = d / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    lines = [x for x in lines if '"output":"summary.json"' not in x]  # killed before the summary was written
    last = lines[-1]
    assert "part-00005" in last
    manifest.write_text("".join(lines[:-1]) + last[: len(last) // 2])
    assert main(["stats", str(d)]) == 2
    assert "part-00005" in capsys.readouterr().err
    assert main(_argv(d)) == 0
    assert "1 of 6 batches computed, 5 resumed" in capsys.readouterr().out
    _assert_same(d, reference[1])


def test_damaged_sweep_part_is_recomputed(tmp_path, capsys):
    from sim.config import load_config

    cfg = load_config(PAPER)
    grid = ["bias.V=0.2:1.6:6"]
    out = tmp_path / "sweep"
    ref = sweep(cfg, grid, chunk_size=2, out=out)
    _flip(out / "sweep.parquet" / "part-00001.parquet")
    with pytest.raises(ConfigError, match=r"part-00001.*sha256"):
        read_sweep(out)
    again = sweep(cfg, grid, chunk_size=2, out=out)
    assert "sweep.parquet/part-00001.parquet" in capsys.readouterr().err
    pdt.assert_frame_equal(again, ref)
    pdt.assert_frame_equal(read_sweep(out), ref)


# --------------------------------------------------------------------------- locks


def test_second_writer_is_refused_while_the_first_lives(reference, tmp_path, capsys):
    d = _copy(reference, tmp_path)
    before = _snapshot(d)
    holder = RunDirectory.open(d, json.loads((d / "metadata.json").read_text())["identity"])  # this process: alive
    try:
        assert main(_argv(d)) == 2
        err = capsys.readouterr().err
        assert err.startswith("ehp: error:") and f"pid {os.getpid()}" in err and err.count("\n") == 1
        assert main(["stats", str(d)]) == 2  # a reader refuses a run being written
        assert "being written by" in capsys.readouterr().err
    finally:
        holder.close()
    assert not (d / LOCK_NAME).exists()
    after = _snapshot(d)
    assert {k: v for k, v in after.items() if not k.startswith(("metadata", "manifest"))} == \
           {k: v for k, v in before.items() if not k.startswith(("metadata", "manifest"))}
    assert sorted(after["manifest.jsonl"].splitlines()) == sorted(before["manifest.jsonl"].splitlines())
    assert main(_argv(d)) == 0
    _assert_same(d, reference[1])


@pytest.mark.slow  # two interpreters start at once; the lock logic is covered fast by the in-process tests
def test_two_processes_race_for_one_directory(reference, tmp_path):
    """Two different runs started together: one wins, the other exits 2, the table is the winner's, unmixed."""
    out = tmp_path / "run"
    procs = [subprocess.Popen([sys.executable, "-m", "analysis.cli", *_argv(out, seed=s)], env=_env(),
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for s in (7, 8)]
    errs = [p.communicate(timeout=300)[1].decode() for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], errs
    loser = errs[codes.index(2)]
    assert loser.startswith("ehp: error:") and ("being written by" in loser or "refusing" in loser), loser
    winner_seed = (7, 8)[codes.index(0)]
    assert json.loads((out / "metadata.json").read_text())["seed"] == winner_seed
    ref = tmp_path / "ref"
    assert main(_argv(ref, seed=winner_seed)) == 0
    _assert_same(out, _tables(ref))
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))

    # two identical runs: the second is refused by the lock or resumes the finished first; never a crash
    same = tmp_path / "same"
    procs = [subprocess.Popen([sys.executable, "-m", "analysis.cli", *_argv(same)], env=_env(), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1].decode() for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes and set(codes) <= {0, 2}, errs
    assert all("being written by" in e for e, c in zip(errs, codes, strict=True) if c == 2), errs
    _assert_same(same, reference[1])


def test_stale_lock_of_a_dead_process_is_taken_over(reference, tmp_path, capsys):
    d = _copy(reference, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process
    (d / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "token": "x"}))
    assert main(_argv(d)) == 0
    out, err = capsys.readouterr()
    assert "taking over the stale lock" in err and f"pid {dead.pid}" in err
    assert "0 of 6 batches computed, 6 resumed" in out and not (d / LOCK_NAME).exists()
    _assert_same(d, reference[1])
    # a lock from another host cannot be checked: refused, naming the host and the lock file
    (d / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "token": "y"}))
    assert main(_argv(d)) == 2
    err = capsys.readouterr().err
    assert "elsewhere.example" in err and LOCK_NAME in err and (d / LOCK_NAME).is_file()


# --------------------------------------------------------------------------- readers and --partial


def _killed_run(tmp_path: Path, monkeypatch, ntraj: int = NTRAJ) -> Path:
    """A run killed during its fifth batch: batches 0-3 (200 trajectories) finished."""
    out = tmp_path / "killed"
    real = runner.ENGINES["ssa"]

    def dying(plan, start, count):
        if start >= 4 * BATCH:
            raise KeyboardInterrupt
        return real.simulate(plan, start, count)

    monkeypatch.setitem(runner.ENGINES, "ssa", dataclasses.replace(real, simulate=dying))
    assert main(_argv(out, ntraj=ntraj)) == 130  # SIGINT: one line, what was saved, the command that resumes
    monkeypatch.setitem(runner.ENGINES, "ssa", real)
    return out


def test_stats_refuses_an_incomplete_run_and_partial_uses_the_true_count(tmp_path, monkeypatch, capsys, no_figures):
    killed = _killed_run(tmp_path, monkeypatch)
    err = capsys.readouterr().err  # the interrupted command: one line, what was saved and the command that resumes
    assert err.count("\n") == 1 and "interrupted (SIGINT)" in err and "12 of 18 parts" in err
    assert f"run the same command again to resume it: ehp trajectories {PAPER}" in err
    assert main(["stats", str(killed)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ehp: error:") and err.count("\n") == 1
    assert "part-00004" in err and "--partial" in err and "'interrupted'" in err
    with pytest.raises(ConfigError, match="not a complete run"):
        part_files(killed, "jumps")

    assert main(["stats", str(killed), "--partial", "--json"]) == 0
    cap = capsys.readouterr()
    got = json.loads(cap.out)
    assert "PARTIAL" in cap.err and "200 of 300" in cap.err
    assert got["partial"] is True and got["ntraj"] == 200
    assert got["partial_run"]["ntraj_present"] == 200 and got["partial_run"]["ntraj_configured"] == 300
    # the estimators saw exactly trajectories 0..199: the same numbers as a complete 200-trajectory run
    full = tmp_path / "n200"
    assert main(_argv(full, ntraj=200)) == 0
    capsys.readouterr()
    assert main(["stats", str(full), "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    assert want["partial"] is False and want["ntraj"] == 200
    assert got["cumulants"] == want["cumulants"] and got["mode"] == want["mode"]

    # text and summary files say partial too
    res = tmp_path / "res"
    assert main(["stats", str(killed), "--partial", "--out", str(res)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("PARTIAL analysis: 200 of 300 trajectories") and "200 trajectories (partial)" in text
    summary = json.loads((res / "summary.json").read_text())
    assert summary["partial"] is True and summary["ntraj"] == 200
    assert summary["partial_run"]["ntraj_present"] == 200
    assert json.loads((res / "metadata.json").read_text())["partial"]["ntraj_configured"] == 300


def test_partial_with_a_hole_renumbers_the_trajectories(reference, tmp_path, capsys):
    d = _copy(reference, tmp_path)
    (d / "jumps.parquet" / "part-00001.parquet").unlink()  # batch 1 (trajectories 50..99) lost
    assert main(["stats", str(d), "--partial", "--json", "--first-passage", "2"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["ntraj"] == 250 and got["partial_run"]["ntraj_present"] == 250
    assert got["first_passage"]["ntraj"] == 250
    assert "batch 1 (trajectories 50..99)" in got["partial_run"]["missing"]
    assert main(["stats", str(d), "--json"]) == 2  # without --partial: refused
    assert "part-00001" in capsys.readouterr().err


# --------------------------------------------------------------------------- --overwrite


def test_overwrite_refuses_foreign_files_and_deletes_nothing(reference, tmp_path, capsys):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    (d / "data.parquet").write_bytes(b"not ours")
    (d / "old.parquet").mkdir()
    (d / "old.parquet" / "part-00000.parquet").write_bytes(b"looks like a part, written by someone else")
    before = _snapshot(d)
    assert main([*_argv(d), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ehp: error: refusing to --overwrite") and "which no run of ehp wrote" in err
    assert _snapshot(d) == before

    # a run directory with one foreign file inside a table folder: refused too, nothing deleted
    r = _copy(reference, tmp_path)
    (r / "jumps.parquet" / "README").write_text("my notes about these parts")
    before = _snapshot(r)
    assert main([*_argv(r, seed=8), "--overwrite"]) == 2
    assert "README" in capsys.readouterr().err
    assert _snapshot(r) == before
    (r / "jumps.parquet" / "README").unlink()
    assert main([*_argv(r, seed=8), "--overwrite"]) == 0  # only ours left: replaced
    assert json.loads((r / "metadata.json").read_text())["seed"] == 8


def test_stats_never_writes_into_its_own_input(reference, tmp_path, capsys, no_figures):
    d = _copy(reference, tmp_path)
    before = _snapshot(d)
    for out in (d, d / "stats"):
        assert main(["stats", str(d), "--out", str(out), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ehp: error: --out") and "input" in err and err.count("\n") == 1
    assert _snapshot(d) == before
    _assert_same(d, reference[1])
    # into a fresh directory it works, and overwriting its own earlier output is allowed
    res = tmp_path / "res"
    assert main(["stats", str(d), "--out", str(res)]) == 0
    assert main(["stats", str(d), "--out", str(res), "--t-min", "1", "--overwrite"]) == 0
    capsys.readouterr()
    assert check_run(res).complete and (res / "stats.parquet").is_file()
    assert not (res / "first_passage.png").exists()


def test_recorded_outputs_are_ours_whatever_the_path_form(tmp_path, monkeypatch):
    """Outputs recorded by bare name or by a path relative to the working directory are deleted by
    overwrite; a file nobody recorded blocks it."""
    monkeypatch.chdir(tmp_path)
    rd = RunDirectory.open("out", {"command": "x", "n": 1})
    (rd.path / "a.parquet").write_bytes(b"a")
    (rd.path / "b.png").write_bytes(b"b")
    rd.record("a.parquet", rd.path / "b.png")  # rd.path is relative here
    rd.finish()
    assert check_run("out").complete
    (tmp_path / "out" / "c.txt").write_text("user")
    with pytest.raises(ConfigError, match=r"c\.txt"):
        RunDirectory.open("out", {"command": "x", "n": 2}, overwrite=True)
    (tmp_path / "out" / "c.txt").unlink()
    RunDirectory.open("out", {"command": "x", "n": 2}, overwrite=True).finish()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.jsonl", "metadata.json"]


# ---- trust 2: containment, identity, OS errors and signals ----
#
# A run directory may be edited, damaged or received from someone else. Each case below tampers
# with a finished run and checks that `ehp stats` (a reader) and the same command (a resume)
# refuse it with one line, and that nothing outside the run directory changes: `victim` is a
# second run beside it, which every case snapshots before and after.


def _victim(reference, tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    v = tmp_path / "victim"
    shutil.copytree(reference[0], v)
    (v / "notes.txt").write_text("the user's own file")
    return v, _snapshot(v)


def _manifest(d: Path) -> list[dict]:
    return [json.loads(line) for line in (d / "manifest.jsonl").read_text().splitlines()]


def _write_manifest(d: Path, rows: list[dict]) -> None:
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _point_part_at(d: Path, target: str, table: str = "jumps") -> None:
    rows = _manifest(d)
    for r in rows:
        if r.get("table") == table and r.get("index") == 0:
            r["file"] = target
    _write_manifest(d, rows)


def _rename_table(d: Path, table: str, new: str) -> None:
    rows = _manifest(d)
    for r in rows:
        if r.get("table") == table:
            r["table"] = new
    _write_manifest(d, rows)


def _expect_table(d: Path, new: str) -> None:
    meta = json.loads((d / "metadata.json").read_text())
    meta["parts_expected"][new] = 6
    (d / "metadata.json").write_text(json.dumps(meta))


def _link_table(d: Path, v: Path) -> None:
    shutil.rmtree(d / "jumps.parquet")
    (d / "jumps.parquet").symlink_to(v / "jumps.parquet")


def _link_part(d: Path, v: Path) -> None:  # the same bytes, so size and sha256 match the manifest
    (d / "jumps.parquet" / "part-00002.parquet").unlink()
    (d / "jumps.parquet" / "part-00002.parquet").symlink_to(v / "jumps.parquet" / "part-00002.parquet")


def _output_outside(d: Path, v: Path) -> None:
    rows = _manifest(d) + [{"output": "../victim/notes.txt", "bytes": 19, "sha256": "0" * 64}]
    _write_manifest(d, rows)


def _fifo(name: str):
    def make(d: Path, v: Path) -> None:
        (d / name).unlink()
        os.mkfifo(d / name)
    return make


CONTAINMENT = {
    "manifest part outside": (lambda d, v: _point_part_at(d, "../victim/jumps.parquet/part-00000.parquet"),
                              "not 'jumps.parquet/part-00000.parquet'"),
    "manifest part absolute": (lambda d, v: _point_part_at(d, str(v / "jumps.parquet" / "part-00000.parquet")),
                               "not 'jumps.parquet/part-00000.parquet'"),
    "manifest table outside": (lambda d, v: _rename_table(d, "jumps", "../victim/jumps"), "is not a table name"),
    "metadata table outside": (lambda d, v: _expect_table(d, "../victim/jumps"), "is not a table name"),
    "table folder is a link": (_link_table, "symbolic link"),
    "part is a link": (_link_part, "symbolic link"),
    "manifest output outside": (_output_outside, "is not a plain file name"),
    "metadata.json is a FIFO": (_fifo("metadata.json"), "it is a FIFO"),
    "manifest.jsonl is a FIFO": (_fifo("manifest.jsonl"), "it is a FIFO"),
}


@pytest.mark.parametrize("case", list(CONTAINMENT))
def test_a_tampered_run_is_refused_by_readers_and_resume_and_nothing_outside_changes(reference, tmp_path, capsys,
                                                                                   case):
    tamper, words = CONTAINMENT[case]
    v, before = _victim(reference, tmp_path)
    d = _copy(reference, tmp_path)
    tamper(d, v)
    inside = _snapshot(d) if "FIFO" not in case else None
    for argv in (["stats", str(d)], _argv(d)):  # a reader, then the resume (the same command)
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("ehp: error:") and err.count("\n") == 1, (argv[0], err)
        assert words in err, err
    assert _snapshot(v) == before  # nothing outside the run directory touched
    if inside is not None:
        assert _snapshot(d) == inside  # and a refused resume deleted nothing inside it either
    with pytest.raises(ConfigError):
        part_files(d, "jumps")


def test_overwrite_of_a_tampered_run_deletes_only_inside(reference, tmp_path, capsys):
    v, before = _victim(reference, tmp_path)
    d = _copy(reference, tmp_path)
    _output_outside(d, v)
    _expect_table(d, "../victim/jumps")
    assert main([*_argv(d, seed=9), "--overwrite"]) == 0
    capsys.readouterr()
    assert _snapshot(v) == before and check_run(d).complete
    assert json.loads((d / "metadata.json").read_text())["seed"] == 9


def test_out_that_is_a_link_and_examples_copy_through_a_link_are_refused(tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert main(_argv(tmp_path / "link")) == 2
    assert "is a symbolic link" in capsys.readouterr().err and list(real.iterdir()) == []
    (tmp_path / "dangling.toml").symlink_to(tmp_path / "elsewhere.toml")
    for dest in ("dangling.toml", "link"):
        assert main(["examples", "paper_double_dot", "--copy", str(tmp_path / dest)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "symbolic link" in err
    assert not (tmp_path / "elsewhere.toml").exists() and list(real.iterdir()) == []


# identity: a part proves which run it belongs to


def _other_run(tmp_path: Path, capsys) -> Path:
    o = tmp_path / "other"
    assert main(_argv(o, seed=8)) == 0
    capsys.readouterr()
    return o


def _transplant(d: Path, src: Path, src_index: int, index: int) -> None:
    """Put ``src``'s jumps part ``src_index`` in place of ``d``'s part ``index``, with a consistent manifest."""
    f = d / "jumps.parquet" / f"part-{index:05d}.parquet"
    shutil.copyfile(src / "jumps.parquet" / f"part-{src_index:05d}.parquet", f)
    rows = _manifest(d)
    src_row = next(r for r in _manifest(src) if r.get("table") == "jumps" and r.get("index") == src_index)
    for r in rows:
        if r.get("table") == "jumps" and r.get("index") == index:
            r.update({k: src_row[k] for k in ("rows", "bytes", "sha256", "run_id", "version", "batch")})
            r["rows"], r["bytes"] = src_row["rows"], f.stat().st_size
    _write_manifest(d, rows)


IDENTITY = {
    "part of another run": (lambda d, o: _transplant(d, o, 3, 3), "belongs to another run"),
    "part of another batch": (lambda d, o: _transplant(d, d, 1, 3), "not part 3 of 'jumps'"),
    "part of another run, manifest says ours": (
        lambda d, o: (_transplant(d, o, 3, 3), _write_manifest(d, [
            {**r, "run_id": _manifest(d)[0]["run_id"]} if r.get("index") == 3 and r.get("table") == "jumps" else r
            for r in _manifest(d)])), "belongs to another run"),
    "metadata identity edited": (lambda d, o: (d / "metadata.json").write_text(
        (d / "metadata.json").read_text().replace('"seed": 7', '"seed": 8')), "does not hash to its run_id"),
    "run_id removed (posing as an old run)": (lambda d, o: (_transplant(d, o, 3, 3), (d / "metadata.json").write_text(
        json.dumps({k: v for k, v in json.loads((d / "metadata.json").read_text()).items() if k != "run_id"})
    )), ("but metadata.json has no run_id", "without recording which run each part belongs to")),
}


@pytest.mark.parametrize("case", list(IDENTITY))
def test_a_part_from_another_run_is_refused_even_with_a_consistent_manifest(reference, tmp_path, capsys, case):
    tamper, words = IDENTITY[case]
    reader_words, resume_words = (words, words) if isinstance(words, str) else words
    o = _other_run(tmp_path, capsys)
    d = _copy(reference, tmp_path)
    tamper(d, o)
    inside = _snapshot(d)
    for argv, words in ((["stats", str(d)], reader_words), (_argv(d), resume_words)):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and words in err, (argv[0], err)
    assert _snapshot(d) == inside
    with pytest.raises(ConfigError, match=reader_words):
        read_table(d, "jumps")


def test_every_part_records_its_run_and_batch(reference):
    import pyarrow.parquet as pq

    from sim.runsafe import RUN_KEY, run_id

    meta = json.loads((reference[0] / "metadata.json").read_text())
    assert meta["run_id"] == run_id(meta["identity"])
    for row in _manifest(reference[0]):
        if "table" not in row:
            continue
        rec = json.loads(pq.read_schema(reference[0] / row["file"]).metadata[RUN_KEY])
        start = row["index"] * BATCH
        assert rec == {"run_id": meta["run_id"], "table": row["table"], "index": row["index"],
                       "batch": [start, BATCH], "version": meta["versions"]["sim"], "of": NTRAJ // BATCH}
        assert (row["run_id"], row["batch"], row["version"], row["of"]) == (rec["run_id"], rec["batch"],
                                                                            rec["version"], rec["of"])


def test_resume_under_another_version_refuses_unless_allowed(tmp_path, monkeypatch, capsys, reference):
    import sim.io

    killed = _killed_run(tmp_path, monkeypatch)
    capsys.readouterr()
    real = sim.io.package_versions
    monkeypatch.setattr(sim.io, "package_versions", lambda: {**real(), "sim": "9.9.9"})
    before = _snapshot(killed)
    assert main(_argv(killed)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "9.9.9" in err and "--allow-version-change" in err
    assert _snapshot(killed) == before
    assert main([*_argv(killed), "--allow-version-change"]) == 0
    capsys.readouterr()
    meta = json.loads((killed / "metadata.json").read_text())
    old = real()["sim"]
    assert meta["versions"]["sim"] == "9.9.9" and [v["sim"] for v in meta["versions_history"]] == [old]
    by_version = {r["index"]: r["version"] for r in _manifest(killed) if r.get("table") == "jumps"}
    assert by_version == {0: old, 1: old, 2: old, 3: old, 4: "9.9.9", 5: "9.9.9"}  # each part names its author
    _assert_same(killed, reference[1])


# OS errors and signals: one line, the documented exit code, never left 'running', resumable


def _failing_write(monkeypatch, err: int, after: int):
    """``pq.write_table`` of sim.io raises ``OSError(err)`` from its ``after``-th call on (a disk that filled up)."""
    import errno as _errno

    import sim.io

    real, calls = sim.io.pq.write_table, []

    def write(tab, where, *a, **k):
        calls.append(where)
        if len(calls) > after:
            raise OSError(err, os.strerror(err), str(where))
        return real(tab, where, *a, **k)

    monkeypatch.setattr(sim.io.pq, "write_table", write)
    return _errno.errorcode[err]


@pytest.mark.parametrize("err", ["ENOSPC", "EFBIG", "EACCES", "EROFS", "EDQUOT", "EIO"])
def test_os_error_mid_run_is_one_line_and_the_run_resumes(reference, tmp_path, monkeypatch, capsys, err):
    import errno as _errno

    d = tmp_path / "run"
    name = _failing_write(monkeypatch, getattr(_errno, err), after=7)
    assert main(_argv(d)) == 2
    msg = capsys.readouterr().err
    assert msg.startswith("ehp: error: cannot complete:") and msg.count("\n") == 1 and f"({name})" in msg
    assert "the same command resumes it" in msg
    chk = check_run(d)
    assert chk.status == "failed" and chk.owner is None and not (d / LOCK_NAME).exists()
    monkeypatch.undo()
    assert main(_argv(d)) == 0
    capsys.readouterr()
    _assert_same(d, reference[1])


def test_a_full_disk_still_takes_the_failed_status(reference, tmp_path, monkeypatch, capsys):
    """Writing metadata.json fails too while the disk is full; the reserve frees room for it."""
    import errno as _errno

    import sim.io

    d = tmp_path / "run"
    _failing_write(monkeypatch, _errno.ENOSPC, after=4)
    real_json = sim.io.write_json

    def full(path, data):
        if (d / ".ehp.reserve").exists() and data.get("status") == "failed":
            raise OSError(_errno.ENOSPC, "No space left on device", str(path))
        return real_json(path, data)

    monkeypatch.setattr(sim.io, "write_json", full)
    assert main(_argv(d)) == 2
    capsys.readouterr()
    assert check_run(d).status == "failed" and not (d / ".ehp.reserve").exists()
    monkeypatch.undo()
    assert main(_argv(d)) == 0
    capsys.readouterr()
    _assert_same(d, reference[1])


def _script(*lines: str) -> list[str]:
    return [sys.executable, "-c", "\n".join(lines)]


def test_file_size_limit_is_one_line_and_resumable(reference, tmp_path, capsys):
    """A real EFBIG: a file size limit (ulimit -f) below a part's size; Python ignores SIGXFSZ, so write fails."""
    d = tmp_path / "run"
    code = _script("import resource, sys", "resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))",
                   "from analysis.cli import main", "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([*code, *_argv(d)], env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("ehp: error: cannot complete:") and proc.stderr.count("\n") == 1
    assert "EFBIG" in proc.stderr and check_run(d).status == "failed"
    assert main(_argv(d)) == 0
    capsys.readouterr()
    _assert_same(d, reference[1])


@pytest.mark.parametrize(("redirect", "words"), [(">/dev/full", "No space left"), (">&-", "stdout is closed")])
def test_a_full_or_closed_stdout_is_one_line(tmp_path, redirect, words):
    cmd = f"{sys.executable} -m analysis.cli steady {PAPER} --json {redirect}"
    proc = subprocess.run(cmd, shell=True, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("ehp: error:") and proc.stderr.count("\n") == 1
    assert words in proc.stderr, proc.stderr


def test_a_path_that_is_not_utf8_is_one_line(tmp_path, capsys):
    out = tmp_path / os.fsdecode(b"run-\xff")
    assert main(_argv(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not valid UTF-8" in err and "\\udcff" in err and not out.exists()
    assert main(["stats", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("pid", ["abc", -1, 0, 1.5, True, 10**30, None, [1], 2**22 + 1])
def test_a_malformed_lock_is_refused_in_one_line_and_the_run_stays_resumable(reference, tmp_path, capsys, pid):
    d = _copy(reference, tmp_path)
    (d / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "token": "x"}))
    before = _snapshot(d)
    for argv in (_argv(d), ["stats", str(d)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "malformed" in err and LOCK_NAME in err, err
    assert _snapshot(d) == before and json.loads((d / "metadata.json").read_text())["status"] == "complete"
    (d / LOCK_NAME).unlink()
    assert main(["stats", str(d)]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_say_what_was_saved_and_the_run_resumes(reference, tmp_path, capsys, sig, code):
    """A real process, slowed to one batch every 0.3 s, gets the signal (three times) after its first part."""
    d = tmp_path / "run"
    argv = [*_argv(d), "--scheduler", "serial"]
    # SIGINT as in a terminal even when this test runs in a background job (which inherits SIGINT ignored)
    slow = _script("import sys, time, dataclasses, signal", "signal.signal(signal.SIGINT, signal.default_int_handler)",
                   "import sim.trajectories.runner as r", "real = r.ENGINES['ssa']",
                   "r.ENGINES['ssa'] = dataclasses.replace(real, simulate=lambda p, s, c: (time.sleep(0.3), "
                   "real.simulate(p, s, c))[1])", "from analysis.cli import main", "sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([*slow, *argv], env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    first = d / "jumps.parquet" / "part-00000.parquet"
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(3):  # an impatient user: the second and third signal must not cut the first one's work short
        proc.send_signal(sig)
        time.sleep(0.01)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert err.startswith("ehp: error: interrupted") and err.count("\n") == 1
    assert "run the same command again to resume it: ehp trajectories" in err and "of 18 parts" in err
    chk = check_run(d)
    assert chk.status == "interrupted" and chk.owner is None and not (d / LOCK_NAME).exists()
    assert main(argv) == 0
    capsys.readouterr()
    _assert_same(d, reference[1])


# ---- studies (trust 2) ----
# `ehp run` into runs/<name>/ (here --out): a study that failed or was interrupted midway never blocks its own
# directory. The same command resumes it (finished sweep chunks kept); what it wrote is recorded, so that
# --overwrite can replace it; a corrected config replaces a failed run that finished nothing, and otherwise
# one line says how to go on. The collective-runaway study's texts follow the numbers it computed.

WATERWHEEL = str(ROOT / "runs" / "waterwheel.toml")
_WW_TINY = ["--set", "study.grid=1:3:3", "--set", "study.splitting=[0.0]", "--set", "run.t_end=50",
            "--set", "run.n_points=11"]


def _study(out: Path, config: str = PAPER, *sets: str) -> list[str]:
    return ["run", config, "--out", str(out), "--scheduler", "serial", "--no-progress", *sets]


_REAL_CHUNK = evaluate_chunk  # the unpatched one


def _count_chunks(monkeypatch, fail_at: int | None = None, exc: type[BaseException] = KeyboardInterrupt) -> list[int]:
    """Count the sweep chunks computed (serial scheduler); raise ``exc`` at chunk number ``fail_at``."""
    import sim.sweep

    real, calls = _REAL_CHUNK, []

    def counting(task):
        calls.append(1)
        if fail_at is not None and len(calls) == fail_at:
            raise exc("interrupted in a sweep chunk")
        return real(task)

    monkeypatch.setattr(sim.sweep, "evaluate_chunk", counting)
    return calls


def test_interrupted_study_resumes_in_its_own_directory(tmp_path, monkeypatch, capsys):
    out = tmp_path / "paper_double_dot"
    calls = _count_chunks(monkeypatch, fail_at=6)  # the default bias sweep: 41 one-point chunks
    assert main(_study(out)) == 130  # SIGINT: one line, what was saved, the command that resumes
    assert "5 of 41 parts" in capsys.readouterr().err
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "interrupted" and not (out / LOCK_NAME).exists()
    calls = _count_chunks(monkeypatch)
    assert main(_study(out)) == 0  # the same command: not refused, only the missing chunks computed
    assert len(calls) == 41 - 5
    assert "resumed" in capsys.readouterr().err
    assert check_run(out).complete
    full = tmp_path / "full"
    assert main(_study(full)) == 0
    pdt.assert_frame_equal(pd.read_parquet(out / "paper_double_dot.parquet"),
                           pd.read_parquet(full / "paper_double_dot.parquet"))


def test_collective_study_failed_after_its_tables_resumes_and_is_replaceable(tmp_path, monkeypatch, capsys):
    import analysis.modes_study as ms

    out = tmp_path / "ww"
    real = ms.plot_collective_runaway

    def broken(*a, **k):
        raise RuntimeError("boom while drawing")

    monkeypatch.setattr(ms, "plot_collective_runaway", broken)
    with pytest.raises(RuntimeError, match="boom"):
        main(_study(out, WATERWHEEL, *_WW_TINY))
    assert json.loads((out / "metadata.json").read_text())["status"] == "failed"
    # every file the failed run wrote is its own (recorded), none half-written
    recorded = set(json.loads(line).get("output") for line in (out / "manifest.jsonl").read_text().splitlines())
    assert {"thresholds.parquet", "evolution.parquet", "alone.parquet"} <= recorded
    assert not (out / "ww.png").exists()
    monkeypatch.setattr(ms, "plot_collective_runaway", real)
    assert main(_study(out, WATERWHEEL, *_WW_TINY)) == 0
    assert "resumed" in capsys.readouterr().err and check_run(out).complete
    # a different config: refused in one line naming --overwrite; with it, replaced (was: refused, because the
    # study's own thresholds/evolution/alone tables were not recorded and counted as foreign files)
    other = _study(out, WATERWHEEL, *_WW_TINY, "--set", "study.above=0.2")
    assert main(other) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert main(other + ["--overwrite"]) == 0
    assert json.loads((out / "summary.json").read_text())["run"]["bias.V"] == pytest.approx(1.2 * 1.69733, rel=1e-4)


def test_corrected_study_after_a_failure(tmp_path, monkeypatch, capsys):
    out = tmp_path / "study"
    # failed before it finished anything: the corrected config is accepted in the same directory
    _count_chunks(monkeypatch, fail_at=1, exc=RuntimeError)
    with pytest.raises(RuntimeError):
        main(_study(out, PAPER, "--set", "study.kind=bias_sweep", "--set", "study.V=0:2:5"))
    _count_chunks(monkeypatch)
    assert main(_study(out, PAPER, "--set", "study.kind=bias_sweep", "--set", "study.V=0:2:6")) == 0
    assert "replacing the failed run" in capsys.readouterr().err
    # failed after some chunks: a corrected config gets one line saying how to go on, and --overwrite does it
    out2 = tmp_path / "study2"
    _count_chunks(monkeypatch, fail_at=3, exc=RuntimeError)
    with pytest.raises(RuntimeError):
        main(_study(out2, PAPER, "--set", "study.kind=bias_sweep", "--set", "study.V=0:2:5"))
    _count_chunks(monkeypatch)
    corrected = _study(out2, PAPER, "--set", "study.kind=bias_sweep", "--set", "study.V=0:2:6")
    assert main(corrected) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ehp: error: ") and "failed run" in line and "resume" in line and "--overwrite" in line
    assert main(corrected + ["--overwrite"]) == 0
    assert len(pd.read_parquet(out2 / "paper_double_dot.parquet")) == 6


def _collective_texts(monkeypatch, capsys, tmp_path, config: str, *sets: str) -> tuple[dict, str, str]:
    """Run a tiny collective_runaway study; return its summary, its stdout and the title of panel (c)."""
    import matplotlib.figure

    figs = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self))
    out = tmp_path / "cr"
    capsys.readouterr()
    assert main(_study(out, config, *sets)) == 0
    stdout = capsys.readouterr().out
    (fig,) = figs
    (title,) = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("(c)")]
    return json.loads((out / "summary.json").read_text()), stdout, title


def _independent_verdict(config: str, sets: list[str], V: float) -> tuple[float, list[float]]:
    from analysis.threshold import margin_at
    from sim.config import load_config, one_mode_config

    cfg = load_config(config, [s for s in sets if s.startswith(("conductor.", "mode."))])
    return margin_at(cfg, "bias.V", V), [margin_at(one_mode_config(cfg, k), "bias.V", V) for k in range(cfg.n_modes)]


def test_collective_texts_follow_the_numbers_each_alone_stable(monkeypatch, capsys, tmp_path):
    """waterwheel at its run's bias: each mode alone is stable, together they run away."""
    s, stdout, title = _collective_texts(monkeypatch, capsys, tmp_path, WATERWHEEL, *_WW_TINY)
    v = s["at_run"]
    pair, alone = _independent_verdict(WATERWHEEL, [], v["bias.V"])
    assert v["pair_margin"] == pytest.approx(pair) and v["alone_kappa"] == pytest.approx(alone)
    assert pair < 0 < min(alone) and v["collective"] and v["alone_stable"] == [True, True]
    assert "each mode alone is stable" in title and "run away" in title and f"{v['bias.V']:.4g}" in title
    assert f"run {s['study']}: {s['verdict']}" in stdout
    assert "each mode alone is stable, but the modes together run away" in stdout


def test_collective_texts_follow_the_numbers_each_alone_unstable(monkeypatch, capsys, tmp_path):
    """Two modes of the double dot, each of which runs away alone above V ~ 1.06: no 'each mode alone is stable'."""
    sets = ["conductor.coupling=[0.5, 0.4]", "mode.omega=[1.0, 1.0]", "study.kind=collective_runaway",
            "study.between=[0.5, 2.0]", "study.grid=0.5:2:3", "study.splitting=[0.0]", "run.t_end=20",
            "run.n_points=11"]
    s, stdout, title = _collective_texts(monkeypatch, capsys, tmp_path, PAPER, *[a for x in sets for a in ("--set", x)])
    v = s["at_run"]
    pair, alone = _independent_verdict(PAPER, sets, v["bias.V"])
    assert v["pair_margin"] == pytest.approx(pair) and v["alone_kappa"] == pytest.approx(alone)
    assert max(alone) < 0 and pair < 0 and v["alone_stable"] == [False, False] and not v["collective"]
    assert "stable" not in title and "each mode alone runs away" in title
    assert "each mode alone runs away, the modes together run away" in stdout
    assert s["each_mode_alone_stable_on_grid"] == [False, False]


# ---- trust 2: cases found by trying the promises as a hostile user ----


def _edit_meta(d: Path, change, rehash: bool = False) -> None:
    from sim.runsafe import run_id

    meta = json.loads((d / "metadata.json").read_text())
    change(meta)
    if rehash and isinstance(meta.get("identity"), dict):
        meta["run_id"] = run_id(meta["identity"])
    (d / "metadata.json").write_text(json.dumps(meta))


def _hardlink(name: str):
    def make(d: Path, v: Path) -> None:
        (d / name).unlink(missing_ok=True)
        os.link(v / "notes.txt", d / name)
    return make


def _junk_manifest(d: Path, v: Path) -> None:
    with open(d / "manifest.jsonl", "a") as f:
        f.write('{"x":1}\n' * 900_000)


def _nested(name: str):
    def make(d: Path, v: Path) -> None:
        (d / name).write_text("[" * 100_000 + "]" * 100_000)
    return make


def _own_folder(d: Path, v: Path) -> None:
    (d / "mine.parquet").mkdir()
    (d / "mine.parquet" / "part-00000.parquet").write_text("the user's own file")


HOSTILE = {  # tamper, words of the refusal on resume (None: the resume must work and keep what it must keep)
    "reserve hard-linked outside": (_hardlink(".ehp.reserve"), "hard links"),
    "summary hard-linked outside": (_hardlink("summary.json"), "hard links"),
    "reserve is a FIFO": (lambda d, v: os.mkfifo(d / ".ehp.reserve"), "not a regular file"),
    "manifest of junk lines": (_junk_manifest, "more than the"),
    "versions a string": (lambda d, v: _edit_meta(d, lambda m: m.update(versions="0.1.0")), "versions"),
    "versions_history a number": (lambda d, v: _edit_meta(d, lambda m: m.update(versions_history=5)),
                                  "versions_history"),
    "status a list": (lambda d, v: _edit_meta(d, lambda m: m.update(status=[])), "status"),
    "identity without run, run_id recomputed": (
        lambda d, v: _edit_meta(d, lambda m: m["identity"].pop("run"), rehash=True), "holds a different run"),
    "identity t_end not a number, run_id recomputed": (
        lambda d, v: _edit_meta(d, lambda m: m["identity"]["run"].update(t_end="abc"), rehash=True),
        "holds a different run"),
    "metadata nested 100000 deep": (_nested("metadata.json"), "holds no run"),
    "manifest line nested 100000 deep": (_nested("manifest.jsonl"), None),
    "lock nested 100000 deep": (_nested(LOCK_NAME), "unreadable"),
    "a folder of the user's named like a table": (_own_folder, None),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_run_directories_are_one_line_and_touch_nothing_outside(reference, tmp_path, capsys, case):
    tamper, words = HOSTILE[case]
    v, before = _victim(reference, tmp_path)
    d = _copy(reference, tmp_path)
    tamper(d, v)
    code = main(["stats", str(d)])  # a reader: an answer or one line, never a traceback or a hang
    err = capsys.readouterr().err
    assert code in (0, 2) and (code == 0 or (err.startswith("ehp: error:") and err.count("\n") == 1)), err
    code = main(_argv(d))  # the resume
    err = capsys.readouterr().err
    if words is None:
        assert code == 0, err
        _assert_same(d, reference[1])
    else:
        assert code == 2 and err.startswith("ehp: error:") and err.count("\n") == 1 and words in err, err
    assert _snapshot(v) == before
    if case == "a folder of the user's named like a table":
        assert (d / "mine.parquet" / "part-00000.parquet").read_text() == "the user's own file"


def test_overwrite_never_resumes_a_run_that_failed_verification(reference, tmp_path, capsys):
    """A metadata.json whose run_id was forged to another run's: --overwrite recomputes, never reuses its parts."""
    o = _other_run(tmp_path, capsys)
    d = _copy(reference, tmp_path)
    for t in TABLES:
        shutil.rmtree(d / f"{t}.parquet")
        shutil.copytree(o / f"{t}.parquet", d / f"{t}.parquet")
    shutil.copyfile(o / "manifest.jsonl", d / "manifest.jsonl")
    _edit_meta(d, lambda m: m.update(run_id=json.loads((o / "metadata.json").read_text())["run_id"]))
    assert main(_argv(d)) == 2
    assert "does not hash to its run_id" in capsys.readouterr().err
    assert main([*_argv(d), "--overwrite"]) == 0
    out = capsys.readouterr()
    assert "failed verification" in out.err and "6 of 6 batches computed" in out.out
    _assert_same(d, reference[1])


def test_python_readers_refuse_a_damaged_part_of_the_right_size(reference, tmp_path):
    from analysis.stats import run_stats

    d = _copy(reference, tmp_path)
    f = d / "jumps.parquet" / "part-00000.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 3] ^= 0x01  # same size, one bit
    f.write_bytes(bytes(data))
    for read in (lambda: part_files(d, "jumps"), lambda: run_stats(d)):
        with pytest.raises(ConfigError, match="sha256"):
            read()


def test_closed_stderr_keeps_json_on_stdout_clean(tmp_path):
    cmd = f"{sys.executable} -m analysis.cli steady {ROOT / 'runs' / 'waterwheel.toml'} --json 2>&-"
    proc = subprocess.run(cmd, shell=True, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["n_modes"] == 2  # the stderr note went nowhere
    cmd = f"{sys.executable} -m analysis.cli stats {tmp_path / 'none'} 2>&-"
    proc = subprocess.run(cmd, shell=True, env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""


def test_examples_copy_never_writes_through_a_linked_folder(tmp_path, capsys):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "L").symlink_to(tmp_path / "elsewhere")
    assert main(["examples", "paper_double_dot", "--copy", str(tmp_path / "L" / "x.toml")]) == 2
    assert "symbolic link" in capsys.readouterr().err and not (tmp_path / "elsewhere" / "x.toml").exists()


def test_a_config_nested_too_deeply_is_one_line(tmp_path, capsys):
    (tmp_path / "deep.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert main(["steady", str(tmp_path / "deep.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too deeply" in err
    assert main(["steady", PAPER, "--set", "bias.V=" + "[" * 100_000 + "]" * 100_000]) == 2
    assert "too deeply" in capsys.readouterr().err


# ---- trust 2: cases of a second hostile trial ----


def _drop_manifest_and_count(d: Path, v: Path) -> None:
    (d / "manifest.jsonl").unlink()
    _edit_meta(d, lambda m: m.pop("parts_expected"))


def _shrink_count(d: Path, v: Path) -> None:
    _edit_meta(d, lambda m: m.update(parts_expected={t: 3 for t in TABLES}))
    _write_manifest(d, [r for r in _manifest(d) if r.get("index", 0) < 3])
    for t in TABLES:
        for i in range(3, 6):
            (d / f"{t}.parquet" / f"part-{i:05d}.parquet").unlink()


@pytest.mark.parametrize(("tamper", "words"), [(_drop_manifest_and_count, "manifest.jsonl' is missing"),
                                               (_shrink_count, "parts of table")], ids=["no manifest", "fewer parts"])
def test_a_run_cannot_be_made_to_look_old_or_smaller(reference, tmp_path, capsys, tamper, words):
    v, before = _victim(reference, tmp_path)
    d = _copy(reference, tmp_path)
    tamper(d, v)
    for argv in (["stats", str(d)], ["stats", str(d), "--partial"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    with pytest.raises(ConfigError, match=words):
        part_files(d, "jumps")
    assert _snapshot(v) == before


@pytest.mark.parametrize("summary", ['[1, 2]', '{"truncated": true, "error": true, "stopped_at": "x", "message": "m"}',
                                     '{"truncated": true, "error": true}',
                                     '{"truncated": false, "error": false}'])
def test_evolve_resume_trusts_only_its_recorded_summary(tmp_path, capsys, summary):
    """An edited summary.json is no record of a finished run: the evolution is computed again, correctly."""
    d = tmp_path / "evo"
    argv = ["evolve", PAPER, "--t-end", "5", "--n-points", "11", "--out", str(d)]
    assert main(argv) == 0
    ref = read_table(d, "evolution")
    capsys.readouterr()
    (d / "summary.json").write_text(summary)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "already complete" not in out
    pdt.assert_frame_equal(read_table(d, "evolution"), ref)


def test_a_finished_several_mode_evolve_resumes_as_complete(tmp_path, capsys):
    d = tmp_path / "ww"
    argv = ["evolve", str(ROOT / "runs" / "waterwheel.toml"), "--method", "rate", "--t-end", "5", "--n-points", "6",
            "--out", str(d)]
    assert main(argv) == 0
    assert main(argv) == 0
    assert "already complete" in capsys.readouterr().out
    assert check_run(d).complete


def test_a_negative_list_index_is_refused(capsys):
    assert main(["steady", PAPER, "--set", "conductor.eps[-1]=0.7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "negative indices are not accepted" in err


def test_an_edited_model_file_is_another_run(tmp_path, capsys):
    """conductor.file's sha256 is part of the resolved config: after the file changes, the same command is
    refused as another run (or recomputed with --overwrite), never answered from the old model's results."""
    import numpy as np

    def model(m: float) -> None:
        np.savez(tmp_path / "model.npz", H=np.diag([0.5, -0.5]), gamma_L=np.diag([0.5, 0.0]),
                 gamma_R=np.diag([0.0, 0.5]), M=np.array([[[0.0, m], [m, 0.0]]]))

    model(0.5)
    (tmp_path / "m.toml").write_text('[conductor]\nkind = "matrix"\nfile = "model.npz"\n[mode]\nomega = 1.0\n'
                                     "[bias]\nV = 0.5\nmu0 = 0.0\nT_e = 0.1\n[phonon_bath]\nT = 0.1\ngamma = 0.05\n")
    argv = ["sweep", str(tmp_path / "m.toml"), "--grid", "bias.V=0:1:3", "--scheduler", "serial", "--no-progress",
            "--out", str(tmp_path / "s")]
    assert main(argv) == 0
    before = read_table(tmp_path / "s", "sweep")
    model(0.9)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds a different run" in err and "file_sha256" in err
    assert main([*argv, "--overwrite"]) == 0
    after = read_table(tmp_path / "s", "sweep")
    assert not np.allclose(after["kappa"], before["kappa"])  # the new coupling, not the stored table
    pinned = tmp_path / "pinned.toml"
    capsys.readouterr()
    assert main(["config", str(tmp_path / "m.toml")]) == 0  # the resolved config pins the file's contents
    pinned.write_text(capsys.readouterr().out)
    model(0.7)
    assert main(["steady", str(pinned)]) == 2
    assert "has changed since" in capsys.readouterr().err


def test_a_long_bias_table_is_identified_by_its_digest(tmp_path, capsys):
    """More than 1000 rows: metadata.json holds the table's row count and sha256, and a resume still
    recognises the same table (and refuses another one) exactly."""
    import numpy as np

    def table(amp: float) -> Path:
        f = tmp_path / f"bias{amp}.csv"
        t = np.linspace(0.0, 5.0, 1500)
        f.write_text("t,mu_L,mu_R\n" + "".join(f"{float(x)!r},{float(0.2 + amp * np.sin(x))!r},-0.2\n" for x in t))
        return f

    out = tmp_path / "run"
    argv = ["evolve", PAPER, "--t-end", "5", "--n-points", "11", "--out", str(out)]
    assert main([*argv, "--bias-table", str(table(0.1))]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["identity"]["bias_table"]["n_rows"] == 1500 and (out / "metadata.json").stat().st_size < 20_000
    assert main([*argv, "--bias-table", str(table(0.1))]) == 0
    assert "already complete" in capsys.readouterr().out
    assert main([*argv, "--bias-table", str(table(0.2))]) == 2
    assert "holds a different run" in capsys.readouterr().err
