"""The ``ehp`` command line: a thin layer over the public API (docs/tutorial.md).

Exit codes: 0 success (an unstable mode is an answer), 2 bad input or refused
(one line on stderr, no traceback), 1 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that add sub-commands: each has ``register(sub, with_config)`` and sets
#: ``handler`` (a function ``args -> exit code``) with ``set_defaults``. ``CORE`` is always
#: registered; ``PLUGINS`` may be narrowed (tests do, to import less).
CORE: tuple[str, ...] = ("analysis.cli.steady", "analysis.cli.threshold", "analysis.cli.config")
PLUGINS: tuple[str, ...] = (
    "analysis.cli.evolve",
    "analysis.cli.trajectories",
    "analysis.cli.stats",
    "analysis.cli.crosscheck",
    "analysis.cli.sweep",
    "analysis.cli.examples",
)


def _version() -> str:
    """The installed ``ehp-sim`` version (``importlib.metadata``: no numpy, numba or scipy import)."""
    from sim import _package_version

    return _package_version()


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line on stderr (exit 2), like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ehp", description="EHP-bath simulator: a biased conductor as four EHP baths.")
    p.add_argument("--version", action="version", version=f"ehp {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_)
        q.add_argument("config", help="TOML config file, or the name of a bundled example (see 'ehp examples')")
        q.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
        return q

    for name in CORE + PLUGINS:
        importlib.import_module(name).register(sub, with_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from sim.config import ConfigError  # after parsing: --version and --help import no numpy
    try:
        return args.handler(args)
    except ConfigError as e:
        print(f"ehp: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
