"""TableCache and its storage: overflow blobs and the sweeper (no orphans),
encryption and tampered rows, missing storage. Both faces."""

from __future__ import annotations

import datetime as dt
import logging
import os

import pytest

from tablesessions import StorageNotFoundError
from tablesessions.encryption import KeyRing
from tablesessions.testing import AzuriteServer, unique_name
from tests.cache.conftest import CacheFace, MakeCache, RawStorage
from tests.conftest import CANARY, FakeClock

BUDGET = 1000  # inline_budget: values above it overflow to a blob


def _big(tag: str, size: int = 5000) -> bytes:
    return tag.encode() + os.urandom(size)  # incompressible: it really overflows


def _pointed(raw: RawStorage) -> set[str]:
    return {str(r["BlobName"]) for r in raw.rows() if r.get("BlobName")}


async def test_overflowed_values_round_trip(make_cache: MakeCache, raw: RawStorage) -> None:
    cache = await make_cache(inline_budget=BUDGET)
    values = {"bytes": _big("a"), "text": "t" * 3000 + os.urandom(2000).hex(),
              "nested": {"list": [_big("b", 3000), "x"]}}
    for key, value in values.items():
        await cache.set(key, value)
    assert await cache.get_many(list(values)) == values
    for key, value in values.items():
        assert await cache.get(key) == value
    assert len(raw.blobs()) == 3 == len(_pointed(raw))


async def test_a_5_mib_value_round_trips(cache: CacheFace, raw: RawStorage) -> None:
    value = os.urandom(5 * 1024 * 1024)
    await cache.set("big", value)
    assert await cache.get("big") == value
    assert len(raw.blobs()) == 1


async def test_after_replace_delete_expiry_and_a_sweep_no_blob_is_orphaned(
        make_cache: MakeCache, raw: RawStorage, clock: FakeClock) -> None:
    cache = await make_cache(inline_budget=BUDGET, default_ttl=None)
    await cache.set("replaced", _big("1"))
    await cache.set("replaced", _big("2"))  # the first blob is now an orphan
    await cache.set("deleted", _big("3"))
    assert await cache.delete("deleted")  # its blob too
    await cache.set("expiring", _big("4"), ttl=10)  # the partition pass takes it
    await cache.set("added over", _big("5"), ttl=10)
    await cache.set_many({"many1": _big("6"), "many2": _big("7"), "small": 1})
    assert await cache.delete_many(["many1"]) == 1  # known blob: deleted at once
    await cache.set("inline now", _big("8"))
    await cache.set("inline now", "small")  # replaced by an inline value: orphan
    clock.advance(dt.timedelta(seconds=20))
    assert await cache.add("added over", _big("9"))  # expired row's blob: deleted by add
    assert len(raw.blobs()) > len(_pointed(raw))  # orphans exist before the sweep

    clock.advance(dt.timedelta(hours=2))  # past the sweeper's orphan grace (1 h)
    report = await cache.sweep()
    assert report.errors == 0, report.error_messages
    assert report.deleted == 1  # "expiring" (its 10 s TTL)
    assert report.orphans_deleted == 3  # replaced, deleted, inline now
    assert set(raw.blobs()) == _pointed(raw)  # no orphan left
    assert set(await cache.get_many(["replaced", "added over", "many2", "small"])) == {
        "replaced", "added over", "many2", "small"}

    rows = len(raw.rows())
    assert await cache.clear() == rows == 5
    assert raw.blobs() == [] and raw.rows() == []


async def test_clear_removes_the_blobs_of_its_namespace(make_cache: MakeCache,
                                                        raw: RawStorage,
                                                        clock: FakeClock) -> None:
    cache = await make_cache(inline_budget=BUDGET)
    other = await make_cache(inline_budget=BUDGET, app_name="other")
    await cache.set("a", _big("a"))
    await cache.set("a", _big("b"))  # an orphan under this namespace's prefix
    await other.set("a", _big("c"))
    clock.advance(dt.timedelta(minutes=1))  # the orphan predates the clear
    assert await cache.clear() == 1
    assert [b.split("/")[0] for b in raw.blobs()] == ["other"]
    assert isinstance(await other.get("a"), bytes)


async def test_an_encrypting_cache_seals_every_value_counters_included(
        make_cache: MakeCache, raw: RawStorage) -> None:
    ring = KeyRing({"k1": KeyRing.generate_key()})
    cache = await make_cache(key_ring=ring)
    await cache.set("secret", CANARY)
    await cache.set("n", 5)
    assert await cache.incr("n", 2) == 7
    for row in raw.rows():
        assert "IntValue" not in row
        assert "+aesgcm:k1" in row["Codec"]
        assert CANARY.encode() not in row["D0"]
    assert await cache.get_many(["secret", "n"]) == {"secret": CANARY, "n": 7}


async def test_a_tampered_row_is_a_miss_and_a_security_warning(
        make_cache: MakeCache, raw: RawStorage, caplog: pytest.LogCaptureFixture) -> None:
    ring = KeyRing({"k1": KeyRing.generate_key()})
    cache = await make_cache(key_ring=ring)
    await cache.set("a", CANARY)
    await cache.set("b", "bee")
    rows = {r["RowKey"]: r for r in raw.rows()}
    from tablesessions._cache.rules import row_key_for

    a, b = rows[row_key_for("a")], rows[row_key_for("b")]
    b.update({k: a[k] for k in ("D0", "Size", "Chunks", "Codec")})  # a's ciphertext under b
    raw.table.update_entity(b)
    with caplog.at_level(logging.WARNING, logger="tablesessions.security"):
        assert await cache.get("b", default="miss") == "miss"
        assert await cache.get_many(["a", "b"]) == {"a": CANARY}
    warnings = [r for r in caplog.records if r.name == "tablesessions.security"]
    assert len(warnings) == 2
    text = " ".join(r.getMessage() for r in warnings)
    assert row_key_for("b")[:12] in text and CANARY not in text and "'b'" not in text


async def test_plaintext_rows_are_refused_where_encryption_is_required(
        make_cache: MakeCache, caplog: pytest.LogCaptureFixture) -> None:
    plain = await make_cache()
    await plain.set("k", "planted")
    sealed = await make_cache(key_ring=KeyRing({"k1": KeyRing.generate_key()}))
    with caplog.at_level(logging.WARNING, logger="tablesessions.security"):
        assert await sealed.get("k") is None
    assert any(r.name == "tablesessions.security" for r in caplog.records)


async def test_a_missing_table_raises_storage_not_found(make_cache: MakeCache) -> None:
    await make_cache()  # creates this test's storage
    cache = await make_cache(table_name=unique_name("nosuch"))
    for name, args in [("get", ("k",)), ("set", ("k", 1)), ("add", ("k", 1)),
                       ("delete", ("k",)), ("incr", ("k",)), ("has_key", ("k",)),
                       ("touch", ("k",)), ("get_many", (["a", "b", "c"],)),
                       ("set_many", ({"a": 1, "b": 2},)), ("delete_many", (["a", "b"],)),
                       ("clear", ())]:
        with pytest.raises(StorageNotFoundError) as info:
            await getattr(cache, name)(*args)
        assert info.value.kind == "table", name


async def test_a_missing_container_raises_storage_not_found(make_cache: MakeCache) -> None:
    await make_cache()
    cache = await make_cache(container_name=unique_name("nosuch"), inline_budget=BUDGET)
    await cache.set("small", 1)  # no blob needed
    with pytest.raises(StorageNotFoundError) as info:
        await cache.set("big", _big("x"))
    assert info.value.kind == "container"


async def test_on_storage_error_empty_degrades_to_misses(make_cache: MakeCache,
                                                         azurite: AzuriteServer) -> None:
    await make_cache()
    cache = await make_cache(table_name=unique_name("nosuch"), on_storage_error="empty")
    assert await cache.get("k", default="d") == "d"
    assert await cache.get_many(["a"]) == {}
    assert await cache.set("k", 1) is None
    assert await cache.add("k", 1) is False
    assert await cache.set_many({"a": 1}) == ["a"]
    assert await cache.get_or_set("k", lambda: "computed") == "computed"
    assert cache.stats.read_errors_absorbed == 3
    assert cache.stats.write_errors_absorbed == 3
    with pytest.raises(StorageNotFoundError):
        await cache.incr("k")  # never absorbed: a counter must not pass silently


async def test_overflow_pointers_carry_the_uploads_etag_and_a_rewritten_blob_is_a_miss(
        make_cache: MakeCache, raw: RawStorage, caplog: pytest.LogCaptureFixture) -> None:
    import hashlib

    cache = await make_cache(inline_budget=BUDGET)
    await cache.set("one", _big("a"))
    assert await cache.set_many({"two": _big("b"), "small": "s"}) == []
    rows = {r["RowKey"]: r for r in raw.rows()}
    from tablesessions._cache.rules import row_key_for

    for key in ("one", "two"):  # no SHA-256 on the write: the upload's ETag binds the blob
        row = rows[row_key_for(key)]
        etag = raw.container.get_blob_client(row["BlobName"]).get_blob_properties().etag
        assert row["BlobDigest"] == f"etag:{etag}"
    assert await cache.get_many(["one", "two", "small"]) == {
        "one": await cache.get("one"), "two": await cache.get("two"), "small": "s"}
    # A row written before ETag pointers (SHA-256 of the payload) still reads.
    old = rows[row_key_for("two")]
    data = raw.container.download_blob(old["BlobName"]).readall()
    old["BlobDigest"] = hashlib.sha256(data).hexdigest()
    raw.table.update_entity(old)
    assert (await cache.get("two"))[:1] == b"b"
    # The blob rewritten in place (same name, new ETag): a miss, never its bytes.
    name = rows[row_key_for("one")]["BlobName"]
    raw.container.upload_blob(name, b"x" * len(data), overwrite=True)
    with caplog.at_level(logging.WARNING, logger="tablesessions.security"):
        assert await cache.get("one", default="miss") == "miss"
    assert any(r.name == "tablesessions.security" for r in caplog.records)
