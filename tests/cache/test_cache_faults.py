"""TableCache under faults, through the real ``FaultProxy``: throttling, resets
and ambiguous writes (applied by Azurite, answer lost). No acknowledged write
is lost and ``incr`` never counts twice. Both faces."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from azure.core.exceptions import AzureError, ResourceModifiedError

from tablesessions import RetryPolicy
from tablesessions._cache import ops as cache_ops
from tablesessions._cache.rules import COL_RECENT, CacheRules
from tablesessions._record.effects import ReadEntity, Row, UpdateEntity
from tablesessions.config import CacheConfig
from tablesessions.testing import Fault, FaultProxyPair
from tests.cache.conftest import CacheFace, MakeCache

REPLACE = {"PUT"}
INSERT = {"POST"}


async def _pair(make_cache: MakeCache, fault_proxy: FaultProxyPair,
                **options: Any) -> tuple[CacheFace, CacheFace]:
    clean = await make_cache(**options)
    proxied = await make_cache(fault_proxy.connection_string, **options)
    fault_proxy.reset_stats()
    return clean, proxied


async def test_set_whose_answer_is_lost_is_stored_once(make_cache: MakeCache,
                                                       fault_proxy: FaultProxyPair) -> None:
    clean, proxied = await _pair(make_cache, fault_proxy)
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods=REPLACE)
    await proxied.set("k", {"v": 1})  # acknowledged after the retry
    assert fault_proxy.table.stats.seen == 2
    assert await clean.get("k") == {"v": 1}


async def test_get_and_set_ride_out_throttling_and_resets(make_cache: MakeCache,
                                                          fault_proxy: FaultProxyPair) -> None:
    clean, proxied = await _pair(make_cache, fault_proxy)
    await clean.set("k", "v")
    for kind in (Fault.BUSY_503, Fault.THROTTLE_429, Fault.RESET, Fault.ERROR_500):
        fault_proxy.table.fail_next(kind)
        assert await proxied.get("k") == "v"
        fault_proxy.table.fail_next(kind)
        await proxied.set(f"after {kind.value}", kind.value)
        assert await clean.get(f"after {kind.value}") == kind.value


async def test_an_overflowed_set_survives_a_lost_blob_answer(make_cache: MakeCache,
                                                             fault_proxy: FaultProxyPair) -> None:
    clean, proxied = await _pair(make_cache, fault_proxy, inline_budget=1000)
    value = bytes(range(256)) * 40
    fault_proxy.blob.fail_next(Fault.DROP_RESPONSE, methods={"PUT"})
    await proxied.set("big", value)  # the retried upload meets its own blob: 409 is fine
    assert await clean.get("big") == value


async def test_incr_whose_answer_is_lost_counts_once(make_cache: MakeCache,
                                                     fault_proxy: FaultProxyPair) -> None:
    clean, proxied = await _pair(make_cache, fault_proxy)
    await clean.set("n", 10)
    fault_proxy.reset_stats()
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods=REPLACE)
    assert await proxied.incr("n") == 11
    # read, replace (applied, answer lost), replace again (412), re-read (our token)
    assert fault_proxy.table.stats.seen == 4
    assert await clean.get("n") == 11
    assert await proxied.incr("n") == 12


async def test_add_whose_answer_is_lost_reports_that_it_stored(
        make_cache: MakeCache, fault_proxy: FaultProxyPair) -> None:
    clean, proxied = await _pair(make_cache, fault_proxy)
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods=INSERT)
    assert await proxied.add("k", "mine") is True  # the 409 is its own insert
    assert await clean.get("k") == "mine"
    assert await proxied.add("k", "again") is False


async def test_incr_under_random_faults_is_exact_for_acknowledged_calls(
        make_cache: MakeCache, fault_proxy: FaultProxyPair) -> None:
    clean, proxied = await _pair(make_cache, fault_proxy,
                                 retry=RetryPolicy(max_attempts=6, deadline=5.0))
    await clean.set("n", 0)
    fault_proxy.table.configure(rate=0.3, seed=16, kinds={
        Fault.BUSY_503: 1, Fault.RESET: 1, Fault.DROP_RESPONSE: 2, Fault.ERROR_500: 1})
    acked = failed = 0
    for _ in range(40):
        try:
            await proxied.incr("n")
            acked += 1
        except AzureError:
            failed += 1
    fault_proxy.clear()
    total = await clean.get("n")
    assert fault_proxy.table.stats.faults.get(Fault.DROP_RESPONSE, 0) > 0
    # Every acknowledged increment is there, none twice; a failed call may have landed.
    assert acked <= total <= acked + failed
    if failed == 0:
        assert total == 40


async def test_no_acknowledged_set_is_lost_under_random_faults(
        make_cache: MakeCache, fault_proxy: FaultProxyPair) -> None:
    clean, proxied = await _pair(make_cache, fault_proxy, inline_budget=1000,
                                 retry=RetryPolicy(max_attempts=6, deadline=5.0))
    fault_proxy.configure(rate=0.3, seed=7, kinds={
        Fault.BUSY_503: 1, Fault.RESET: 1, Fault.DROP_RESPONSE: 2, Fault.ERROR_500: 1})
    acknowledged: dict[str, Any] = {}
    for i in range(30):
        value: Any = bytes([i]) * 3000 if i % 3 == 0 else {"i": i}  # a third overflow
        try:
            await proxied.set(f"k{i}", value)
        except AzureError:
            continue
        acknowledged[f"k{i}"] = value
    fault_proxy.clear()
    assert fault_proxy.stats.faults.get(Fault.DROP_RESPONSE, 0) > 0
    assert len(acknowledged) >= 20
    assert await clean.get_many(list(acknowledged)) == acknowledged


async def test_sliding_extension_failure_never_fails_the_read(
        make_cache: MakeCache, fault_proxy: FaultProxyPair, clock: Any) -> None:
    clean, proxied = await _pair(make_cache, fault_proxy, sliding=True,
                                 retry=RetryPolicy(max_attempts=1))
    await clean.set("k", "v", ttl=100)
    clock.advance(dt.timedelta(seconds=60))
    fault_proxy.table.fail_next(Fault.BUSY_503, methods={"PATCH", "MERGE"})
    assert await proxied.get("k") == "v"


# -- the token history, sans I/O -----------------------------------------------------


def test_a_retry_finds_its_landed_write_behind_later_writers() -> None:
    """Our replace landed, its answer was lost, another writer incremented on top;
    the retry's 412 re-read finds our token in RecentTokens, not in WriteToken:
    it returns its own result and writes nothing more."""
    rules = CacheRules(CacheConfig())
    op = cache_ops.incr(rules, "k", 1)
    pk, rk = rules.keys("k")
    read = next(op)
    assert isinstance(read, ReadEntity)
    base = {"PartitionKey": pk, "RowKey": rk, "IntValue": 5}
    write = op.send(Row(base, "e1"))
    assert isinstance(write, UpdateEntity) and write.etag == "e1"
    ours = write.entity["WriteToken"]
    assert write.entity["IntValue"].value == 6
    reread = op.throw(ResourceModifiedError("412"))  # the ambiguous retry's answer
    while not isinstance(reread, ReadEntity):  # the backoff's TimeLeft / Sleep
        reread = op.send(None)
    later = {**base, "IntValue": 7, "WriteToken": "other", COL_RECENT: f"other {ours}"}
    with pytest.raises(StopIteration) as done:
        op.send(Row(later, "e3"))
    assert done.value.value == 6
