"""Bundled example configs: name resolution, ``ehp examples``, and ``ehp run`` without ``[study]``."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from analysis.cli import main
from analysis.threshold import find_threshold
from sim.config import ConfigError, load_config
from sim.examples import EXAMPLES_DIR, find_example, list_examples, resolve_config

REPO = Path(__file__).resolve().parents[1]


def test_runs_tomls_are_the_bundled_files():
    """runs/*.toml and the package data are one set of files (no copy that could drift)."""
    runs = sorted(REPO.glob("runs/*.toml"))
    assert runs, "runs/*.toml missing"
    assert sorted(p.name for p in runs) == sorted(p.name for p in EXAMPLES_DIR.glob("*.toml"))
    for p in runs:
        assert p.resolve() == (EXAMPLES_DIR / p.name).resolve(), f"{p} is not a link to the bundled file"


def test_package_data_declares_the_examples():
    pp = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "*.toml" in pp["tool"]["setuptools"]["package-data"]["sim.examples"]


def test_list_examples_descriptions_are_first_comment_lines():
    exs = list_examples()
    assert {e.name for e in exs} >= {"paper_double_dot", "fig3_rectification", "fig5_cooling"}
    for e in exs:
        first = e.path.read_text().splitlines()[0]
        assert first.startswith("#") and e.description == first.lstrip("#").strip() and e.description
        load_config(e.path)  # every bundled config is valid


def test_example_descriptions_are_complete_sentences():
    """`ehp examples` shows the first comment line: it must be one whole sentence, not a line cut mid-sentence.

    A first line that wraps (``... stable at every bias of``) would be shown cut off; the
    sentence must end on the first line, and fit a terminal beside the name.
    """
    for e in list_examples():
        d = e.description
        assert d and d == d.strip(), f"{e.name}: empty description"
        assert d.endswith((".", "!", "?")), f"{e.name}: description does not end a sentence: {d!r}"
        assert d[0].isupper(), f"{e.name}: description does not start a sentence: {d!r}"
        assert d.count("(") == d.count(")") and d.count("`") % 2 == 0, f"{e.name}: unbalanced: {d!r}"
        assert len(d) <= 100, f"{e.name}: description longer than 100 characters ({len(d)}): {d!r}"


def test_name_resolution_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ref = load_config(REPO / "runs" / "paper_double_dot.toml")
    assert load_config("paper_double_dot") == ref
    assert load_config("paper_double_dot.toml") == ref
    assert resolve_config("paper_double_dot") == EXAMPLES_DIR / "paper_double_dot.toml"
    # a path that exists wins over the bundled name
    Path("paper_double_dot.toml").write_text(
        (EXAMPLES_DIR / "paper_double_dot.toml").read_text().replace("omega = 1.0", "omega = 2.0"))
    assert load_config("paper_double_dot.toml").mode.omega == 2.0
    assert load_config("paper_double_dot").mode.omega == 1.0  # no file called paper_double_dot: bundled
    # a name with a directory part is a path, never a bundled name
    assert find_example("sub/paper_double_dot") is None
    with pytest.raises(ConfigError, match="cannot be read.*bundled example"):
        load_config("sub/paper_double_dot.toml")


def test_cli_steady_by_name_anywhere(tmp_path, monkeypatch, capsys):
    ref = str(REPO / "runs" / "paper_double_dot.toml")
    assert main(["steady", ref, "--json"]) == 0
    want = json.loads(capsys.readouterr().out)
    monkeypatch.chdir(tmp_path)
    assert main(["steady", "paper_double_dot", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == want


def test_cli_examples_list_print_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["examples"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(list_examples())
    for line, e in zip(out, list_examples(), strict=True):
        assert line.split(maxsplit=1) == [e.name, e.description]
    assert main(["examples", "fig5_cooling.toml"]) == 0
    assert capsys.readouterr().out == (EXAMPLES_DIR / "fig5_cooling.toml").read_text()

    assert main(["examples", "paper_double_dot", "--copy"]) == 0
    capsys.readouterr()
    copied = tmp_path / "paper_double_dot.toml"
    assert copied.read_bytes() == (EXAMPLES_DIR / "paper_double_dot.toml").read_bytes()
    copied.write_text(copied.read_text() + "\n# edited\n")
    for argv in (["examples", "paper_double_dot", "--copy"], ["examples", "paper_double_dot", "--copy", str(copied)]):
        assert main(argv) == 2
        cap = capsys.readouterr()
        assert cap.out == "" and cap.err.count("\n") == 1 and "already exists" in cap.err
    assert copied.read_text().endswith("# edited\n")  # not overwritten
    assert main(["examples", "transient", "--copy", "mine.toml"]) == 0
    assert load_config("mine.toml") == load_config("transient")
    capsys.readouterr()
    assert main(["examples", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ehp: error:") and "'nope'" in err and "paper_double_dot" in err


def test_run_without_study_runs_the_default_bias_sweep(tmp_path, monkeypatch, capsys):
    """The default study's threshold is the root finder's, and 'stable' is kappa > 0."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "paper_double_dot", "--scheduler", "serial", "--no-progress"]) == 0
    cap = capsys.readouterr()
    assert "no [study]" in cap.err and "bias_sweep" in cap.err
    out = tmp_path / "paper_double_dot"  # a bundled example writes into the current directory
    assert (out / "paper_double_dot.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    import pandas as pd

    t = pd.read_parquet(out / "paper_double_dot.parquet")
    assert len(t) == 41 and np.allclose(t["bias.V"], np.linspace(-2, 2, 41))
    assert (t["stable"] == (t["kappa"] > 0)).all() and summary["n_unstable"] == int((t["kappa"] <= 0).sum()) > 0
    assert t.loc[~t["stable"], "N"].isna().all() and t.loc[t["stable"], "N"].gt(0).all()
    # ./paper_double_dot/ now exists: the name still means the bundled config
    assert resolve_config("paper_double_dot") == EXAMPLES_DIR / "paper_double_dot.toml"
    th = find_threshold(load_config("paper_double_dot"), "bias.V", (0.0, 2.0)).threshold
    assert summary["thresholds_bias_V"] == pytest.approx([th], abs=1e-9)
