"""The cross-check report: every route agrees with the rate equation within its expected gap."""

from __future__ import annotations

import json

import numpy as np

from analysis.cli import main
from analysis.crosscheck import crosscheck

from .conftest import make_config


def test_all_routes_within_expected_differences():
    cfg = make_config(conductor={"kind": "double_dot", "hopping": 0.2, "coupling": 0.3},
                      bias={"V": 0.6, "T_e": 0.4}, phonon_bath={"T": 0.3, "gamma": 0.2}, run={"seed": 3})
    rep = crosscheck(cfg, ntraj=1000)
    t = rep.table
    assert set(t["route"]) == {"rate_equation", "population", "lindblad", "trajectories", "landauer"}
    assert t["within"].dropna().all(), t
    # the trajectory row has real error bars, the exact rows agree to 1e-8
    tr = t[t["route"] == "trajectories"]
    assert np.all(tr["stderr"] > 0)
    exact = t[t["route"].isin(["population", "lindblad"])]
    assert np.all(np.abs(exact["difference"]) <= 1e-8 * np.abs(exact["rate_equation"]))
    # Landauer lowest order differs for real here (Gamma_e / gamma_ph is not small)
    low = t[(t["route"] == "landauer") & (t["level"] == "lowest") & (t["quantity"] == "J")].iloc[0]
    assert abs(low["difference"]) > 1e-3 * abs(low["rate_equation"])


def test_crosscheck_cli(tmp_path, capsys, monkeypatch):
    import analysis.cli.app as cli

    monkeypatch.setattr(cli, "PLUGINS", ("analysis.cli.crosscheck",))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[conductor]\nkind = "double_dot"\nhopping = 0.2\ncoupling = 0.3\n[mode]\nomega = 1.0\n'
                   '[bias]\nV = 0.6\nT_e = 0.4\n[phonon_bath]\nT = 0.3\ngamma = 0.2\n')
    assert main(["crosscheck", str(cfg), "--ntraj", "300", "--json", "--out", str(tmp_path / "o")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["stable"] is True and len(d["rows"]) == 24
    assert (tmp_path / "o" / "crosscheck.parquet").is_file() and (tmp_path / "o" / "crosscheck.png").is_file()
    assert main(["crosscheck", str(cfg), "--set", "bias.V=0.7", "--out", str(tmp_path / "o")]) == 2
    assert main(["crosscheck", str(cfg), "--set", "bias.V=3", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stable"] is False and "unstable" in captured.err


def test_reference_rows_have_no_tolerance_in_table_or_figure(tmp_path, monkeypatch):
    """The rate equation is the reference: no tolerance, no `within`, not drawn; trajectory rows carry error bars."""
    import matplotlib.figure

    from analysis.crosscheck import plot_crosscheck

    cfg = make_config(conductor={"kind": "double_dot", "hopping": 0.2, "coupling": 0.3},
                      bias={"V": 0.6, "T_e": 0.4}, phonon_bath={"T": 0.3, "gamma": 0.2}, run={"seed": 3})
    rep = crosscheck(cfg, ntraj=200, progress=False)
    ref = rep.table[rep.table["route"] == "rate_equation"]
    assert ref["tolerance"].isna().all() and ref["within"].isna().all()
    others = rep.table[(rep.table["route"] != "rate_equation") & rep.table["tolerance"].notna()]
    assert (others["tolerance"] > 1e-200).all()  # no 1e-300 placeholders left
    figs = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self))
    plot_crosscheck(rep, tmp_path / "c.png")
    (fig,) = figs
    left, right = fig.axes
    labels = left.get_legend_handles_labels()[1]
    assert not any("rate_equation" in s for s in labels) and any(s.startswith("trajectories") for s in labels)
    assert left.get_yscale() == "linear" and right.get_yscale() == "linear"
    # the right panel draws one point per compared row (finite tolerance), none for the reference
    n_points = sum(len(line.get_xdata()) for line in right.get_lines() if line.get_marker() == "o")
    assert n_points == len(others)
    assert rep.message in fig._suptitle.get_text().replace("\n", " ")
