"""Progress bars: one rule for the command line and the Python API.

``progress=None`` means "on when stderr is a terminal" (interactive use); ``True``/``False``
force it. Bars go to stderr, count whole units (points, jumps, samples, time steps).
"""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_enabled", "progress_bar"]


def progress_enabled(progress: bool | None) -> bool:
    """``progress`` itself, or when ``None`` whether stderr is a terminal (interactive use)."""
    if progress is None:
        try:
            return bool(sys.stderr.isatty())
        except (AttributeError, ValueError):
            return False
    return bool(progress)


def progress_bar(total: float, desc: str | None, unit: str, progress: bool | None, *, leave: bool = False) -> tqdm:
    """A tqdm bar on stderr with an integer total (disabled unless :func:`progress_enabled`)."""
    return tqdm(total=int(round(total)), desc=desc, unit=unit, file=sys.stderr, disable=not progress_enabled(progress),
                dynamic_ncols=True, leave=leave, smoothing=0.1)
