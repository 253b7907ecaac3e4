"""Bundled example configs: the TOML files in this package, usable by name from any directory.

``load_config("paper_double_dot")`` (or ``"paper_double_dot.toml"``) reads the bundled
file when no such path exists; a path that exists always wins. The files here are the
single source: the repository's ``runs/*.toml`` are symbolic links to them, and they
ship as package data (``pyproject.toml``, ``[tool.setuptools.package-data]``), so a
non-editable install has them too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Example", "EXAMPLES_DIR", "list_examples", "find_example", "resolve_config"]

#: The directory holding the bundled ``*.toml`` files.
EXAMPLES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Example:
    """A bundled config: its ``name`` (file stem), one-line ``description`` and ``path``."""

    name: str
    description: str
    path: Path


def _description(path: Path) -> str:
    """The TOML's first comment line without the ``#`` (empty if it starts with no comment).

    That line is what ``ehp examples`` shows, so each bundled file starts with one complete
    sentence of at most 100 characters on its first line (``tests/test_examples.py`` checks it).
    """
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s:
            continue
        return s.lstrip("#").strip() if s.startswith("#") else ""
    return ""


def list_examples() -> list[Example]:
    """Every bundled config, sorted by name."""
    return [Example(p.stem, _description(p), p) for p in sorted(EXAMPLES_DIR.glob("*.toml"))]


def _stem(name: str) -> str | None:
    """``paper_double_dot`` or ``paper_double_dot.toml`` -> ``paper_double_dot``; None for a
    name with a directory part (that is a path, never a bundled name)."""
    if not name or os.sep in name or (os.altsep and os.altsep in name):
        return None
    return name[:-5] if name.endswith(".toml") else name


def find_example(name: str) -> Example | None:
    """The bundled config called ``name`` (with or without ``.toml``), or None."""
    stem = _stem(name)
    if stem is None:
        return None
    for ex in list_examples():
        if ex.name == stem:
            return ex
    return None


def resolve_config(path: str | os.PathLike[str]) -> Path:
    """Where to read a config from: ``path`` if it exists (and is not a directory: ``ehp run
    NAME`` writes a directory ``./NAME/``), else the bundled config of that name, else
    ``path`` unchanged (reading it then fails with the usual message)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        return p
    ex = find_example(os.fspath(path))
    return ex.path if ex is not None else p
