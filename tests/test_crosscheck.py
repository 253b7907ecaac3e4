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


def _paper_report():
    """paper_double_dot: Landauer lowest order compared with X(n_ph) (~15x the rate equation), full not comparable."""
    from sim.config import load_config

    return crosscheck(load_config("paper_double_dot"), ntraj=50, t_end=50.0, progress=False)


def test_printed_table_shows_the_checked_quantity(capsys, monkeypatch):
    """Printed `within` is `|deviation| <= tolerance` on every compared row, with deviation = value - center
    printed beside it; the reference prints `-`, rows without a verdict `n/a`, never the word None."""
    import analysis.cli.app as cli
    from analysis.cli.crosscheck import format_table

    rep = _paper_report()
    t = rep.table
    assert np.allclose(t["deviation"].dropna(), (t["value"] - t["center"]).dropna(), rtol=0, atol=1e-15)
    # the case the user met: Landauer lowest J differs from the rate equation by more than its tolerance,
    # but is within it of its own center X(n_ph)
    low = t[(t["route"] == "landauer") & (t["level"] == "lowest") & (t["quantity"] == "J")].iloc[0]
    assert abs(low["difference"]) > low["tolerance"] >= abs(low["deviation"]) and low["within"] is True
    lines = format_table(rep).splitlines()
    header = lines[0].split()
    assert header[-4:] == ["center", "deviation", "tolerance", "within"]
    assert "within = |deviation| <= tolerance" in " ".join(lines[len(t) + 1:])
    for line, (_, row) in zip(lines[1:len(t) + 1], t.iterrows(), strict=True):
        *_, dev_s, tol_s, within_s = line.split()
        if row["route"] == "rate_equation":
            assert within_s == "-" and tol_s == "-"
        elif row["within"] is None:
            assert within_s == "n/a"
        else:
            assert dev_s == f"{row['deviation']:.6g}" and tol_s == f"{row['tolerance']:.6g}"
            assert within_s == str(abs(row["deviation"]) <= row["tolerance"]) == str(row["within"])
    monkeypatch.setattr(cli, "PLUGINS", ("analysis.cli.crosscheck",))
    monkeypatch.setattr("analysis.crosscheck.crosscheck", lambda *a, **k: rep)
    assert main(["crosscheck", "paper_double_dot", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "None" not in out and format_table(rep) in out


def test_not_compared_counts_every_row_without_a_verdict(monkeypatch):
    """Rows outside their range, not computed and not defined (N for Landauer) all count; the reference does not."""
    import pandas as pd

    from analysis.crosscheck import not_compared_note

    rep = _paper_report()
    t = rep.table
    n = int(((t["route"] != "rate_equation") & t["within"].isna()).sum())
    assert n == 5  # landauer lowest N (not defined) and the four landauer full rows (kappa/Omega > 0.1)
    assert f"({n} rows not compared: 4 outside their limit's range, 1 not defined for the route)" in rep.message
    nan = float("nan")
    rows = pd.DataFrame({"route": ["rate_equation", "population", "lindblad", "landauer", "landauer"],
                         "quantity": ["J"] * 5, "value": [1.0, 1.0, nan, nan, 2.0],
                         "expected": ["reference", "x", "not computed: cap", "= X(n_ph)", "not comparable: k"],
                         "within": [None, True, None, None, None]})
    assert not_compared_note(rows) == (" (3 rows not compared: 1 outside its limit's range, 1 not computed, "
                                       "1 not defined for the route)")
    assert not_compared_note(rows.iloc[:2]) == ""
    # several modes: the same count with the covariance route as the reference
    modes = rows.assign(route=["covariance"] + list(rows["route"][1:]))
    assert not_compared_note(modes, "covariance") == not_compared_note(rows)


def test_figure_marks_rows_expected_to_differ(tmp_path, monkeypatch):
    """Landauer lowest order (checked against X(n_ph)) is labelled 'expected to differ' with its window around its
    own center; Landauer full (not comparable) is hollow and labelled; nothing else is labelled."""
    import matplotlib.figure

    from analysis.crosscheck import _plot_table, plot_crosscheck

    rep = _paper_report()
    t = _plot_table(rep)
    low = t[t["label"] == "landauer lowest"]
    assert low["own_center"].all() and (low["center_name"] == "X(n_ph)").all()
    assert ((low["lo"] <= low["rel"]) & (low["rel"] <= low["hi"])).all()
    assert ((low["center"] - low["rate_equation"]).abs() > 5 * low["rate_equation"].abs()).all()  # by construction
    full = t[t["label"] == "landauer full"]
    assert len(full) == 3 and not full["compared"].any()
    rest = t[t["route"].isin(["population", "lindblad", "trajectories"])]
    assert rest["compared"].all() and not rest["own_center"].any()
    figs = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda self, *a, **k: figs.append(self))
    plot_crosscheck(rep, tmp_path / "c.png")
    left = figs[0].axes[0]
    notes = [x.get_text() for x in left.texts]
    assert notes.count("expected to differ") == len(low) and notes.count("not comparable") == len(full)
    hollow = [ln for ln in left.get_lines() if ln.get_marker() == "o" and ln.get_markerfacecolor() == "white"]
    assert sum(len(ln.get_xdata()) for ln in hollow) == len(full)
    assert any("not comparable (kappa/Omega" in s for s in left.get_legend_handles_labels()[1])
