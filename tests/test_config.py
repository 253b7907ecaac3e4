"""Config validation: every bad input names key, value and rule; the CLI exits 2 without traceback."""

from __future__ import annotations

import pytest

from analysis.cli import main
from sim.config import ConfigError, load_config, parse_config, parse_override

GOOD = """
[conductor]
kind = "double_dot"
eps = [0.5, -0.5]
hopping = 0.0
gamma_L = 0.5
gamma_R = 0.5
coupling = 0.5

[mode]
omega = 1.0

[bias]
mu_L = 0.25
mu_R = -0.25
T_e = 0.1

[phonon_bath]
T = 0.1
gamma = 0.05
"""

MATRIX = """
[conductor]
kind = "matrix"
H = [[0.5, 0.1], [0.1, -0.5]]
gamma_L = [[0.5, 0.0], [0.0, 0.0]]
gamma_R = [[0.0, 0.0], [0.0, 0.5]]
M = [[0.0, 0.5], [0.5, 0.0]]

[mode]
omega = 1.0

[bias]
V = 0.5
T_e = 0.1

[phonon_bath]
T = 0.1
gamma = 0.05
"""


def _write(tmp_path, text, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


# (text replacement, fragments the message must contain)
BAD = [
    (("gamma = 0.05", "gamma = -1"), ["phonon_bath.gamma", "-1", ">= 0"]),
    (("T = 0.1\ngamma", "T = -0.2\ngamma"), ["phonon_bath.T", "-0.2", ">= 0"]),
    (("T_e = 0.1", "T_e = -0.1"), ["bias.T_e", "-0.1", ">= 0"]),
    (("T_e = 0.1", "T_e = 0.1\nT_L = -3"), ["bias.T_L", "-3", ">= 0"]),
    (("omega = 1.0", "omega = 0"), ["mode.omega", "0", "> 0"]),
    (("omega = 1.0", "omega = -2.0"), ["mode.omega", "-2", "> 0"]),
    (("omega = 1.0", "omega = nan"), ["mode.omega", "nan", "finite"]),
    (("omega = 1.0", 'omega = "fast"'), ["mode.omega", "'fast'", "number"]),
    (("hopping = 0.0", "hoping = 0.0"), ["conductor.hoping = 0.0", "not a known key", "did you mean conductor.hopping?"]),
    (("[phonon_bath]", "[phonon_bat]"), ["phonon_bat", "not a known section"]),
    (("gamma_L = 0.5", "gamma_L = -0.5"), ["conductor.gamma_L", "-0.5", ">= 0"]),
    (("eps = [0.5, -0.5]", "eps = [0.5]"), ["conductor.eps", "[0.5]", "two numbers"]),
    (("mu_L = 0.25", "mu_L = 0.25\nV = 1.0"), ["bias", "either mu_L and mu_R, or V"]),
    (('kind = "double_dot"', 'kind = "triple_dot"'), ["conductor.kind", "triple_dot", "one of"]),
    (("mu_R = -0.25", "mu_R = inf"), ["bias.mu_R", "inf", "finite"]),
]


def _assert_refused(tmp_path, capsys, text, fragments):
    """load_config raises naming every fragment; the CLI exits 2 with that one line, no stdout."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    for f in fragments:
        assert f in str(err.value), (f, str(err.value))
    assert main(["steady", str(path), "--json"]) == 2
    out, errtext = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in errtext and errtext.count("\n") == 1 and fragments[0] in errtext


@pytest.mark.parametrize(("edit", "fragments"), BAD)
def test_bad_input_names_key_value_and_rule(tmp_path, capsys, edit, fragments):
    assert edit[0] in GOOD
    _assert_refused(tmp_path, capsys, GOOD.replace(*edit, 1), fragments)


BAD_MATRIX = [
    (("H = [[0.5, 0.1], [0.1, -0.5]]", "H = [[0.5, 0.1], [0.3, -0.5]]"), ["conductor.H", "Hermitian"]),
    (("H = [[0.5, 0.1], [0.1, -0.5]]", "H = [[0.5, 0.1], [0.1, -0.5]]\nH_imag = [[0.1, 0.0], [0.0, 0.0]]"),
     ["conductor.H", "Hermitian"]),
    (("gamma_L = [[0.5, 0.0], [0.0, 0.0]]", "gamma_L = [[0.5, 0.0], [0.0, -0.1]]"),
     ["conductor.gamma_L", "positive semi-definite", "-0.1"]),
    (("gamma_R = [[0.0, 0.0], [0.0, 0.5]]", "gamma_R = [[0.1, 0.5], [0.5, 0.1]]"),
     ["conductor.gamma_R", "positive semi-definite"]),
    (("M = [[0.0, 0.5], [0.5, 0.0]]", "M = [[0.0, 0.5, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]"),
     ["conductor.M", "2 x 2", "shape"]),
    (("H = [[0.5, 0.1], [0.1, -0.5]]", "H = [[0.5, 0.1], [0.1]]"), ["conductor.H", "n x n", "shape"]),
    (("M = [[0.0, 0.5], [0.5, 0.0]]", "M = [[0.0, nan], [0.5, 0.0]]"), ["conductor.M[0][1]", "nan", "finite"]),
    (("M = [[0.0, 0.5], [0.5, 0.0]]", ""), ["conductor.M", "required"]),
]


@pytest.mark.parametrize(("edit", "fragments"), BAD_MATRIX)
def test_bad_matrix_input(tmp_path, capsys, edit, fragments):
    assert edit[0] in MATRIX
    _assert_refused(tmp_path, capsys, MATRIX.replace(*edit, 1), fragments)


def test_matrix_kind_equals_double_dot(tmp_path):
    import sim

    m = sim.steady_state(load_config(_write(tmp_path, MATRIX)))
    d = sim.steady_state(load_config(_write(tmp_path, GOOD, "g.toml"), ["conductor.hopping=0.1"]))
    assert m.N == pytest.approx(d.N, rel=1e-12) and m.Ie == pytest.approx(d.Ie, rel=1e-12)


def test_overrides_are_toml_values_or_bare_strings(tmp_path):
    assert parse_override("run.initial=steady") == ("run.initial", "steady")
    assert parse_override('run.initial="steady"') == ("run.initial", "steady")
    assert parse_override("bias.T_e=0.3") == ("bias.T_e", 0.3)
    assert parse_override("conductor.eps=[1, -1]") == ("conductor.eps", [1, -1])
    cfg = load_config(_write(tmp_path, GOOD), ["bias.V=1.5", "phonon_bath.gamma=0.2"])
    assert cfg.bias.V == 1.5 and cfg.bias.mu0 == 0.0 and cfg.phonon_bath.gamma == 0.2
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("nonsense")
    with pytest.raises(ConfigError, match="bias.T_e must be a number, got 'hot'"):
        load_config(_write(tmp_path, GOOD), ["bias.T_e=hot"])
    with pytest.raises(ConfigError, match="must be section.key"):
        load_config(_write(tmp_path, GOOD), ["nosection=1"])


def test_config_round_trip_and_integers_accepted():
    import tomllib

    from sim.config import to_toml

    d = tomllib.loads(GOOD.replace("omega = 1.0", "omega = 1"))
    cfg = parse_config(d)
    assert cfg.mode.omega == 1.0 and isinstance(cfg.mode.omega, float)
    assert parse_config(tomllib.loads(to_toml(cfg.to_dict()))) == cfg
    assert cfg.with_value("bias.V", 2.0).bias.mu_L == pytest.approx(1.0)


def test_missing_file_and_bad_toml(tmp_path, capsys):
    assert main(["steady", str(tmp_path / "nope.toml")]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert main(["steady", str(_write(tmp_path, "[mode\nomega=1"))]) == 2
    assert "not valid TOML" in capsys.readouterr().err
