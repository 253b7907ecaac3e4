"""Run directories: streaming parquet parts, a manifest, a lock, ``metadata.json``, ``summary.json`` (docs/tutorial.md).

Layout of a run directory ``DIR``::

    DIR/metadata.json                      resolved config, seed, engine, versions, git commit, times, status
    DIR/manifest.jsonl                     one line per finished part (table, file, rows, bytes, sha256) or output
    DIR/summary.json                       the command's figures (written at the end)
    DIR/<table>.parquet/part-00000.parquet one parquet file per batch ("part"), read back as one table
    DIR/.ehp.lock                          while a command writes: its pid and host
    DIR/.ehp.reserve                       while a command writes: 64 KiB kept for the final status

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
- **failure**: an exception inside the command marks the run ``failed`` (``interrupted`` for
  SIGINT and SIGTERM) and releases the lock; the same command resumes it, and a different
  command may replace a failed run that had finished nothing. ``.ehp.reserve`` holds a little
  disk space while a writer runs, so that a full disk still takes the final status.
- **containment and identity**: nothing named inside the directory may lead out of it, links
  are never followed, and every part proves which run, table, batch and version it belongs to
  (:mod:`sim.runsafe`); a resume under another ehp-sim version needs :func:`versions_may_change`.

This module writes; :mod:`sim.runread` verifies and reads; :mod:`sim.runfiles` holds the file
names, the manifest format and atomic JSON writes; :mod:`sim.runsafe` the rules on names, links
and identities. Their public names are re-exported here.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .config import ConfigError
from .runfiles import (
    _CATS_KEY,
    _META_KEY,
    _OWN,
    _PART_RE,
    _TMP_RE,
    MANIFEST_NAME,
    PACKAGES,
    RESERVE_NAME,
    RunIncomplete,
    _note,
    _part_name,
    _read_manifest,
    _tmp_path,
    _write_manifest,
    jsonable,
    now_iso,
    sha256_file,
    write_json,
)
from .runlock import LOCK_NAME, RunLocked, acquire_lock, read_json_or_none, release_lock
from .runread import (
    RunCheck,
    _author,
    _load_meta,
    _read_part,
    _verify_entry,
    check_run,
    part_files,
    part_files_on_disk,
    read_table,
    run_metadata,
    trajectory_partial_view,
)
from .runsafe import RUN_KEY, RunTampered, check_table_name, check_utf8, run_id

__all__ = [
    "RunDirectory", "RunCheck", "RunIncomplete", "RunLocked", "RunTampered", "check_run", "read_table", "part_files",
    "run_metadata",
    "trajectory_partial_view", "versions_may_change",
    "package_versions", "git_commit", "jsonable", "write_json", "now_iso", "sha256_file",
    "PACKAGES", "LOCK_NAME", "MANIFEST_NAME",
]

_VERSION_CHANGE: contextvars.ContextVar[bool] = contextvars.ContextVar("ehp_versions_may_change", default=False)
#: Run directories opened for writing by this process, in order (the CLI names them when a command is interrupted).
OPENED: list[RunDirectory] = []


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait (are blocked) inside this block, in the main thread; elsewhere nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    sigs = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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


def _lenient_meta(p: Path) -> dict[str, Any] | None:
    """Of a ``metadata.json`` that failed verification, just what tells our entries from foreign ones."""
    try:
        raw = read_json_or_none(p / "metadata.json")
    except RunTampered:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("identity"), dict):
        return None
    expected = raw.get("parts_expected")
    tables = {k: 0 for k in expected if isinstance(k, str)} if isinstance(expected, dict) else {}
    return {"identity": raw["identity"], "parts_expected": tables}


def _refuse_links(p: Path) -> None:
    """Refuse (:class:`RunTampered`) to resume a directory whose entries could make a write leave it.

    A symbolic link, a FIFO, socket or device, or a regular file with more than one hard link (a
    file outside shares its contents: writing in place would change both), at the top level or in
    a table folder, is named; nothing has been written or deleted then.
    """
    def bad(e: Path) -> str:
        st = os.lstat(e)
        if stat.S_ISLNK(st.st_mode):
            return f"the symbolic link {str(e)!r} (to {os.readlink(e)!r})"
        if stat.S_ISREG(st.st_mode):
            return f"{str(e)!r}, a file with {st.st_nlink} hard links (its contents live elsewhere too)" \
                if st.st_nlink > 1 else ""
        return "" if stat.S_ISDIR(st.st_mode) else f"{str(e)!r}, which is not a regular file (a FIFO, socket or device)"

    for e in sorted(p.iterdir()):
        why = bad(e)
        if not why and e.is_dir() and not e.is_symlink() and e.name.endswith(".parquet"):
            why = next((w for c in sorted(e.iterdir()) if (w := bad(c))), "")
        if why:
            raise RunTampered(f"refusing to resume {str(p)!r}: it holds {why}; ehp never writes through a link or "
                              "into a file shared with another place: remove it (or copy it in place of the link)")


def _check_version(p: Path, old: dict[str, Any], versions: dict[str, str | None]) -> None:
    """Refuse to resume a run that another version of ehp-sim wrote, unless :func:`versions_may_change` allows it."""
    was, now = (old.get("versions") or {}).get("sim"), versions.get("sim")
    if was == now:
        return
    if not _VERSION_CHANGE.get():
        raise ConfigError(f"refusing to resume {str(p)!r}: ehp-sim {was} wrote it and this is {now}; parts of two "
                          "versions would mix in one run: pass --allow-version-change to resume anyway (both versions "
                          "are recorded, each part names its own), or --overwrite to start again")
    _note(f"resuming {str(p)!r}, written by ehp-sim {was}, with {now}: metadata.json records both versions")


@contextlib.contextmanager
def versions_may_change() -> Iterator[None]:
    """Within this block a resume may continue a run that another ehp-sim version wrote.

    The earlier versions go to ``metadata.json``'s ``versions_history``, ``versions`` becomes
    this one, and every part names the version that wrote it (the CLI's ``--allow-version-change``).
    """
    token = _VERSION_CHANGE.set(True)
    try:
        yield
    finally:
        _VERSION_CHANGE.reset(token)


#: How the refusal names an earlier run that did not complete (status -> words); its lock is gone by then.
_UNFINISHED = {"failed": "failed", "interrupted": "interrupted", "running": "killed"}


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
        check_utf8(p, "--out")
        ident = json.loads(json.dumps(jsonable(identity), allow_nan=False))
        if p.is_symlink():
            raise ConfigError(f"--out {str(p)!r} is a symbolic link (to {os.readlink(p)!r}): ehp never writes through "
                              "a link; give the directory itself")
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
        tampered = False
        try:
            old = _load_meta(p) if entries else None
            manifest = _read_manifest(p) if old is not None else None
        except RunTampered as e:
            if not overwrite:
                raise RunTampered(f"refusing to write to {str(p)!r}: {e}; choose another --out or pass --overwrite "
                                  "(it deletes only what ehp wrote there)") from None
            tampered = True  # never resumed: --overwrite only needs to tell our entries from foreign ones
            old, manifest = _lenient_meta(p), None
            if old is not None:
                try:
                    manifest = _read_manifest(p, strict=False)
                except RunTampered:
                    manifest = None
        ours = old is not None
        resumed = False
        versions = package_versions()
        if entries:
            owned, foreign = _classify(p, old, manifest)
            if ours and not tampered and old["identity"] == ident and old.get("run_id") is None and not overwrite:
                raise ConfigError(f"refusing to resume {str(p)!r}: an earlier ehp wrote it without recording which run "
                                  "each part belongs to, so its parts cannot be verified; pass --overwrite to recompute")
            if ours and not tampered and old["identity"] == ident and old.get("run_id") is not None:
                _refuse_links(p)
                _check_version(p, old, versions)
                resumed = True
            elif ours and not tampered and not foreign and cls._abandoned(old, manifest):
                _note(f"replacing the {old.get('status')} run in {str(p)!r}: it had finished nothing")
                cls._clear(owned)
                old, manifest = None, None
            elif not overwrite:
                if not ours:
                    why = "it is not empty and holds no run (no readable metadata.json)"
                else:
                    changes = _diff(old["identity"], ident)
                    diff = "; ".join(changes[:4]) + ("; ..." if len(changes) > 4 else "")
                    unfinished = _UNFINISHED.get(old.get("status"))
                    if unfinished:  # say how to go on from a run that did not complete (and finished something)
                        what = "finished some parts" if not cls._abandoned(old, manifest) else "lies beside other files"
                        raise ConfigError(f"refusing to write to {str(p)!r}: it holds a {unfinished} run of a different "
                                          f"command or config ({diff}) that {what}; run that one again to resume it, "
                                          "pass --overwrite to replace it, or choose another --out")
                    why = f"it holds a different run ({diff})"
                raise ConfigError(f"refusing to write to {str(p)!r}: {why}; choose another --out or pass --overwrite")
            elif foreign:
                raise ConfigError(f"refusing to --overwrite {str(p)!r}: it holds {str(foreign[0])!r}, which no run "
                                  f"of ehp wrote ({len(foreign)} such entries); move them away or choose another --out")
            else:
                if tampered:
                    _note(f"--overwrite: {str(p)!r} failed verification (edited or damaged); replacing what ehp wrote")
                cls._clear(owned)
                old, manifest = None, None
        start = now_iso()
        if resumed:
            manifest = cls._verify_for_resume(p, old, manifest)
            meta = old
            if meta.get("versions") != versions:
                meta.setdefault("versions_history", []).append(meta.get("versions"))
                meta["versions"] = versions
            meta.setdefault("resumed_at", []).append(start)
            meta["status"] = "running"
            meta.pop("error", None)
        else:
            manifest = {"parts": {}, "files": {}}
            meta = {"identity": ident, "run_id": run_id(ident), **(metadata or {}), "versions": versions,
                    "git_commit": git_commit(), "start_time": start, "wall_s": None, "status": "running"}
        rd = cls(p, meta, resumed, token, manifest)
        rd._reserve()
        rd._save_manifest()
        rd.write_metadata()
        OPENED.append(rd)
        return rd

    @staticmethod
    def _abandoned(meta: dict[str, Any], manifest: dict[str, Any] | None) -> bool:
        """A failed (or killed: 'running' while we hold the lock) run that finished no part and no file."""
        if meta.get("status") not in ("failed", "interrupted", "running") or not isinstance(manifest, dict):
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
        """Keep the recorded parts that are intact; drop (and say so) the rest; remove leftovers.

        A part that belongs to another run, a link or a special file refuses the resume
        (:class:`RunTampered`): nothing is deleted then.
        """
        author = _author(meta)
        if not isinstance(manifest, dict):
            manifest = {"parts": {}, "files": {}}
            if any(part_files_on_disk(p, t) for t in (meta.get("parts_expected") or {})) or any(p.glob("*.parquet")):
                _note(f"{str(p)!r} has no {MANIFEST_NAME} (older ehp): its parts cannot be verified and are recomputed")
        kept: dict[str, dict[str, Any]] = {}
        for table, recorded in manifest.get("parts", {}).items():
            kept[table] = {}
            for key, entry in sorted(recorded.items()):
                why = _verify_entry(p, entry["file"], entry, True, author)
                if why is None:
                    kept[table][key] = entry
                else:
                    _note(f"{str(p)!r}: {entry['file']} is {why}; recomputing it")
                    (p / entry["file"]).unlink(missing_ok=True)
        tables = set(meta.get("parts_expected") or {}) | set(kept)  # ours only: other *.parquet folders are left alone
        for table in tables:
            d = p / f"{table}.parquet"
            if d.is_symlink() or not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                m = _PART_RE.match(f.name)
                if m and m.group(1) not in kept.get(table, {}):
                    _note(f"{str(p)!r}: {table}.parquet/{f.name} was not recorded as finished; removed (recomputed "
                          "if the run needs it)")
                    f.unlink()
                elif _TMP_RE.match(f.name):
                    f.unlink()
        for f in p.iterdir():
            if _TMP_RE.match(f.name):
                f.unlink()
        files = {n: e for n, e in manifest.get("files", {}).items() if _verify_entry(p, n, e, True, author) is None}
        return {"parts": kept, "files": files}

    # ------------------------------------------------------------------ writing

    def _save_manifest(self) -> None:
        _write_manifest(self.path, self.manifest)

    def _append_manifest(self, record: dict[str, Any]) -> None:
        fd = os.open(self.path / MANIFEST_NAME, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")

    def write_metadata(self, **fields: Any) -> Path:
        """Update fields of ``metadata.json`` and write it (atomically)."""
        self.metadata.update(fields)
        path = self.path / "metadata.json"
        write_json(path, self.metadata)
        return path

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``summary.json`` (atomically) and record it (size, sha256, run) in the manifest."""
        path = self.path / "summary.json"
        write_json(path, summary)
        self.record(path)
        return path

    def verified_summary(self) -> dict[str, Any]:
        """``summary.json`` of this run as the manifest recorded it (empty when absent, unrecorded or changed).

        A resume reads an earlier run's summary only through this: a summary that was edited, replaced
        or never recorded by this run counts as none.
        """
        entry = self.manifest["files"].get("summary.json")
        if entry is None or _verify_entry(self.path, "summary.json", entry, True, _author(self.metadata)) is not None:
            return {}
        data = read_json_or_none(self.path / "summary.json")
        return data if isinstance(data, dict) else {}

    def expect(self, table: str, n_parts: int) -> None:
        """Declare that ``table`` has ``n_parts`` parts when the run is complete (readers check it)."""
        self.metadata.setdefault("parts_expected", {})[table] = int(n_parts)
        self.write_metadata()

    def part_path(self, table: str, index: int) -> Path:
        return self.path / _part_name(table, index)

    def has_part(self, table: str, index: int) -> bool:
        """Part ``index`` of ``table`` is finished and was verified when the directory was opened."""
        return f"{index:05d}" in self.manifest["parts"].get(table, {})

    def write_part(self, table: str, index: int, df: pd.DataFrame, meta: dict[str, Any] | None = None, *,
                   batch: tuple[int, int] | None = None) -> Path:
        """Write one part of ``table`` (atomically) and record it in the manifest.

        ``meta`` goes into the parquet key-value metadata (:meth:`part_meta`), beside the part's
        identity ``{run_id, table, index, batch, version}`` (:mod:`sim.runsafe`); ``batch`` is
        ``(start, size)`` of the trajectories or grid points the part holds.
        """
        check_table_name(table, "write_part")
        path = self.part_path(table, index)
        path.parent.mkdir(exist_ok=True)
        if path.parent.is_symlink() or not path.parent.is_dir():
            raise RunTampered(f"{str(path.parent)!r} is not a directory of this run (a link?): ehp never writes "
                              "through a link")
        ident = {"run_id": self.metadata["run_id"], "version": self.metadata["versions"].get("sim"),
                 "batch": None if batch is None else [int(batch[0]), int(batch[1])],
                 "of": (self.metadata.get("parts_expected") or {}).get(table)}
        tab = pa.Table.from_pandas(df, preserve_index=False)
        cats = {c: json.dumps(jsonable(df[c].cat.categories.tolist())) for c in df.columns
                if isinstance(df[c].dtype, pd.CategoricalDtype)}
        if cats:  # every part, with or without rows, reads back with the same categories (_read_part)
            tab = tab.cast(pa.schema([fld.with_metadata({_CATS_KEY: cats[fld.name]}) if fld.name in cats else fld
                                      for fld in tab.schema], metadata=tab.schema.metadata))
        kv = {**(tab.schema.metadata or {}), RUN_KEY: json.dumps({**ident, "table": table, "index": int(index)}).encode()}
        if meta is not None:
            kv[_META_KEY] = json.dumps(jsonable(meta), allow_nan=False).encode()
        tab = tab.replace_schema_metadata(kv)
        tmp = _tmp_path(path)
        try:
            pq.write_table(tab, tmp)
            entry = {"file": _part_name(table, index), "rows": int(tab.num_rows), "bytes": tmp.stat().st_size,
                     "sha256": sha256_file(tmp), **ident}
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
            entry = {"bytes": f.stat().st_size, "sha256": sha256_file(f), "run_id": self.metadata["run_id"],
                     "version": self.metadata["versions"].get("sim")}
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
        """Mark the run ``failed`` (``interrupted`` for SIGINT, SIGTERM) with the error, and release the lock.

        A second signal cannot cut this short (SIGINT and SIGTERM wait until it is done), and a
        disk that filled up still takes the status: the space held by ``.ehp.reserve`` since
        :meth:`open` is freed first.
        """
        msg = str(exc).splitlines()[0][:300] if str(exc) else ""
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        fields = {"status": status, "end_time": now_iso(), "error": f"{type(exc).__name__}: {msg}".rstrip(": ")}
        with _signals_held():
            try:
                try:
                    self.write_metadata(**fields)
                except OSError:
                    self._unreserve()
                    self.write_metadata(**fields)
            finally:
                self.close()

    def saved(self) -> str:
        """What this run has finished, in words (``3 of 8 parts``), for the message of an interrupted command."""
        expected = self.metadata.get("parts_expected") or {}
        done = sum(min(len(self.manifest["parts"].get(t, {})), n) for t, n in expected.items())
        outputs = len([n for n in self.manifest["files"] if n != "summary.json"])
        parts = f"{done} of {sum(expected.values())} parts" if expected else "no part yet"
        return parts + (f" and {outputs} output file{'s' if outputs != 1 else ''}" if outputs else "")

    def _reserve(self) -> None:
        """Hold a little disk space (``.ehp.reserve``) so that a full disk can still take the final status."""
        try:  # a new file: whatever had the name (a hard link, a FIFO) is unlinked, never written into
            (self.path / RESERVE_NAME).unlink(missing_ok=True)
            fd = os.open(self.path / RESERVE_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(b"\0" * 65536)
        except OSError:
            self._unreserve()

    def _unreserve(self) -> None:
        try:
            (self.path / RESERVE_NAME).unlink(missing_ok=True)
        except OSError:
            pass

    def close(self) -> None:
        """Release the lock (idempotent); the status is left as it is."""
        if self._token is not None:
            self._unreserve()
            release_lock(self.path, self._token)
            self._token = None

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None and self._token is not None:
            self.fail(exc)
        self.close()

