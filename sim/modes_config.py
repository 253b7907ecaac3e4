"""Several modes in the config (docs/modes.md): ``[mode] omega`` a list of K >= 2 quanta.

``config.mode`` is then a :class:`ModesConfig`, the couplings are a list of K
(``conductor.M`` of kind ``matrix``, ``conductor.coupling`` of kind ``double_dot``, or an
array of shape (K, n, n) in ``conductor.file``), and ``phonon_bath.gamma`` is a number or a
list of K. Every one-mode route refuses such a config with a ConfigError naming the route.
``conductor.file`` (an ``.npz`` with H, gamma_L, gamma_R, M) serves one mode or several.

:mod:`sim.config` imports this module (one way: it builds on :mod:`sim.config_base` only) and
re-exports :class:`ModesConfig`; :func:`sim.config.one_mode_config` picks one mode out.
"""

from __future__ import annotations

import copy
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from . import guards
from .config_base import ConfigError, _matrix, _num, _rate_matrix
from .files import open_input


class ConductorConfig(Protocol):
    """What the mode parsers read of a conductor section (:class:`sim.config.ConductorConfig` has it);
    a protocol, so that this module does not import the config that imports it."""

    kind: str
    params: dict[str, Any]

__all__ = ["ModesConfig", "check_lamb_shift"]

_COVARIANCE_ROUTES = ("several modes run on the covariance route: ehp steady, ehp threshold, ehp sweep, "
                      "ehp run and ehp evolve --method rate (or --method lindblad, ehp steady --lindblad on the "
                      "truncated Fock space), and through ehp trajectories, ehp stats and ehp crosscheck; "
                      "see docs/modes.md")


def _one_mode_message(what: str) -> str:
    return f"{what}: this route takes one mode; {_COVARIANCE_ROUTES}"


@dataclass(frozen=True)
class ModesConfig:
    r"""``[mode]`` of several modes: ``omega`` a list of K >= 2 quanta (> 0, energy units).

    ``coherence_width`` (energy, >= 0; default: unset, resolved from the rates and the baths)
    groups the modes into clusters: sorted quanta whose neighbours differ by at most the width
    share a cluster and keep their cross terms, exactly degenerate quanta always do; between
    clusters the cross terms are dropped (secular approximation). Within a cluster every rate
    matrix and ph-bath occupation is taken at one common frequency (the midpoint of its quanta:
    the unified GKLS rule), which keeps thermodynamic equilibrium exact at zero bias.

    The default width (:func:`sim.covariance.default_coherence_width`) is ``sqrt(Gamma_max E)``:
    ``Gamma_max`` the largest total jump rate of one mode, ``E`` the smallest positive of the
    temperatures and the conductor's resonance width. Splitting modes ``Delta`` apart errs by
    about ``Gamma/Delta`` (the dropped cross terms), keeping them together by about ``Delta/E``
    (the common frequency); that width balances the two. ``0``: only exactly degenerate modes
    share a cluster (the modes are then exactly independent one-mode models). See docs/modes.md.
    """

    omegas: tuple[float, ...]
    coherence_width: float | None = None
    lamb_shift: bool = False

    def __post_init__(self) -> None:
        check_lamb_shift(self.lamb_shift)
        object.__setattr__(self, "omegas", _number_list("mode.omega", self.omegas, gt=0, scale=True))
        if len(self.omegas) < 2:
            raise ConfigError(f"mode.omega as a list needs K >= 2 quanta (give one mode as a number), "
                              f"got {list(self.omegas)!r}")
        if self.coherence_width is not None:
            object.__setattr__(self, "coherence_width", _num("mode.coherence_width", self.coherence_width, ge=0,
                                                             scale=True))

    @property
    def n_modes(self) -> int:
        return len(self.omegas)

    @property
    def omega(self) -> float:
        """Refused: a config of several modes has no single quantum (one-mode routes end here)."""
        raise ConfigError(_one_mode_message(f"mode.omega = {list(self.omegas)!r} gives K = {self.n_modes} modes"))

    @property
    def delta(self) -> float | None:
        """The cluster width given to :func:`sim.covariance.mode_system` (None: unset, the default resolved there)."""
        return self.coherence_width

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"omega": list(self.omegas)}
        if self.coherence_width is not None:
            d["coherence_width"] = self.coherence_width
        if self.lamb_shift:  # false (the default) is left out: configs without the key resolve as before
            d["lamb_shift"] = True
        return d


def check_lamb_shift(v: Any) -> None:
    """``mode.lamb_shift`` must be a TOML boolean (one-line :class:`ConfigError` otherwise)."""
    if not isinstance(v, bool):
        raise ConfigError(f"mode.lamb_shift must be true or false (include the Lamb shift of the modes in their "
                          f"frequencies and drift matrix, or neglect it), got {v!r}")


def _number_list(key: str, v: Any, **rule: Any) -> tuple[float, ...]:
    if not isinstance(v, list | tuple) or not v:
        raise ConfigError(f"{key} must be a number or a list of numbers, got {v!r}")
    return tuple(_num(f"{key}[{i}]", x, **rule) for i, x in enumerate(v))


def _coupling_value(v: Any) -> float | list[float]:
    """``conductor.coupling`` of the double dot: one number, or a list of K (one per mode)."""
    if isinstance(v, list):
        if len(v) < 2:
            raise ConfigError(f"conductor.coupling as a list gives one coupling per mode and needs K >= 2 of them "
                              f"(give one mode's coupling as a number), got {v!r}")
        return list(_number_list("conductor.coupling", v))
    return _num("conductor.coupling", v)


def _is_stack(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(m, list) and m and isinstance(m[0], list) for m in v)


def _coupling_matrices(d: dict[str, Any], n: int) -> dict[str, Any]:
    """``M`` (and ``M_imag``) of kind ``matrix``: one n x n matrix or a list of K of them."""
    out: dict[str, Any] = {}
    stacked = _is_stack(d["M"])
    if stacked and len(d["M"]) < 2:
        raise ConfigError("conductor.M as a list of matrices gives one coupling per mode and needs K >= 2 of them "
                          f"(give one mode's coupling as one n x n matrix), got a list of {len(d['M'])}")
    for k in ("M", "M_imag"):
        if k not in d:
            continue
        v = d[k]
        if _is_stack(v) != stacked:
            raise ConfigError(f"conductor.{k} must have the form of conductor.M ("
                              f"{'a list of K matrices' if stacked else 'one n x n matrix'}), got {v!r}")
        if stacked:
            if k == "M_imag" and len(v) != len(d["M"]):
                raise ConfigError(f"conductor.M_imag must be a list of K = {len(d['M'])} matrices like conductor.M, "
                                  f"got {len(v)}")
            out[k] = [[list(r) for r in _matrix(f"conductor.{k}[{i}]", m, n)] for i, m in enumerate(v)]
        else:
            out[k] = [list(r) for r in _matrix(f"conductor.{k}", v, n)]
    return out


def _conductor_n_modes(c: ConductorConfig) -> int:
    p = c.params
    if c.kind == "double_dot":
        return len(p["coupling"]) if isinstance(p["coupling"], list) else 1
    if c.kind == "matrix" and "file" in p:
        return int(_npz_arrays(p["file"])["M"].shape[0])
    if c.kind == "matrix":
        return len(p["M"]) if _is_stack(p["M"]) else 1
    return 1


def _file_params(d: dict[str, Any]) -> dict[str, Any]:
    """``conductor.file``: an ``.npz`` with H, gamma_L, gamma_R, M (validated on load)."""
    inline = sorted(set(d) - {"file", "file_sha256"})
    if inline:
        raise ConfigError(f"conductor.file replaces H, gamma_L, gamma_R and M: give either file or the matrices, "
                          f"got both (file and {', '.join(inline)})")
    f = d["file"]
    if not isinstance(f, str) or not f:
        raise ConfigError(f"conductor.file must be a path to an .npz file, got {f!r}")
    _npz_arrays(f)
    sha = _file_sha256(f)
    want = d.get("file_sha256")
    if want is not None and want != sha:
        raise ConfigError(f"conductor.file_sha256 = {str(want)[:16]!r}...: the model {f!r} has changed since (its "
                          f"sha256 is now {sha[:16]}...); drop file_sha256 to use the file as it is now")
    # the file's contents are part of the resolved config, so a run directory of the old file is another run
    return {"file": f, "file_sha256": sha}


def _file_sha256(path: str) -> str:
    """sha256 of the model file (a regular file within the memory budget, as :func:`_npz_arrays` reads it)."""
    import hashlib

    from .files import read_bytes

    return hashlib.sha256(read_bytes(path, "conductor.file", guards.MEMORY_BUDGET, exc=ConfigError)).hexdigest()


_NPZ_CACHE: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}


def _read_npz(f: BinaryIO, path: str, what: str = "conductor.file") -> dict[str, np.ndarray]:
    """The arrays of an open ``.npz`` (a zip archive of ``.npy`` members, no pickles), checked
    against the memory budget before they are decompressed."""
    def bad(why: str) -> ConfigError:
        return ConfigError(f"{what} {path!r} cannot be read as an .npz file (numpy.savez): {why}")

    head = f.read(4)
    if not head:
        raise bad("the file is empty")
    if head not in (b"PK\x03\x04", b"PK\x05\x06"):  # a zip archive (an empty one ends in its directory)
        raise bad(f"it is not a zip archive (it starts with {head!r})")
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            members = zf.infolist()
            size = sum(m.file_size for m in members)
            # astype(complex), the Hermitian parts and the check temporaries: about 8 copies of the float data
            guards.check_memory(f"{what} {Path(path).name}: {len(members)} arrays of "
                                f"{guards.format_bytes(size)}", 8.0 * size, "use a smaller model")
            for m in members:  # each .npy header's shape must fit its member (numpy allocates the shape first)
                if not m.filename.endswith(".npy"):
                    raise bad(f"member {m.filename!r} is not an .npy array")
                with zf.open(m) as g:
                    version = np.lib.format.read_magic(g)
                    read = {(1, 0): np.lib.format.read_array_header_1_0,
                            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read is None:
                        continue  # np.load reads (or refuses) other versions itself
                    shape, _, dtype = read(g)
                    need = math.prod(shape) * dtype.itemsize
                    if not dtype.hasobject and need > m.file_size:
                        raise bad(f"array {m.filename} claims shape {shape} of {dtype} ({guards.format_bytes(need)})"
                                  f" but holds {guards.format_bytes(m.file_size)}")
        f.seek(0)
        with np.load(f, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):  # pragma: no cover (a zip archive always loads as one)
                raise bad("it is not an .npz archive")
            return {k: z[k] for k in z.files}
    except guards.ResourceError as e:
        raise ConfigError(str(e)) from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, NotImplementedError) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else (str(e) or type(e).__name__)
        raise bad(f"damaged or not numeric ({why})") from None


def _npz_arrays(path: str) -> dict[str, np.ndarray]:
    """Read and validate ``conductor.file`` (cached by path, size and modification time).

    Keys ``H``, ``gamma_L``, ``gamma_R`` (n, n) and ``M`` (n, n) or (K, n, n); real or
    complex, finite; ``H`` and every ``M^k`` Hermitian, ``gamma_a`` Hermitian and positive
    semi-definite. Returns complex arrays, ``M`` as (K, n, n).
    """
    p = Path(path)
    with open_input(p, "conductor.file", guards.MEMORY_BUDGET, exc=ConfigError) as f:  # regular files only
        st = os.fstat(f.fileno())
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        if key in _NPZ_CACHE:
            return _NPZ_CACHE[key]
        raw = _read_npz(f, path)
    name = f"conductor.file {p.name}"
    missing = [k for k in ("H", "gamma_L", "gamma_R", "M") if k not in raw]
    extra = sorted(set(raw) - {"H", "gamma_L", "gamma_R", "M"})
    if missing or extra:
        raise ConfigError(f"{name}: must hold the arrays H, gamma_L, gamma_R, M"
                          + (f"; missing {', '.join(missing)}" if missing else "")
                          + (f"; unknown {', '.join(extra)}" if extra else ""))
    out = {}
    for k, a in raw.items():
        if a.dtype.kind not in "iufc":
            raise ConfigError(f"{name}: {k} must be a real or complex numeric array, got dtype {a.dtype}")
        a = a.astype(complex)
        if not np.all(np.isfinite(a)):
            raise ConfigError(f"{name}: {k} must be finite (no NaN or inf)")
        if a.size and np.max(np.abs(a)) > guards.DOMAIN_MAX:
            raise ConfigError(f"{name}: {k} must be within +-{guards.DOMAIN_MAX:g} (the numeric domain), "
                              f"got max |{k}| = {np.max(np.abs(a)):g}")
        out[k] = a
    H = out["H"]
    if H.ndim != 2 or H.shape[0] != H.shape[1] or H.shape[0] < 1:
        raise ConfigError(f"{name}: H must have shape (n, n), got {H.shape}")
    n = H.shape[0]
    try:  # as for inline matrices: the exact channel rates need O(n^4) memory per mode quantum
        guards.check_memory(f"{name}: H of size {n} x {n}", 512.0 * n**4,
                            "the exact channel rates need O(n^4) memory; use a smaller central region")
    except guards.ResourceError as e:
        raise ConfigError(str(e)) from None
    for k in ("gamma_L", "gamma_R"):
        if out[k].shape != (n, n):
            raise ConfigError(f"{name}: {k} must have shape (n, n) with n = {n} from H, got {out[k].shape}")
    M = out["M"]
    if M.ndim == 2:
        M = M[None]
    if M.ndim != 3 or M.shape[1:] != (n, n) or M.shape[0] < 1:
        raise ConfigError(f"{name}: M must have shape (K, n, n) with n = {n} from H, got {out['M'].shape}")
    out["M"] = M
    for k, a in (("H", H), ("gamma_L", out["gamma_L"]), ("gamma_R", out["gamma_R"]), *(
            (f"M[{i}]", m) for i, m in enumerate(M))):  # round-off relative to each matrix's own scale
        guards.check_hermitian(f"{name}: {k}", a, ConfigError, shown=False)
    for k in ("gamma_L", "gamma_R"):
        _rate_matrix(f"{name}: {k}", out[k])
    for k in ("H", "gamma_L", "gamma_R"):
        out[k] = 0.5 * (out[k] + out[k].conj().T)
    out["M"] = 0.5 * (M + M.conj().transpose(0, 2, 1))
    for a in out.values():
        a.setflags(write=False)
    _NPZ_CACHE[key] = out
    return out


def _resolve_files(d: dict[str, Any], base: Path) -> dict[str, Any]:
    """``conductor.file`` and ``mode.potential.file`` relative to the config file's directory -> absolute paths."""
    cond = d.get("conductor")
    if isinstance(cond, dict) and isinstance(cond.get("file"), str) and cond["file"]:
        f = Path(cond["file"]).expanduser()
        if not f.is_absolute():
            d = copy.deepcopy(d)
            d["conductor"]["file"] = str((base / f).resolve())
    mode = d.get("mode")
    pot = mode.get("potential") if isinstance(mode, dict) else None
    if isinstance(pot, dict) and isinstance(pot.get("file"), str) and pot["file"]:
        f = Path(pot["file"]).expanduser()
        if not f.is_absolute():
            d = copy.deepcopy(d)
            d["mode"]["potential"]["file"] = str((base / f).resolve())
    return d
