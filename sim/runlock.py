"""The lock of a run directory: ``DIR/.ehp.lock``, created exclusively by the one writer.

The file holds the writer's pid, host, a random token and its start time. A second writer
is refused (:class:`RunLocked`, the CLI's exit 2) while the first lives; a lock left by a dead
process on this host is taken over with a note on stderr; a lock from another host cannot be
checked and is refused, naming the file to delete. Take-overs are serialised with ``flock`` on
the directory, so two writers never both take over one stale lock.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .config import ConfigError
from .runsafe import RunTampered, read_regular

__all__ = ["LOCK_NAME", "RunLocked", "acquire_lock", "release_lock", "lock_owner", "read_json_or_none"]

LOCK_NAME = ".ehp.lock"


class RunLocked(ConfigError):
    """Another live process holds the run directory's lock."""


def read_json_or_none(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing, unreadable or not JSON.

    Only a regular file is read (:func:`sim.runsafe.read_regular`): a symbolic link, FIFO or
    device there is :class:`sim.runsafe.RunTampered`, never followed and never a hang.
    """
    data = None
    try:
        data = read_regular(path)
    except OSError:
        return None
    try:
        return None if data is None else json.loads(data)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any file of ours
        return None


def _note(msg: str) -> None:
    print(f"ehp: {msg}", file=sys.stderr, flush=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


#: Largest pid a Linux kernel hands out (``pid_max`` is at most 2**22).
PID_MAX = 2**22


def _valid_pid(pid: Any) -> bool:
    """A positive integer pid (not a bool, float or string) that a kernel could have given."""
    return isinstance(pid, int) and not isinstance(pid, bool) and 0 < pid <= PID_MAX


def _malformed(lock: Path, info: Any) -> str:
    """Why the lock record ``info`` cannot be checked ('' if it can)."""
    if not isinstance(info, dict):
        return f"{str(lock)!r} is unreadable (not a JSON lock record)"
    if not _valid_pid(info.get("pid")):
        return f"{str(lock)!r} is malformed: its pid {info.get('pid')!r} is not a positive integer"
    if not isinstance(info.get("host"), str):
        return f"{str(lock)!r} is malformed: its host {info.get('host')!r} is not a host name"
    return ""


def lock_owner(path: Path | str) -> dict[str, Any] | None:
    """The writer holding the lock of run directory ``path`` (its lock record), or None.

    A lock of a dead process on this host is no owner; a malformed lock (a pid that is not
    a positive integer, no host) is returned with ``malformed`` set to why, since nobody can
    tell whether its writer lives.
    """
    lock = Path(path) / LOCK_NAME
    try:
        info = read_json_or_none(lock)
    except RunTampered as e:
        return {"malformed": str(e)}
    if info is None and not os.path.lexists(lock):
        return None
    why = _malformed(lock, info)
    if why:
        return {"malformed": why}
    if info.get("host") == socket.gethostname() and not _pid_alive(info["pid"]):
        return None
    return info


def acquire_lock(p: Path) -> str:
    """Create ``p/.ehp.lock`` exclusively; take over a stale one; refuse a live one. Returns our token."""
    token = secrets.token_hex(8)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "token": token,
          "since": datetime.now(UTC).isoformat(timespec="seconds"), "argv": sys.argv[:8]}
    lock = p / LOCK_NAME
    dfd = None
    try:  # serialise the take-over of stale locks between writers (flock on the directory)
        import fcntl

        dfd = os.open(p, os.O_RDONLY)
        fcntl.flock(dfd, fcntl.LOCK_EX)
    except (ImportError, OSError):
        dfd = None
    try:
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    info = read_json_or_none(lock)
                except RunTampered as e:
                    raise RunLocked(f"{str(p)!r} is locked by {e}; if no ehp command is writing there, delete "
                                    f"{str(lock)!r}") from None
                why = _malformed(lock, info)
                if why:
                    raise RunLocked(f"{str(p)!r} is locked by {why}; if no ehp command is writing there, delete "
                                    "that file") from None
                who = f"pid {info['pid']} on {info.get('host')!r} since {info.get('since')}"
                if info.get("host") != socket.gethostname():
                    raise RunLocked(f"{str(p)!r} is being written by {who} (another host: cannot check it from here); "
                                    f"if that command is dead, delete {str(lock)!r}") from None
                if _pid_alive(info["pid"]):
                    raise RunLocked(f"{str(p)!r} is being written by {who}: wait for it to end or choose "
                                    "another --out") from None
                _note(f"taking over the stale lock of {str(p)!r}: {who} is gone")
                lock.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me) + "\n")
            return token
        raise RunLocked(f"could not lock {str(p)!r}: other writers keep taking it")
    finally:
        if dfd is not None:
            os.close(dfd)


def release_lock(p: Path, token: str) -> None:
    """Delete ``p/.ehp.lock`` if it still holds our ``token`` (anything else there is left alone)."""
    lock = p / LOCK_NAME
    try:
        info = read_json_or_none(lock)
    except RunTampered:
        return
    if isinstance(info, dict) and info.get("token") == token:
        lock.unlink(missing_ok=True)
