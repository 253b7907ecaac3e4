"""Run directories: streaming parquet parts, a manifest, a lock, ``metadata.json``, ``summary.json`` (docs/tutorial.md).

Layout of a run directory ``DIR``::

    DIR/metadata.json                      resolved config, seed, engine, versions, git commit, times, status
    DIR/manifest.jsonl                     one line per finished part (table, file, rows, bytes, sha256) or output
    DIR/summary.json                       the command's figures (written at the end)
    DIR/<table>.parquet/part-00000.parquet one parquet file per batch ("part"), read back as one table
    DIR/.ehp.lock                          while a command writes: its pid and host

A run directory is a transaction:

- **lock**: a writer creates ``.ehp.lock`` exclusively (``O_CREAT | O_EXCL``) with its pid and
  host; a second writer is refused (:class:`RunLocked`, the CLI's exit 2) while the first
  lives. A lock left by a dead process on this host is taken over, with a note on stderr.
- **manifest**: a part is written to a temporary file unique to its writer (pid + random),
  renamed into place, then recorded in ``manifest.jsonl`` with its row count, size and sha256
  (one appended line per part: a killed writer leaves at most a torn last line, which is ignored).
- **verified resume**: the same command and config (the *identity* in ``metadata.json``)
  resumes the directory; every recorded part is checked (size and sha256) and a missing or
  damaged one is recomputed, with a note on stderr, never silently skipped.
- **refusing readers**: :func:`part_files`, :func:`read_table` and :func:`check_run` refuse
  (:class:`RunIncomplete`, exit 2, naming what is missing or damaged) a run that is not
  complete, unless ``partial=True`` is asked for explicitly.
- **overwrite**: ``overwrite=True`` deletes only what a run of this tool wrote (the names
  above, the tables and the files in the manifest) and refuses a directory holding anything
  else, naming it; a command never writes into its own input (``inputs=``).
- **failure**: an exception inside the command marks the run ``failed`` and releases the lock;
  the same command resumes it, and a different command may replace a failed run that had
  finished nothing.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import guards
from .config import ConfigError
from .files import read_bytes
from .runlock import LOCK_NAME, RunLocked, acquire_lock, lock_owner, read_json_or_none, release_lock

__all__ = [
    "RunDirectory", "RunCheck", "RunIncomplete", "RunLocked", "check_run", "read_table", "part_files",
    "trajectory_partial_view", "package_versions", "git_commit", "jsonable", "write_json", "now_iso", "sha256_file",
    "PACKAGES", "LOCK_NAME", "MANIFEST_NAME",
]

#: Packages whose versions go into ``metadata.json`` (``sim`` is this package, ehp-sim).
PACKAGES: tuple[str, ...] = ("numpy", "scipy", "qutip", "pandas", "pyarrow", "numba")
MANIFEST_NAME = "manifest.jsonl"
_META_KEY = b"sim:part"
_CATS_KEY = b"sim:categories"  # field metadata: a categorical column's categories (JSON)
_OWN = ("metadata.json", "summary.json", MANIFEST_NAME, LOCK_NAME)
_TMP_RE = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")
_PART_RE = re.compile(r"^part-(\d{5})\.parquet$")


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
    from .files import open_input

    with open_input(path, "file", sys.maxsize, exc=RunIncomplete) as f:  # a regular file: never a FIFO's hang
        return hashlib.file_digest(f, "sha256").hexdigest()


def _read_manifest(p: Path) -> dict[str, Any] | None:
    """``{"parts": {table: {"00000": entry}}, "files": {name: entry}}`` from ``p/manifest.jsonl`` (None if absent).

    Later lines win; an unreadable line (the torn last line of a killed writer) is skipped.
    """
    from .files import read_text

    if not (p / MANIFEST_NAME).exists():
        return None
    lines = read_text(p / MANIFEST_NAME, "run manifest", guards.MEMORY_BUDGET, exc=RunIncomplete).splitlines()
    out: dict[str, Any] = {"parts": {}, "files": {}}
    for line in lines:
        try:
            r = json.loads(line)
            if "output" in r:
                out["files"][r["output"]] = {"bytes": int(r["bytes"]), "sha256": str(r["sha256"])}
            elif "table" in r:
                entry = {k: r[k] for k in ("file", "rows", "bytes", "sha256")}
                out["parts"].setdefault(str(r["table"]), {})[f"{int(r['index']):05d}"] = entry
        except (ValueError, TypeError, KeyError):
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


def package_versions() -> dict[str, str | None]:
    """Versions of :data:`PACKAGES` and of ``sim`` (the ehp-sim distribution)."""
    out: dict[str, str | None] = {}
    for name in (*PACKAGES, "sim"):
        try:
            out[name] = version("ehp-sim" if name == "sim" else name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """Commit of the source tree of ``sim`` (``+dirty`` if it has uncommitted changes), or None."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "") if sha else None


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}.{k}" if prefix else str(k)
            if k not in old:
                out.append(f"{key}: (absent) -> {new[k]!r}")
            elif k not in new:
                out.append(f"{key}: {old[k]!r} -> (absent)")
            else:
                out.extend(_diff(old[k], new[k], key))
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


# --------------------------------------------------------------------------- verification


def _part_name(table: str, index: int) -> str:
    return f"{table}.parquet/part-{index:05d}.parquet"


def _verify_entry(p: Path, name: str, entry: dict[str, Any], checksums: bool) -> str | None:
    """Why the file ``p/name`` does not match its manifest ``entry`` (None if it does)."""
    f = p / name
    if not f.is_file():
        return "missing"
    size = f.stat().st_size
    if size != entry.get("bytes"):
        return f"truncated or replaced ({size} bytes, {entry.get('bytes')} recorded)"
    if checksums and sha256_file(f) != entry.get("sha256"):
        return "damaged (its sha256 does not match the manifest)"
    return None


@dataclass(frozen=True)
class RunCheck:
    """What :func:`check_run` found in a run directory.

    Attributes
    ----------
    status
        ``metadata.json`` status: ``complete``, ``running`` (being written, or killed),
        ``failed``; None when the directory holds no run.
    expected
        Parts each table must have (``{table: count}``).
    good
        Verified parts per table (indices).
    missing, damaged
        ``"TABLE.parquet/part-XXXXX.parquet (why)"`` for parts never finished or lost, and for
        parts whose size or sha256 differs from the manifest; likewise for output files.
    owner
        The live writer's lock record, if one holds the directory.
    """

    path: Path
    metadata: dict[str, Any] | None
    status: str | None
    expected: dict[str, int]
    good: dict[str, list[int]]
    missing: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    owner: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.status == "complete" and not self.missing and not self.damaged and self.owner is None

    def problem(self) -> str:
        """One line: why the run is not complete (empty if it is)."""
        if self.complete:
            return ""
        why = []
        if self.owner is not None:
            why.append(f"it is being written by pid {self.owner.get('pid')} on {self.owner.get('host')!r}")
        elif self.status != "complete":
            why.append(f"its status is {self.status!r} (the command was killed, failed or did not finish)")
        for label, items in (("missing", self.missing), ("damaged", self.damaged)):
            if items:
                why.append(f"{len(items)} {label}: " + ", ".join(items[:3]) + (", ..." if len(items) > 3 else ""))
        return "; ".join(why)


def check_run(path: Path | str, *, checksums: bool = True) -> RunCheck:
    """Check a run directory against its ``metadata.json`` and ``manifest.jsonl``.

    Every expected part must be in the manifest, and every recorded part and output file must
    exist with the recorded size (and sha256 when ``checksums``).

    Raises
    ------
    ConfigError
        ``path`` holds no run (no readable ``metadata.json``).
    """
    p = Path(path)
    meta = read_json_or_none(p / "metadata.json")
    if not isinstance(meta, dict) or "identity" not in meta:
        raise ConfigError(f"{str(p)!r} is not a run directory (no readable metadata.json)")
    manifest = _read_manifest(p)
    expected = {str(k): int(v) for k, v in (meta.get("parts_expected") or {}).items()}
    good: dict[str, list[int]] = {}
    missing: list[str] = []
    damaged: list[str] = []
    if not isinstance(manifest, dict):  # no manifest: written by an older version, nothing can be verified
        for t in {*expected, *(d.name[:-8] for d in p.glob("*.parquet") if d.is_dir())}:
            good[t] = [int(m.group(1)) for f in part_files_on_disk(p, t) if (m := _PART_RE.match(f.name))]
        if expected or meta.get("status") != "complete":
            missing.append(f"{MANIFEST_NAME} (no record of the finished parts)")
    else:
        parts = manifest.get("parts", {})
        for t in sorted({*expected, *parts}):
            good[t] = []
            recorded = parts.get(t, {})
            for key in sorted(recorded):
                why = _verify_entry(p, recorded[key]["file"], recorded[key], checksums)
                if why is None:
                    good[t].append(int(key))
                else:
                    (missing if why == "missing" else damaged).append(f"{recorded[key]['file']} ({why})")
            for i in range(expected.get(t, 0)):
                if f"{i:05d}" not in recorded:
                    missing.append(f"{_part_name(t, i)} (never finished)")
        for name, entry in manifest.get("files", {}).items():
            why = _verify_entry(p, name, entry, checksums)
            if why is not None:
                (missing if why == "missing" else damaged).append(f"{name} ({why})")
    return RunCheck(p, meta, meta.get("status"), expected, good, missing, damaged, lock_owner(p))


def part_files_on_disk(path: Path | str, table: str) -> list[Path]:
    """The part files of ``table`` present on disk, unverified (``DIR/<table>.parquet`` itself if a file)."""
    d = Path(path) / f"{table}.parquet"
    if d.is_file():
        return [d]
    return sorted(f for f in d.glob("part-*.parquet") if _PART_RE.match(f.name)) if d.is_dir() else []


def _verified(path: Path | str, table: str, partial: bool, checksums: bool) -> list[tuple[Path, dict | None]]:
    p = Path(path)
    meta = read_json_or_none(p / "metadata.json")
    if not isinstance(meta, dict) or "identity" not in meta:  # a plain folder of parquet files, not a run
        return [(f, None) for f in part_files_on_disk(p, table)]
    chk = check_run(p, checksums=checksums)
    if not chk.complete and not partial:
        raise RunIncomplete(f"{str(p)!r} is not a complete run: {chk.problem()}; resume it by running the same "
                            "command again" + (" (or use `ehp stats --partial`)" if "jumps" in chk.good else ""))
    manifest = _read_manifest(p)
    if not isinstance(manifest, dict):
        return [(f, None) for f in part_files_on_disk(p, table)]
    recorded = manifest.get("parts", {}).get(table)
    if recorded is not None:
        ok = set(chk.good.get(table, []))
        return [(p / recorded[k]["file"], recorded[k]) for k in sorted(recorded) if int(k) in ok]
    name = f"{table}.parquet"
    entry = manifest.get("files", {}).get(name)
    if entry is not None:
        bad = [d for d in chk.missing + chk.damaged if d.startswith(name + " ")]
        return [] if bad else [(p / name, entry)]
    return [(f, None) for f in part_files_on_disk(p, table)]


def part_files(path: Path | str, table: str, *, partial: bool = False) -> list[Path]:
    """The finished part files of ``table`` in a run directory, in order, checked against the manifest.

    Sizes are checked here (cheap); :func:`read_table` and :func:`check_run` also check sha256.
    A folder without ``metadata.json`` is read as a plain folder of parts.

    Raises
    ------
    RunIncomplete
        The run is not complete (status, missing or damaged parts) and ``partial`` is False.
        With ``partial=True`` only the verified parts are returned.
    """
    return [f for f, _ in _verified(path, table, partial, checksums=False)]


def _read_part(f: Path, entry: dict | None, columns: list[str] | None) -> pd.DataFrame:
    try:
        data = read_bytes(f, "run table part", guards.MEMORY_BUDGET, exc=RunIncomplete)
        if entry is not None and hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise RunIncomplete(f"{str(f)!r} is damaged: its sha256 does not match the run's manifest; run the "
                                "command that wrote it again to recompute it")
        tab = pq.read_table(pa.BufferReader(data), columns=columns)
        df = tab.to_pandas()
    except (OSError, pa.ArrowException) as e:
        raise RunIncomplete(f"cannot read {str(f)!r} ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                            "run the command that wrote it again to recompute it") from None
    for fld in tab.schema:  # a part without rows stores no dictionary values: its categories come from the field
        if fld.metadata and _CATS_KEY in fld.metadata:
            dtype = pd.CategoricalDtype(json.loads(fld.metadata[_CATS_KEY]), ordered=fld.type.ordered)
            if df[fld.name].dtype != dtype:
                df[fld.name] = df[fld.name].astype(dtype)
    return df


def read_table(path: Path | str, table: str, columns: list[str] | None = None, *,
               partial: bool = False) -> pd.DataFrame:
    """Read ``DIR/<table>.parquet`` (one file or a folder of parts) into one DataFrame, verified.

    Every file read is checked against its sha256 in the manifest.

    Raises
    ------
    FileNotFoundError
        The run directory has no such table.
    RunIncomplete
        The run is incomplete (unless ``partial``) or a part is damaged.
    """
    files = _verified(path, table, partial, checksums=False)
    if not files:
        raise FileNotFoundError(f"{Path(path) / (table + '.parquet')} does not exist or holds no parts")
    frames = [_read_part(f, e, columns) for f, e in files]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


# --------------------------------------------------------------------------- writing


def _inside(a: Path, b: Path) -> bool:
    """``a`` is ``b`` or lies inside it (resolved paths)."""
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _classify(p: Path, meta: dict[str, Any] | None, manifest: dict[str, Any] | None) -> tuple[list[Path], list[Path]]:
    """Entries of ``p`` written by a run of this tool (``owned``) and the rest (``foreign``)."""
    owned: list[Path] = []
    foreign: list[Path] = []
    ours = isinstance(meta, dict) and "identity" in meta
    files = set((manifest or {}).get("files", {}))
    tables = set((meta or {}).get("parts_expected") or {}) | set((manifest or {}).get("parts", {}))
    for e in sorted(p.iterdir()):
        n = e.name
        if not ours:
            (owned if n == LOCK_NAME else foreign).append(e)
        elif e.is_symlink():
            foreign.append(e)
        elif e.is_file() and (n in _OWN or _TMP_RE.match(n) or n in files):
            owned.append(e)
        elif e.is_dir() and n.endswith(".parquet") and (n[:-8] in tables or manifest is None):
            bad = [c for c in sorted(e.iterdir()) if c.is_symlink() or not c.is_file()
                   or not (_PART_RE.match(c.name) or _TMP_RE.match(c.name))]
            (foreign if bad else owned).append(bad[0] if bad else e)
        else:
            foreign.append(e)
    return owned, foreign


class RunDirectory:
    """A run directory opened for writing, locked by this process (see the module doc for the rules).

    Use :meth:`open`, then :meth:`finish` (status ``complete``) or :meth:`fail`; as a context
    manager, an exception marks the run ``failed`` and the lock is always released.
    ``resumed`` says whether an earlier run of the same identity was found there.
    """

    def __init__(self, path: Path, metadata: dict[str, Any], resumed: bool, token: str | None,
                 manifest: dict[str, Any]) -> None:
        self.path = path
        self.metadata = metadata
        self.resumed = resumed
        self.manifest = manifest
        self._token = token

    @classmethod
    def open(cls, path: Path | str, identity: dict[str, Any], *, overwrite: bool = False,
             metadata: dict[str, Any] | None = None, inputs: tuple[Path | str, ...] = ()) -> RunDirectory:
        """Lock, then use, resume or refuse ``path`` for a run with this ``identity``.

        Parameters
        ----------
        identity
            What makes two runs the same (command, resolved config, run parameters, layout).
        overwrite
            Replace a different run: deletes what runs of this tool wrote there, and refuses a
            directory that holds anything else.
        metadata
            Extra top-level fields for ``metadata.json`` (config, seed, engine, ...).
        inputs
            Paths the command reads: ``path`` may not be one of them, inside one or contain one.

        Raises
        ------
        ConfigError
            ``path`` is a file, an input of the command, holds something else (without
            ``overwrite``) or foreign files (with it); :class:`RunLocked` if a live writer holds it.
        """
        p = Path(path)
        ident = json.loads(json.dumps(jsonable(identity), allow_nan=False))
        if p.exists() and not p.is_dir():
            raise ConfigError(f"--out {str(p)!r} exists and is not a directory")
        for src in inputs:
            if _inside(p, Path(src)) or _inside(Path(src), p):
                raise ConfigError(f"--out {str(p)!r} is (or holds) the input {str(src)!r} of this command: writing "
                                  "there would destroy what it reads; choose another --out")
        created = not p.exists()
        p.mkdir(parents=True, exist_ok=True)
        token = acquire_lock(p)
        try:
            return cls._open_locked(p, ident, overwrite, metadata, token)
        except BaseException:
            release_lock(p, token)
            if created:
                try:
                    p.rmdir()
                except OSError:
                    pass
            raise

    @classmethod
    def _open_locked(cls, p: Path, ident: dict[str, Any], overwrite: bool, metadata: dict[str, Any] | None,
                     token: str) -> RunDirectory:
        entries = [e for e in p.iterdir() if e.name != LOCK_NAME]
        old = read_json_or_none(p / "metadata.json") if entries else None
        ours = isinstance(old, dict) and "identity" in old
        manifest = _read_manifest(p) if ours else None
        resumed = False
        if entries:
            owned, foreign = _classify(p, old, manifest)
            if ours and old["identity"] == ident:
                resumed = True
            elif ours and not foreign and cls._abandoned(old, manifest):
                _note(f"replacing the {old.get('status')} run in {str(p)!r}: it had finished nothing")
                cls._clear(owned)
                old, manifest = None, None
            elif not overwrite:
                if not ours:
                    why = "it is not empty and holds no run (no readable metadata.json)"
                else:
                    diff = _diff(old["identity"], ident)
                    why = "it holds a different run (" + "; ".join(diff[:4]) + ("; ..." if len(diff) > 4 else "") + ")"
                raise ConfigError(f"refusing to write to {str(p)!r}: {why}; choose another --out or pass --overwrite")
            elif foreign:
                raise ConfigError(f"refusing to --overwrite {str(p)!r}: it holds {str(foreign[0])!r}, which no run "
                                  f"of ehp wrote ({len(foreign)} such entries); move them away or choose another --out")
            else:
                cls._clear(owned)
                old, manifest = None, None
        start = now_iso()
        if resumed:
            manifest = cls._verify_for_resume(p, old, manifest)
            meta = old
            meta.setdefault("resumed_at", []).append(start)
            meta["status"] = "running"
            meta.pop("error", None)
        else:
            manifest = {"parts": {}, "files": {}}
            meta = {"identity": ident, **(metadata or {}), "versions": package_versions(), "git_commit": git_commit(),
                    "start_time": start, "wall_s": None, "status": "running"}
        rd = cls(p, meta, resumed, token, manifest)
        rd._save_manifest()
        rd.write_metadata()
        return rd

    @staticmethod
    def _abandoned(meta: dict[str, Any], manifest: dict[str, Any] | None) -> bool:
        """A failed (or killed: 'running' while we hold the lock) run that finished no part and no file."""
        if meta.get("status") not in ("failed", "running") or not isinstance(manifest, dict):
            return False
        return not any(manifest.get("parts", {}).values()) and not manifest.get("files")

    @staticmethod
    def _clear(owned: list[Path]) -> None:
        meta = [e for e in owned if e.name == "metadata.json"]
        for entry in [e for e in owned if e.name not in ("metadata.json", LOCK_NAME)] + meta:
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink(missing_ok=True)

    @staticmethod
    def _verify_for_resume(p: Path, meta: dict[str, Any], manifest: dict[str, Any] | None) -> dict[str, Any]:
        """Keep the recorded parts that are intact; drop (and say so) the rest; remove leftovers."""
        if not isinstance(manifest, dict):
            manifest = {"parts": {}, "files": {}}
            if any(part_files_on_disk(p, t) for t in (meta.get("parts_expected") or {})) or any(p.glob("*.parquet")):
                _note(f"{str(p)!r} has no {MANIFEST_NAME} (older ehp): its parts cannot be verified and are recomputed")
        kept: dict[str, dict[str, Any]] = {}
        for table, recorded in manifest.get("parts", {}).items():
            kept[table] = {}
            for key, entry in sorted(recorded.items()):
                why = _verify_entry(p, entry["file"], entry, checksums=True)
                if why is None:
                    kept[table][key] = entry
                else:
                    _note(f"{str(p)!r}: {entry['file']} is {why}; recomputing it")
                    (p / entry["file"]).unlink(missing_ok=True)
        tables = set(meta.get("parts_expected") or {}) | set(kept) | {d.name[:-8] for d in p.glob("*.parquet")
                                                                       if d.is_dir()}
        for table in tables:
            d = p / f"{table}.parquet"
            if not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                m = _PART_RE.match(f.name)
                if m and m.group(1) not in kept.get(table, {}):
                    _note(f"{str(p)!r}: {table}.parquet/{f.name} was not recorded as finished; recomputing it")
                    f.unlink()
                elif _TMP_RE.match(f.name):
                    f.unlink()
        for f in p.iterdir():
            if _TMP_RE.match(f.name):
                f.unlink()
        files = {n: e for n, e in manifest.get("files", {}).items() if _verify_entry(p, n, e, checksums=True) is None}
        return {"parts": kept, "files": files}

    # ------------------------------------------------------------------ writing

    def _save_manifest(self) -> None:
        _write_manifest(self.path, self.manifest)

    def _append_manifest(self, record: dict[str, Any]) -> None:
        with open(self.path / MANIFEST_NAME, "a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")

    def write_metadata(self, **fields: Any) -> Path:
        """Update fields of ``metadata.json`` and write it (atomically)."""
        self.metadata.update(fields)
        path = self.path / "metadata.json"
        write_json(path, self.metadata)
        return path

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``summary.json`` (atomically)."""
        path = self.path / "summary.json"
        write_json(path, summary)
        return path

    def expect(self, table: str, n_parts: int) -> None:
        """Declare that ``table`` has ``n_parts`` parts when the run is complete (readers check it)."""
        self.metadata.setdefault("parts_expected", {})[table] = int(n_parts)
        self.write_metadata()

    def part_path(self, table: str, index: int) -> Path:
        return self.path / _part_name(table, index)

    def has_part(self, table: str, index: int) -> bool:
        """Part ``index`` of ``table`` is finished and was verified when the directory was opened."""
        return f"{index:05d}" in self.manifest["parts"].get(table, {})

    def write_part(self, table: str, index: int, df: pd.DataFrame, meta: dict[str, Any] | None = None) -> Path:
        """Write one part of ``table`` (atomically) and record it in the manifest.

        ``meta`` goes into the parquet key-value metadata (:meth:`part_meta`).
        """
        path = self.part_path(table, index)
        path.parent.mkdir(exist_ok=True)
        tab = pa.Table.from_pandas(df, preserve_index=False)
        cats = {c: json.dumps(jsonable(df[c].cat.categories.tolist())) for c in df.columns
                if isinstance(df[c].dtype, pd.CategoricalDtype)}
        if cats:  # every part, with or without rows, reads back with the same categories (_read_part)
            tab = tab.cast(pa.schema([fld.with_metadata({_CATS_KEY: cats[fld.name]}) if fld.name in cats else fld
                                      for fld in tab.schema], metadata=tab.schema.metadata))
        if meta is not None:
            blob = json.dumps(jsonable(meta), allow_nan=False).encode()
            tab = tab.replace_schema_metadata({**(tab.schema.metadata or {}), _META_KEY: blob})
        tmp = _tmp_path(path)
        try:
            pq.write_table(tab, tmp)
            entry = {"file": _part_name(table, index), "rows": int(tab.num_rows), "bytes": tmp.stat().st_size,
                     "sha256": sha256_file(tmp)}
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.manifest["parts"].setdefault(table, {})[f"{index:05d}"] = entry
        self._append_manifest({"table": table, "index": index, **entry})
        return path

    def record(self, *paths: Path | str) -> None:
        """Record output files written directly into the directory (so ``--overwrite`` may delete them).

        ``paths`` are bare names or paths (absolute or relative to the working directory) of files in it.
        """
        for f in paths:
            f = Path(f)
            if len(f.parts) == 1:  # a bare name: inside the run directory
                f = self.path / f
            if f.parent.resolve() != self.path.resolve():
                raise ValueError(f"{f} is not a file directly inside {self.path}")
            entry = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
            self.manifest["files"][f.name] = entry
            self._append_manifest({"output": f.name, **entry})

    def part_meta(self, table: str, index: int) -> dict[str, Any]:
        """The ``meta`` stored with a part by :meth:`write_part` (empty dict if none)."""
        md = pq.read_schema(self.part_path(table, index)).metadata or {}
        return json.loads(md[_META_KEY]) if _META_KEY in md else {}

    def parts(self, table: str) -> list[int]:
        """Indices of the finished (recorded) parts of ``table``."""
        return sorted(int(k) for k in self.manifest["parts"].get(table, {}))

    def read_table(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read back a table this run wrote, all its expected parts verified (sha256).

        Raises
        ------
        RunIncomplete
            A part the run expects is not finished.
        """
        recorded = self.manifest["parts"].get(table, {})
        n = (self.metadata.get("parts_expected") or {}).get(table, len(recorded))
        lost = [_part_name(table, i) for i in range(n) if f"{i:05d}" not in recorded]
        if lost or not recorded:
            raise RunIncomplete(f"{str(self.path)!r}: table {table!r} is not finished ({', '.join(lost[:3]) or 'no part'})")
        frames = [_read_part(self.path / recorded[k]["file"], recorded[k], columns) for k in sorted(recorded)]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    # ------------------------------------------------------------------ ending

    def finish(self, **fields: Any) -> None:
        """Mark the run ``complete`` (with ``fields`` in ``metadata.json``) and release the lock."""
        self.write_metadata(**{"end_time": now_iso(), **fields, "status": "complete"})
        self.close()

    def fail(self, exc: BaseException) -> None:
        """Mark the run ``failed`` (the error in ``metadata.json``) and release the lock."""
        msg = str(exc).splitlines()[0][:300] if str(exc) else ""
        try:
            self.write_metadata(status="failed", end_time=now_iso(), error=f"{type(exc).__name__}: {msg}".rstrip(": "))
        finally:
            self.close()

    def close(self) -> None:
        """Release the lock (idempotent); the status is left as it is."""
        if self._token is not None:
            release_lock(self.path, self._token)
            self._token = None

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and self._token is not None:
            self.fail(exc)
        self.close()


# --------------------------------------------------------------------------- partial analysis


def trajectory_partial_view(check: RunCheck, dest: Path | str) -> dict[str, Any]:
    """Build in ``dest`` a complete run made of the intact batches of an incomplete trajectory run.

    A batch is kept when its parts of every table of the run (jumps, stops, and initial or
    trajectories) are intact.
    Trajectories are renumbered ``0 .. n_present - 1`` (in order) and ``identity.run.ntraj``
    becomes ``n_present``, so every reader of ``dest`` (and every estimator that takes the
    trajectory count from ``metadata.json``) sees ``n_present`` trajectories, not the configured
    count. Parts that need no renumbering are linked, not copied.

    Returns
    -------
    dict
        ``partial`` record: ``ntraj_present``, ``ntraj_configured``, ``batches_present``,
        ``batches``, ``missing`` (what was left out), ``source``.

    Raises
    ------
    RunIncomplete
        Not a trajectory run, or no batch is intact.
    """
    src, dest = check.path, Path(dest)
    meta = json.loads(json.dumps(check.metadata))
    ident = meta["identity"]
    if ident.get("command") != "trajectories":
        raise RunIncomplete(f"{str(src)!r}: a partial analysis needs a trajectory run")
    N, bs = int(ident["run"]["ntraj"]), int(ident["layout"]["batch_size"])
    nb = math.ceil(N / bs)
    tables = tuple(meta.get("parts_expected") or ("jumps", "trajectories", "stops"))
    keep = [b for b in range(nb) if all(b in check.good.get(t, []) for t in tables)]
    if not keep:
        raise RunIncomplete(f"{str(src)!r} has no intact batch to analyse ({check.problem()})")
    manifest = _read_manifest(src)
    dest.mkdir(parents=True, exist_ok=True)
    parts: dict[str, dict[str, Any]] = {t: {} for t in tables}
    offset = 0
    for k, b in enumerate(keep):
        count = min(bs, N - b * bs)
        shift = b * bs - offset
        for t in tables:
            entry = manifest["parts"][t][f"{b:05d}"]
            out = dest / _part_name(t, k)
            out.parent.mkdir(exist_ok=True)
            if shift == 0:
                os.symlink((src / entry["file"]).resolve(), out)
                parts[t][f"{k:05d}"] = {**entry, "file": _part_name(t, k)}
                continue
            data = read_bytes(src / entry["file"], "run table part", guards.MEMORY_BUDGET, exc=RunIncomplete)
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise RunIncomplete(f"{str(src / entry['file'])!r} changed while being read")
            tab = pq.read_table(pa.BufferReader(data))
            col = tab.schema.get_field_index("traj")
            tab = tab.set_column(col, tab.schema.field(col),
                                 pc.subtract(tab.column(col), pa.scalar(shift, tab.schema.field(col).type)))
            pq.write_table(tab, out)
            parts[t][f"{k:05d}"] = {"file": _part_name(t, k), "rows": tab.num_rows, "bytes": out.stat().st_size,
                                    "sha256": sha256_file(out)}
        offset += count
    missing = [b for b in range(nb) if b not in keep]
    record = {"ntraj_present": offset, "ntraj_configured": N, "batches_present": len(keep), "batches": nb,
              "missing": [f"batch {b} (trajectories {b * bs}..{min(N, (b + 1) * bs) - 1})" for b in missing],
              "problems": check.missing + check.damaged, "source": str(src.resolve()), "status": check.status}
    ident["run"]["ntraj"] = offset
    meta.update(status="complete", parts_expected={t: len(keep) for t in tables}, partial=record)
    _write_manifest(dest, {"parts": parts, "files": {}})
    write_json(dest / "metadata.json", meta)
    return record
