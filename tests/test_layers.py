"""Layers: data flows one way (config -> conductor -> channels -> model -> routes -> results -> analysis -> cli).

Every import counts, function-level ones and type-only ones (``if TYPE_CHECKING:`` blocks)
included: the graph of modules in ``sim/`` and ``analysis/`` has no cycle, and nothing in
``sim/`` imports ``analysis/``.  A second graph without the type-only imports shows which
edges run at import time.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sim", "analysis")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(current: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _runtime_nodes(tree: ast.AST, typing_too: bool):
    """Every node; with ``typing_too=False`` not those under ``if TYPE_CHECKING:`` (annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if not typing_too and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child, typing_too)])
            continue
        yield node
        yield from _runtime_nodes(node, typing_too)


@functools.cache
def _graph(typing_too: bool = True) -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text())
        for node in _runtime_nodes(tree, typing_too):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_pkg, node)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                # the longest known module that t names (``from .x import f`` -> module x)
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):  # a package's own __init__ is not an edge
                    graph[name].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_graph_sees_known_edges():
    g = _graph()
    assert "sim.model" in g["sim.rate_equation"]
    assert "sim.counting" in g["analysis.stats"]


def test_no_import_cycle():
    """Type-only imports included: ``config -> initial -> model -> config`` was one such cycle."""
    assert _cycles(_graph(typing_too=True)) == []


def test_type_only_imports_are_seen():
    """The two graphs differ exactly by the ``if TYPE_CHECKING:`` edges (so the first test sees them)."""
    full, runtime = _graph(typing_too=True), _graph(typing_too=False)
    assert all(runtime[m] <= full[m] for m in full)
    assert "sim.config" in full["sim.model"] - runtime["sim.model"]  # model annotates with ConductorConfig


@pytest.mark.parametrize("name", sorted(m for m in _modules() if m.startswith("sim")))
def test_sim_never_imports_analysis(name):
    assert not [t for t in _graph()[name] if t.split(".")[0] == "analysis"]


def test_parser_imports_no_heavy_module():
    """``ehp --help`` and ``--version`` build the whole parser; that must not import numpy, scipy, numba,
    qutip or pandas (start-up within a few times ``import numpy``; benchmarks/bench_startup.py times it)."""
    import os
    import subprocess
    import sys

    code = ("import sys; from analysis.cli.app import build_parser; build_parser(); "
            "print(sorted(m for m in ('numpy', 'scipy', 'numba', 'qutip', 'pandas') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
