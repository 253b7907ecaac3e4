"""Input files: only regular files of a bounded size are read (configs, models, bias tables).

Every file the command line reads as input goes through :func:`open_input` (or
:func:`read_text`): the path is opened without blocking (``O_NONBLOCK``: opening a FIFO
for reading returns at once instead of waiting for a writer), the *open* descriptor is
checked with ``fstat`` (so the check and the read see the same file; symbolic links are
followed), and anything but a regular file -- a FIFO, a character or block device such as
``/dev/zero``, a directory, a socket -- is refused with one line naming the file and what
it is, never read (a FIFO would hang, ``/dev/zero`` never ends). A regular file larger
than its cap is refused before it is read, so a wrong path cannot exhaust the memory.

Caps: :data:`TEXT_MAX_BYTES` (8 MiB) for configs and bias tables (a 50 x 50 matrix model
written inline is a few hundred kB); :data:`sim.guards.MEMORY_BUDGET` for ``.npz`` models.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

from . import guards

__all__ = ["TEXT_MAX_BYTES", "open_input", "read_bytes", "read_text", "file_kind"]

TEXT_MAX_BYTES = 8 * 1024**2
"""Largest config or bias table read (bytes)."""

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """``a directory``, ``a FIFO (named pipe)``, ... for an ``st_mode`` (``a regular file`` for one)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"  # pragma: no cover (doors, whiteouts)


def open_input(path: str | os.PathLike[str], what: str, max_bytes: int,
               exc: type[Exception] = guards.GuardError) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file of at most ``max_bytes``.

    ``what`` names the input in the messages (``config file``, ``conductor.file``,
    ``--bias-table``). Raises ``exc`` (one line: the file, what it is, the rule) for a
    missing or unreadable path, anything but a regular file, or a file over the cap.
    """
    p = os.fspath(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise exc(f"{what} {p!r} cannot be read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise exc(f"{what} {p!r} cannot be read: it is {file_kind(st.st_mode)}; only regular files are read "
                      "as input")
        if st.st_size > max_bytes:
            raise exc(f"{what} {p!r} is {guards.format_bytes(st.st_size)}, more than the "
                      f"{guards.format_bytes(max_bytes)} an input file of this kind may have")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return f


def read_bytes(path: str | os.PathLike[str], what: str, max_bytes: int,
               exc: type[Exception] = guards.GuardError) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (see :func:`open_input`)."""
    with open_input(path, what, max_bytes, exc) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while being read
        raise exc(f"{what} {os.fspath(path)!r} is more than the {guards.format_bytes(max_bytes)} an input file of "
                  "this kind may have")
    return data


def read_text(path: str | os.PathLike[str], what: str, max_bytes: int = TEXT_MAX_BYTES,
              exc: type[Exception] = guards.GuardError) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes`` (see :func:`open_input`)."""
    data = read_bytes(path, what, max_bytes, exc)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise exc(f"{what} {os.fspath(path)!r} is not UTF-8 text: byte {data[e.start]:#04x} at offset "
                  f"{e.start}") from None
