"""The sync face's parallel sub-operations (``get_many``, ``set_many``, sweeps)
run on one thread pool per face, kept for its life: no threads are started per
call, concurrent callers share it without waiting on one another, a Parallel
inside a Parallel still finishes, a forked child gets a pool of its own, and
``close()`` stops the threads. Real Azurite."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tablesessions import RetryPolicy, TableCache
from tablesessions._record.effects import Parallel, TimeLeft
from tablesessions.testing import AzuriteServer

KEYS = [f"k{i}" for i in range(100)]


@pytest.fixture
def cache(azurite: AzuriteServer, storage_names: tuple[str, str]) -> Iterator[TableCache]:
    table, container = storage_names
    # A generous deadline: 100 concurrent requests on a loaded 2-core machine can
    # outlast the default 2 s, which is not what these tests are about.
    cache = TableCache.from_connection_string(azurite.connection_string, table_name=table,
                                              container_name=container,
                                              retry=RetryPolicy(deadline=20.0))
    cache.create_storage()
    cache.set_many({k: i for i, k in enumerate(KEYS)})
    yield cache
    cache.close()


def _pool_threads(cache: TableCache) -> set[threading.Thread]:
    """The threads of the cache's own pool (the fixture's set_many started them)."""
    pool = cache._lanes.current()
    assert pool is not None
    return set(pool._threads)


def test_repeated_get_many_reuses_the_pools_threads(cache: TableCache) -> None:
    first = _pool_threads(cache)
    assert 0 < len(first) <= cache.config.max_parallel
    started = threading.active_count()
    for _ in range(5):
        assert cache.get_many(KEYS) == {k: i for i, k in enumerate(KEYS)}
    assert _pool_threads(cache) == first  # not one thread more
    assert threading.active_count() <= started


def test_concurrent_callers_share_the_pool_and_all_get_their_answer(cache: TableCache) -> None:
    expected = {k: i for i, k in enumerate(KEYS)}
    with ThreadPoolExecutor(12) as callers:
        answers = list(callers.map(lambda _: cache.get_many(KEYS), range(24)))
    assert all(answer == expected for answer in answers)


def test_a_parallel_inside_a_parallel_finishes(cache: TableCache) -> None:
    # Every outer lane waits for an inner Parallel: on the shared pool that could
    # wait forever, so the inner ones get pools of their own.
    def leaf(n: int) -> Any:
        yield TimeLeft()
        return n

    def inner(n: int) -> Any:
        return (yield Parallel(tuple(leaf(n * 10 + j) for j in range(3)), 3))

    def outer() -> Any:
        return (yield Parallel(tuple(inner(n) for n in range(40)), 40))

    results = cache._run(outer())
    assert results == [[n * 10 + j for j in range(3)] for n in range(40)]


def test_close_stops_the_pools_threads(cache: TableCache) -> None:
    cache.get_many(KEYS)
    ours = _pool_threads(cache)
    assert ours and all(thread.is_alive() for thread in ours)
    cache.close()
    for thread in ours:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in ours)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_pool_of_its_own(cache: TableCache) -> None:
    # A pre-forking server may build the store (and run a parallel call) before
    # it forks: the child inherits the pool object but none of its threads.
    assert len(cache.get_many(KEYS)) == len(KEYS)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, never return into pytest
        signal.alarm(30)  # a pool without threads would wait forever: die instead
        try:
            got = cache.get_many(KEYS)
            os.write(write, b"ok" if len(got) == len(KEYS) else b"short")
        finally:
            os._exit(0)
    os.close(write)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.read(read, 16) == b"ok"
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(read)


def test_callers_beyond_the_pools_threads_do_not_queue_behind_it(
        cache: TableCache, monkeypatch: pytest.MonkeyPatch) -> None:
    # With 2 shared threads and 6 callers of 8 lanes each, most lanes run on
    # pools of their own call: every caller still answers within its deadline.
    from tablesessions._record import sync_face

    monkeypatch.setattr(sync_face, "LANE_THREADS", 2)
    expected = {k: i for i, k in enumerate(KEYS)}
    with ThreadPoolExecutor(6) as callers:
        answers = list(callers.map(lambda _: cache.get_many(KEYS), range(12)))
    assert all(answer == expected for answer in answers)
    assert cache._busy == 0  # every reservation given back
    assert len(_pool_threads(cache)) <= 2 + cache.config.max_parallel  # the fixture's own
