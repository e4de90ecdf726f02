"""Interleaved timing: the library and its floor alternate per iteration.

Each side of a comparison is a *step*: a function that does any untimed set-up,
then performs exactly one operation inside ``with watch:``, then any untimed
clean-up. The harness runs ``library, floor, floor, library, library, floor...``
(the order flips each iteration, so neither side always runs on a warm or cold
connection, and slow drift of the machine or of Azurite lands on both equally).
"""

from __future__ import annotations

import contextlib
import gc
import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

#: Threads whose CPU a step's stopwatch counts besides its own: the library's
#: (``tablesessions...``: the Parallel lanes and the deflate helpers) and the
#: floors' pools (``floor...``, benchmarks/cache.py), so both sides of a
#: comparison count the same kind of work. The loopback proxy's threads are not.
WORKER_PREFIXES = ("tablesessions", "floor")


def worker_threads_cpu_ns() -> dict[int, int]:
    """CPU time so far of each worker thread (``WORKER_PREFIXES``), by thread id.
    Empty where the platform has no per-thread CPU clocks."""
    out: dict[int, int] = {}
    clock_of = getattr(time, "pthread_getcpuclockid", None)
    if clock_of is None:  # pragma: no cover - Windows
        return out
    for thread in threading.enumerate():
        if thread.ident is not None and thread.name.startswith(WORKER_PREFIXES):
            with contextlib.suppress(OSError):  # it ended in between
                out[thread.ident] = time.clock_gettime_ns(clock_of(thread.ident))
    return out


class Stopwatch:
    """Times the one ``with`` block of a step (nanoseconds, monotonic)."""

    __slots__ = ("_cpu", "_helpers", "_start", "cpu_ns", "elapsed_ns")

    def __init__(self) -> None:
        self._start = self._cpu = 0
        self._helpers: dict[int, int] = {}
        self.elapsed_ns: int | None = None
        #: CPU time in the block of this thread and of the worker threads (a large
        #: fragment is deflated on several cores; get_many runs lanes): the
        #: client's own work, which other processes on a busy machine do not
        #: inflate the way they do wall time. Read outside the timed window.
        self.cpu_ns = 0

    def __enter__(self) -> Stopwatch:
        self._helpers = worker_threads_cpu_ns()
        self._cpu = time.thread_time_ns()
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.elapsed_ns = time.perf_counter_ns() - self._start
        own = time.thread_time_ns() - self._cpu
        helpers = sum(now - self._helpers.get(ident, 0)
                      for ident, now in worker_threads_cpu_ns().items())
        self.cpu_ns = own + helpers


Step = Callable[[Stopwatch], None]


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Stats:
    """Latency statistics of one side, in milliseconds."""

    n: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    #: median client CPU time per operation (this thread only)
    cpu_ms: float = 0.0

    @classmethod
    def of(cls, samples_ns: Sequence[int], cpu_ns: Sequence[int] = ()) -> Stats:
        ms = [s / 1e6 for s in samples_ns]
        cpu = statistics.median(c / 1e6 for c in cpu_ns) if cpu_ns else 0.0
        return cls(n=len(ms), median_ms=statistics.median(ms), p90_ms=percentile(ms, 0.9),
                   mean_ms=statistics.fmean(ms), cpu_ms=cpu)

    @property
    def ops_per_s(self) -> float:
        """Throughput of one caller: 1 / median latency."""
        return 1000.0 / self.median_ms if self.median_ms > 0 else math.inf

    def to_dict(self) -> dict[str, float]:
        return {"n": self.n, "median_ms": round(self.median_ms, 4),
                "p90_ms": round(self.p90_ms, 4), "mean_ms": round(self.mean_ms, 4),
                "cpu_ms": round(self.cpu_ms, 4), "ops_per_s": round(self.ops_per_s, 1)}


@dataclass
class Comparison:
    """One scenario's result: the library against its floor."""

    scenario: str
    library: Stats
    floor: Stats
    target: float | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Library throughput / floor throughput (1.0 = as fast as the bare SDK)."""
        return self.floor.median_ms / self.library.median_ms

    @property
    def meets_target(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "library": self.library.to_dict(),
                "floor": self.floor.to_dict(), "ratio": round(self.ratio, 3),
                "target": self.target, "meets_target": self.meets_target,
                "notes": self.notes, **self.extra}


@dataclass
class Samples:
    """The timed samples of one side: wall and CPU nanoseconds per operation."""

    wall_ns: list[int] = field(default_factory=list)
    cpu_ns: list[int] = field(default_factory=list)

    def stats(self) -> Stats:
        return Stats.of(self.wall_ns, self.cpu_ns)


def interleave(library: Step, floor: Step, *, iterations: int,
               warmup: int) -> tuple[Samples, Samples]:
    """Run both steps ``warmup + iterations`` times, alternating which goes first;
    return the timed samples of the library and of the floor."""
    lib, flo = Samples(), Samples()
    gc.collect()
    for i in range(warmup + iterations):
        order: tuple[tuple[Step, Samples], ...] = ((library, lib), (floor, flo))
        if i % 2:
            order = order[::-1]
        for step, out in order:
            watch = Stopwatch()
            step(watch)
            if watch.elapsed_ns is None:
                raise RuntimeError(f"step {step!r} never entered its stopwatch")
            if i >= warmup:
                out.wall_ns.append(watch.elapsed_ns)
                out.cpu_ns.append(watch.cpu_ns)
    return lib, flo


def compare(scenario: str, library: Step, floor: Step, *, iterations: int, warmup: int,
            target: float | None = None, notes: str = "") -> Comparison:
    """Measure one scenario, interleaved; see :func:`interleave`."""
    lib, flo = interleave(library, floor, iterations=iterations, warmup=warmup)
    return Comparison(scenario, lib.stats(), flo.stats(), target, notes)
