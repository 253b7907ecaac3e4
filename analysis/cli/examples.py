"""``ehp examples``: the bundled configs (a plugin of :mod:`analysis.cli.app`).

::

    ehp examples                          # name and one-line description of each
    ehp examples NAME                     # print the TOML
    ehp examples NAME --copy [DEST]       # copy it out for editing (DEST: a file or a directory)

Every command that takes a CONFIG accepts a bundled name (``ehp steady paper_double_dot``)
when no file of that name exists. ``--copy`` never overwrites and never writes through a symbolic
link: an existing file or link is exit 2.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sim.examples import Example

__all__ = ["register", "cmd_examples"]


def register(sub: argparse._SubParsersAction, with_config) -> None:
    """Add the ``examples`` sub-command (it takes a name, not a config path)."""
    q = sub.add_parser("examples", help="list the bundled example configs, print or copy one")
    q.add_argument("name", nargs="?", metavar="NAME", help="a bundled config (with or without .toml)")
    q.add_argument("--copy", nargs="?", const=".", metavar="DEST",
                   help="copy NAME to DEST (a new file, or a directory; default: the current directory)")
    q.set_defaults(handler=cmd_examples)


def _get(name: str) -> Example:
    from sim.config import ConfigError
    from sim.examples import find_example, list_examples

    ex = find_example(name)
    if ex is None:
        names = ", ".join(e.name for e in list_examples())
        raise ConfigError(f"examples: {name!r} is not a bundled config (one of: {names})")
    return ex


def cmd_examples(args: argparse.Namespace) -> int:
    from sim.config import ConfigError
    from sim.examples import list_examples

    if args.name is None:
        if args.copy is not None:
            raise ConfigError("examples: --copy needs a NAME (see 'ehp examples')")
        exs = list_examples()
        width = max(len(e.name) for e in exs)
        for e in exs:
            print(f"{e.name:<{width}}  {e.description}")
        return 0
    ex = _get(args.name)
    if args.copy is None:
        print(ex.path.read_text(), end="")
        return 0
    dest = Path(args.copy)
    if dest.is_dir() and not dest.is_symlink():
        dest = dest / ex.path.name
    for link in (dest, dest.parent):
        if link.is_symlink():
            raise ConfigError(f"examples: --copy {args.copy!r}: {str(link)!r} is a symbolic link (refusing to write "
                              "through it)")
    if dest.exists():
        raise ConfigError(f"examples: --copy {args.copy!r}: {str(dest)!r} already exists (refusing to overwrite)")
    if not dest.parent.is_dir():
        raise ConfigError(f"examples: --copy {args.copy!r}: directory {str(dest.parent)!r} does not exist")
    try:  # created exclusively, never through a link: a file or link that appears meanwhile is refused, not replaced
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except FileExistsError:
        raise ConfigError(f"examples: --copy {args.copy!r}: {str(dest)!r} already exists (refusing to overwrite)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(ex.path.read_bytes())
    print(f"examples: {ex.name} -> {dest}")
    return 0
