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

    def boom(self, params=None):
        raise MemoryError

    monkeypatch.setattr(sim.System, "steady_state", boom)
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

    def bug(self, params=None):
        raise RuntimeError("bug")

    monkeypatch.setattr(sim.System, "steady_state", bug)
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


# ---- studies (trust 2) ----
# `ehp run` validates the whole study before it computes or writes anything: every [study] key and value,
# every grid point's config (built, not computed), the routes it calls, the final time of its runs, the
# threshold it runs around, a file-based model. Each refusal is one line naming the key; the output
# directory is never created and no sweep or run is started (they are replaced by tripwires).

MODES = """[conductor]
kind = "matrix"
H = [[-0.25, 0.5], [0.5, -0.25]]
gamma_L = [[0.4, 0.0], [0.0, 0.0]]
gamma_R = [[0.0, 0.0], [0.0, 0.5]]
M = [[[-0.1, 0.25], [0.25, 0.05]], [[-0.4, -0.1], [-0.1, -0.15]]]

[mode]
omega = [1.0, 1.0]

[bias]
V = 2.0
mu0 = 0.0
T_e = 0.05

[phonon_bath]
T = 0.05
gamma = 0.002
"""
_WW_ARRAYS = {"H": [[-0.25, 0.5], [0.5, -0.25]], "gamma_L": [[0.4, 0.0], [0.0, 0.0]], "gamma_R": [[0.0, 0.0], [0.0, 0.5]],
              "M": [[[-0.1, 0.25], [0.25, 0.05]], [[-0.4, -0.1], [-0.1, -0.15]]]}


@pytest.fixture(scope="module")
def study_files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("studies")
    np.savez(d / "ww.npz", **{k: np.array(v) for k, v in _WW_ARRAYS.items()})
    (d / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    head, tail = MODES.split("[mode]")
    file_cfg = head.split("kind")[0] + 'kind = "matrix"\nfile = "{f}"\n\n[mode]' + tail
    texts = {"modes": MODES, "filemodel": file_cfg.format(f="ww.npz") + '\n[run]\nt_end = 10.0\n',
             "missing": file_cfg.format(f="nope.npz"), "damaged": file_cfg.format(f="junk.npz")}
    out = {"dir": str(d)}
    for name, text in texts.items():
        (d / f"{name}.toml").write_text(text)
        out[name] = str(d / f"{name}.toml")
    return out


@pytest.fixture
def nothing_computed(monkeypatch):
    """Tripwires: a study that reaches a sweep or a time-domain run fails the test (a traceback, not exit 2)."""
    import analysis.figures
    import analysis.modes_study

    def tripwire(*a, **k):
        raise AssertionError("the study started computing before it was validated")

    for mod in (analysis.figures, analysis.modes_study):
        monkeypatch.setattr(mod, "run_sweeps", tripwire)
    monkeypatch.setattr(analysis.figures, "confirm_runs", tripwire)


_COOL = ["--set", "study.kind=cooling", "--set", "study.temperatures=[0.1]"]
_TE = ["--set", "study.kind=thermoelectric", "--set", 'study.curves={ "bias.mu0" = [0.0, 0.5] }']
_MAP = ["--set", "study.kind=instability_map", "--set", 'study.x={ key = "bias.V", grid = "0.5:2:4" }',
        "--set", 'study.y={ key = "bias.T_e", grid = "0.05:0.2:3" }']
_TR = ["--set", "study.kind=transient", "--set", "study.between=[0.5, 2.0]"]
_CR = ["--set", "run.t_end=10", "--set", "study.kind=collective_runaway", "--set", "study.between=[1.0, 3.0]",
       "--set", "study.grid=1:3:3", "--set", "study.splitting=[0.0]"]

# (config, --set arguments, what the one line must name)
STUDY_CASES = [
    # [study] keys and values
    ("base", _COOL + ["--set", "study.colour=1"], "study.colour"),
    ("base", ["--set", "study.kind=cooling"], "study.temperatures"),
    ("base", _COOL + ["--set", "study.level=middle"], "study.level"),
    ("base", _COOL + ["--set", "study.V=5"], "study.V"),
    ("base", _COOL + ["--set", "study.V=0:1:0"], "study.V"),
    ("base", ["--set", "study.kind=bias_sweep", "--set", 'study.V=[0, "a"]'], "study.V"),
    ("base", _TE + ["--set", "study.kind=rectification", "--set", 'study.flat=[1]'], "study.flat"),
    ("base", _TE + ["--set", "study.kind=rectification", "--set", "study.flat={ K_LL = -1.0, K_RR = 0.0, "
                    "K_LR = 0.0, K_RL = 0.0 }"], "study.flat"),
    ("base", _MAP + ["--set", "study.confirm_at=x"], "study.confirm_at"),
    ("base", _MAP + ["--set", "study.confirm_offset=0"], "study.confirm_offset"),
    ("base", _MAP + ["--set", "study.t_end=-1"], "study.t_end"),
    ("base", _MAP + ["--set", "study.method=euler"], "study.method"),
    ("base", _TR + ["--set", "study.vary=bias.nope"], "study.vary"),
    ("base", _TR + ["--set", "study.relative=[]"], "study.relative"),
    ("base", _TR + ["--set", "run.initial=steady"], "run.initial"),
    ("base", _CR, "collective_runaway"),
    # a grid point out of domain: an end, a temperature of a curve, T_e = T_ph (1 + x), a corner of two axes
    ("base", _COOL[:2] + ["--set", "study.temperatures=[0.1, -0.1]"], "study.temperatures"),
    ("base", _TE + ["--set", "study.x=-2:0.4:3"], "bias.T_e"),
    ("base", ["--set", "study.kind=thermoelectric", "--set", 'study.curves={ "bias.nope" = [0.0] }'], "bias.nope"),
    ("base", _MAP[:2] + ["--set", 'study.x={ key = "bias.V", grid = "0:1e12:2" }', "--set",
                         'study.y={ key = "bias.mu0", grid = "0:8e11:2" }', "--set", "study.between=[0, 2]"],
     "bias.mu_L = mu0 + V/2"),
    ("base", _MAP[:2] + ["--set", 'study.x={ key = "bias.V", grid = "0.5:2:4" }', "--set",
                         'study.y={ key = "bias.T_e", grid = "-0.1:0.2:3" }'], "bias.T_e"),
    # the threshold a study runs around: found (milliseconds) before any sweep
    ("base", _MAP + ["--set", "study.between=[0, 0.5]"], "study.between"),
    ("base", _TR + ["--set", "study.between=[0, 0.5]"], "study.between"),
    ("base", _TR + ["--set", "study.between=[1, 1]"], "study.between"),
    ("modes", _CR + ["--set", "study.between=[0, 1]"], "study.between"),
    # routes that refuse several modes
    ("modes", _COOL, "study.kind = 'cooling'"),
    ("modes", _TE, "study.kind = 'thermoelectric'"),
    ("modes", ["--set", "study.kind=bias_sweep"], "study.kind = 'bias_sweep'"),
    ("modes", _MAP + ["--set", "run.t_end=5", "--set", "study.method=population"], "study.method"),
    ("modes", _MAP + ["--set", "run.t_end=5", "--set", "run.initial=thermal:1"], "run.initial"),
    # collective_runaway: its final time (the default study too), options, every split of the quanta
    ("modes", [], "study.t_end (or run.t_end)"),
    ("modes", _CR + ["--set", "study.above=x"], "study.above"),
    ("modes", _CR + ["--set", "study.splitting=[0, 3]"], "study.splitting"),
    ("modes", _CR + ["--set", "study.vary=bias.T_e", "--set", "study.grid=-1:1:3"], "bias.T_e"),
    ("modes", _CR + ["--set", "study.t_end=0"], "study.t_end"),
    # file-based models: each mode alone needs inline couplings; a missing or damaged file
    ("filemodel", [], "conductor.file"),
    ("missing", [], "conductor.file"),
    ("damaged", [], "conductor.file"),
]


@pytest.mark.parametrize(("cfg", "sets", "key"), STUDY_CASES,
                         ids=[f"{c}:{' '.join(s[1::2])[-70:]}" for c, s, _ in STUDY_CASES])
def test_study_is_validated_whole_before_anything_runs(capsys, files, study_files, tmp_path, nothing_computed,
                                                       cfg, sets, key):
    path = files["base"] if cfg == "base" else study_files[cfg]
    out = tmp_path / "out"
    refused(capsys, ["run", path, "--out", str(out), "--no-progress", *sets], key)
    assert not out.exists()  # nothing written: no directory, no failed run left behind


def test_bundled_studies_pass_validation_and_a_corrected_config_runs(capsys, files, tmp_path):
    """The checks refuse nothing the bundled studies need; and the fix the one line asks for is enough."""
    from analysis.figures import validate_study
    from sim.config import load_config

    for name in ("fig3_rectification", "fig4_thermoelectric", "fig5_cooling", "transient", "waterwheel"):
        assert validate_study(load_config(name)) == load_config(name).study["kind"]
    out = tmp_path / "out"
    bad = ["run", files["base"], "--out", str(out), "--no-progress", "--scheduler", "serial",
           *_COOL[:2], "--set", "study.temperatures=[0.1, -0.1]", "--set", "study.V=0:1.5:4"]
    refused(capsys, bad, "study.temperatures")
    bad[bad.index("study.temperatures=[0.1, -0.1]")] = "study.temperatures=[0.1, 0.2]"
    code, stdout, err = run(capsys, bad)
    assert code == 0, err
    assert "8 rows" in stdout


# ---- input files and config values (trust 2) ----
#
# Only regular files are read (a FIFO, a device or a directory is one line and returns at once),
# damaged npz models are one line, matrix checks are relative to the matrix's scale, bias-table
# values obey the config's domain; oversize integers, --set values with a newline and keys that
# do nothing for the config are one line on every command.

import contextlib  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402

_BIG = "1" + "0" * 24  # 10**24: beyond int64 and any memory budget


@contextlib.contextmanager
def _deadline(seconds: int = 20):
    """A hang (a FIFO read blocking forever) fails the test instead of stalling the suite."""
    def boom(signum, frame):
        raise AssertionError(f"no answer within {seconds} s: the command hangs")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_H = np.diag([0.5, -0.5])
_GL = np.diag([0.5, 0.0])
_GR = np.diag([0.0, 0.5])
_M = np.array([[0.0, 0.5], [0.5, 0.0]])
FILE_CFG = BASE.split("[conductor]")[0] + '[conductor]\nkind = "matrix"\nfile = "@F"\n\n[mode]' + BASE.split("[mode]")[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, files) -> dict[str, str]:
    d = tmp_path_factory.mktemp("inputs")
    out = {"dir": str(d), "adir": str(d / "adir"), "fifo": str(d / "fifo"), "empty": str(d / "empty")}
    (d / "adir").mkdir()
    os.mkfifo(d / "fifo")
    (d / "empty").write_bytes(b"")
    npz = {
        "good": dict(H=_H, gamma_L=_GL, gamma_R=_GR, M=_M),
        "nan": dict(H=np.array([[np.nan, 0.0], [0.0, 1.0]]), gamma_L=_GL, gamma_R=_GR, M=_M),
        "shape": dict(H=np.zeros((2, 3)), gamma_L=_GL, gamma_R=_GR, M=_M),
        "gamma_shape": dict(H=_H, gamma_L=np.zeros(3), gamma_R=_GR, M=_M),
        "str": dict(H=np.array(["a", "b"]), gamma_L=_GL, gamma_R=_GR, M=_M),
        "bool": dict(H=np.eye(2, dtype=bool), gamma_L=_GL, gamma_R=_GR, M=_M),
        "missing": dict(H=_H, gamma_L=_GL, gamma_R=_GR),
        "small_nonherm": dict(H=_H, gamma_L=_GL, gamma_R=_GR, M=1e-13 * np.array([[0.0, 1.0], [0.0, 0.0]])),
        "small_nonpsd": dict(H=_H, gamma_L=1e-13 * np.diag([1.0, -1.0]) + np.diag([1.0, 0.0]), gamma_R=_GR, M=_M),
        "tiny_rate": dict(H=_H, gamma_L=np.diag([1e-20, 0.0]), gamma_R=_GR, M=_M),
    }
    U = np.linalg.qr(np.random.default_rng(7).normal(size=(2, 2)) + 1j * np.random.default_rng(8).normal(size=(2, 2)))[0]
    big = 1e3 * U @ np.diag([1.0, -2.0]) @ U.conj().T  # Hermitian up to round-off (about 1 ulp) at a scale of 2e3
    assert np.max(np.abs(big - big.conj().T)) > 0
    npz["big_roundoff"] = dict(H=big, gamma_L=_GL, gamma_R=_GR, M=_M)
    npz["big_exact"] = dict(H=0.5 * (big + big.conj().T), gamma_L=_GL, gamma_R=_GR, M=_M)
    for name, arrays in npz.items():
        np.savez(d / f"{name}.npz", **arrays)
    np.savez(d / "obj.npz", H=np.array([1, "a", None], dtype=object), gamma_L=_GL, gamma_R=_GR, M=_M)
    good = (d / "good.npz").read_bytes()
    (d / "truncated.npz").write_bytes(good[: len(good) // 2])
    (d / "zero.npz").write_bytes(b"")
    np.save(d / "plain.npy", _H)
    (d / "text.npz").write_text("H = 1\n")
    for name in [*npz, "obj", "truncated", "zero", "plain.npy", "text", "fifo", "adir", "/dev/zero", "/dev/null"]:
        target = name if name.startswith("/") or "." in name or name in ("fifo", "adir") else f"{name}.npz"
        stem = name.strip("/").replace("/", "_").replace(".", "_")
        (d / f"m_{stem}.toml").write_text(FILE_CFG.replace("@F", target))
        out[f"m_{stem}"] = str(d / f"m_{stem}.toml")
    tables = {
        "ok": "t,mu_L,mu_R\n0,0.25,-0.25\n1,0.3,-0.3\n",
        "const": "t,mu_L,mu_R\n0,0.25,-0.25\n",
        "empty_csv": "",
        "header_only": "t,mu_L,mu_R\n",
        "wrong_header": "time,mu_L,mu_R\n0,0,0\n",
        "mu_big": "t,mu_L,mu_R\n0,1e13,0\n",
        "mu_R_big": "t,mu_L,mu_R\n0,0,-1e300\n",
        "t_neg": "t,mu_L,mu_R\n-1,0,0\n",
        "t_big": "t,mu_L,mu_R\n0,0,0\n1e14,0,0\n",
        "V_big": "t,mu_L,mu_R\n0,9e11,-9e11\n",
        "huge_int": "t,mu_L,mu_R\n0,1" + "0" * 40 + ",0\n",
        "decreasing": "t,mu_L,mu_R\n0,0,0\n2,0,0\n1,0,0\n",
        "thrice": "t,mu_L,mu_R\n1,0,0\n1,0.1,0\n1,0.2,0\n",
        "word": "t,mu_L,mu_R\n0,abc,0\n",
        "nan": "t,mu_L,mu_R\n0,nan,0\n",
        "inf": "t,mu_L,mu_R\n0,0,-inf\n",
        "short_row": "t,mu_L,mu_R\n0,0.2\n",
    }
    for name, text in tables.items():
        (d / f"{name}.csv").write_text(text)
        out[name] = str(d / f"{name}.csv")
    code = main(["trajectories", files["base"], "--out", str(d / "traj"), "--no-progress"])
    assert code == 0
    out["traj"] = str(d / "traj")
    return out


# (config file, key named): the CONFIG argument itself
_BAD_CONFIG_FILES = [("fifo", "FIFO"), ("/dev/zero", "character device"), ("/dev/null", "character device"),
                     ("adir", "directory")]


@pytest.mark.parametrize(("name", "key"), _BAD_CONFIG_FILES, ids=[n for n, _ in _BAD_CONFIG_FILES])
def test_config_file_not_regular_refused(capsys, inputs, name, key):
    path = name if name.startswith("/") else inputs[name]
    with _deadline():
        line = refused(capsys, ["config", path], "config file")
    assert key in line and path in line


# (conductor.file model, words in the message)
_BAD_MODELS = [
    ("m_fifo", "FIFO"), ("m_adir", "directory"), ("m_dev_zero", "character device"), ("m_dev_null", "character device"),
    ("m_zero", "empty"), ("m_truncated", "damaged"), ("m_obj", "allow_pickle"), ("m_plain_npy", "not a zip archive"),
    ("m_text", "not a zip archive"), ("m_nan", "H must be finite"), ("m_shape", "H must have shape"),
    ("m_gamma_shape", "gamma_L must have shape"), ("m_str", "numeric array"), ("m_bool", "dtype bool"),
    ("m_missing", "missing M"), ("m_small_nonherm", "M[0] must be Hermitian"),
    ("m_small_nonpsd", "gamma_L must be positive semi-definite"), ("m_tiny_rate", "gamma_L (its largest eigenvalue"),
]


@pytest.mark.parametrize(("name", "words"), _BAD_MODELS, ids=[n for n, _ in _BAD_MODELS])
def test_bad_model_file_refused(capsys, inputs, name, words):
    with _deadline():
        line = refused(capsys, ["steady", inputs[name]], "conductor.file")
    assert words in line, line


def test_model_file_round_off_is_relative_to_scale(capsys, inputs, files):
    """A large Hermitian H with round-off is accepted (and equals its exact Hermitian part); a good
    file gives the inline matrix config's answer; tiny non-Hermitian parts are refused above (scale 1e-13)."""
    a, _ = steady_json(capsys, ["steady", inputs["m_big_roundoff"]])
    b, _ = steady_json(capsys, ["steady", inputs["m_big_exact"]])
    check_steady(a)
    assert a["kappa"] == pytest.approx(b["kappa"], rel=1e-12, abs=1e-300)
    good, _ = steady_json(capsys, ["steady", inputs["m_good"]])
    inline, _ = steady_json(capsys, ["steady", files["matrix"]])
    assert good["kappa"] == pytest.approx(inline["kappa"], rel=1e-13) and good["N"] == pytest.approx(inline["N"])


_SMALL_MATRIX_SETS = [  # inline matrices at small scale: were accepted under an absolute floor of 1e-12
    (["conductor.M=[[0.0, 1e-13], [0.0, 0.0]]"], "conductor.M must be Hermitian"),
    (["conductor.H=[[1e-9, 1e-13], [0.0, -1e-9]]"], "conductor.H must be Hermitian"),
    (["conductor.gamma_L=[[1e-9, 0.0], [0.0, -1e-13]]"], "conductor.gamma_L must be positive semi-definite"),
    (["conductor.gamma_R=[[1e-13, 0.0], [0.0, 0.0]]"], "conductor.gamma_R (its largest eigenvalue"),
    (["conductor.gamma_L=[[1e12, 1e12], [1e12, 1e12]]"], "conductor.gamma_L (its largest eigenvalue"),
    (["conductor.M=[[[0.0, 0.5], [0.5, 0.0]]]"], "conductor.M as a list"),
]


@pytest.mark.parametrize(("sets", "key"), _SMALL_MATRIX_SETS, ids=[s[0] for s, _ in _SMALL_MATRIX_SETS])
def test_small_matrix_checked_relative_to_scale(capsys, files, sets, key):
    refused(capsys, ["steady", files["matrix"], *(a for s in sets for a in ("--set", s))], key)


def test_matrix_guards_are_scale_invariant():
    for s in (1e-12, 1e-6, 1.0, 1e6, 1e12):
        with pytest.raises(guards.GuardError, match="Hermitian"):
            guards.check_hermitian("A", s * np.array([[0.0, 1.0], [1.0 + 1e-9, 0.0]]))
        with pytest.raises(guards.GuardError, match="positive semi-definite"):
            guards.check_psd("A", s * np.diag([1.0, -1e-9]))
        guards.check_hermitian("A", s * np.array([[1.0, 0.3], [0.3 * (1 + 4 * np.finfo(float).eps), 2.0]]))
        guards.check_psd("A", s * np.diag([1.0, -4 * np.finfo(float).eps]))


_BAD_TABLES = [
    ("fifo", "FIFO"), ("adir", "directory"), ("/dev/zero", "character device"), ("/dev/null", "character device"),
    ("empty_csv", "header"), ("header_only", "no rows"), ("wrong_header", "header"),
    ("mu_big", "line 2, column mu_L"), ("mu_R_big", "line 2, column mu_R"), ("t_neg", "line 2, column t"),
    ("t_big", "line 3, column t"), ("V_big", "bias.V"), ("huge_int", "column mu_L"), ("decreasing", "must not decrease"),
    ("thrice", "at most twice"), ("word", "'abc'"), ("nan", "finite number"), ("inf", "finite number"),
    ("short_row", "3 values"),
]


@pytest.mark.parametrize(("name", "words"), _BAD_TABLES, ids=[n for n, _ in _BAD_TABLES])
def test_bad_bias_table_refused(capsys, files, inputs, name, words):
    path = name if name.startswith("/") else inputs[name]
    with _deadline():
        line = refused(capsys, ["evolve", files["base"], "--method", "rate", "--bias-table", path,
                                "--out", f"{inputs['dir']}/bt_{name.strip('/').replace('/', '_')}"], "--bias-table")
    assert words in line and path in line, line


def test_bias_table_answers(capsys, files, inputs):
    """A constant table gives the constant-bias run; a ramp is answered with finite numbers."""
    import pandas as pd

    d = inputs["dir"]
    for name in ("const", "ok"):
        code, _, err = run(capsys, ["evolve", files["base"], "--method", "rate", "--bias-table", inputs[name],
                                    "--out", f"{d}/ev_{name}"])
        assert code == 0, err
    assert run(capsys, ["evolve", files["base"], "--method", "rate", "--out", f"{d}/ev_none"])[0] == 0
    const, none, ramp = (pd.read_parquet(f"{d}/ev_{n}/evolution.parquet") for n in ("const", "none", "ok"))
    np.testing.assert_allclose(const["N"], none["N"], rtol=1e-8)  # an ODE with tabled rates vs the closed form
    assert np.all(np.isfinite(ramp["N"])) and not np.allclose(ramp["N"], none["N"])


def _oversize_cases() -> list[tuple[list[str], str]]:
    cmds = {"config": [], "steady": [], "evolve": ["--out", "@D/o_e"], "trajectories": ["--out", "@D/o_t"],
            "crosscheck": [], "sweep": ["--grid", "bias.V=0:1:2", "--out", "@D/o_s"],
            "threshold": ["--vary", "bias.V", "--between", "0", "2"], "run": ["--out", "@D/o_r"]}
    out = [([c, "@B", "--set", f"run.{k}={_BIG}", *extra], f"run.{k}")
           for k in ("cutoff", "n_points", "ntraj") for c, extra in cmds.items()]
    return out + [
        (["evolve", "@B", "--out", "@D/o_e", "--n-points", _BIG], "--n-points"),
        (["evolve", "@B", "--out", "@D/o_e", "--cutoff", _BIG], "--cutoff"),
        (["evolve", "@B", "--out", "@D/o_e", "--method", "rate", "--cutoff", _BIG], "--cutoff"),
        (["evolve", "@B", "--out", "@D/o_e", "--method", "lindblad", "--cutoff", _BIG], "--cutoff"),
        (["trajectories", "@B", "--out", "@D/o_t", "--ntraj", _BIG], "--ntraj"),
        (["trajectories", "@B", "--out", "@D/o_t", "--n-points", _BIG], "--n-points"),
        (["trajectories", "@B", "--out", "@D/o_t", "--n-points", "100000000"], "--n-points"),
        (["trajectories", "@B", "--out", "@D/o_t", "--seed", _BIG], "run.seed"),
        (["trajectories", "@B", "--out", "@D/o_t", "--workers", _BIG], "--workers"),
        (["crosscheck", "@B", "--ntraj", _BIG], "--ntraj"),
        (["crosscheck", "@B", "--seed", _BIG], "--seed"),
        (["sweep", "@B", "--grid", f"bias.V=0:1:{_BIG}", "--out", "@D/o_s"], "bias.V"),
        (["sweep", "@B", "--grid", "bias.V=0:1:2", "--chunk-size", _BIG, "--out", "@D/o_s"], "--chunk-size"),
        (["sweep", "@B", "--grid", "bias.V=0:1:2", "--workers", _BIG, "--out", "@D/o_s"], "--workers"),
        (["run", "@B", "--workers", _BIG, "--out", "@D/o_r"], "--workers"),
        (["stats", "@T", "--first-passage", _BIG], "--first-passage"),
        (["stats", "@T", "--first-passage", "100000"], "--first-passage"),
    ]


OVERSIZE = _oversize_cases()


@pytest.mark.parametrize(("argv", "key"), OVERSIZE, ids=[" ".join(a[:1] + a[2:])[:70] for a, _ in OVERSIZE])
def test_oversize_integer_refused(capsys, files, inputs, argv, key):
    argv = [a.replace("@B", files["base"]).replace("@D", inputs["dir"]).replace("@T", inputs["traj"]) for a in argv]
    refused(capsys, argv, key)


_NOOP_OR_MULTILINE = [  # (command, --set values, key named)
    (["config"], ["bias.V=1\n[mode]\nomega=2"], "--set"),
    (["steady"], ["bias.V=1\nmode.omega=2"], "--set"),
    (["config"], ["bias.V\n=1"], "--set"),
    (["config"], ["bias.V=1\r"], "--set"),
    (["config"], ['run.initial="fock:1\\n"'], "run.initial"),
    (["config"], ["mode.coherence_width=0.1"], "mode.coherence_width"),
    (["steady"], ["mode.coherence_width=0"], "mode.coherence_width"),
    (["config"], ["conductor.coupling=[0.5]"], "conductor.coupling"),
    (["steady"], ["conductor.coupling=[]"], "conductor.coupling"),
]


@pytest.mark.parametrize(("cmd", "sets", "key"), _NOOP_OR_MULTILINE, ids=[s[0] for _, s, _ in _NOOP_OR_MULTILINE])
def test_multiline_set_and_noop_keys_refused(capsys, files, cmd, sets, key):
    refused(capsys, [*cmd, files["base"], *(a for s in sets for a in ("--set", s))], key)


def test_noop_keys_of_several_modes_refused(capsys, files, inputs):
    refused(capsys, ["config", "waterwheel", "--set", "run.cutoff=10"], "run.cutoff")
    refused(capsys, ["evolve", "waterwheel", "--cutoff", "10", "--out", f"{inputs['dir']}/ww"], "--cutoff")
    refused(capsys, ["sweep", files["base"], "--grid", "bias.V=[0,\n1]", "--out", f"{inputs['dir']}/nl"], "--grid")
    # the same keys where they do something are accepted
    assert run(capsys, ["config", "waterwheel", "--set", "mode.coherence_width=0.01"])[0] == 0
    code, out, _ = run(capsys, ["config", files["base"], "--set", "run.cutoff=40"])
    assert code == 0 and "cutoff = 40" in out


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
def test_common_frequency_rule_equals_its_definition(tmp_path, extra_bias):
    """The cluster rule (it replaced the geometric mean T_mn = [sqrtm(tau(Omega_m)) sqrtm(tau(Omega_n))]_mn, which
    broke equilibrium: a current at zero bias) against its definition: every channel's matrices of a cluster of
    split quanta are tau(w_S) at the midpoint w_S of its quanta (one rate call, so bit for bit), zero between
    clusters, and a one-quantum cluster keeps tau(Omega). At equal electrode temperatures each channel then obeys
    detailed balance as a matrix, tau_em^c = nB(w_S - mu_c) Lambda^c, to the rate matrices' own round-off."""
    from sim import load_config
    from sim.covariance import cluster_rates
    from sim.rate_matrices import RateMatrixModel
    from sim.special import bose

    omega = [1.0, 1.01, 1.03, 1.03, 1.07, 1.1, 1.6, 1.6]
    path = _modes_file(tmp_path, 8, 3, omega)
    if extra_bias:
        p = tmp_path / "modes.toml"
        p.write_text(p.read_text().replace("T_e = 0.1\n", "T_e = 0.1\n" + extra_bias))
    cfg = load_config(path)
    cond, M = cfg.conductor.build_modes()
    rm = RateMatrixModel(cond, M)
    b = cfg.bias
    em, ab, lam, cl = cluster_rates(rm, np.array(omega), 0.05, b.mu_L, b.mu_R, b.T_L, b.T_R)
    assert cl == (tuple(range(6)), (6, 7))
    for S, w in ((cl[0], 1.05), (cl[1], 1.6)):
        r = rm.rates(w, b.mu_L, b.mu_R, b.T_L, b.T_R, modes=np.array(S))
        blk = np.ix_(range(4), S, S)
        for got, want in ((em, r.emission), (ab, r.absorption), (lam, r.damping)):
            np.testing.assert_array_equal(got[blk], want)
            other = [k for k in range(8) if k not in S]
            assert not np.any(got[np.ix_(range(4), S, other)])
        if not extra_bias:
            for c in range(4):
                scale = np.abs(r.emission[c]).max()
                np.testing.assert_allclose(r.emission[c], bose(w - r.mu[c], b.T_L) * r.damping[c], rtol=0,
                                           atol=1e-13 * scale)


def test_many_modes_answer_fast_or_refuse(capsys, tmp_path):
    """K = 200 separated modes answer in well under a second, each N_k equal to the one-mode rate equation of
    its own diagonal rates (exact for one-mode clusters; 1e-10 is round-off of the two routes' sums);
    a cluster of 400 distinct quanta needs one rate evaluation at its common frequency (the geometric-mean rule
    it replaced needed 1e11 operations of matrix roots and was refused) and answers in seconds; 5000 modes
    (19 GiB) are refused in one line."""
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
    path = _modes_file(tmp_path, 400, 2, [1.0 + 1e-4 * k for k in range(400)])
    t0 = time.perf_counter()
    d, _ = steady_json(capsys, ["steady", path])
    assert time.perf_counter() - t0 < 10.0 and d["clusters"] == [list(range(400))]
    path = _modes_file(tmp_path, 5000, 2, [1.0 + 1e-4 * k for k in range(5000)])
    line = refused(capsys, ["steady", path], "mode.omega")
    assert "GiB" in line
