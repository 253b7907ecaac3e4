"""What a run directory may point at, and how a part proves which run it belongs to.

A run directory may have been edited, damaged or received from someone else, so nothing
read from it is trusted:

- **names**: a table name is ``[A-Za-z][A-Za-z0-9_-]*`` (at most 64 characters), a part of table
  ``T`` is exactly ``T.parquet/part-XXXXX.parquet`` and an output file is one plain name
  (:func:`check_table_name`, :func:`check_output_name`); a manifest or ``metadata.json``
  naming anything else (``..``, an absolute path, a separator) is refused;
- **links and special files**: every entry on the way from the run directory to a file it
  names must be a real directory or a regular file, never a symbolic link, a FIFO or a
  device (:func:`entry_stat`), so a reader never leaves the directory and never blocks;
- **identity**: a run's ``run_id`` is the sha256 of its identity (command, resolved config,
  run parameters with the seed, layout) in canonical JSON (:func:`run_id`). Each part carries
  ``{run_id, table, index, batch, version}`` in its parquet key-value metadata and in its
  manifest line; a part whose record names another run, table or index, or a version that
  never wrote this run, is refused (:class:`RunTampered`), even when its checksum matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from .config import ConfigError
from .files import read_bytes

__all__ = ["RunTampered", "check_table_name", "check_output_name", "check_utf8", "entry_stat", "read_regular", "run_id",
           "RUN_KEY", "MAX_PARTS", "MAX_JSON_BYTES"]

#: Parquet key-value metadata key of a part's identity record.
RUN_KEY = b"sim:run"
#: Most parts one table may have (part names have five digits).
MAX_PARTS = 100_000
#: Largest ``metadata.json``, ``manifest.jsonl`` or lock file read (bytes).
MAX_JSON_BYTES = 64 * 2**20
_TABLE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_OUTPUT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class RunTampered(ConfigError):
    """A run directory whose contents point outside it, are not regular files, or belong to another run."""


def _show(x: Any) -> str:
    return repr(x) if len(repr(x)) <= 80 else repr(x)[:77] + "..."


def check_table_name(name: Any, where: str) -> str:
    """``name`` if it is a table name (``[A-Za-z][A-Za-z0-9_-]*``, <= 64 characters), else :class:`RunTampered`."""
    if not isinstance(name, str) or not _TABLE_RE.fullmatch(name):
        raise RunTampered(f"{where}: table name {_show(name)} is not a table name of ehp (a letter, then letters, "
                          "digits, _ or -, at most 64); the run directory was edited or damaged")
    return name


def check_output_name(name: Any, where: str) -> str:
    """``name`` if it is one plain file name (no separator, no leading dot), else :class:`RunTampered`."""
    if not isinstance(name, str) or not _OUTPUT_RE.fullmatch(name):
        raise RunTampered(f"{where}: output {_show(name)} is not a plain file name inside the run directory; the run "
                          "directory was edited or damaged")
    return name


def entry_stat(root: Path, rel: str) -> os.stat_result | None:
    """``lstat`` of ``root/rel`` after checking every step on the way (None when it does not exist).

    Each directory between ``root`` and the entry must be a real directory and the entry a
    regular file: a symbolic link anywhere, a FIFO, a socket or a device is :class:`RunTampered`.
    ``rel`` must be relative and free of ``..`` (callers pass checked names).
    """
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or any(s in ("..", ".", "") for s in parts):
        raise RunTampered(f"{str(root)!r}: {rel!r} is not a path inside the run directory")
    cur = root
    for i, part in enumerate(parts):
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        last = i == len(parts) - 1
        if stat.S_ISLNK(st.st_mode):
            raise RunTampered(f"{str(cur)!r} is a symbolic link: ehp never follows a link out of a run directory; "
                              "remove it (and copy in the file it pointed to, if that was meant)")
        if (last and not stat.S_ISREG(st.st_mode)) or (not last and not stat.S_ISDIR(st.st_mode)):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, socket or device)"
            raise RunTampered(f"{str(cur)!r} is {kind}, where the run directory should hold a "
                              + ("file" if last else "directory"))
    return st


def read_regular(path: Path, limit: int = MAX_JSON_BYTES) -> bytes | None:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes (None when it does not exist).

    Inside a run directory a symbolic link is never followed (:class:`RunTampered`); the rest is
    :func:`sim.files.read_bytes`: a FIFO, device or directory is refused without blocking, a
    larger file is never read into memory.
    """
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        raise RunTampered(f"{str(path)!r} is a symbolic link: ehp never follows a link inside a run directory")
    return read_bytes(path, "run-directory file", limit, exc=RunTampered)


def check_utf8(path: Path | str, what: str) -> None:
    """Refuse (:class:`sim.config.ConfigError`) a path whose name is not valid UTF-8.

    Such a name reaches Python as surrogate escapes, which the parquet library cannot encode;
    it is refused before anything is written, with the name shown as escapes.
    """
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        shown = str(path).encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        raise ConfigError(f"{what} '{shown}' is not valid UTF-8: the parquet library cannot open such a path; rename "
                          "it (or choose another) with a UTF-8 name") from None


def run_id(identity: Any) -> str:
    """sha256 (hex) of ``identity`` in canonical JSON (sorted keys, no spaces): the run's id."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    return hashlib.sha256(blob).hexdigest()
