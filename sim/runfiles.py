"""The files of a run directory: names, atomic JSON writes, checksums and the manifest (see :mod:`sim.io`)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .config import ConfigError
from .runlock import LOCK_NAME
from .runsafe import MAX_PARTS, RunTampered, check_output_name, check_table_name, read_regular

__all__ = ["RunIncomplete", "now_iso", "jsonable", "write_json", "sha256_file", "PACKAGES", "MANIFEST_NAME"]

#: Packages whose versions go into ``metadata.json`` (``sim`` is this package, ehp-sim).
PACKAGES: tuple[str, ...] = ("numpy", "scipy", "qutip", "pandas", "pyarrow", "numba")
MANIFEST_NAME = "manifest.jsonl"
_META_KEY = b"sim:part"
_CATS_KEY = b"sim:categories"  # field metadata: a categorical column's categories (JSON)
#: Disk space a writer holds so that a full disk can still record its final status (:meth:`sim.io.RunDirectory.fail`).
RESERVE_NAME = ".ehp.reserve"
_OWN = ("metadata.json", "summary.json", MANIFEST_NAME, LOCK_NAME, RESERVE_NAME)
_TMP_RE = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")
_PART_RE = re.compile(r"^part-(\d{5})\.parquet$")
#: Most lines a manifest may have: one per part of a few tables of MAX_PARTS parts, and the outputs.
MAX_MANIFEST_LINES = 8 * MAX_PARTS


class RunIncomplete(ConfigError):
    """A run directory that is not complete (or has damaged parts) was opened for reading."""


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _note(msg: str) -> None:
    print(f"ehp: {msg}", file=sys.stderr, flush=True)


def jsonable(obj: Any) -> Any:
    """Plain JSON types from numpy scalars and arrays, tuples, paths; non-finite floats -> None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        x = float(obj)
        return x if np.isfinite(x) else None
    if isinstance(obj, complex | np.complexfloating):
        return {"re": jsonable(obj.real), "im": jsonable(obj.imag)}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _tmp_path(path: Path) -> Path:
    """A hidden temporary name next to ``path``, unique to this writer (pid + random)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a temporary file unique to this writer, then rename)."""
    tmp = _tmp_path(path)
    try:
        tmp.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _part_name(table: str, index: int) -> str:
    return f"{table}.parquet/part-{index:05d}.parquet"


def _read_manifest(p: Path, *, strict: bool = True) -> dict[str, Any] | None:
    """``{"parts": {table: {"00000": entry}}, "files": {name: entry}}`` from ``p/manifest.jsonl`` (None if absent).

    Later lines win; a line that is not a complete record (the torn last line of a killed
    writer) is skipped. A record naming a path that is not its table's part name, or an output
    that is not one plain file name, is :class:`RunTampered` (``strict``) or dropped (not
    ``strict``: ``--overwrite`` only needs to know which of the directory's own entries are ours).
    """
    data = read_regular(p / MANIFEST_NAME)
    if data is None:
        return None
    out: dict[str, Any] = {"parts": {}, "files": {}}
    lines = data.decode("utf-8", "replace").splitlines()
    if len(lines) > MAX_MANIFEST_LINES:
        raise RunTampered(f"{str(p / MANIFEST_NAME)!r} has {len(lines)} lines, more than the {MAX_MANIFEST_LINES} a run "
                          "of ehp writes (one per part and output); the run directory was edited or damaged")
    for no, line in enumerate(lines, 1):
        try:
            r = json.loads(line)
            if not isinstance(r, dict):
                continue
            where = f"{str(p / MANIFEST_NAME)!r} line {no}"
            ident = {k: r[k] for k in ("run_id", "version", "batch", "of") if k in r}
            if "output" in r:
                name = check_output_name(r["output"], where)
                out["files"][name] = {"bytes": int(r["bytes"]), "sha256": str(r["sha256"]), **ident}
            elif "table" in r:
                table, index = check_table_name(r["table"], where), r["index"]
                if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < MAX_PARTS:
                    raise RunTampered(f"{where}: part index {index!r} is not an integer in [0, {MAX_PARTS})")
                if r["file"] != _part_name(table, index):
                    raise RunTampered(f"{where}: part {index} of table {table!r} is recorded as {str(r['file'])[:80]!r}, "
                                      f"not {_part_name(table, index)!r}; the run directory was edited or damaged")
                entry = {"file": _part_name(table, index), "rows": int(r["rows"]), "bytes": int(r["bytes"]),
                         "sha256": str(r["sha256"]), **ident}
                out["parts"].setdefault(table, {})[f"{index:05d}"] = entry
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as e:
            if strict and isinstance(e, RunTampered):
                raise
            continue
    return out


def _write_manifest(p: Path, manifest: dict[str, Any]) -> None:
    """Write the whole manifest (atomically): one line per part, then per output file."""
    lines = [{"table": t, "index": int(k), **e} for t, parts in manifest["parts"].items() for k, e in sorted(parts.items())]
    lines += [{"output": n, **e} for n, e in manifest["files"].items()]
    tmp = _tmp_path(p / MANIFEST_NAME)
    try:
        tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in lines))
        os.replace(tmp, p / MANIFEST_NAME)
    finally:
        tmp.unlink(missing_ok=True)
