"""The ``ehp`` command line: a thin layer over the public API (docs/tutorial.md).

Exit codes: 0 success (an unstable mode is an answer), 2 bad input, a refused request or an
error of the system (disk full, permission, read-only; one line on stderr, no traceback),
130 interrupted by SIGINT and 143 by SIGTERM (one line: what was saved and the command that
resumes it), 1 internal error (a traceback: a bug).

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
    "analysis.cli.rupture",
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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like SIGINT's ``KeyboardInterrupt``, so that every run directory records it."""


_FIRED: list[int] = []  # the signal that interrupted this command (at most one is raised)


def _on_signal(signum, frame) -> None:
    """SIGINT raises ``KeyboardInterrupt`` and SIGTERM :class:`Terminated`, once: a second signal while the
    first unwinds (marking the run ``interrupted``, printing what was saved) is ignored, so it cannot leave
    the run ``running`` or the message unprinted."""
    import signal

    if _FIRED:
        return
    _FIRED.append(signum)
    raise Terminated("SIGTERM") if signum == signal.SIGTERM else KeyboardInterrupt


#: Exit codes of an interrupted command (128 + the signal's number, as shells report it).
EXIT_SIGINT, EXIT_SIGTERM = 130, 143


def _interrupted(e: KeyboardInterrupt, argv: Sequence[str], first: int) -> int:
    """One line: which signal, what each run directory opened by the command saved, the command that resumes."""
    import shlex

    io = sys.modules.get("sim.io")
    name, code = ("SIGTERM", EXIT_SIGTERM) if isinstance(e, Terminated) else ("SIGINT", EXIT_SIGINT)
    runs = list(io.OPENED[first:]) if io is not None else []
    if not runs:
        _error(f"interrupted ({name}): nothing was saved")
        return code
    saved = "; ".join(f"{str(rd.path)!r} holds {rd.saved()} (status {rd.metadata.get('status')!r})" for rd in runs)
    _error(f"interrupted ({name}): {saved}; run the same command again to resume it: "
           f"ehp {shlex.join(list(argv))}")
    return code


def _os_error(e: OSError) -> int:
    """One line for an error of the operating system (disk full, permission, read-only, file size limit)."""
    import errno

    hints = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space (disk quota)",
             errno.EFBIG: "the file size limit ('ulimit -f') or the file system's largest file is reached",
             errno.EACCES: "check the permissions", errno.EPERM: "check the permissions",
             errno.EROFS: "the file system is read-only: choose another --out", errno.EMFILE: "too many open files"}
    where = f" {e.filename!r}" if e.filename is not None else ""
    code = errno.errorcode.get(e.errno or 0, "")
    hint = hints.get(e.errno or 0, "")
    io = sys.modules.get("sim.io")
    opened = [rd for rd in (io.OPENED if io is not None else []) if rd.metadata.get("status") != "complete"]
    resume = (f"; {str(opened[-1].path)!r} keeps {opened[-1].saved()}: the same command resumes it"
              if opened else "")
    return _error(f"cannot complete:{where} {e.strerror or e}" + (f" ({code})" if code else "")
                  + (f": {hint}" if hint else "") + resume)


def _prepare_streams() -> str:
    """Why the command cannot print (stdout closed), or ''; paths that are not UTF-8 print as their bytes."""
    if sys.stdout is None:
        return "stdout is closed: nothing could be printed; redirect it (to a file or /dev/null) instead of closing it"
    if sys.stderr is None:  # closed (2>&-): notes and errors are dropped, never printed into stdout
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for stream in (sys.stdout, sys.stderr):
        try:  # a path given in bytes that are not UTF-8 (surrogate escapes in argv) prints as those bytes
            stream.reconfigure(errors="surrogateescape" if stream is sys.stdout else "backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    closed = _prepare_streams()
    if closed:
        print("ehp: error: " + closed, file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    import contextlib
    import signal
    import threading

    from sim.guards import GuardError, NumericalError  # after parsing: --version and --help import no numpy

    io = sys.modules.get("sim.io")
    first = len(io.OPENED) if io is not None else 0
    old: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        _FIRED.clear()
        old[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_signal)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when SIGINT is ignored (nohup, &)
            old[signal.SIGINT] = signal.signal(signal.SIGINT, _on_signal)
    try:
        versions = contextlib.nullcontext()
        if getattr(args, "allow_version_change", False):
            from sim.io import versions_may_change

            versions = versions_may_change()
        with versions:
            code = args.handler(args)
        try:
            sys.stdout.flush()
        except OSError as e:
            if isinstance(e, BrokenPipeError):
                raise
            _quiet_stdout()
            return _error(f"cannot write to stdout: {e.strerror or e}; the results written to files (if any) are "
                          "complete")
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except KeyboardInterrupt as e:
        return _interrupted(e, argv, first)
    except (GuardError, NumericalError) as e:
        return _error(str(e))
    except MemoryError as e:
        return _error(f"out of memory ({e or 'no detail'}): use a smaller size, or batch/stream the work")
    except OSError as e:
        _quiet_stdout()  # a full stdout (/dev/full) must not fail again at exit
        return _os_error(e)
    except Exception as e:
        pop = sys.modules.get("sim.population")  # only raised once that module is loaded (imports stay lazy)
        if pop is not None and isinstance(e, pop.TruncationError):
            return _error(str(e))
        raise
    finally:
        for signum, handler in old.items():
            if _FIRED:  # the process is ending: a signal still on its way must not kill it past its message (an
                handler = signal.SIG_IGN  # ignored signal stays ignored through the interpreter's shutdown)
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
