"""Reading a run directory: verification against the manifest and the parts' identities (see :mod:`sim.io`).

Readers refuse what they cannot prove: a run that is not complete (:class:`RunIncomplete`), a
part that is missing or damaged, and a part, link or special file that does not belong to the
run (:class:`sim.runsafe.RunTampered`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .config import ConfigError
from .runfiles import (
    _CATS_KEY,
    _PART_RE,
    MANIFEST_NAME,
    RunIncomplete,
    _part_name,
    _read_manifest,
    _write_manifest,
    sha256_file,
    write_json,
)
from .runlock import LOCK_NAME, lock_owner, read_json_or_none
from .runsafe import MAX_PARTS, RUN_KEY, RunTampered, check_table_name, check_utf8, entry_stat, run_id

__all__ = ["RunCheck", "check_run", "part_files", "part_files_on_disk", "read_table", "run_metadata",
           "trajectory_partial_view"]


@dataclass(frozen=True)
class _Author:
    """Who may have written a run's parts: its ``run_id`` (None: written before parts had identities), the
    versions, and the part count of each table (``parts_expected``: every part names the count it belongs to)."""

    run_id: str | None
    versions: frozenset[str]
    expected: dict[str, int]


def _author(meta: dict[str, Any]) -> _Author:
    vers = {str((meta.get("versions") or {}).get("sim"))}
    vers |= {str((v or {}).get("sim")) for v in meta.get("versions_history") or [] if isinstance(v, dict)}
    rid = meta.get("run_id")
    expected = meta.get("parts_expected") if isinstance(meta.get("parts_expected"), dict) else {}
    return _Author(str(rid) if rid is not None else None, frozenset(vers), dict(expected))


def _load_meta(p: Path) -> dict[str, Any] | None:
    """``p/metadata.json`` of a run (None when there is none), its names and its ``run_id`` checked.

    Raises
    ------
    RunTampered
        It names a table that is not a table name, an impossible part count, or its identity
        does not hash to its ``run_id`` (edited after the run was written).
    """
    meta = read_json_or_none(p / "metadata.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("identity"), dict):
        return None
    where = f"{str(p / 'metadata.json')!r}"
    for key, kind, what in (("status", str, "a word"), ("run_id", str, "a hex digest"), ("versions", dict, "a table"),
                            ("versions_history", list, "a list"), ("partial", dict, "a table")):
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise RunTampered(f"{where}: {key} = {str(meta[key])[:40]!r} is not {what}; the run directory was edited "
                              "or damaged")
    if any(not isinstance(v, dict) for v in meta.get("versions_history") or []):
        raise RunTampered(f"{where}: versions_history holds an entry that is not a table of versions")
    expected = meta.get("parts_expected") or {}
    if not isinstance(expected, dict):
        raise RunTampered(f"{where}: parts_expected is not a table of part counts")
    for t, n in expected.items():
        check_table_name(t, where)
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_PARTS:
            raise RunTampered(f"{where}: parts_expected.{t} = {n!r} is not an integer in [0, {MAX_PARTS}]")
    rid = meta.get("run_id")
    if rid is not None and rid != run_id(meta["identity"]):
        raise RunTampered(f"{where}: its identity does not hash to its run_id ({str(rid)[:12]}...): the file was "
                          "edited after the run was written, so its parts cannot be trusted to belong to it")
    return meta


def run_metadata(path: Path | str) -> dict[str, Any]:
    """The verified ``metadata.json`` of a run directory (regular file, field types, ``run_id``; :func:`_load_meta`).

    Raises
    ------
    ConfigError
        ``path`` holds no run; :class:`RunTampered` for a metadata.json that fails verification.
    """
    meta = _load_meta(Path(path))
    if meta is None:
        raise ConfigError(f"{str(path)!r} is not a run directory (no readable metadata.json)")
    return meta


def _check_identity(p: Path, name: str, entry: dict[str, Any], author: _Author | None, checksums: bool) -> str | None:
    """Refuse (:class:`RunTampered`) the part ``p/name`` when it does not prove it belongs to this run.

    Returns why the part is damaged when its footer cannot be read (None when it proves its identity).
    """
    if author is None:  # a plain folder of parquet files, not a run
        return None
    table, index = name.split(".parquet/part-")[0], int(name[-13:-8])
    try:
        md = pq.read_schema(p / name).metadata or {}
        rec = json.loads(md[RUN_KEY]) if RUN_KEY in md else None
    except (OSError, ValueError, pa.ArrowException):
        if not checksums and sha256_file(p / name) != entry.get("sha256"):
            return "damaged (its sha256 does not match the manifest)"
        rec = None
    fix = ("it was copied in from another run or the directory was edited; delete it and run the same command "
           "again to recompute it, or use --overwrite")
    if author.run_id is None:  # a run from before part identities: only parts without one can belong to it
        if rec is not None or entry.get("run_id") is not None:
            raise RunTampered(f"{str(p / name)!r} names a run (run_id {str((rec or entry).get('run_id'))[:12]}...) "
                              "but metadata.json has no run_id, as only an ehp from before part identities wrote: "
                              f"{fix}")
        return None
    if not isinstance(rec, dict):
        raise RunTampered(f"{str(p / name)!r} carries no record of the run it belongs to: {fix}")
    if rec.get("run_id") != author.run_id or entry.get("run_id") != author.run_id:
        other = rec.get("run_id") if rec.get("run_id") != author.run_id else entry.get("run_id")
        raise RunTampered(f"{str(p / name)!r} belongs to another run (run_id {str(other)[:12]}..., this run is "
                          f"{author.run_id[:12]}...): {fix}")
    if rec.get("table") != table or rec.get("index") != index or rec.get("batch") != entry.get("batch"):
        raise RunTampered(f"{str(p / name)!r} is part {rec.get('index')!r} of table {rec.get('table')!r} (batch "
                          f"{rec.get('batch')}), not part {index} of {table!r} (batch {entry.get('batch')}): {fix}")
    if "of" in rec and (rec.get("of") != author.expected.get(table) or entry.get("of") != rec.get("of")):
        raise RunTampered(f"{str(p / name)!r} is one of {rec.get('of')} parts of table {table!r}, but metadata.json "
                          f"expects {author.expected.get(table)}: parts or their count were removed or added; {fix}")
    if rec.get("version") not in author.versions or entry.get("version") != rec.get("version"):
        raise RunTampered(f"{str(p / name)!r} was written by ehp-sim {rec.get('version')!r}, which did not write this "
                          f"run ({', '.join(sorted(author.versions))}): {fix}")
    return None


_SHA_SEEN: dict[tuple[int, int, int, int], str] = {}  # (device, inode, size, mtime_ns) -> sha256, this process


def _sha256_cached(f: Path, st: os.stat_result) -> str:
    """sha256 of ``f``, computed once per process for an unchanged file (same inode, size and mtime)."""
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _SHA_SEEN:
        if len(_SHA_SEEN) > 100_000:
            _SHA_SEEN.clear()
        _SHA_SEEN[key] = sha256_file(f)
    return _SHA_SEEN[key]


def _verify_entry(p: Path, name: str, entry: dict[str, Any], checksums: bool, author: _Author | None = None
                  ) -> str | None:
    """Why the file ``p/name`` does not match its manifest ``entry`` (None if it does).

    Raises
    ------
    RunTampered
        ``name`` passes through a symbolic link or is not a regular file, or the part belongs to
        another run (:func:`_check_identity`).
    """
    st = entry_stat(p, name)
    if st is None:
        return "missing"
    if st.st_size != entry.get("bytes"):
        return f"truncated or replaced ({st.st_size} bytes, {entry.get('bytes')} recorded)"
    if checksums and _sha256_cached(p / name, st) != entry.get("sha256"):
        return "damaged (its sha256 does not match the manifest)"
    if ".parquet/part-" in name:
        return _check_identity(p, name, entry, author, checksums)
    if author is not None and author.run_id is not None and entry.get("run_id") != author.run_id:
        raise RunTampered(f"{str(p / name)!r} is recorded as an output of another run (run_id "
                          f"{str(entry.get('run_id'))[:12]}..., this run is {author.run_id[:12]}...): the manifest was "
                          "edited or copied in; run the command again with --overwrite")
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
        if self.owner is not None and "malformed" in self.owner:
            why.append(f"it is locked, but {self.owner['malformed']}; if no ehp command is writing there, delete "
                       f"{str(self.path / LOCK_NAME)!r}")
        elif self.owner is not None:
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
    check_utf8(p, "run directory")
    meta = _load_meta(p)
    if meta is None:
        raise ConfigError(f"{str(p)!r} is not a run directory (no readable metadata.json)")
    manifest = _read_manifest(p)
    author = _author(meta)
    expected = {str(k): int(v) for k, v in (meta.get("parts_expected") or {}).items()}
    good: dict[str, list[int]] = {}
    missing: list[str] = []
    damaged: list[str] = []
    if not isinstance(manifest, dict) and meta.get("run_id") is not None:  # ours always writes one
        raise RunTampered(f"{str(p / MANIFEST_NAME)!r} is missing, though metadata.json names this run's run_id: "
                          "without it no part can be verified; run the same command with --overwrite to recompute")
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
                why = _verify_entry(p, recorded[key]["file"], recorded[key], checksums, author)
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
    """The part files of ``table`` present on disk, unverified (``DIR/<table>.parquet`` itself if a file).

    Links and special files are refused (:class:`RunTampered`), never followed.
    """
    p = Path(path)
    check_table_name(table, str(p))
    d = p / f"{table}.parquet"
    try:
        st = os.lstat(d)
    except (FileNotFoundError, NotADirectoryError):
        return []
    if stat.S_ISREG(st.st_mode):
        return [d]
    if not stat.S_ISDIR(st.st_mode):
        entry_stat(p, d.name + "/x")  # raises: a link or a special file
    out = sorted(f for f in d.iterdir() if _PART_RE.match(f.name))
    for f in out:
        entry_stat(p, f"{d.name}/{f.name}")
    return out


def _verified(path: Path | str, table: str, partial: bool, checksums: bool) -> list[tuple[Path, dict | None]]:
    p = Path(path)
    check_utf8(p, "run directory")
    meta = _load_meta(p)
    if meta is None:  # a plain folder of parquet files, not a run
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
    return []  # not in the manifest: files on disk under that name are no part of this run


def part_files(path: Path | str, table: str, *, partial: bool = False) -> list[Path]:
    """The finished part files of ``table`` in a run directory, in order, checked against the manifest.

    Sizes and sha256 are checked (each file hashed once per process while it is unchanged), so a
    damaged part of the right size is refused here too, not only by :func:`read_table`.
    A folder without ``metadata.json`` is read as a plain folder of parts.

    Raises
    ------
    RunIncomplete
        The run is not complete (status, missing or damaged parts) and ``partial`` is False.
        With ``partial=True`` only the verified parts are returned.
    """
    return [f for f, _ in _verified(path, table, partial, checksums=True)]


def _read_part(f: Path, entry: dict | None, columns: list[str] | None) -> pd.DataFrame:
    try:
        data = f.read_bytes()
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


def trajectory_partial_view(check: RunCheck, dest: Path | str) -> dict[str, Any]:
    """Build in ``dest`` a complete run made of the intact batches of an incomplete trajectory run.

    A batch is kept when its parts of every table of the run (jumps, stops, and initial or
    trajectories) are intact.
    Trajectories are renumbered ``0 .. n_present - 1`` (in order) and ``identity.run.ntraj``
    becomes ``n_present``, so every reader of ``dest`` (and every estimator that takes the
    trajectory count from ``metadata.json``) sees ``n_present`` trajectories, not the configured
    count. Every part is copied (never linked) and carries the identity of the view.

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
    ident["run"]["ntraj"] = sum(min(bs, N - b * bs) for b in keep)
    rid = run_id(ident) if meta.get("run_id") is not None else None  # a run from before part identities stays one
    parts: dict[str, dict[str, Any]] = {t: {} for t in tables}
    offset = 0
    for k, b in enumerate(keep):
        count = min(bs, N - b * bs)
        shift = b * bs - offset
        for t in tables:
            entry = manifest["parts"][t][f"{b:05d}"]
            data = (src / entry["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise RunIncomplete(f"{str(src / entry['file'])!r} changed while being read")
            tab = pq.read_table(pa.BufferReader(data))
            if shift:
                col = tab.schema.get_field_index("traj")
                tab = tab.set_column(col, tab.schema.field(col),
                                     pc.subtract(tab.column(col), pa.scalar(shift, tab.schema.field(col).type)))
            new = {"file": _part_name(t, k)}
            if rid is not None:  # the part now belongs to the view: its identity says so
                rec = json.loads((tab.schema.metadata or {})[RUN_KEY])
                new.update(run_id=rid, version=rec.get("version"), batch=[offset, count], of=len(keep))
                rec.update(run_id=rid, index=k, batch=[offset, count], of=len(keep))
                tab = tab.replace_schema_metadata({**tab.schema.metadata, RUN_KEY: json.dumps(rec).encode()})
            out = dest / _part_name(t, k)
            out.parent.mkdir(exist_ok=True)
            pq.write_table(tab, out)
            parts[t][f"{k:05d}"] = {**new, "rows": tab.num_rows, "bytes": out.stat().st_size,
                                    "sha256": sha256_file(out)}
        offset += count
    missing = [b for b in range(nb) if b not in keep]
    record = {"ntraj_present": offset, "ntraj_configured": N, "batches_present": len(keep), "batches": nb,
              "missing": [f"batch {b} (trajectories {b * bs}..{min(N, (b + 1) * bs) - 1})" for b in missing],
              "problems": check.missing + check.damaged, "source": str(src.resolve()), "status": check.status}
    meta.update(status="complete", parts_expected={t: len(keep) for t in tables}, partial=record)
    if rid is not None:
        meta["run_id"] = rid
    _write_manifest(dest, {"parts": parts, "files": {}})
    write_json(dest / "metadata.json", meta)
    return record
