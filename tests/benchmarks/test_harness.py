"""The benchmark's stopwatch: its client CPU includes the worker threads of either
side (the library's deflate helpers and lanes, the floors' pool), not other
threads' (the loopback proxy's)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from benchmarks.harness import Stopwatch


@contextmanager
def _pool_thread(name: str) -> Iterator[Callable[[], None]]:
    """A long-lived thread, like a pool's; each call of what this yields makes it
    spin 0.2 s of CPU and returns when it is done."""
    go, done, stop = threading.Event(), threading.Event(), False

    def run() -> None:
        while go.wait() and not stop:
            end = time.thread_time() + 0.2
            while time.thread_time() < end:
                pass
            go.clear()
            done.set()

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()

    def spin() -> None:
        done.clear()
        go.set()
        assert done.wait(10)

    try:
        yield spin
    finally:
        stop = True
        go.set()
        worker.join(10)


def test_cpu_of_either_sides_worker_threads_counts_and_other_threads_do_not() -> None:
    with _pool_thread("tablesessions-deflate_0") as library, _pool_thread("floor_3") as floor, \
            _pool_thread("FaultProxy:1->2") as proxy:
        with Stopwatch() as by_library:
            library()
        with Stopwatch() as by_floor:
            floor()
        with Stopwatch() as by_proxy:
            proxy()
    # each worker's 0.2 s counts (the caller only waited); the proxy's does not
    assert by_library.cpu_ns >= 0.18e9 and by_floor.cpu_ns >= 0.18e9
    assert by_proxy.cpu_ns < 0.1e9
    assert by_library.elapsed_ns is not None and by_library.elapsed_ns >= 0.18e9
