r"""Schedulers: where independent tasks run (serial, a process pool, Dask, or a Dask scheduler at tcp://).

Sweeps (:mod:`sim.sweep`) and trajectory batches (:mod:`sim.trajectories`) both map a
picklable function over tasks with :func:`run_tasks`, which yields results as they finish
and shows tqdm progress on stderr.

``auto`` (the default of ``ehp run``, ``ehp sweep`` and ``ehp trajectories``) runs tasks
serially and moves the rest to a process pool only when the measured time per task says
the remaining work clearly outweighs the pool's start-up (spawned workers import numpy,
scipy and numba and load the compiled kernels) on the cores that are actually idle
(``os.getloadavg``): small work and a busy machine stay serial, so ``auto`` is never much
slower than ``serial``.

``processes`` uses the *spawn* start method (safe in a process with threads, and what
macOS, Windows and Python >= 3.14 do anyway): a script that uses it must guard its entry
point with ``if __name__ == "__main__":``, and code piped to ``python -`` cannot use it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from tqdm import tqdm

from .config import ConfigError
from .progress import progress_bar

__all__ = ["Scheduler", "run_tasks", "available_workers", "idle_workers", "KINDS"]

#: scheduler kinds (plus a Dask address ``tcp://HOST:PORT``)
KINDS = ("auto", "serial", "processes", "dask")

#: seconds a spawned worker needs before its first task (imports, numba cache loading); a
#: deliberately high estimate: ``auto`` must not choose a pool that does not pay for itself
POOL_STARTUP_S = 4.0


MAX_WORKERS = 1024
"""Most worker processes one command starts (``--workers``; each imports numpy and scipy)."""


def available_workers() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def idle_workers(cores: int | None = None) -> int:
    """Cores that are idle now: ``cores`` minus the other runnable processes (1-minute load average)."""
    cores = available_workers() if cores is None else cores
    try:
        busy = max(0.0, os.getloadavg()[0] - 1.0)  # minus this process
    except (AttributeError, OSError):  # pragma: no cover - no load average
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


@dataclass(frozen=True)
class Scheduler:
    """Where tasks run.

    Attributes
    ----------
    kind
        ``"auto"`` (serial, or a process pool when the work pays for its start-up),
        ``"serial"``, ``"processes"`` or ``"dask"``.
    workers
        Number of worker processes (``processes``, ``dask`` LocalCluster); default: the cores available.
    address
        Address of an existing Dask scheduler (``tcp://HOST:PORT``); None starts a LocalCluster.
    """

    kind: str = "serial"
    workers: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"--scheduler must be auto, serial, processes, dask or tcp://HOST:PORT, got {self.kind!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or not 1 <= self.workers <= MAX_WORKERS):
            raise ConfigError(f"--workers must be an integer >= 1 and <= {MAX_WORKERS} (worker processes), got "
                              f"{self.workers!r}")
        if self.address is not None and self.kind != "dask":
            raise ConfigError("a scheduler address needs kind 'dask'")
        if self.address is not None:
            ok = re.fullmatch(r"(tcp|tls|ucx|ws|wss)://[^:/]+:\d+/?", self.address) or \
                self.address.startswith("inproc://")
            if not ok:
                raise ConfigError(f"--scheduler address must be tcp://HOST:PORT, got {self.address!r}")

    @classmethod
    def parse(cls, text: str | Scheduler | None, workers: int | None = None) -> Scheduler:
        """``auto``, ``serial``, ``processes``, ``dask`` or a Dask address such as ``tcp://127.0.0.1:8786``."""
        if isinstance(text, Scheduler):
            return text if workers is None else cls(text.kind, workers, text.address)
        text = (text or "serial").strip()
        if "://" in text:
            return cls("dask", workers, text)
        return cls(text, workers)

    @property
    def n_workers(self) -> int:
        return 1 if self.kind == "serial" else (self.workers or available_workers())

    def describe(self) -> str:
        if self.kind == "serial":
            return "serial"
        return self.address or f"{self.kind} ({self.n_workers} workers)"


def run_tasks(
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    scheduler: str | Scheduler = "serial",
    *,
    progress: bool | None = None,
    weights: Sequence[float] | None = None,
    desc: str | None = None,
    unit: str = "pt",
) -> Iterator[tuple[int, Any]]:
    """Map ``fn`` over ``tasks`` on a scheduler; yield ``(index, result)`` as tasks finish.

    Parameters
    ----------
    fn
        A picklable (module-level) function of one task, for ``processes`` and ``dask``.
    tasks
        The tasks; ``index`` in the yielded pairs is the position in this sequence.
    scheduler
        A :class:`Scheduler` or its text form (``serial``, ``processes``, ``dask``, ``tcp://HOST:PORT``).
    progress
        Show a tqdm bar on stderr, advanced by ``weights[index]`` per finished task (default 1);
        weights are rounded to integers (the bar shows integer counts).
    weights, desc, unit
        Progress units per task (e.g. points per chunk), the bar's label and its unit name.

    Notes
    -----
    Results arrive in completion order (any order except with ``serial``): the caller
    stores them by index. If ``fn`` raises, or the consumer stops early (``break``,
    ``KeyboardInterrupt``), tasks not yet started are cancelled and the workers are
    released (a LocalCluster is closed) before the exception propagates.
    """
    sched = Scheduler.parse(scheduler)
    tasks = list(tasks)
    w = [1] * len(tasks) if weights is None else [int(round(float(x))) for x in weights]
    if len(w) != len(tasks):
        raise ValueError(f"weights has {len(w)} entries for {len(tasks)} tasks")
    bar = progress_bar(sum(w), desc, unit, progress, leave=True)
    try:
        if not tasks:
            return
        if sched.kind == "serial":
            for i, t in enumerate(tasks):
                r = fn(t)
                bar.update(w[i])
                yield i, r
        elif sched.kind == "auto":
            yield from _run_auto(fn, tasks, sched, bar, w)
        elif sched.kind == "processes":
            yield from _run_processes(fn, tasks, sched, bar, w)
        else:
            yield from _run_dask(fn, tasks, sched, bar, w)
    finally:
        bar.close()


def _run_auto(fn, tasks, sched: Scheduler, bar: tqdm, w: list[int]) -> Iterator[tuple[int, Any]]:
    """Serial, moving the remaining tasks to a process pool once that clearly pays.

    After each task (from the second on: the first also pays compilation and caches) the
    remaining serial time is estimated as ``(seconds per unit weight of the last task) x
    (remaining weight)``; with ``k`` idle cores a pool would take about
    ``POOL_STARTUP_S + remaining / k``. The pool is started when that saves at least a
    third of the remaining time and at least two tasks remain.
    """
    n = len(tasks)
    for i in range(n):
        t0 = time.perf_counter()
        r = fn(tasks[i])
        dt = time.perf_counter() - t0
        bar.update(w[i])
        yield i, r
        rest = list(range(i + 1, n))
        if i == 0 or len(rest) < 2:
            continue
        k = min(idle_workers(sched.workers or available_workers()), len(rest))
        if k < 2:
            continue
        per_unit = dt / max(w[i], 1)
        remaining = per_unit * sum(max(w[j], 1) for j in rest)
        if POOL_STARTUP_S + remaining / k < (2.0 / 3.0) * remaining:
            pool = Scheduler("processes", k)
            for j, res in _run_processes(fn, [tasks[j] for j in rest], pool, bar, [w[j] for j in rest]):
                yield rest[j], res
            return


def _exit_with_parent(parent: int, interval: float = 1.0) -> None:
    """Worker initializer: end this worker when the process that started it is gone.

    A pool's workers otherwise outlive a parent killed with SIGKILL (they wait forever on the
    task queue); a daemon thread checks ``os.getppid()`` every ``interval`` seconds.
    """
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _run_processes(fn, tasks, sched: Scheduler, bar: tqdm, w: list[int]) -> Iterator[tuple[int, Any]]:
    ex = ProcessPoolExecutor(max_workers=min(sched.n_workers, len(tasks)), mp_context=get_context("spawn"),
                             initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        pending: dict[Future, int] = {ex.submit(fn, t): i for i, t in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=pending.__getitem__):
                i = pending.pop(f)
                r = f.result()
                bar.update(w[i])
                yield i, r
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _run_dask(fn, tasks, sched: Scheduler, bar: tqdm, w: list[int]) -> Iterator[tuple[int, Any]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - dask is needed by this scheduler only
        raise ConfigError("--scheduler dask needs dask[distributed] (pip install 'dask[distributed]')") from None
    cluster = None
    try:
        if sched.address is None:
            # worker logs are silenced (a benign heartbeat race at shut-down logs an ERROR); task
            # exceptions and lost workers still reach us through the futures
            # loopback only, any free port, no dashboard: the scheduler's HTTP server (health
            # routes) would otherwise take port 8787 and warn when another cluster holds it
            cluster = LocalCluster(n_workers=min(sched.n_workers, len(tasks)), threads_per_worker=1, processes=True,
                                   host="127.0.0.1", scheduler_port=0, dashboard_address=None,
                                   scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                                   silence_logs=logging.CRITICAL)
            client = Client(cluster)
        else:
            try:
                client = Client(sched.address, timeout=10)
            except (OSError, TimeoutError) as e:
                raise ConfigError(f"--scheduler {sched.address}: cannot connect to a Dask scheduler ({e})") from None
        futures = []
        try:
            futures = client.map(fn, tasks, pure=False)
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):
                i = index[fut.key]
                r = fut.result()
                fut.release()
                bar.update(w[i])
                yield i, r
        finally:
            if futures:
                client.cancel(futures)
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
