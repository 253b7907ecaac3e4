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
- ```text output blocks are output excerpts: each of their lines, except blank lines and
  ``...`` (lines left out), must be a line of what the runnable block just before printed
  (stdout or stderr, runs of blanks counted as one), so that an excerpt cannot drift from
  the code. On docs/ pages every ```text block right after a runnable block must be one.

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


def block_starts(path: Path) -> list[int]:
    """The line number (1-based) of the opening fence of every code block, as :func:`blocks` orders them."""
    text = path.read_text()
    return [text.count("\n", 0, m.start()) + 1 for m in _FENCE.finditer(text)]


def ehp_lines(body: str) -> list[str]:
    """The ``ehp ...`` command lines of a bash block (continuations joined, comments dropped)."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "ehp":
            out.append(line)
    return out


def is_runnable(words: list[str]) -> bool:
    """A block the test runs: ```python or ```bash, not marked ``no-run``."""
    return bool(words) and words[0] in ("python", "bash") and "no-run" not in words


def is_output(words: list[str]) -> bool:
    """A ```text output block: an excerpt of what the block before it printed."""
    return words[:1] == ["text"] and "output" in words[1:]


def missing_lines(excerpt: str, printed: str) -> list[str]:
    """The lines of ``excerpt`` (blanks collapsed; blank and ``...`` lines skipped) not printed."""
    have = {" ".join(line.split()) for line in printed.splitlines()}
    want = [" ".join(line.split()) for line in excerpt.splitlines()]
    return [w for w in want if w and w != "..." and w not in have]


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
    printed: str | None = None  # what the previous block printed, if it was a runnable block
    for start, (info, body) in zip(block_starts(page), blocks(page), strict=True):
        words = info.split()
        if is_output(words):
            where = f"{page.name}:{start}: output block"
            assert printed is not None, f"{where} does not follow a runnable block"
            missing = missing_lines(body, printed)
            assert not missing, f"{where}: lines the command before it did not print: {missing}"
            printed = None
            continue
        printed = None
        if not is_runnable(words):
            continue
        capsys.readouterr()
        if words[0] == "python":
            exec(compile(body, f"{page.name}:python-block", "exec"), {"__name__": "__doc_block__"})
            out = capsys.readouterr()
            printed = out.out + out.err
            ran += 1
            continue
        printed = ""
        for line in ehp_lines(body):
            rc = _run_ehp(line)
            out = capsys.readouterr()
            assert rc == 0, f"{page.name}: `{line}` exited {rc}: {out.err.strip()[-500:]}"
            printed += out.out + "\n" + out.err + "\n"
            ran += 1
    if page.name in ("README.md", "tutorial.md", "config.md"):
        assert ran > 0, f"{page.name}: no runnable block found"


@pytest.mark.parametrize("page", [p for p in PAGES if p.parent == REPO / "docs"], ids=lambda p: p.name)
def test_excerpts_after_commands_are_checked(page: Path):
    """On docs/ pages a ```text block right after a command is that command's output, and marked as such."""
    infos = [info.split() for info, _ in blocks(page)]
    starts = block_starts(page)
    unmarked = [starts[i] for i in range(1, len(infos)) if infos[i][:1] == ["text"] and is_runnable(infos[i - 1])
                and not is_output(infos[i])]
    assert not unmarked, f"{page.name}: the ```text blocks at lines {unmarked} follow a command: mark them ```text output"


def test_missing_lines():
    """The excerpt check: lines compared with runs of blanks collapsed, ``...`` skipped."""
    printed = "channel   mu\nLR   0.5   1e-3\n\nkappa  0.74\n"
    assert missing_lines("channel mu\n...\nkappa     0.74\n", printed) == []
    assert missing_lines("LR 0.5 1e-3\nkappa 0.75\nN 1\n", printed) == ["kappa 0.75", "N 1"]
    assert missing_lines("LR 0.5\n", printed) == ["LR 0.5"]  # a whole line, not a prefix


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
