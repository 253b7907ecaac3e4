"""Fuzz suite for the command line's boundary: bad and extreme input in every command and config key.

Every case either is refused (exit 2, nothing on stdout, ONE ``ehp: error:`` line on stderr
naming the key) or gives a verified answer (finite numbers, ``J == J_ph`` in steady
state, detailed balance at equilibrium, two conductor kinds agreeing, the analytic
flat-band kappa). No case may raise (a traceback is an internal bug, exit 1). All calls
run in-process through :func:`analysis.cli.main`; the expensive commands (evolve,
trajectories, crosscheck, sweep, run) get tiny sizes.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.cli import main
from sim import guards

BASE = """[conductor]
kind = "double_dot"
eps = [0.5, -0.5]
hopping = 0.0
gamma_L = 0.5
gamma_R = 0.5
coupling = 0.5

[mode]
omega = 1.0

[bias]
V = 0.5
mu0 = 0.0
T_e = 0.1

[phonon_bath]
T = 0.1
gamma = 0.05

[run]
t_end = 2.0
n_points = 5
ntraj = 2
"""
MATRIX = BASE.replace(
    '''kind = "double_dot"
eps = [0.5, -0.5]
hopping = 0.0
gamma_L = 0.5
gamma_R = 0.5
coupling = 0.5''',
    '''kind = "matrix"
H = [[0.5, 0.0], [0.0, -0.5]]
gamma_L = [[0.5, 0.0], [0.0, 0.0]]
gamma_R = [[0.0, 0.0], [0.0, 0.5]]
M = [[0.0, 0.5], [0.5, 0.0]]''')
FLAT = BASE.replace(
    '''kind = "double_dot"
eps = [0.5, -0.5]
hopping = 0.0
gamma_L = 0.5
gamma_R = 0.5
coupling = 0.5''',
    '''kind = "flat"
K_LL = 0.2
K_RR = 0.3
K_LR = 0.1
K_RL = 0.4''')


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("fuzz")
    out = {}
    for name, text in {"base": BASE, "matrix": MATRIX, "flat": FLAT}.items():
        (d / f"{name}.toml").write_text(text)
        out[name] = str(d / f"{name}.toml")
    out["dir"] = str(d)
    return out


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` (argparse's usage errors exit through SystemExit); any other exception fails the case."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, argv: list[str], key: str) -> str:
    """Exit 2, stdout empty, one ``ehp: error:`` line on stderr that names ``key``."""
    code, out, err = run(capsys, argv)
    assert code == 2, (argv, code, out, err)
    assert out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ehp: error: "), err
    assert "Traceback" not in err
    assert key in lines[0], (key, lines[0])
    return lines[0]


def steady_json(capsys, argv: list[str]) -> tuple[dict, str]:
    code, out, err = run(capsys, argv + ["--json"])
    assert code == 0, (argv, err)
    return json.loads(out), err


def check_steady(d: dict) -> None:
    """A verified steady answer: finite numbers, J = J_ph, N >= 0, or a clean instability verdict."""
    assert d["kappa"] is not None and math.isfinite(d["kappa"])
    for rec in d["channels"].values():
        for k in ("emission", "absorption"):
            assert rec[k] is not None and rec[k] >= 0
    if d["stable"]:
        assert not d["near_threshold"]
        assert d["N"] is not None and d["N"] >= 0
        scale = max(abs(d["J"]), abs(d["J_ph"]), 1e-300)
        # J = J_ph up to the round-off of N - n_ph (relative 1e-9 of the larger flux, or its absolute floor)
        assert abs(d["J"] - d["J_ph"]) <= 1e-9 * scale + 1e-12 * d["emission_total"] * max(1.0, d["N"])
    else:
        assert d["N"] is None and d["J"] is None
        assert d["growth_rate"] == pytest.approx(-d["kappa"])


# ---------------------------------------------------------------------------------------------- refused: config keys

# (--set overrides, key named in the message)
BAD_SETS = [
    # [conductor] double_dot: eps
    (["conductor.eps=[1.0]"], "conductor.eps"),
    (["conductor.eps=5"], "conductor.eps"),
    (['conductor.eps=[1.0, "a"]'], "conductor.eps[1]"),
    (["conductor.eps=[1e13, 0.0]"], "conductor.eps[0]"),
    (["conductor.eps=[nan, 0.0]"], "conductor.eps[0]"),
    (["conductor.eps[0]=inf"], "conductor.eps[0]"),
    (["conductor.eps[1]=-inf"], "conductor.eps[1]"),
    (["conductor.eps[0]=true"], "conductor.eps[0]"),
    (["conductor.eps[0]=1e308"], "conductor.eps[0]"),
    (["conductor.eps[5]=1.0"], "conductor.eps[5]"),
    (["conductor.eps[x]=1.0"], "conductor.eps[x]"),
    (["conductor.eps=[1, 2, 3]"], "conductor.eps"),
    # hopping
    (["conductor.hopping=nan"], "conductor.hopping"),
    (["conductor.hopping=inf"], "conductor.hopping"),
    (["conductor.hopping=-1e13"], "conductor.hopping"),
    (["conductor.hopping=abc"], "conductor.hopping"),
    (["conductor.hopping=true"], "conductor.hopping"),
    (["conductor.hopping=[1]"], "conductor.hopping"),
    (["conductor.hopping={a = 1}"], "conductor.hopping"),
    # gamma_L, gamma_R
    (["conductor.gamma_L=-1"], "conductor.gamma_L"),
    (["conductor.gamma_L=1e-300"], "conductor.gamma_L"),
    (["conductor.gamma_L=1e308"], "conductor.gamma_L"),
    (["conductor.gamma_L=1e-13"], "conductor.gamma_L"),
    (["conductor.gamma_L=nan"], "conductor.gamma_L"),
    (["conductor.gamma_L=x"], "conductor.gamma_L"),
    (["conductor.gamma_R=-0.1"], "conductor.gamma_R"),
    (["conductor.gamma_R=1e13"], "conductor.gamma_R"),
    (["conductor.gamma_R=inf"], "conductor.gamma_R"),
    (["conductor.gamma_R=false"], "conductor.gamma_R"),
    # coupling
    (["conductor.coupling=1e200"], "conductor.coupling"),
    (["conductor.coupling=nan"], "conductor.coupling"),
    (["conductor.coupling=strong"], "conductor.coupling"),
    (["conductor.coupling=-inf"], "conductor.coupling"),
    # kind and unknown keys
    (["conductor.kind=triple"], "conductor.kind"),
    (["conductor.kind=5"], "conductor.kind"),
    (["conductor.kind=[1]"], "conductor.kind"),
    (["conductor.kind=true"], "conductor.kind"),
    (["conductor.kind=matrix"], "conductor."),  # double-dot keys are not matrix keys
    (["conductor.kind=flat"], "conductor."),
    (["conductor.unknown=1"], "conductor.unknown"),
    # [mode]
    (["mode.omega=0"], "mode.omega"),
    (["mode.omega=-1"], "mode.omega"),
    (["mode.omega=1e-13"], "mode.omega"),
    (["mode.omega=1e13"], "mode.omega"),
    (["mode.omega=nan"], "mode.omega"),
    (["mode.omega=one"], "mode.omega"),
    (["mode.omega=inf"], "mode.omega"),
    (["mode.extra=1"], "mode.extra"),
    # [bias], V/mu0 form
    (["bias.V=1e308"], "bias.V"),
    (["bias.V=nan"], "bias.V"),
    (["bias.V=inf"], "bias.V"),
    (["bias.V=big"], "bias.V"),
    (["bias.mu0=-inf"], "bias.mu0"),
    (["bias.mu0=1e13"], "bias.mu0"),
    (["bias.mu0=9e11", "bias.V=9e11"], "bias.mu_L"),
    (["bias.V=2e12"], "bias.V"),
    # mu_L/mu_R form (set converts the form)
    (["bias.mu_L=nan"], "bias.mu_L"),
    (["bias.mu_R=1e13"], "bias.mu_R"),
    (["bias.mu_L=true"], "bias.mu_L"),
    (["bias.mu_L=8e11", "bias.mu_R=-8e11"], "bias.V"),
    # temperatures
    (["bias.T_e=-1"], "bias.T_e"),
    (["bias.T_e=1e-300"], "bias.T_e"),
    (["bias.T_e=1e15"], "bias.T_e"),
    (["bias.T_e=nan"], "bias.T_e"),
    (["bias.T_e=hot"], "bias.T_e"),
    (["bias.T_L=nan"], "bias.T_L"),
    (["bias.T_L=-0.5"], "bias.T_L"),
    (["bias.T_L=1e-20"], "bias.T_L"),
    (["bias.T_R=1e13"], "bias.T_R"),
    (["bias.T_R=[0.1]"], "bias.T_R"),
    (["bias.extra=1"], "bias.extra"),
    # [phonon_bath]
    (["phonon_bath.T=-1"], "phonon_bath.T"),
    (["phonon_bath.T=1e-20"], "phonon_bath.T"),
    (["phonon_bath.T=1e13"], "phonon_bath.T"),
    (["phonon_bath.T=nan"], "phonon_bath.T"),
    (["phonon_bath.gamma=-1"], "phonon_bath.gamma"),
    (["phonon_bath.gamma=1e308"], "phonon_bath.gamma"),
    (["phonon_bath.gamma=1e-300"], "phonon_bath.gamma"),
    (["phonon_bath.gamma=x"], "phonon_bath.gamma"),
    (["phonon_bath.gamma=inf"], "phonon_bath.gamma"),
    (["phonon_bath.extra=1"], "phonon_bath.extra"),
    # [run]
    (["run.t_end=0"], "run.t_end"),
    (["run.t_end=-1"], "run.t_end"),
    (["run.t_end=inf"], "run.t_end"),
    (["run.t_end=nan"], "run.t_end"),
    (["run.t_end=1e13"], "run.t_end"),
    (["run.t_end=x"], "run.t_end"),
    (["run.n_points=1"], "run.n_points"),
    (["run.n_points=1.5"], "run.n_points"),
    (["run.n_points=x"], "run.n_points"),
    (["run.ntraj=0"], "run.ntraj"),
    (["run.ntraj=-1"], "run.ntraj"),
    (["run.ntraj=2.5"], "run.ntraj"),
    (["run.ntraj=1000000", "run.n_points=100000", "run.store_grid=true"], "run.ntraj x run.n_points"),
    (["run.ntraj=1000000", "run.n_points=100000", "run.engine=mcsolve"], "run.ntraj x run.n_points"),
    (["run.store_grid=1"], "run.store_grid"),
    (["run.seed=-1"], "run.seed"),
    (["run.seed=x"], "run.seed"),
    (["run.cutoff=0"], "run.cutoff"),
    (["run.cutoff=1.5"], "run.cutoff"),
    (["run.engine=foo"], "run.engine"),
    (["run.engine=5"], "run.engine"),
    (["run.initial=fock:-1"], "run.initial"),
    (["run.initial=fock:x"], "run.initial"),
    (["run.initial=thermal:nan"], "run.initial"),
    (["run.initial=squeezed"], "run.initial"),
    (["run.initial=5"], "run.initial"),
    (["run.extra=1"], "run.extra"),
    # --set syntax and sections
    (["noequals"], "noequals"),
    (["=5"], "--set"),
    (["foo.bar=1"], "foo.bar"),
    (["bias=1"], "bias"),
    (["study=5"], "study"),
]

# the same bad values on a matrix and a flat conductor
BAD_MATRIX = [
    (["conductor.H=[[1.0, 0.0], [1.0, 0.0]]"], "conductor.H"),  # not Hermitian
    (["conductor.H=[[1.0, 0.0]]"], "conductor.H"),
    (["conductor.H=5"], "conductor.H"),
    (["conductor.H=[]"], "conductor.H"),
    (['conductor.H=[[1.0, "a"], [0.0, 1.0]]'], "conductor.H[0][1]"),
    (["conductor.H=[[1e13, 0.0], [0.0, 1.0]]"], "conductor.H[0][0]"),
    (["conductor.H=[[nan, 0.0], [0.0, 1.0]]"], "conductor.H[0][0]"),
    (["conductor.gamma_L=[[-1.0, 0.0], [0.0, 0.0]]"], "conductor.gamma_L"),  # not PSD
    (["conductor.gamma_L=[[0.5]]"], "conductor.gamma_L"),
    (["conductor.gamma_R=[[1e300, 0.0], [0.0, 0.0]]"], "conductor.gamma_R[0][0]"),
    (["conductor.M=[[0.0, 1.0], [0.0, 0.0]]"], "conductor.M"),
    (["conductor.M_imag=[[0.0, 1.0], [1.0, 0.0]]"], "conductor.M"),  # i M_imag symmetric: not Hermitian
    (["conductor.H_imag=[[1.0]]"], "conductor.H_imag"),
    (["conductor.eps=[1.0, 2.0]"], "conductor.eps"),
]
BAD_FLAT = [
    (["conductor.K_LL=-1"], "conductor.K_LL"),
    (["conductor.K_RR=nan"], "conductor.K_RR"),
    (["conductor.K_LR=1e13"], "conductor.K_LR"),
    (["conductor.K_RL=1e-20"], "conductor.K_RL"),
    (["conductor.K_LL=x"], "conductor.K_LL"),
    (["conductor.gamma_L=0.5"], "conductor.gamma_L"),
]


@pytest.mark.parametrize(("sets", "key"), BAD_SETS, ids=[" ".join(s) for s, _ in BAD_SETS])
def test_bad_key_refused(capsys, files, sets, key):
    cmd = "config" if len(sets[0]) % 2 else "steady"  # both commands validate the same way
    refused(capsys, [cmd, files["base"], *(a for s in sets for a in ("--set", s))], key)


@pytest.mark.parametrize(("sets", "key"), BAD_MATRIX + BAD_FLAT, ids=[" ".join(s) for s, _ in BAD_MATRIX + BAD_FLAT])
def test_bad_conductor_kind_keys_refused(capsys, files, sets, key):
    name = "flat" if "K_" in sets[0] or (sets, key) in BAD_FLAT else "matrix"
    refused(capsys, ["steady", files[name], *(a for s in sets for a in ("--set", s))], key)


# ---------------------------------------------------------------------------------------------- refused: files

_Z60 = "[" + ", ".join("[" + ", ".join("0.5" if i == j else "0.0" for j in range(60)) + "]" for i in range(60)) + "]"
BAD_FILES = [
    ("binary", b"\xff\xfe\x00binary\x00", "not UTF-8"),
    ("conductor5", b"conductor = 5\n[mode]\nomega = 1.0\n[bias]\nT_e = 0.1\n", "[conductor]"),
    ("mode5", BASE.replace("[mode]\nomega = 1.0", "mode = 5").encode(), "[mode]"),
    ("bias_list", BASE.replace("[bias]", "bias = [1]\n[x]").encode(), "bias"),
    ("unknown_section", (BASE + "\n[extra]\na = 1\n").encode(), "[extra]"),
    ("no_bias", BASE.split("[bias]")[0].encode(), "[bias]"),
    ("no_T_e", BASE.replace("T_e = 0.1\n", "").encode(), "bias.T_e"),
    ("no_omega", BASE.replace("omega = 1.0\n", "").encode(), "mode.omega"),
    ("both_bias_forms", BASE.replace("V = 0.5", "V = 0.5\nmu_L = 0.25").encode(), "bias"),
    ("not_toml", b"[conductor\nkind = ", "not valid TOML"),
    ("empty", b"", "[conductor]"),
    ("study_not_table", ("study = 3\n" + BASE).encode(), "[study]"),
    ("huge_int", BASE.replace("omega = 1.0", "omega = 9223372036854775807").encode(), "mode.omega"),
    ("matrix_missing_M", MATRIX.replace("M = [[0.0, 0.5], [0.5, 0.0]]\n", "").encode(), "conductor.M"),
    ("matrix_too_large", MATRIX.split("[conductor]")[0].encode() + b"[conductor]\nkind = \"matrix\"\n"
     + "".join(f"{k} = {_Z60}\n" for k in ("H", "gamma_L", "gamma_R", "M")).encode()
     + MATRIX.split("[mode]")[1].join(["[mode]", ""]).encode(), "conductor.H of size 60 x 60"),
]


@pytest.mark.parametrize(("name", "content", "key"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_file_refused(capsys, tmp_path, name, content, key):
    p = tmp_path / f"{name}.toml"
    p.write_bytes(content)
    refused(capsys, ["steady", str(p)], key)


def test_missing_file_and_directory_refused(capsys, tmp_path):
    refused(capsys, ["steady", str(tmp_path / "nope.toml")], "cannot be read")
    refused(capsys, ["config", str(tmp_path)], "cannot be read")


# ---------------------------------------------------------------------------------------------- refused: commands

def _cmd_cases(f: dict[str, str], d: str) -> list[tuple[list[str], str]]:
    b = f["base"]
    return [
        # every command validates the config first
        (["threshold", b, "--vary", "bias.V", "--between", "0", "2", "--set", "bias.T_e=-1"], "bias.T_e"),
        (["evolve", b, "--out", f"{d}/e0", "--set", "mode.omega=0"], "mode.omega"),
        (["trajectories", b, "--out", f"{d}/t0", "--set", "conductor.gamma_L=nan"], "conductor.gamma_L"),
        (["crosscheck", b, "--set", "phonon_bath.gamma=1e308"], "phonon_bath.gamma"),
        (["sweep", b, "--grid", "bias.V=0:1:2", "--out", f"{d}/s0", "--set", "bias.T_R=1e13"], "bias.T_R"),
        (["run", b, "--set", "bias.V=inf"], "bias.V"),
        # threshold
        (["threshold", b, "--vary", "bias.V", "--between", "0", "1e308"], "bias.V"),
        (["threshold", b, "--vary", "bias.V", "--between", "nan", "1"], "--between"),
        (["threshold", b, "--vary", "bias.V", "--between", "1", "1"], "--between"),
        (["threshold", b, "--vary", "bias.V", "--between", "-inf", "1"], "--between"),
        (["threshold", b, "--vary", "bias.nonsense", "--between", "0", "2"], "bias.nonsense"),
        (["threshold", b, "--vary", "conductor.kind", "--between", "0", "2"], "conductor.kind"),
        (["threshold", b, "--vary", "run.ntraj", "--between", "1", "2"], "run.ntraj"),
        (["threshold", b, "--vary", "bias.V", "--between", "0", "0.5"], "bias.V"),
        (["threshold", b, "--vary", "mode.omega", "--between", "-1", "2"], "mode.omega"),
        (["threshold", b, "--vary", "bias.T_e", "--between", "0", "1e15"], "bias.T_e"),
        (["threshold", b, "--vary", "bias.V", "--between", "0", "x"], "--between"),
        # evolve
        (["evolve", b, "--out", f"{d}/e1", "--t-end", "inf"], "--t-end"),
        (["evolve", b, "--out", f"{d}/e2", "--t-end", "nan"], "--t-end"),
        (["evolve", b, "--out", f"{d}/e3", "--t-end", "-1"], "--t-end"),
        (["evolve", b, "--out", f"{d}/e4", "--t-end", "1e13"], "--t-end"),
        (["evolve", b, "--out", f"{d}/e5", "--n-points", "1"], "--n-points"),
        (["evolve", b, "--out", f"{d}/e6", "--n-points", "1000000000"], "--n-points"),
        (["evolve", b, "--out", f"{d}/e7", "--n-points", "1e9"], "--n-points"),
        (["evolve", b, "--out", f"{d}/e8", "--cutoff", "1"], "--cutoff"),
        (["evolve", b, "--out", f"{d}/e9", "--cutoff", "100000000000"], "--cutoff"),
        (["evolve", b, "--out", f"{d}/e10", "--method", "lindblad", "--cutoff", "10000"], "--cutoff"),
        (["evolve", b, "--out", f"{d}/e11", "--initial", "fock:1500"], "fock:1500"),
        (["evolve", b, "--out", f"{d}/e12", "--initial", "fock:5", "--cutoff", "3"], "fock:5"),
        (["evolve", b, "--out", f"{d}/e13", "--initial", "coherent:1"], "coherent"),
        (["evolve", b, "--out", f"{d}/e14", "--initial", "steady", "--set", "bias.V=1.5"], "steady"),
        (["evolve", b, "--out", f"{d}/e15", "--bias-table", f"{d}/nope.csv"], "--bias-table"),
        (["evolve", b, "--out", f"{d}/e16", "--method", "euler"], "--method"),
        (["evolve", b, "--out", f"{d}/e17", "--set", "run.t_end=0"], "run.t_end"),
        # trajectories
        (["trajectories", b, "--out", f"{d}/t1", "--ntraj", "0"], "--ntraj"),
        (["trajectories", b, "--out", f"{d}/t2", "--t-end", "inf"], "--t-end"),
        (["trajectories", b, "--out", f"{d}/t3", "--n-points", "0"], "--n-points"),
        (["trajectories", b, "--out", f"{d}/t4", "--ntraj", "10000000", "--n-points", "10000", "--store-grid"],
         "run.ntraj x run.n_points"),
        (["trajectories", b, "--out", f"{d}/t5", "--engine", "foo"], "--engine"),
        (["trajectories", b, "--out", f"{d}/t6", "--seed", "-1"], "--seed"),
        (["trajectories", b, "--out", f"{d}/t7", "--t-end", "1e13"], "run.t_end"),
        # stats
        (["stats", f"{d}/nope"], "nope"),
        (["stats", d], "not a trajectory run directory"),
        # crosscheck
        (["crosscheck", b, "--ntraj", "1"], "--ntraj"),
        (["crosscheck", b, "--t-end", "0"], "--t-end"),
        (["crosscheck", b, "--t-end", "inf"], "--t-end"),
        (["crosscheck", b, "--ntraj", "100000000"], "--ntraj"),
        (["crosscheck", b, "--seed", "-3"], "--seed"),
        # sweep and run
        (["sweep", b, "--grid", "bias.V=0:1:0", "--out", f"{d}/s1"], "bias.V"),
        (["sweep", b, "--grid", "bias.V=0:1:1000000000000", "--out", f"{d}/s2"], "bias.V"),
        (["sweep", b, "--grid", "bias.V=0:1:3000", "--grid", "bias.T_e=0.1:1:3000", "--out", f"{d}/s3"], "points"),
        (["sweep", b, "--grid", "bias.T_e=0:1e15:3", "--out", f"{d}/s4"], "bias.T_e"),
        (["sweep", b, "--grid", "bias.V=[0, nan]", "--out", f"{d}/s5"], "bias.V"),
        (["sweep", b, "--grid", "foo=1", "--out", f"{d}/s6"], "foo"),
        (["sweep", b, "--grid", "conductor.kind=1", "--out", f"{d}/s7"], "conductor.kind"),
        (["sweep", b, "--grid", "mode.omega=-1:1:3", "--out", f"{d}/s8"], "mode.omega"),
        (["run", b, "--out", f"{d}/r1", "--set", "study.kind=5"], "study.kind"),
        (["run", b, "--out", f"{d}/r2", "--set", "study.kind=nope"], "study.kind"),
        # usage errors are one line too
        (["steady", b, "--landauer", "bogus"], "--landauer"),
        (["nosuchcommand"], "nosuchcommand"),
    ]


CMD_CASES = _cmd_cases({"base": "@B"}, "@D")


@pytest.mark.parametrize(("argv", "key"), CMD_CASES, ids=[" ".join(a[:1] + a[2:])[:60] for a, _ in CMD_CASES])
def test_bad_command_input_refused(capsys, files, argv, key):
    argv = [a.replace("@B", files["base"]).replace("@D", files["dir"]) for a in argv]
    refused(capsys, argv, key)


# ---------------------------------------------------------------------------------------------- verified answers

EXTREMES = [  # inside the numeric domain: corners and zeros
    [], ["bias.T_e=0", "phonon_bath.T=0"], ["bias.T_e=1e-12"], ["bias.T_e=1e12"], ["phonon_bath.T=1e12"],
    ["phonon_bath.T=1e-12"], ["phonon_bath.gamma=0"], ["phonon_bath.gamma=1e-12"], ["phonon_bath.gamma=1e12"],
    ["mode.omega=1e-12"], ["mode.omega=1e12"], ["conductor.gamma_L=0"], ["conductor.gamma_L=1e-12"],
    ["conductor.gamma_R=1e12"], ["conductor.coupling=0"], ["conductor.coupling=1e12"], ["conductor.hopping=1e12"],
    ["conductor.eps=[1e12, -1e12]"], ["bias.V=0"], ["bias.V=1e12"], ["bias.V=-1e12"], ["bias.mu0=1e12"],
    ["bias.T_L=1e12", "bias.T_R=0"], ["bias.T_L=0", "bias.T_R=1e-12"], ["bias.V=-0.0"], ["bias.V=1.5"],
    ["bias.T_e=1e12", "bias.V=1e12", "conductor.coupling=1e12"], ["bias.T_e=1e-12", "bias.V=1e12"],
    ["conductor.gamma_L=0", "conductor.gamma_R=0", "phonon_bath.gamma=0"],
]


@pytest.mark.parametrize("sets", EXTREMES, ids=[" ".join(s) or "base" for s in EXTREMES])
def test_extreme_but_valid_input_is_answered_correctly(capsys, files, sets):
    code, out, err = run(capsys, ["steady", files["base"], *(a for s in sets for a in ("--set", s)), "--json"])
    if code == 2:  # a derived value outside the domain, or a non-finite intermediate: one line, never a verdict
        assert out == "" and err.startswith("ehp: error: ") and len(err.strip().splitlines()) == 1
        assert "came out" in err or "numeric domain" in err
        return
    assert code == 0, err
    check_steady(json.loads(out))


@pytest.mark.parametrize("T", [1e-12, 1e-3, 0.1, 1.0, 1e3, 1e12])
def test_detailed_balance_at_equilibrium(capsys, files, T):
    """V = 0, T_e = T_ph: N = n_ph = 1/(e^{Omega/T} - 1) and no energy flows."""
    d, _ = steady_json(capsys, ["steady", files["base"], "--set", "bias.V=0", "--set", f"bias.T_e={T}",
                                "--set", f"phonon_bath.T={T}"])
    check_steady(d)
    n_ph = 1.0 / math.expm1(1.0 / T) if 1.0 / T < 700 else 0.0
    assert d["N"] == pytest.approx(n_ph, rel=1e-8, abs=1e-300)
    assert abs(d["J"]) <= 1e-10 * max(1.0, d["emission_total"] * (d["N"] + 1))


@pytest.mark.parametrize("V", [0.0, 0.5, 2.0, -3.0])
def test_matrix_kind_equals_double_dot(capsys, files, V):
    """Two config routes to the same conductor agree to round-off (also through the domain checks)."""
    a, _ = steady_json(capsys, ["steady", files["base"], "--set", f"bias.V={V}"])
    b, _ = steady_json(capsys, ["steady", files["matrix"], "--set", f"bias.V={V}"])
    assert a["kappa"] == pytest.approx(b["kappa"], rel=1e-10, abs=1e-14)
    assert (a["N"] is None) == (b["N"] is None)
    if a["N"] is not None:
        assert a["N"] == pytest.approx(b["N"], rel=1e-9)


@pytest.mark.parametrize("V", [0.0, 0.3, 1e3, -1e6])
def test_flat_kernel_kappa_is_analytic(capsys, files, V):
    """Flat kernels: Lambda_c = K_c (Omega - mu_c) / 2 pi, so kappa = sum_c K_c (Omega - mu_c)/2 pi + gamma_ph."""
    d, _ = steady_json(capsys, ["steady", files["flat"], "--set", f"bias.V={V}"])
    K = {"LL": 0.2, "RR": 0.3, "LR": 0.1, "RL": 0.4}
    mu = {"LL": 0.0, "RR": 0.0, "LR": V, "RL": -V}
    expect = sum(K[c] * (1.0 - mu[c]) for c in K) / (2 * math.pi) + 0.05
    assert d["kappa"] == pytest.approx(expect, rel=1e-10, abs=1e-13 * max(1.0, abs(V)))
    check_steady(d)


def test_near_threshold_is_reported_not_answered(capsys, files):
    """At the root of kappa (round-off) steady says near_threshold, gives no N, and stable is false."""
    code, out, _ = run(capsys, ["threshold", files["base"], "--vary", "bias.V", "--between", "0", "2", "--json"])
    assert code == 0
    th = json.loads(out)
    assert th["kappa_roundoff"] > 0
    d, err = steady_json(capsys, ["steady", files["base"], "--set", f"bias.V={th['threshold']!r}"])
    assert abs(d["kappa"]) <= th["kappa_roundoff"] * 2
    assert d["near_threshold"] is True and d["stable"] is False and d["N"] is None
    assert "near threshold" in err
    d, _ = steady_json(capsys, ["steady", files["base"], "--set", f"bias.V={th['threshold']!r}", "--landauer", "full",
                                "--lindblad"])  # the other steady routes agree: no number
    assert d["landauer"]["J"] is None and d["landauer"]["valid"] is False and d["lindblad"]["N"] is None
    # a bound at the root is itself the threshold, flagged
    code, out, err = run(capsys, ["threshold", files["base"], "--vary", "bias.V", "--between", repr(th["threshold"]),
                                  "2", "--json"])
    assert code == 0 and json.loads(out)["near_threshold_at_bound"] is True and "near threshold" in err
    # well away from the root: a normal verdict
    d, _ = steady_json(capsys, ["steady", files["base"], "--set", f"bias.V={th['threshold'] - 1e-6!r}"])
    assert d["near_threshold"] is False and d["stable"] is True and d["N"] > 1e4


def test_sweep_marks_near_threshold(capsys, files, tmp_path):
    from sim.sweep import read_sweep

    code, out, _ = run(capsys, ["threshold", files["base"], "--vary", "bias.V", "--between", "0", "2", "--json"])
    root = json.loads(out)["threshold"]
    code, _, err = run(capsys, ["sweep", files["base"], "--grid", f"bias.V=[0.5, {root!r}, 1.5]", "--out",
                                str(tmp_path / "s"), "--no-progress"])
    assert code == 0, err
    t = read_sweep(tmp_path / "s").sort_values("bias.V")
    assert t["near_threshold"].tolist() == [False, True, False]
    assert t["stable"].tolist() == [True, False, False] and np.isnan(t["N"].iloc[1])


def test_evolve_truncation_keeps_partial_table(capsys, files, tmp_path):
    """A stable mode that reaches its cutoff: exit 2, one line with time and cutoff, partial table kept."""
    out_dir = tmp_path / "ev"
    line = refused(capsys, ["evolve", files["base"], "--cutoff", "3", "--t-end", "10", "--n-points", "11",
                            "--out", str(out_dir)], "cutoff 3")
    assert "t = " in line
    s = json.loads((out_dir / "summary.json").read_text())
    assert s["truncated"] is True and 0 < s["stopped_at"] < 10
    import pandas as pd

    tab = pd.read_parquet(out_dir / "evolution.parquet")
    assert len(tab) >= 1 and (tab["t"] <= s["stopped_at"]).all() and np.isfinite(tab.to_numpy()).all()
    refused(capsys, ["evolve", files["base"], "--cutoff", "3", "--t-end", "10", "--n-points", "11",
                     "--out", str(out_dir)], "cutoff 3")  # rerun: the same answer, nothing recomputed


def test_evolve_rate_overflow_ends_table(capsys, files, tmp_path):
    """An unstable rate run whose N leaves the float range keeps the finite rows and says so."""
    code, out, err = run(capsys, ["evolve", files["base"], "--method", "rate", "--set", "bias.V=3", "--t-end", "1e6",
                                  "--n-points", "50", "--out", str(tmp_path / "r")])
    assert code == 0 and "float range" in err
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["truncated"] is True and s["N_final"] is None and math.isfinite(s["N_last"]) and s["t_last"] < 1e6


def test_stats_zero_temperature_run(capsys, files, tmp_path):
    d = str(tmp_path / "tz")
    code, _, err = run(capsys, ["trajectories", files["base"], "--set", "bias.T_e=0", "--set", "phonon_bath.T=0",
                                "--ntraj", "2", "--t-end", "2", "--n-points", "3", "--out", d, "--no-progress"])
    assert code == 0, err
    code, out, err = run(capsys, ["stats", d, "--json"])
    assert code == 0, err
    st_ = json.loads(out)
    assert st_["mode"]["N"]["exact"] == 0.0 and st_["mode"]["N"]["estimate"] == 0.0 and st_["mode"]["T_eff"]["exact"] == 0.0
    refused(capsys, ["stats", d, "--t-min", "-1"], "--t-min")
    refused(capsys, ["stats", d, "--t-min", "5"], "--t-min")
    refused(capsys, ["stats", d, "--first-passage", "0"], "--first-passage")


def test_crosscheck_tiny_run_answers(capsys, files):
    code, out, err = run(capsys, ["crosscheck", files["base"], "--ntraj", "2", "--t-end", "2", "--json"])
    assert code == 0, err
    rows = json.loads(out)["rows"]
    ref = {r["quantity"]: r["value"] for r in rows if r["route"] == "rate_equation"}
    pop = {r["quantity"]: r["value"] for r in rows if r["route"] == "population"}
    assert ref["J"] == pytest.approx(ref["J_ph"], rel=1e-10) and pop["N"] == pytest.approx(ref["N"], rel=1e-8)


# ---------------------------------------------------------------------------------------------- the boundary itself

class _ClosedPipe:
    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise ValueError("no descriptor")


def test_broken_pipe_exits_quietly(files, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdout", _ClosedPipe())
    assert main(["config", files["base"]]) == 0
    assert capsys.readouterr().err == ""


def test_memory_error_is_exit_2(files, monkeypatch, capsys):
    import sim

    def boom(cfg):
        raise MemoryError

    monkeypatch.setattr(sim, "steady_state", boom)
    refused(capsys, ["steady", files["base"]], "out of memory")


def test_numerical_error_is_exit_2(files, monkeypatch, capsys):
    import sim.model as re_

    real = re_.channel_rates

    def nan_rates(*a, **k):
        r = real(*a, **k)
        r.damping[...] = np.nan
        return r

    monkeypatch.setattr(re_, "channel_rates", nan_rates)
    refused(capsys, ["steady", files["base"]], "channel rates")


def test_internal_bug_still_raises(files, monkeypatch):
    """The contract: an internal error is not dressed up as bad input (exit 1 with a traceback)."""
    import sim

    def bug(cfg):
        raise RuntimeError("bug")

    monkeypatch.setattr(sim, "steady_state", bug)
    with pytest.raises(RuntimeError, match="bug"):
        main(["steady", files["base"]])


def test_guards_estimate_before_allocating():
    with pytest.raises(guards.ResourceError, match="4 GiB"):
        guards.check_count("--n-points", 10**12)
    assert guards.check_count("--n-points", 10) == 10
    assert guards.kappa_roundoff(np.ones((4, 1)), 2 * np.ones((4, 1)), 0.0)[0] == pytest.approx(
        guards.KAPPA_ROUNDOFF_ULPS * np.finfo(float).eps * 2)


_KEYS = ["bias.T_e", "phonon_bath.T", "phonon_bath.gamma", "bias.V", "conductor.gamma_L", "conductor.coupling",
         "mode.omega", "conductor.eps[0]", "bias.T_L"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(_KEYS), x=st.floats(allow_nan=True, allow_infinity=True, width=64))
def test_any_float_in_any_key_is_refused_or_answered(capsys, files, key, x):
    code, out, err = run(capsys, ["steady", files["base"], "--set", f"{key}={x!r}", "--json"])
    assert code in (0, 2), err
    if code == 2:
        assert out == "" and err.startswith("ehp: error: ") and len(err.strip().splitlines()) == 1
        assert key.split("[")[0] in err or "came out" in err
    else:
        check_steady(json.loads(out))


# ---- numerics (trust 2) ----
# Each case below was wrong or crashing before (figures in the comments); each asserts the right number
# against an independent reference, or a one-line refusal with exit 2.


def _evolution(d) -> tuple[dict, object]:
    from pathlib import Path

    import pandas as pd

    return json.loads((Path(d) / "summary.json").read_text()), pd.read_parquet(Path(d) / "evolution.parquet")


def _root(capsys, cfg: str, key: str, a: float, b: float, *sets: str) -> dict:
    code, out, err = run(capsys, ["threshold", cfg, *sets, "--vary", key, "--between", repr(a), repr(b), "--json"])
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("gamma, T, t_end", [
    (0.05, 0.1, 1e12),  # was N = 0.00613564 against 0.00613514 (expm lost the column sums: eps ||G dt||)
    (1e3, 0.3, 1e12),  # was 0.0426 against 0.0370 (15 % off, exit 0)
    (1e9, 0.3, 1e12),  # was N = 0 with exit 0
    (1e12, 0.3, 1.0),  # was 0.0369989 against 0.0369937
    (1e12, 0.3, 1e12),  # was a "truncation" stop at t = 5e9 of a stable mode, no N
])
def test_population_huge_kappa_t_is_the_right_answer(capsys, files, tmp_path, gamma, T, t_end):
    from sim import load_config, rate_model

    sets = ["--set", f"phonon_bath.gamma={gamma!r}", "--set", f"phonon_bath.T={T!r}"]
    code, _, err = run(capsys, ["evolve", files["base"], "--method", "population", *sets, "--t-end", repr(t_end),
                                "--n-points", "21", "--out", str(tmp_path / "p")])
    assert code == 0, err
    s, table = _evolution(tmp_path / "p")
    cfg = load_config(files["base"]).with_value("phonon_bath.gamma", gamma).with_value("phonon_bath.T", T)
    exact = rate_model(cfg).N_t(table["t"].to_numpy())  # the untruncated birth-death mean, in closed form
    # the truncated chain's mean differs from it by about cutoff x tol = 1e-9 relative (measured 5.7e-10)
    np.testing.assert_allclose(table["N"].to_numpy(), exact, rtol=1e-8, atol=0.0)
    assert s["truncated"] is False and s["N_final"] == pytest.approx(float(rate_model(cfg).N_ss()), rel=1e-8)


def test_population_runaway_huge_t_end_stops_where_a_short_run_does(capsys, files, tmp_path):
    """Above threshold with t_end = 1e9 the guard's crossing is found (was: expm_multiply over 2.5e8 x ||G||,
    hours); the stop time is that of a t_end = 10 run, to the root finder's 1e-12 and propagator round-off."""
    stops = []
    for t_end in ("10", "1e9"):
        d = tmp_path / f"r{t_end}"
        code, _, err = run(capsys, ["evolve", files["base"], "--method", "population", "--set", "bias.V=2",
                                    "--cutoff", "200", "--t-end", t_end, "--out", str(d)])
        assert code == 0 and "unstable" in err, err
        stops.append(_evolution(d)[0]["stopped_at"])
    assert 0 < stops[0] < 10 and stops[1] == pytest.approx(stops[0], rel=1e-9)


@pytest.mark.parametrize("sets, t_end", [
    ([], "1e6"),  # was a traceback (qutip IntegratorException "Excess work done", exit 1)
    (["--set", "phonon_bath.gamma=1e9", "--set", "phonon_bath.T=0.3"], "1e4"),  # the same
])
def test_lindblad_huge_kappa_t_is_the_steady_state(capsys, files, tmp_path, sets, t_end):
    from sim import load_config, rate_model

    code, _, err = run(capsys, ["evolve", files["base"], "--method", "lindblad", *sets, "--t-end", t_end,
                                "--out", str(tmp_path / "l")])
    assert code == 0, err
    s, table = _evolution(tmp_path / "l")
    cfg = load_config(files["base"])
    for i in range(0, len(sets), 2):
        k, v = sets[i + 1].split("=")
        cfg = cfg.with_value(k, float(v))
    # every grid point after t = 0 lies beyond 100/kappa: N_ss of the rate equation, to the truncation (1e-9)
    np.testing.assert_allclose(table["N"].to_numpy()[1:], float(rate_model(cfg).N_ss()), rtol=1e-8)
    assert s["N_final"] == pytest.approx(float(rate_model(cfg).N_ss()), rel=1e-8)


def test_lindblad_runaway_huge_t_end_stops_like_population(capsys, files, tmp_path):
    """Above threshold with t_end = 1e9 (was a traceback): the guard stops it where the population route does.
    mesolve knows P_top = 1e-10 only to its atol 1e-12 (1 %), which moves the crossing by about 1 % of the
    time P_top takes to grow e-fold there: 2 % is a safe bound (measured 0.5 % at cutoff 150)."""
    stops = []
    for method in ("lindblad", "population"):
        d = tmp_path / method
        code, _, err = run(capsys, ["evolve", files["base"], "--method", method, "--set", "bias.V=2", "--cutoff", "30",
                                    "--t-end", "1e9", "--out", str(d)])
        assert code == 0 and "unstable" in err, err
        stops.append(_evolution(d)[0]["stopped_at"])
    assert stops[0] == pytest.approx(stops[1], rel=2e-2)


def test_huge_t_end_refusals_are_one_line(capsys, files, tmp_path):
    th = _root(capsys, files["base"], "bias.V", 0.0, 2.0)
    # stable by 1.6e-6 only: relaxing takes 6e7 while mesolve steps at 1/213: 1e8 steps (was: a traceback)
    refused(capsys, ["evolve", files["base"], "--method", "lindblad", "--set", f"bias.V={th['threshold'] - 1e-6!r}",
                     "--t-end", "1e12", "--out", str(tmp_path / "a")], "t_end")
    # a sparse cutoff over 1e12: ||G|| t = 2e15 matrix-vector products (was: hours)
    refused(capsys, ["evolve", files["base"], "--cutoff", "1500", "--t-end", "1e12", "--out", str(tmp_path / "b")],
            "--cutoff")


def _spy_threshold(monkeypatch) -> list[float]:
    import analysis.threshold as th

    seen: list[float] = []
    orig = th._kappa_and_roundoff

    def spy(config, key, value):
        seen.append(float(value))
        return orig(config, key, value)

    monkeypatch.setattr(th, "_kappa_and_roundoff", spy)
    return seen


@pytest.mark.parametrize("case", ["one_mode_end", "one_mode_at_bound", "domain_at_zero", "modes_end", "modes_at_bound"])
def test_threshold_never_evaluates_outside_its_bracket(capsys, files, monkeypatch, case):
    """Every margin the root finder evaluates lies in [A, B] (was: the slope's central difference at
    root +- 1e-5 max(1, |root|, |B - A|), outside a bracket ending at the root, or at gamma = -1e-5)."""
    cfg, key, sets = files["base"], "bias.V", []
    if case.startswith("modes"):
        cfg = "waterwheel"
        root = _root(capsys, cfg, key, 1.0, 3.0)["threshold"]
        a, b = (1.0, root + 1e-7) if case == "modes_end" else (root, 3.0)
    elif case == "domain_at_zero":  # gamma_ph's domain stops at 0, where kappa = Gamma_e = 0 at this bias
        V0 = _root(capsys, cfg, key, 0.0, 2.0, "--set", "phonon_bath.gamma=0")["threshold"]
        key, sets, a, b = "phonon_bath.gamma", ["--set", f"bias.V={V0!r}"], 0.0, 1.0
    else:
        root = _root(capsys, cfg, key, 0.0, 2.0)["threshold"]
        a, b = (0.0, root + 1e-7) if case == "one_mode_end" else (root, 2.0)
    seen = _spy_threshold(monkeypatch)
    d = _root(capsys, cfg, key, a, b, *sets)
    assert seen and all(a <= v <= b for v in seen), [v for v in seen if not a <= v <= b]
    assert a <= d["threshold"] <= b and math.isfinite(d["slope"]) and d["slope"] != 0


def test_several_modes_near_threshold_is_reported_not_answered(capsys, files, tmp_path):
    """waterwheel at its root: margin 4.8e-15 was `stable: true` with numbers; now near_threshold like one mode."""
    from sim.sweep import read_sweep

    th = _root(capsys, "waterwheel", "bias.V", 1.0, 3.0)
    d, err = steady_json(capsys, ["steady", "waterwheel", "--set", f"bias.V={th['threshold']!r}"])
    assert abs(d["margin"]) <= d["margin_roundoff"] and d["margin_roundoff"] == pytest.approx(th["margin_roundoff"])
    assert d["near_threshold"] is True and d["stable"] is False and d["N"] is None and d["J"] is None
    assert "near threshold" in err
    below, _ = steady_json(capsys, ["steady", "waterwheel", "--set", f"bias.V={th['threshold'] - 1e-6!r}"])
    above, _ = steady_json(capsys, ["steady", "waterwheel", "--set", f"bias.V={th['threshold'] + 1e-6!r}"])
    assert below["near_threshold"] is False and below["stable"] is True and below["N"] > 0
    assert above["near_threshold"] is False and above["stable"] is False and above["growth_rate"] > 0
    code, _, err = run(capsys, ["sweep", "waterwheel", "--grid", f"bias.V=[1.5, {th['threshold']!r}, 2.0]", "--out",
                                str(tmp_path / "s"), "--no-progress"])
    assert code == 0, err
    t = read_sweep(tmp_path / "s").sort_values("bias.V")
    assert t["near_threshold"].tolist() == [False, True, False] and t["stable"].tolist() == [True, False, False]


def test_margin_roundoff_is_the_documented_bound():
    """256 eps cond (K r_max + 2 ||Y||_F); for a normal Y (one mode) cond = 1."""
    from sim import load_config
    from sim.covariance import mode_system_from_config

    s = mode_system_from_config(load_config("waterwheel"))
    r_max = max(np.abs(s.emission).max(), np.abs(s.absorption).max(), s.gamma.max())
    bound = guards.KAPPA_ROUNDOFF_ULPS * np.finfo(float).eps * (s.K * r_max + 2 * np.linalg.norm(s.Y))
    assert bound * (1 - 1e-12) <= s.margin_roundoff <= bound * 1e3  # cond >= 1 (to its own round-off), modest here


def _modes_file(tmp_path, K: int, n: int, omega: list[float], extra: str = "", seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    B = rng.normal(size=(2, n, n))
    gL, gR = (0.3 * B[i] @ B[i].T / n for i in range(2))  # full-rank widths: well-conditioned rate matrices
    C = rng.normal(size=(K, n, n))
    np.savez(tmp_path / "m.npz", H=(A + A.T) / 4, gamma_L=gL, gamma_R=gR, M=0.1 * (C + C.transpose(0, 2, 1)))
    path = tmp_path / "modes.toml"
    path.write_text(f'[conductor]\nkind = "matrix"\nfile = "m.npz"\n[mode]\nomega = {omega!r}\n{extra}\n'
                    '[bias]\nV = 0.8\nmu0 = 0.0\nT_e = 0.1\n[phonon_bath]\nT = 0.1\ngamma = 0.02\n')
    return str(path)


@pytest.mark.parametrize("extra_bias", ["", "T_L = 0.15\nT_R = 0.1\n"])
def test_geometric_mean_rule_equals_its_definition(tmp_path, extra_bias):
    """The vectorised rule (one batched eigh per quantum, T = A A^+) against T_mn = [sqrtm(tau(Omega_m))
    sqrtm(tau(Omega_n))]_mn entry by entry with scipy's sqrtm. Full-rank widths keep tau well conditioned,
    so both roots are accurate to ~1e-13 of the largest rate; 1e-10 leaves room for sqrtm's own error."""
    from scipy.linalg import sqrtm

    from sim import load_config
    from sim.covariance import cluster_rates
    from sim.rate_matrices import RateMatrixModel

    omega = [1.0, 1.01, 1.03, 1.03, 1.07, 1.1]
    path = _modes_file(tmp_path, 6, 3, omega)
    if extra_bias:
        p = tmp_path / "modes.toml"
        p.write_text(p.read_text().replace("T_e = 0.1\n", "T_e = 0.1\n" + extra_bias))
    cfg = load_config(path)
    cond, M = cfg.conductor.build_modes()
    rm = RateMatrixModel(cond, M)
    b = cfg.bias
    em, ab, _, cl = cluster_rates(rm, np.array(omega), 1.0, b.mu_L, b.mu_R, b.T_L, b.T_R)  # one cluster
    assert cl == (tuple(range(6)),)
    r = {q: rm.rates(q, b.mu_L, b.mu_R, b.T_L, b.T_R) for q in set(omega)}
    for got, name in ((em, "emission"), (ab, "absorption")):
        for c in range(4):
            roots = {q: sqrtm(getattr(r[q], name)[c]) for q in r}
            ref = np.array([[(roots[qm] @ roots[qn])[m, n] for n, qn in enumerate(omega)] for m, qm in enumerate(omega)])
            scale = max(np.abs(getattr(r[q], name)[c]).max() for q in r)
            np.testing.assert_allclose(got[c], ref, rtol=0, atol=1e-10 * scale)


def test_many_modes_answer_fast_or_refuse(capsys, tmp_path):
    """K = 200 separated modes answer in well under a second, each N_k equal to the one-mode rate equation of
    its own diagonal rates (exact for one-mode clusters; 1e-10 is round-off of the two routes' sums);
    a cluster of 400 distinct quanta (1e11 operations, minutes) or 5000 modes (19 GiB) is refused in one line."""
    import time

    from sim import load_config
    from sim.covariance import mode_system_from_config

    K = 200
    omega = [1.0 + 0.01 * k for k in range(K)]
    path = _modes_file(tmp_path, K, 3, omega, "coherence_width = 0.0")
    t0 = time.perf_counter()
    d, _ = steady_json(capsys, ["steady", path])
    assert time.perf_counter() - t0 < 5.0 and d["stable"] is True
    s = mode_system_from_config(load_config(path))
    for k in (0, 57, 199):
        kappa = float(np.real(s.damping[:, k, k].sum())) + s.gamma[k]
        source = float(np.real(s.emission[:, k, k].sum())) + s.gamma[k] * s.n_th[k]
        assert d["modes"][k]["N"] == pytest.approx(source / kappa, rel=1e-10)
    for K, what in ((400, "distinct quanta"), (5000, "GiB")):
        path = _modes_file(tmp_path, K, 2, [1.0 + 1e-4 * k for k in range(K)])
        line = refused(capsys, ["steady", path], "mode.omega")
        assert what in line
