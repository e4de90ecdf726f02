"""Storage calls of each TableCache operation, counted at the transport
(``RequestCounter``: every HTTP attempt the SDK clients send), on both faces."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from tablesessions._cache.many import KEYS_PER_QUERY
from tablesessions._cache.rules import row_key_for
from tablesessions.testing import RequestCounter
from tests.cache.conftest import CacheFace, MakeCache


def _partitions(keys: list[str]) -> Counter[str]:
    return Counter(row_key_for(k)[0] for k in keys)


def _batches(counter: RequestCounter) -> int:
    return sum(1 for m, p in counter.requests if m == "POST" and p.endswith("/$batch"))


async def _calls(counter: RequestCounter, call: Any) -> tuple[int, Any]:
    counter.reset()
    result = await call
    return counter.count, result


async def test_single_key_operations(cache: CacheFace, request_counter: RequestCounter) -> None:
    assert (await _calls(request_counter, cache.set("k", {"a": 1})))[0] == 1
    assert await _calls(request_counter, cache.get("k")) == (1, {"a": 1})
    assert await _calls(request_counter, cache.get("absent")) == (1, None)
    assert await _calls(request_counter, cache.add("new", 1)) == (1, True)
    assert await _calls(request_counter, cache.has_key("k")) == (1, True)
    assert await _calls(request_counter, cache.delete("k")) == (1, True)
    assert await _calls(request_counter, cache.delete("k")) == (1, False)
    assert await _calls(request_counter, cache.incr("new")) == (2, 2)
    assert await _calls(request_counter, cache.decr("new", 5)) == (2, -3)
    assert await _calls(request_counter, cache.touch("new", 60)) == (2, True)
    # add over a live entry: the insert (409) and the read that finds it live.
    assert await _calls(request_counter, cache.add("new", 1)) == (2, False)
    # get_or_set on a miss: the get and the add.
    assert await _calls(request_counter, cache.get_or_set("g", 5)) == (2, 5)
    assert await _calls(request_counter, cache.get_or_set("g", 6)) == (1, 5)


async def test_incr_never_reads_a_payload(cache: CacheFace,
                                          request_counter: RequestCounter) -> None:
    await cache.set("n", 0)
    request_counter.reset()
    for _ in range(5):
        await cache.incr("n")
    assert request_counter.count == 10
    assert [m for m, _ in request_counter.requests] == ["GET", "PUT"] * 5


async def test_overflowed_values_cost_one_blob_call_more(make_cache: MakeCache,
                                                         request_counter: RequestCounter) -> None:
    cache = await make_cache(inline_budget=1000)
    value = bytes(range(256)) * 20
    count, _ = await _calls(request_counter, cache.set("big", value))
    assert count == 2
    assert [r.service for r in request_counter.records] == ["blob", "table"]  # blob first
    assert await _calls(request_counter, cache.get("big")) == (2, value)


async def test_set_many_of_100_keys_is_one_transaction_per_partition(
        cache: CacheFace, request_counter: RequestCounter) -> None:
    keys = [f"key:{i}" for i in range(100)]
    count, failed = await _calls(request_counter, cache.set_many({k: i for i, k in
                                                                  enumerate(keys)}))
    assert failed == []
    touched = len(_partitions(keys))
    assert count == touched == _batches(request_counter)
    assert touched <= 16


async def test_set_many_of_100_keys_in_one_partition_is_one_transaction(
        cache: CacheFace, request_counter: RequestCounter) -> None:
    keys = [k for k in (f"p{i}" for i in range(5000)) if row_key_for(k)[0] == "a"][:100]
    assert len(keys) == 100
    count, failed = await _calls(request_counter, cache.set_many(dict.fromkeys(keys, "v")))
    assert (count, failed) == (1, [])
    # 101 keys in one partition: two transactions (at most 100 operations each).
    extra = next(k for k in (f"q{i}" for i in range(5000)) if row_key_for(k)[0] == "a")
    count, _ = await _calls(request_counter, cache.set_many(dict.fromkeys([*keys, extra], 1)))
    assert count == 2 == _batches(request_counter)


async def test_get_many_is_one_query_per_partition_per_14_keys(
        cache: CacheFace, request_counter: RequestCounter) -> None:
    keys = [f"key:{i}" for i in range(100)]
    await cache.set_many({k: i for i, k in enumerate(keys)})
    count, found = await _calls(request_counter, cache.get_many(keys))
    assert found == {k: i for i, k in enumerate(keys)}
    expected = sum(math.ceil(n / KEYS_PER_QUERY) for n in _partitions(keys).values())
    assert count == expected
    assert all(m == "GET" for m, _ in request_counter.requests)


async def test_delete_many_of_100_keys_is_one_transaction_per_partition(
        cache: CacheFace, request_counter: RequestCounter) -> None:
    keys = [f"key:{i}" for i in range(100)]
    await cache.set_many({k: i for i, k in enumerate(keys)})
    count, deleted = await _calls(request_counter, cache.delete_many(keys))
    assert deleted == 100
    partitions = _partitions(keys)
    queries = sum(math.ceil(n / KEYS_PER_QUERY) for n in partitions.values())
    # One partition with a single key uses a point read and a single delete.
    singles = sum(1 for n in partitions.values() if n == 1)
    assert _batches(request_counter) == len(partitions) - singles
    assert count == queries + len(partitions)
    assert await cache.get_many(keys) == {}
