"""Concurrent writers of one key in one process (threads on the sync face, tasks
on the async one): ``add`` has exactly one winner, even over an expired entry,
and ``incr`` is exact. The 8-process run is test_cache_contention.py (slow)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tablesessions import RetryPolicy
from tests.cache.conftest import CacheFace, MakeCache
from tests.conftest import FakeClock


async def _together(cache: CacheFace, calls: Sequence[Callable[[Any], Any]]) -> list[Any]:
    """Run ``call(raw_cache)`` for each call at once: tasks or threads."""
    raw = cache.cache
    if cache.is_async:
        return list(await asyncio.gather(*(call(raw) for call in calls)))
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(raw), calls))


def _adder(i: int) -> Callable[[Any], Any]:
    return lambda c: c.add("k", i)


async def test_racing_adds_have_exactly_one_winner(make_cache: MakeCache) -> None:
    cache = await make_cache()
    results = await _together(cache, [_adder(i) for i in range(8)])
    assert results.count(True) == 1
    assert await cache.get("k") == results.index(True)


async def test_racing_adds_over_an_expired_entry_have_exactly_one_winner(
        make_cache: MakeCache, clock: FakeClock) -> None:
    cache = await make_cache(retry=RetryPolicy(deadline=10.0))
    await cache.set("k", "old", ttl=5)
    clock.advance(dt.timedelta(seconds=6))
    results = await _together(cache, [_adder(i) for i in range(8)])
    assert results.count(True) == 1
    assert await cache.get("k") == results.index(True)


async def test_racing_increments_are_exact(make_cache: MakeCache) -> None:
    cache = await make_cache(retry=RetryPolicy(deadline=10.0))
    await cache.set("n", 0)

    def bump(c: Any) -> Any:
        if cache.is_async:
            async def five() -> None:
                for _ in range(5):
                    await c.incr("n")
            return five()
        for _ in range(5):
            c.incr("n")
        return None

    await _together(cache, [bump] * 6)
    assert await cache.get("n") == 30
