"""Progress bars: one rule for the command line and the Python API.

``progress=None`` means "on when stderr is a terminal" (interactive use); ``True``/``False``
force it. Bars go to stderr, count whole units (points, jumps, samples, time steps).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

__all__ = ["progress_enabled", "progress_bar", "slow_step"]


def progress_enabled(progress: bool | None) -> bool:
    """``progress`` itself, or when ``None`` whether stderr is a terminal (interactive use)."""
    if progress is None:
        try:
            return bool(sys.stderr.isatty())
        except (AttributeError, ValueError):
            return False
    return bool(progress)


def progress_bar(total: float, desc: str | None, unit: str, progress: bool | None, *, leave: bool = False,
                 delay: float = 0.0) -> tqdm:
    """A tqdm bar on stderr with an integer total (disabled unless :func:`progress_enabled`); ``delay``:
    seconds before it first shows (a quick step then prints nothing)."""
    return tqdm(total=int(round(total)), desc=desc, unit=unit, file=sys.stderr, disable=not progress_enabled(progress),
                dynamic_ncols=True, leave=leave, smoothing=0.1, delay=delay)


@contextmanager
def slow_step(message: str, progress: bool | None, after: float = 2.0) -> Iterator[None]:
    """Say ``message`` on stderr if the step inside takes longer than ``after`` seconds, then its time.

    For a step with no natural count (numba compiling a kernel on its first run): nothing is
    printed when it is quick or when progress is off (:func:`progress_enabled`).
    """
    if not progress_enabled(progress):
        yield
        return
    said = threading.Event()
    t0 = time.perf_counter()

    def say() -> None:
        said.set()
        print(f"{message} ...", file=sys.stderr, flush=True)

    timer = threading.Timer(after, say)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        if said.is_set():
            print(f"{message}: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
