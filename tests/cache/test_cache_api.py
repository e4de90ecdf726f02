"""TableCache behaviour, every public method, on both faces (sync and async)."""

from __future__ import annotations

import datetime as dt
import inspect
import uuid
from decimal import Decimal
from typing import Any

import pytest

import tablesessions
import tablesessions.aio
from tablesessions import CacheConflictError, CacheError, CacheValueTooLargeError
from tablesessions.cache import DEFAULT, MAX_KEY_LENGTH
from tests.cache.conftest import CacheFace, MakeCache, RawStorage
from tests.conftest import FakeClock

VALUES: dict[str, Any] = {
    "str": "héllo\x00wörld",
    "int": 42,
    "negative": -7,
    "int64 max": 2**63 - 1,
    "bigint": 2**80,
    "float": 1.5,
    "bool": True,
    "none": None,
    "list": [1, "a", None, [2.5]],
    "dict": {"a": {"b": [1, 2]}, "$dt": "not a tag"},
    "datetime": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc),
    "date": dt.date(2026, 1, 2),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": Decimal("3.14159265358979323846"),
    "tuple": (1, (2, "x")),
    "bytes": b"\x00\xff raw bytes",
    "empty bytes": b"",
    "empty str": "",
}


@pytest.mark.parametrize("name", list(VALUES))
async def test_values_round_trip_with_their_types(cache: CacheFace, name: str) -> None:
    value = VALUES[name]
    await cache.set("k", value)
    got = await cache.get("k", default="MISS")
    assert got == value
    assert type(got) is type(value)


async def test_get_returns_default_on_a_miss_and_none_is_a_value(cache: CacheFace) -> None:
    assert await cache.get("absent") is None
    assert await cache.get("absent", default=7) == 7
    await cache.set("none", None)
    assert await cache.get("none", default=7) is None
    assert await cache.has_key("none")
    assert await cache.get_or_set("none", 5) is None  # a stored None is a hit


async def test_set_replaces(cache: CacheFace) -> None:
    await cache.set("k", "one")
    await cache.set("k", {"two": 2})
    assert await cache.get("k") == {"two": 2}


async def test_add_only_when_absent_or_expired(cache: CacheFace, clock: FakeClock) -> None:
    assert await cache.add("k", "first", ttl=10) is True
    assert await cache.add("k", "second") is False
    assert await cache.get("k") == "first"
    clock.advance(dt.timedelta(seconds=11))
    assert await cache.add("k", "third") is True
    assert await cache.get("k") == "third"


async def test_delete_reports_whether_a_row_was_there(cache: CacheFace) -> None:
    await cache.set("k", 1)
    assert await cache.delete("k") is True
    assert await cache.delete("k") is False
    assert await cache.get("k") is None


async def test_touch_gives_a_live_entry_a_new_ttl(cache: CacheFace, clock: FakeClock) -> None:
    await cache.set("k", "v", ttl=10)
    clock.advance(dt.timedelta(seconds=8))
    assert await cache.touch("k", ttl=10) is True
    clock.advance(dt.timedelta(seconds=8))  # 16 s after the set: alive thanks to touch
    assert await cache.get("k") == "v"
    assert await cache.touch("absent") is False
    clock.advance(dt.timedelta(seconds=3))
    assert await cache.get("k") is None
    assert await cache.touch("k") is False  # expired: not revived


async def test_touch_with_none_makes_an_entry_permanent(cache: CacheFace, clock: FakeClock,
                                                        raw: RawStorage) -> None:
    await cache.set("k", {"big": "x" * 100}, ttl=10)
    assert await cache.touch("k", ttl=None) is True
    (row,) = raw.rows()
    assert "ExpiresAt" not in row
    clock.advance(dt.timedelta(days=3650))
    assert await cache.get("k") == {"big": "x" * 100}


async def test_has_key(cache: CacheFace, clock: FakeClock) -> None:
    assert await cache.has_key("k") is False
    await cache.set("k", 0, ttl=5)
    assert await cache.has_key("k") is True
    clock.advance(dt.timedelta(seconds=6))
    assert await cache.has_key("k") is False


async def test_incr_and_decr(cache: CacheFace) -> None:
    await cache.set("n", 10)
    assert await cache.incr("n") == 11
    assert await cache.incr("n", 5) == 16
    assert await cache.decr("n") == 15
    assert await cache.decr("n", 20) == -5
    assert await cache.get("n") == -5


async def test_incr_errors(cache: CacheFace) -> None:
    with pytest.raises(ValueError, match="no live cache entry"):
        await cache.incr("absent")
    await cache.set("s", "text")
    with pytest.raises(TypeError, match="not an int"):
        await cache.incr("s")
    await cache.set("b", True)  # a bool is not an int here
    with pytest.raises(TypeError):
        await cache.incr("b")
    await cache.set("n", 1)
    with pytest.raises(TypeError):
        await cache.incr("n", True)
    with pytest.raises(TypeError):
        await cache.decr("n", 1.5)
    assert await cache.get("n") == 1


async def test_incr_past_int64_switches_to_the_payload_and_back(cache: CacheFace) -> None:
    await cache.set("n", 2**63 - 2)
    assert await cache.incr("n", 3) == 2**63 + 1
    assert await cache.get("n") == 2**63 + 1
    assert await cache.decr("n", 3) == 2**63 - 2
    await cache.set("big", 2**100)
    assert await cache.incr("big") == 2**100 + 1


async def test_incr_keeps_the_expiry(cache: CacheFace, clock: FakeClock) -> None:
    await cache.set("n", 1, ttl=10)
    clock.advance(dt.timedelta(seconds=6))
    assert await cache.incr("n") == 2
    clock.advance(dt.timedelta(seconds=5))
    assert await cache.get("n") is None
    with pytest.raises(ValueError):
        await cache.incr("n")


async def test_get_many_returns_found_live_keys_only(cache: CacheFace,
                                                     clock: FakeClock) -> None:
    keys = [f"key-{i}" for i in range(40)]
    assert await cache.set_many({k: i for i, k in enumerate(keys)}) == []
    await cache.set("short", "lived", ttl=5)
    clock.advance(dt.timedelta(seconds=6))
    got = await cache.get_many([*keys, "absent", "short", keys[0]])
    assert got == {k: i for i, k in enumerate(keys)}
    assert await cache.get_many([]) == {}


async def test_set_many_with_ttl_and_delete_many(cache: CacheFace, clock: FakeClock) -> None:
    assert await cache.set_many({"a": 1, "b": b"2", "c": [3]}, ttl=10) == []
    assert await cache.get_many(["a", "b", "c"]) == {"a": 1, "b": b"2", "c": [3]}
    assert await cache.delete_many(["a", "b", "absent"]) == 2
    assert await cache.get_many(["a", "b", "c"]) == {"c": [3]}
    clock.advance(dt.timedelta(seconds=11))
    assert await cache.get("c") is None
    assert await cache.delete_many([]) == 0
    assert await cache.set_many({}) == []


async def test_get_or_set(cache: CacheFace) -> None:
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return 99

    assert await cache.get_or_set("k", compute) == 99
    assert await cache.get_or_set("k", compute) == 99
    assert calls == [1]
    assert await cache.get_or_set("other", "plain") == "plain"
    assert await cache.get("other") == "plain"


async def test_clear_empties_only_this_namespace(make_cache: MakeCache,
                                                 raw: RawStorage) -> None:
    cache = await make_cache()
    other = await make_cache(app_name="other")
    await cache.set_many({f"k{i}": i for i in range(30)})
    await other.set("k0", "kept")
    assert await cache.clear() == 30
    assert await cache.get_many([f"k{i}" for i in range(30)]) == {}
    assert await other.get("k0") == "kept"
    assert len(raw.rows()) == 1


async def test_sweep_deletes_expired_entries_only(cache: CacheFace, clock: FakeClock,
                                                  raw: RawStorage) -> None:
    await cache.set("short", 1, ttl=10)
    await cache.set("long", 2, ttl=3600)
    await cache.set("forever", 3, ttl=None)
    clock.advance(dt.timedelta(minutes=5))
    report = await cache.sweep()
    assert report.deleted == 1 and report.errors == 0
    assert sorted(r["IntValue"].value for r in raw.rows()) == [2, 3]
    clock.advance(dt.timedelta(days=3650))
    assert (await cache.sweep()).deleted == 1
    assert await cache.get("forever") == 3


# -- TTLs ---------------------------------------------------------------------------


async def test_default_ttl_and_explicit_ttls(make_cache: MakeCache, clock: FakeClock) -> None:
    cache = await make_cache(default_ttl=60)
    await cache.set("default", 1)
    await cache.set("seconds", 1, ttl=30)
    await cache.set("float", 1, ttl=30.5)
    await cache.set("delta", 1, ttl=dt.timedelta(minutes=2))
    await cache.set("never", 1, ttl=None)
    await cache.set("explicit default", 1, ttl=DEFAULT)
    clock.advance(dt.timedelta(seconds=31))
    assert await cache.get_many(["default", "seconds", "float", "delta", "never",
                                 "explicit default"]) == {
        "default": 1, "delta": 1, "never": 1, "explicit default": 1}
    clock.advance(dt.timedelta(seconds=30))
    assert set(await cache.get_many(["default", "delta", "never"])) == {"delta", "never"}


async def test_a_cache_whose_entries_never_expire(make_cache: MakeCache, clock: FakeClock,
                                                  raw: RawStorage) -> None:
    cache = await make_cache(default_ttl=None)
    await cache.set("k", "v")
    assert "ExpiresAt" not in raw.rows()[0]
    clock.advance(dt.timedelta(days=365 * 20))
    assert await cache.get("k") == "v"


@pytest.mark.parametrize("ttl", [0, -1, True, float("nan"), "abc", [1]])
async def test_bad_ttls_raise_before_any_write(cache: CacheFace, ttl: Any,
                                               request_counter: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        await cache.set("k", 1, ttl=ttl)
    with pytest.raises((TypeError, ValueError)):
        await cache.set_many({"k": 1}, ttl=ttl)
    assert request_counter.count == 0


async def test_sliding_expiration_is_throttled(make_cache: MakeCache, clock: FakeClock,
                                               request_counter: Any) -> None:
    cache = await make_cache(sliding=True)
    await cache.set("k", "v", ttl=100)
    clock.advance(dt.timedelta(seconds=40))  # 60 s left: more than half, no write
    request_counter.reset()
    assert await cache.get("k") == "v"
    assert request_counter.count == 1
    clock.advance(dt.timedelta(seconds=20))  # 40 s left: extended to t+100
    request_counter.reset()
    assert await cache.get("k") == "v"
    assert request_counter.count == 2
    clock.advance(dt.timedelta(seconds=90))  # 150 s after the set: alive only by sliding
    assert await cache.get("k") == "v"
    clock.advance(dt.timedelta(seconds=101))
    assert await cache.get("k") is None


async def test_without_sliding_a_read_never_extends(cache: CacheFace, clock: FakeClock,
                                                    request_counter: Any) -> None:
    await cache.set("k", "v", ttl=100)
    clock.advance(dt.timedelta(seconds=90))
    request_counter.reset()
    assert await cache.get("k") == "v"
    assert request_counter.count == 1
    clock.advance(dt.timedelta(seconds=11))
    assert await cache.get("k") is None


# -- keys ---------------------------------------------------------------------------

ODD_KEYS = ["a/b", "a\\b", "#frag", "what?", "/\\#?", "tab\there", "nul\x00byte",
            "\x7f\x9f", "ünïcødé", "日本語", "emoji 🎉", "lone \ud800 surrogate", "",
            " spaced ", "x" * MAX_KEY_LENGTH]


async def test_any_str_key_up_to_the_limit(cache: CacheFace) -> None:
    mapping = {k: i for i, k in enumerate(ODD_KEYS)}
    for key, i in mapping.items():
        await cache.set(key, i)
        assert await cache.get(key) == i
    assert await cache.get_many(ODD_KEYS) == mapping
    assert await cache.delete_many(ODD_KEYS) == len(ODD_KEYS)
    assert await cache.set_many(mapping) == []
    assert await cache.get_many(ODD_KEYS) == mapping


async def test_bad_keys_raise_before_any_call(cache: CacheFace, request_counter: Any) -> None:
    too_long = "x" * (MAX_KEY_LENGTH + 1)
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("get", (too_long,)), ("set", (too_long, 1)), ("add", (too_long, 1)),
        ("delete", (too_long,)), ("incr", (too_long,)), ("touch", (too_long,)),
        ("has_key", (too_long,)), ("get_many", (["ok", too_long],)),
        ("set_many", ({"ok": 1, too_long: 2},)), ("delete_many", (["ok", too_long],))]
    for name, args in calls:
        with pytest.raises(tablesessions.InvalidCacheKeyError, match="MAX_KEY_LENGTH"):
            await getattr(cache, name)(*args)
    for bad in (None, 1, b"bytes"):
        with pytest.raises(TypeError, match="cache keys are str"):
            await cache.get(bad)
        with pytest.raises(TypeError):
            await cache.set(bad, 1)
    assert request_counter.count == 0
    assert issubclass(tablesessions.InvalidCacheKeyError, ValueError)
    assert issubclass(tablesessions.InvalidCacheKeyError, CacheError)


# -- values -------------------------------------------------------------------------


async def test_oversized_and_unencodable_values_write_nothing(
        make_cache: MakeCache, request_counter: Any, raw: RawStorage) -> None:
    cache = await make_cache(max_value_bytes=1000)
    await cache.set("k", "old")
    request_counter.reset()
    with pytest.raises(CacheValueTooLargeError, match="max_value_bytes") as info:
        await cache.set("k", "x" * 2000)
    assert info.value.limit == 1000 and info.value.size > 1000
    with pytest.raises(CacheValueTooLargeError):
        await cache.add("new", b"x" * 2000)
    with pytest.raises(CacheValueTooLargeError):
        await cache.set_many({"a": 1, "b": "x" * 2000})
    with pytest.raises(TypeError):
        await cache.set("k", object())
    with pytest.raises(TypeError):
        await cache.set("k", {"nested": {1, 2}})
    with pytest.raises(TypeError):
        await cache.set_many({"a": 1, "b": object()})
    with pytest.raises(TypeError):
        await cache.get_or_set("new", object)
    assert request_counter.count <= 1  # get_or_set's read only
    assert await cache.get("k") == "old"
    assert len(raw.rows()) == 1
    assert issubclass(CacheValueTooLargeError, ValueError)


async def test_bytes_are_stored_as_they_are(cache: CacheFace, raw: RawStorage) -> None:
    blob = bytes(range(256)) * 10
    await cache.set("b", blob)
    (row,) = raw.rows()
    assert blob in row["D0"]  # a raw segment of the payload, not base64 in JSON
    assert await cache.get("b") == blob


async def test_ints_are_native_columns(cache: CacheFace, raw: RawStorage) -> None:
    await cache.set("n", 7)
    await cache.set("flag", False)
    rows = {r["IntValue"].value if "IntValue" in r else "payload": r for r in raw.rows()}
    assert 7 in rows and "D0" not in rows[7]
    assert "payload" in rows  # the bool went through the codec


# -- the faces --------------------------------------------------------------------


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {n: inspect.signature(m) for n, m in inspect.getmembers(cls)
            if not n.startswith("_") and callable(m)}


def test_both_faces_have_the_same_api() -> None:
    sync, aio = _public(tablesessions.TableCache), _public(tablesessions.aio.TableCache)
    assert sync.keys() == aio.keys()
    for name, sig in sync.items():
        assert str(sig) == str(aio[name]), name
    for name in ("get", "set", "add", "delete", "touch", "has_key", "incr", "decr",
                 "get_many", "set_many", "delete_many", "get_or_set", "clear", "sweep",
                 "create_storage", "close"):
        assert inspect.iscoroutinefunction(getattr(tablesessions.aio.TableCache, name)), name
        assert not inspect.iscoroutinefunction(getattr(tablesessions.TableCache, name)), name
    assert hasattr(tablesessions.TableCache, "__enter__")
    assert hasattr(tablesessions.aio.TableCache, "__aenter__")
    assert issubclass(CacheConflictError, CacheError)


def test_unknown_options_and_bad_values_are_refused() -> None:
    conn = "UseDevelopmentStorage=true"
    with pytest.raises(TypeError, match="idle_timeout"):
        tablesessions.TableCache.from_connection_string(conn, idle_timeout=5)
    with pytest.raises(ValueError, match="max_value_bytes"):
        tablesessions.TableCache.from_connection_string(conn, max_value_bytes=0)
    with pytest.raises(ValueError, match="default_ttl"):
        tablesessions.TableCache.from_connection_string(conn, default_ttl=-5)


def test_from_env_reads_the_cache_names() -> None:
    env = {"TABLESESSIONS_CONNECTION_STRING": "UseDevelopmentStorage=true",
           "TABLESESSIONS_TABLE_NAME": "sessionsonly",
           "TABLESESSIONS_CACHE_TABLE_NAME": "mycache",
           "TABLESESSIONS_CACHE_APP_NAME": "shop",
           "TABLESESSIONS_CACHE_DEFAULT_TTL_SECONDS": "none"}
    with tablesessions.TableCache.from_env(env) as cache:
        assert (cache.table_name, cache.container_name) == ("mycache", "cache-overflow")
        assert cache.app_name == "shop" and cache.config.default_ttl is None
    with pytest.raises(ValueError, match="TABLESESSIONS_CONNECTION_STRING"):
        tablesessions.TableCache.from_env({})


def test_the_constructor_takes_endpoints_and_a_credential() -> None:
    from azure.core.credentials import AzureNamedKeyCredential

    from tablesessions.testing import ACCOUNT_KEY, ACCOUNT_NAME

    cred = AzureNamedKeyCredential(ACCOUNT_NAME, ACCOUNT_KEY)
    cache = tablesessions.TableCache.from_account("acct", credential=cred)
    assert cache._table.url.startswith("https://acct.table.core.windows.net")
    assert cache._owned_credential is None
    cache.close()


def test_without_a_credential_the_cache_owns_a_default_one() -> None:
    from azure.identity import DefaultAzureCredential
    from azure.identity.aio import DefaultAzureCredential as AsyncDefaultAzureCredential

    cache = tablesessions.TableCache("https://acct.table.core.windows.net",
                                     "https://acct.blob.core.windows.net")
    assert isinstance(cache._owned_credential, DefaultAzureCredential)
    cache.close()

    async def build() -> None:
        async with tablesessions.aio.TableCache.from_account("acct") as aio_cache:
            assert isinstance(aio_cache._owned_credential, AsyncDefaultAzureCredential)

    import asyncio

    asyncio.run(build())
