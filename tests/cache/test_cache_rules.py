"""The cache rules, sans I/O: keys, TTLs, sliding, the entry layout, batching."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from azure.data.tables import EntityProperty

from tablesessions import CacheValueTooLargeError, InvalidCacheKeyError
from tablesessions._cache import many
from tablesessions._cache.rules import (
    DEFAULT,
    INT64_MAX,
    INT64_MIN,
    MAX_KEY_LENGTH,
    CacheRules,
    check_key,
    row_key_for,
)
from tablesessions._record.limits import MAX_BATCH_OPERATIONS, MAX_TRANSACTION_BYTES
from tablesessions._sessions.ids import row_key_for as session_row_key
from tablesessions.config import CacheConfig
from tablesessions.encryption import KeyRing

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def rules(**options: object) -> CacheRules:
    return CacheRules(CacheConfig(**options))  # type: ignore[arg-type]


def test_row_keys_are_hashed_under_a_cache_domain() -> None:
    rk = row_key_for("abc")
    assert len(rk) == 64 and rk != hashlib.sha256(b"abc").hexdigest()
    assert rk != session_row_key("abc")
    assert row_key_for("lone \ud800") != row_key_for("lone \ufffd")
    pk, rk2 = rules(app_name="shop").keys("abc")
    assert (pk, rk2) == (f"shop-{rk[0]}", rk)


def test_key_checks() -> None:
    assert check_key("x" * MAX_KEY_LENGTH)
    with pytest.raises(InvalidCacheKeyError):
        check_key("x" * (MAX_KEY_LENGTH + 1))
    with pytest.raises(TypeError):
        check_key(b"bytes")


def test_ttls() -> None:
    r = rules(default_ttl=60)
    assert r.ttl(DEFAULT) == dt.timedelta(seconds=60)
    assert r.ttl(None) is None
    assert r.ttl(1.5) == dt.timedelta(seconds=1.5)
    assert rules(default_ttl=None).ttl(DEFAULT) is None
    for bad in (0, -1, True, float("inf")):
        with pytest.raises((TypeError, ValueError)):
            r.ttl(bad)
    assert r.expiry_columns(None, NOW) == {}
    assert r.expiry_columns(dt.timedelta(seconds=60), NOW) == {
        "ExpiresAt": NOW + dt.timedelta(seconds=60)}
    sliding = rules(sliding=True).expiry_columns(dt.timedelta(seconds=60), NOW)
    assert sliding["TtlSeconds"].value == 60


def test_liveness_and_the_sliding_throttle() -> None:
    r = rules(sliding=True)
    row = {"ExpiresAt": NOW + dt.timedelta(seconds=100), "TtlSeconds": EntityProperty(
        100, "Edm.Int64")}
    assert r.is_live({}, NOW)  # no ExpiresAt: never expires
    assert r.is_live(row, NOW) and not r.is_live(row, NOW + dt.timedelta(seconds=100))
    assert r.slide_to(row, NOW + dt.timedelta(seconds=49)) is None  # 51 s left of 100
    later = NOW + dt.timedelta(seconds=51)
    assert r.slide_to(row, later) == later + dt.timedelta(seconds=100)
    assert rules().slide_to(row, later) is None  # sliding off
    assert r.slide_to({"ExpiresAt": row["ExpiresAt"]}, later) is None  # no TTL column


def test_native_ints_and_payloads() -> None:
    r = rules()
    for value in (0, -5, INT64_MAX, INT64_MIN):
        prepared = r.prepare("a" * 64, value)
        assert prepared.columns["IntValue"].value == value and prepared.blob is None
    others: tuple[object, ...] = (True, INT64_MAX + 1, INT64_MIN - 1, 1.0, "1")
    for other in others:
        assert "IntValue" not in r.prepare("a" * 64, other).columns
    sealed = rules(key_ring=KeyRing({"k": KeyRing.generate_key()}))
    assert "IntValue" not in sealed.prepare("a" * 64, 5).columns
    with pytest.raises(CacheValueTooLargeError):
        rules(max_value_bytes=10).prepare("a" * 64, "x" * 100)
    assert r.prepare("a" * 64, b"x" * 800_000).blob is not None  # over inline_budget


def _write(key: str, size: int) -> many._Write:
    r = rules()
    pk, rk = r.keys(key)
    prepared = r.prepare(rk, b"x" * size)
    entity = r.entity(pk, rk, prepared, {})
    return many._Write(key, entity, prepared, many._body_size(entity))


def test_batches_hold_at_most_100_operations_and_stay_under_4_mib() -> None:
    small = [_write(f"k{i}", 10) for i in range(250)]
    assert [len(b) for b in many._batches(small)] == [MAX_BATCH_OPERATIONS] * 2 + [50]
    big = [_write(f"b{i}", 600_000) for i in range(10)]  # inline, ~800 KB of base64 each
    batches = many._batches(big)
    assert sum(len(b) for b in batches) == 10 and len(batches) > 1
    for batch in batches:
        assert sum(w.size for w in batch) <= MAX_TRANSACTION_BYTES


def test_the_query_filter_holds_at_most_15_comparisons() -> None:
    text = many._rk_filter(many.KEYS_PER_QUERY)
    assert text.count(" eq ") == 15
    assert "( RowKey" in text and "@r13 )" in text  # spaces around parentheses
