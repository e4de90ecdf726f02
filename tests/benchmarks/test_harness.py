"""The benchmark's stopwatch: its client CPU includes the library's helper threads
(the deflate pieces of a large save run on a pool's threads), not other threads'."""

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


def test_cpu_of_the_librarys_own_threads_counts_and_other_threads_do_not() -> None:
    with _pool_thread("tablesessions-deflate_0") as helper, _pool_thread("someone-else") as other:
        with Stopwatch() as helped:
            helper()
        with Stopwatch() as not_ours:
            other()
    assert helped.cpu_ns >= 0.18e9  # the helper's 0.2 s (the caller only waited)
    assert not_ours.cpu_ns < 0.1e9
    assert helped.elapsed_ns is not None and helped.elapsed_ns >= 0.18e9
