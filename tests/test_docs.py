"""The documentation runs: every code block of README.md and docs/*.md, and every relative link.

- ```python blocks run in a fresh namespace, with the working directory a new temporary
  directory (``monkeypatch.chdir``).
- ```bash blocks: each line that starts with ``ehp `` (after joining ``\\`` continuations and
  dropping ``# comments``) runs in-process as ``analysis.cli.main(shlex.split(line)[1:])``
  and must exit 0. Other lines (``pip install ...``) are not run.
- ```text, ```toml and blocks whose info string contains ``no-run`` are not run. The README
  marks ``no-run`` only where it must show a big run (10^6 trajectories, process pools, the
  paper's full figures), which would take minutes here; the same commands run at small
  sizes in docs/tutorial.md.

The blocks of one file run in order in one temporary directory (a later block may read
what an earlier one wrote, as a reader following the page would). For README.md the
directory also holds a copy of ``runs/*.toml``, since the README's commands name them by
path; docs/ pages use the bundled names, which work from any directory.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from analysis.cli import main

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.S | re.M)


def blocks(path: Path) -> list[tuple[str, str]]:
    """``(info string, body)`` of every fenced code block of a Markdown file."""
    return [(m.group(1).strip(), m.group(2)) for m in _FENCE.finditer(path.read_text())]


def ehp_lines(body: str) -> list[str]:
    """The ``ehp ...`` command lines of a bash block (continuations joined, comments dropped)."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "ehp":
            out.append(line)
    return out


def _run_ehp(line: str) -> int:
    try:
        return main(shlex.split(line, comments=True)[1:])
    except SystemExit as e:  # --version, --help exit through argparse
        return int(e.code or 0)


def test_pages_exist():
    names = {p.name for p in PAGES}
    assert {"README.md", "index.md", "theory.md", "conventions.md", "approximations.md", "figures.md",
            "tutorial.md", "config.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_blocks_run(page: Path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    if page.name == "README.md":
        (tmp_path / "runs").mkdir()
        for toml in (REPO / "runs").glob("*.toml"):
            shutil.copyfile(toml, tmp_path / "runs" / toml.name)
    ran = 0
    for info, body in blocks(page):
        words = info.split()
        if not words or "no-run" in words or words[0] not in ("python", "bash"):
            continue
        if words[0] == "python":
            exec(compile(body, f"{page.name}:python-block", "exec"), {"__name__": "__doc_block__"})
            ran += 1
            continue
        for line in ehp_lines(body):
            rc = _run_ehp(line)
            err = capsys.readouterr().err
            assert rc == 0, f"{page.name}: `{line}` exited {rc}: {err.strip()[-500:]}"
            ran += 1
    if page.name in ("README.md", "tutorial.md", "config.md"):
        assert ran > 0, f"{page.name}: no runnable block found"


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path):
    """Every relative link (and image) points to a file or directory inside the repository."""
    text = _FENCE.sub("", page.read_text())  # links inside code blocks are not links
    bad = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, mailto:, in-page anchors
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or REPO not in path.parents:
            bad.append(target)
    assert not bad, f"{page.name}: links to missing files: {bad}"


def test_no_internal_references():
    """User-facing text never points to the internal spec."""
    pattern = re.compile(r"physics\.md|design\.md|shared/")
    files = PAGES + sorted((REPO / "sim").rglob("*.py")) + sorted((REPO / "analysis").rglob("*.py")) \
        + sorted((REPO / "sim" / "examples").glob("*.toml"))
    hits = [f"{f.relative_to(REPO)}:{i}" for f in files for i, line in enumerate(f.read_text().splitlines(), 1)
            if pattern.search(line)]
    assert not hits, f"references to the internal spec: {hits}"


# Spelled with escapes so that this file does not match itself.
_INTERNAL = re.compile(r"physics\.md|design\.md|\.\./shared")
_IGNORED_DIRS = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", ".benchmarks"}


def _repository_files() -> list[Path]:
    """The .py, .md and .toml files git tracks (or would track: untracked but not ignored).

    Outside a git checkout (an unpacked sdist), every such file under the repository root
    except the usual build and cache directories.
    """
    suffixes = {".py", ".md", ".toml"}
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True, timeout=60).stdout.decode()
        paths = [REPO / name for name in out.split("\0") if name]
    except (OSError, subprocess.SubprocessError):
        paths = [p for p in REPO.rglob("*") if not _IGNORED_DIRS & set(p.relative_to(REPO).parts)]
    return sorted(p for p in paths if p.suffix in suffixes and p.is_file())


def test_no_internal_spec_anywhere():
    """No source, test, config or documentation file of the repository cites the internal spec.

    Docstrings and comments point to the pages of docs/ instead (docs/theory.md,
    docs/conventions.md, docs/modes.md, ...), which ship with the code.
    """
    files = _repository_files()
    assert any(f.name == "test_docs.py" for f in files) and any(f.suffix == ".toml" for f in files)  # the scan sees files
    hits = [f"{f.relative_to(REPO)}:{i}: {line.strip()[:80]}" for f in files
            for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1) if _INTERNAL.search(line)]
    assert not hits, "references to the internal spec (cite docs/ instead):\n" + "\n".join(hits)
