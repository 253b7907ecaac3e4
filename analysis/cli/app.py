"""The ``ehp`` command line: a thin layer over the public API (docs/tutorial.md).

Exit codes: 0 success (an unstable mode is an answer), 2 bad input or refused
(one line on stderr, no traceback), 1 internal error (a traceback: a bug).

:func:`main` is the boundary. It maps to exit 2 with one ``ehp: error: ...`` line:
:class:`sim.guards.GuardError` (``ConfigError``, ``ResourceError``: bad input, the numeric
domain, the memory budget), :class:`sim.guards.NumericalError` (a non-finite intermediate
result), ``sim.population.TruncationError`` (a Fock cutoff reached: the message gives
the time and the cutoff) and ``MemoryError``. A closed stdout (``ehp ... | head``,
``BrokenPipeError``) ends the command quietly with exit code 0: stdout is pointed at
``os.devnull`` so that the interpreter's final flush cannot fail again, as the
Python documentation recommends (``signal`` section, "Note on SIGPIPE").
"""

from __future__ import annotations

import argparse
import importlib
import os
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
        self.exit(2, "ehp: error: " + " ".join(f"{message} (see '{self.prog} --help')".split()) + "\n")


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


def _error(message: str) -> int:
    """One line on stderr (newlines folded), exit code 2."""
    print("ehp: error: " + " ".join(str(message).split()), file=sys.stderr)
    return 2


def _quiet_stdout() -> None:
    """Point stdout at /dev/null after a broken pipe, so the final flush cannot raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured in tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from sim.guards import GuardError, NumericalError  # after parsing: --version and --help import no numpy

    try:
        code = args.handler(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except (GuardError, NumericalError) as e:
        return _error(str(e))
    except MemoryError as e:
        return _error(f"out of memory ({e or 'no detail'}): use a smaller size, or batch/stream the work")
    except Exception as e:
        pop = sys.modules.get("sim.population")  # only raised once that module is loaded (imports stay lazy)
        if pop is not None and isinstance(e, pop.TruncationError):
            return _error(str(e))
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
