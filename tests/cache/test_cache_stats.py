"""``TableCache.storage_stats`` on both faces: what it counts and what it costs."""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse

from tablesessions.testing import RequestCounter
from tests.conftest import FakeClock

from .conftest import MakeCache


async def test_storage_stats_counts_without_reading_a_value(
        make_cache: MakeCache, clock: FakeClock, request_counter: RequestCounter) -> None:
    cache = await make_cache()
    await cache.set("short", "x", ttl=60)
    await cache.set("long", {"v": 1}, ttl=3600)
    await cache.set("forever", "y", ttl=None)
    await cache.set("n", 5, ttl=None)
    await cache.set("big", os.urandom(800_000), ttl=3600)  # over the entity budget: a blob
    clock.advance(dt.timedelta(seconds=120))               # "short" has expired
    other = await make_cache(app_name="elsewhere")         # another namespace: not counted
    await other.set("k", "v")

    request_counter.reset()
    stats = await cache.storage_stats()
    assert (stats.entries, stats.expired, stats.no_expiry, stats.overflowed,
            stats.native_ints) == (5, 1, 2, 1, 1)
    assert stats.bytes >= 800_000
    # The cost: one query per partition, selecting no payload column.
    assert request_counter.count == 16
    assert request_counter.count_where("GET", "table") == 16
    for record in request_counter.records:
        select = urllib.parse.parse_qs(urllib.parse.urlsplit(record.url).query)["$select"][0]
        assert "D0" not in select.split(",") and "IntValue" in select
    assert stats.to_dict()["entries"] == 5
