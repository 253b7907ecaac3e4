"""Run directories: streaming parquet parts, ``metadata.json``, ``summary.json`` (docs/tutorial.md).

Layout of a run directory ``DIR``::

    DIR/metadata.json                      resolved config, seed, engine, versions, git commit, times
    DIR/summary.json                       the command's figures (written at the end)
    DIR/<table>.parquet/part-00000.parquet one parquet file per batch ("part"), read back as one table

Rules (docs/tutorial.md):

- a new or empty ``DIR`` is used;
- an existing ``DIR`` written by the same command and config (the *identity* stored
  in ``metadata.json``) is resumed: finished parts are kept and not recomputed;
- any other non-empty ``DIR`` is refused with :class:`sim.config.ConfigError` (the
  CLI's exit 2) unless ``overwrite=True``, which deletes this module's outputs
  (``metadata.json``, ``summary.json``, ``*.parquet``) and nothing else.

A part is written to a hidden temporary file and renamed into place, so a killed
run never leaves a half-written part; readers (pyarrow datasets) skip hidden files.
A batch that writes several tables writes its *commit* table last; the commit part
carries the batch's statistics in its parquet key-value metadata
(:meth:`RunDirectory.part_meta`), so a resumed run needs no recomputation.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .config import ConfigError

__all__ = [
    "RunDirectory", "read_table", "part_files", "package_versions", "git_commit", "jsonable", "write_json",
    "now_iso", "PACKAGES",
]

#: Packages whose versions go into ``metadata.json`` (``sim`` is this package, ehp-sim).
PACKAGES: tuple[str, ...] = ("numpy", "scipy", "qutip", "pandas", "pyarrow", "numba")
_META_KEY = b"sim:part"
_OWN = ("metadata.json", "summary.json")


def now_iso() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


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


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)


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


def part_files(path: Path | str, table: str) -> list[Path]:
    """The finished part files of ``table`` in a run directory, in order."""
    d = Path(path) / f"{table}.parquet"
    if d.is_file():
        return [d]
    return sorted(d.glob("part-*.parquet")) if d.is_dir() else []


def read_table(path: Path | str, table: str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read ``DIR/<table>.parquet`` (one file or a folder of parts) into one DataFrame.

    Raises
    ------
    FileNotFoundError
        The run directory has no such table.
    """
    files = part_files(path, table)
    if not files:
        raise FileNotFoundError(f"{Path(path) / (table + '.parquet')} does not exist or holds no parts")
    frames = [pq.read_table(f, columns=columns).to_pandas() for f in files]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


class RunDirectory:
    """A run directory opened for writing (see the module doc for the rules).

    Use :meth:`open`; ``resumed`` says whether an earlier run of the same identity
    was found there.
    """

    def __init__(self, path: Path, metadata: dict[str, Any], resumed: bool) -> None:
        self.path = path
        self.metadata = metadata
        self.resumed = resumed

    @classmethod
    def open(cls, path: Path | str, identity: dict[str, Any], *, overwrite: bool = False,
             metadata: dict[str, Any] | None = None) -> RunDirectory:
        """Use, resume or refuse ``path`` for a run with this ``identity``.

        Parameters
        ----------
        identity
            What makes two runs the same (command, resolved config, run parameters, layout).
        overwrite
            Delete this module's outputs in a directory that holds a different run.
        metadata
            Extra top-level fields for ``metadata.json`` (config, seed, engine, ...).

        Raises
        ------
        ConfigError
            ``path`` is a file, or holds something else and ``overwrite`` is False.
        """
        p = Path(path)
        ident = json.loads(json.dumps(jsonable(identity), allow_nan=False))
        if p.exists() and not p.is_dir():
            raise ConfigError(f"--out {str(p)!r} exists and is not a directory")
        meta_path = p / "metadata.json"
        resumed = False
        old: dict[str, Any] | None = None
        if p.is_dir() and any(p.iterdir()):
            try:
                old = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                old = None
            if old is not None and old.get("identity") == ident:
                resumed = True
            elif not overwrite:
                if old is None or "identity" not in old:
                    why = "it is not empty and holds no run (no readable metadata.json)"
                else:
                    diff = _diff(old["identity"], ident)
                    why = "it holds a different run (" + "; ".join(diff[:4]) + ("; ..." if len(diff) > 4 else "") + ")"
                raise ConfigError(f"refusing to write to {str(p)!r}: {why}; choose another --out or pass --overwrite")
            else:
                cls._clear(p)
                old = None
        p.mkdir(parents=True, exist_ok=True)
        start = now_iso()
        if resumed and old is not None:
            meta = old
            meta.setdefault("resumed_at", []).append(start)
            meta["status"] = "running"
        else:
            meta = {"identity": ident, **(metadata or {}), "versions": package_versions(), "git_commit": git_commit(),
                    "start_time": start, "wall_s": None, "status": "running"}
        rd = cls(p, meta, resumed)
        rd.write_metadata()
        return rd

    @staticmethod
    def _clear(p: Path) -> None:
        for entry in p.iterdir():
            if entry.name in _OWN or entry.name.endswith(".parquet"):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()

    def write_metadata(self, **fields: Any) -> Path:
        """Update fields of ``metadata.json`` and write it (atomically)."""
        self.metadata.update(fields)
        path = self.path / "metadata.json"
        write_json(path, self.metadata)
        return path

    def write_summary(self, summary: dict[str, Any]) -> Path:
        path = self.path / "summary.json"
        write_json(path, summary)
        return path

    def part_path(self, table: str, index: int) -> Path:
        return self.path / f"{table}.parquet" / f"part-{index:05d}.parquet"

    def has_part(self, table: str, index: int) -> bool:
        return self.part_path(table, index).is_file()

    def write_part(self, table: str, index: int, df: pd.DataFrame, meta: dict[str, Any] | None = None) -> Path:
        """Write one part of ``table`` (atomically); ``meta`` goes into the parquet key-value metadata."""
        path = self.part_path(table, index)
        path.parent.mkdir(exist_ok=True)
        tab = pa.Table.from_pandas(df, preserve_index=False)
        if meta is not None:
            blob = json.dumps(jsonable(meta), allow_nan=False).encode()
            tab = tab.replace_schema_metadata({**(tab.schema.metadata or {}), _META_KEY: blob})
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(tab, tmp)
        os.replace(tmp, path)
        return path

    def part_meta(self, table: str, index: int) -> dict[str, Any]:
        """The ``meta`` stored with a part by :meth:`write_part` (empty dict if none)."""
        md = pq.read_schema(self.part_path(table, index)).metadata or {}
        return json.loads(md[_META_KEY]) if _META_KEY in md else {}

    def parts(self, table: str) -> list[int]:
        """Indices of the finished parts of ``table``."""
        return [int(f.stem.split("-")[1]) for f in part_files(self.path, table) if f.parent.name == f"{table}.parquet"]
