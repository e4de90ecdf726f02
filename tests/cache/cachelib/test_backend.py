"""tablesessions.cachelib beyond cachelib's own suite: authentication, native ints,
timeouts, namespaces and storage calls, on a real Azurite."""

from __future__ import annotations

import datetime as dt
import logging
import os
import pickle
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from cachelib.serializers import (
    BaseSerializer,
    FileSystemSerializer,
    JSONSerializer,
    RedisSerializer,
    SimpleSerializer,
)

from tablesessions import RetryPolicy
from tablesessions.cachelib import SIGNING_CONTEXT, TableCache
from tablesessions.encryption import KeyRing
from tablesessions.signed_pickle import PickleSigner
from tablesessions.testing import AzuriteServer, RequestCounter
from tests.conftest import CANARY, FakeClock

from ..planted import RAN, Payload
from ..raw_rows import raw_entities, stored_text
from .conftest import SECRET


def test_exported_members() -> None:
    import tablesessions.cachelib
    import tablesessions.flask_caching

    assert sorted(tablesessions.cachelib.__all__) == ["SignedPickleSerializer", "TableCache"]
    assert sorted(tablesessions.flask_caching.__all__) == ["CONFIG_PREFIX", "TableCache"]


# -- authentication -----------------------------------------------------------------------
def test_values_are_signed_pickles_and_ints_are_native(make_cachelib: Any) -> None:
    cache = make_cachelib(key_prefix="p:", key_ring=None)  # native ints: without encryption
    cache.set("obj", {"card": CANARY})
    cache.set("n", 7)
    cache.set("flag", True)
    raw = cache.table_cache
    assert raw.get("p:n") == 7 and type(raw.get("p:n")) is int
    stored = raw.get("p:obj")
    assert isinstance(stored, bytes) and stored.startswith(b"TSP1")
    assert PickleSigner(SECRET, context=SIGNING_CONTEXT).loads(stored) == {"card": CANARY}
    assert isinstance(raw.get("p:flag"), bytes)  # bool is not an int here: pickled
    assert cache.get("flag") is True and cache.get("n") == 7


def test_values_are_encrypted_at_rest_by_default(
        make_cachelib: Any, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    """Under the ring derived from ``secret``, no value is readable in the table,
    ints included; the control without a ring shows the same values are."""
    table, _ = storage_names
    cache = make_cachelib()
    ring = cache.table_cache.config.key_ring
    assert ring is not None and cache.table_cache.config.accept_plaintext is False
    assert ring.key_ids == KeyRing.from_secrets(SECRET, context="cachelib").key_ids
    cache.set("obj", {"card": CANARY})
    cache.set("n", 7_340_912_001)
    assert cache.inc("n") == 7_340_912_002
    assert cache.get("obj") == {"card": CANARY}
    rows = raw_entities(azurite.connection_string, table)
    assert len(rows) == 2 and not any("IntValue" in row for row in rows)
    raw = stored_text(rows)
    assert CANARY.encode() not in raw and b"7340912002" not in raw and b"TSP1" not in raw
    clear = make_cachelib(key_ring=None)
    clear.set("obj-clear", {"card": CANARY})
    clear.set("n-clear", 7_340_912_001)
    raw = stored_text(raw_entities(azurite.connection_string, table))
    assert CANARY.encode() in raw and b"7340912001" in raw


def test_a_plaintext_row_is_a_logged_miss_under_the_derived_ring(
        make_cachelib: Any, caplog: pytest.LogCaptureFixture) -> None:
    make_cachelib(key_ring=None).set("k", {"v": CANARY})  # signed, but in the clear
    with caplog.at_level(logging.WARNING, logger="tablesessions.security"):
        assert make_cachelib().get("k") is None
    refusals = [r for r in caplog.records if r.name == "tablesessions.security"]
    assert len(refusals) == 1 and CANARY not in refusals[0].getMessage()


def test_the_key_ring_argument(make_cachelib: Any) -> None:
    ring = KeyRing.from_secrets("explicit", context="elsewhere")
    assert make_cachelib(key_ring=ring).table_cache.config.key_ring is ring
    rotating = make_cachelib(secret="new", secret_fallbacks=iter(["old"]))
    derived = rotating.table_cache.config.key_ring
    assert derived is not None and len(derived.key_ids) == 2  # a fallback still decrypts
    with pytest.raises(ValueError, match="key_ring once"):
        make_cachelib(key_ring=None, options={"key_ring": ring})
    with pytest.raises(ValueError, match="cache="):
        TableCache(cache=rotating.table_cache, secret=SECRET, key_ring=None)


def test_planted_pickle_is_a_miss_and_never_loaded(
        make_cachelib: Any, loads_calls: list[bytes], caplog: pytest.LogCaptureFixture) -> None:
    cache = make_cachelib()
    tampered = bytearray(PickleSigner(SECRET, context=SIGNING_CONTEXT).dumps(Payload()))
    tampered[-2] ^= 1
    planted = {
        "raw": pickle.dumps(Payload()),
        "other-secret": PickleSigner("attacker", context=SIGNING_CONTEXT).dumps(Payload()),
        "other-context": PickleSigner(SECRET, context="cache").dumps(Payload()),
        "tampered": bytes(tampered),
    }
    for key, data in planted.items():
        cache.table_cache.set(key, data)
    with caplog.at_level(logging.WARNING, logger="tablesessions.security"):
        assert [cache.get(k) for k in planted] == [None] * 4
        assert cache.get_many(*planted) == [None] * 4
        assert cache.get_dict(*planted) == dict.fromkeys(planted)
    assert loads_calls == [] and RAN == []
    refusals = [r for r in caplog.records if r.name == "tablesessions.security"]
    assert len(refusals) == 12
    assert all(CANARY not in r.getMessage() and "raw" not in r.getMessage() for r in refusals)
    assert all(cache.has(k) for k in planted)  # has() reads no value: documented


def test_signed_payload_control(make_cachelib: Any) -> None:
    # The control for the test above: the same object, signed by this cache, is loaded.
    cache = make_cachelib()
    cache.set("k", Payload())
    assert cache.get("k") == "payload ran" and RAN == ["payload ran"]


class Renamed:
    """Cached, then gone from the code (a deploy renamed it)."""


def test_verified_value_whose_class_is_gone_is_a_miss(
        make_cachelib: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    cache = make_cachelib()
    cache.set("obj", Renamed())
    monkeypatch.delattr(sys.modules[__name__], "Renamed")
    with caplog.at_level(logging.WARNING, logger="tablesessions.cachelib"):
        assert cache.get("obj") is None
    assert "AttributeError" in caplog.text


def test_fallback_secret_reads_and_the_new_one_signs(make_cachelib: Any) -> None:
    old = make_cachelib(secret="old")
    old.set("k", [1, 2])
    rotated = make_cachelib(secret="new", secret_fallbacks=["old"])
    assert rotated.get("k") == [1, 2]
    rotated.set("k2", [3])
    assert old.get("k2") is None
    assert make_cachelib(secret="new").get("k") is None


def test_entries_not_written_by_this_backend_are_misses(make_cachelib: Any) -> None:
    cache = make_cachelib()
    cache.table_cache.set("json", {"a": 1})
    cache.table_cache.set("text", "plain")
    assert cache.get("json") is None and cache.get("text") is None


@pytest.mark.parametrize("serializer", [BaseSerializer(), SimpleSerializer(),
                                        FileSystemSerializer(), RedisSerializer()])
def test_pickle_serializers_are_refused(make_cachelib: Any, serializer: Any) -> None:
    cache = make_cachelib()
    with pytest.raises(TypeError, match="unauthenticated"):
        cache.serializer = serializer
    cache.serializer = JSONSerializer()
    assert isinstance(cache.serializer, JSONSerializer)


def test_unpicklable_value_raises_before_any_write(
        make_cachelib: Any, request_counter: RequestCounter) -> None:
    cache = make_cachelib()
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        cache.set("k", threading.Lock())
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        cache.set_many({"a": 1, "b": threading.Lock()})
    assert request_counter.count == 0


def test_non_str_key_is_refused(make_cachelib: Any) -> None:
    cache = make_cachelib()
    with pytest.raises(TypeError):
        cache.set(lambda: "spam", 1)


# -- timeouts -----------------------------------------------------------------------------
def test_timeout_zero_never_expires_and_none_is_the_default(
        make_cachelib: Any, clock: FakeClock) -> None:
    cache = make_cachelib(default_timeout=1, options={"clock": clock})
    cache.set("forever", "v", timeout=0)
    cache.set("default", "v")
    cache.add("added", "v", timeout=None)
    cache.inc("counter")
    cache.set("later", "v", timeout=dt.timedelta(seconds=3))
    clock.advance(dt.timedelta(seconds=2))
    assert cache.get("later") == "v"
    clock.advance(dt.timedelta(days=3650))
    assert cache.get("forever") == "v"
    assert cache.get("default") is None and cache.get("added") is None
    assert cache.get("counter") is None and cache.get("later") is None


def test_default_timeout_zero_never_expires(make_cachelib: Any) -> None:
    cache = make_cachelib(default_timeout=0)
    cache.set("k", "v")
    assert cache.table_cache.touch("k", ttl=None)  # still there, and still live
    assert cache.get("k") == "v"


def test_negative_timeout_is_already_expired(make_cachelib: Any) -> None:
    cache = make_cachelib()
    cache.set("k", "old")
    assert cache.set("k", "new", timeout=-1)
    assert cache.get("k") is None and not cache.has("k")
    assert cache.add("k", "v", timeout=-1)
    assert cache.get("k") is None
    cache.set("live", 1)
    assert not cache.add("live", 2, timeout=-1)
    assert cache.set_many({"live": 3, "other": 4}, timeout=-5) == ["live", "other"]
    assert cache.get_many("live", "other") == [None, None]


def test_the_sweeper_deletes_expired_entries_and_keeps_timeout_zero(
        make_cachelib: Any, clock: FakeClock) -> None:
    cache = make_cachelib(options={"clock": clock})
    cache.set_many({"a": "x", "b": os.urandom(2_000_000)}, timeout=1)  # b overflows to a blob
    cache.set("forever", "y", timeout=0)
    clock.advance(dt.timedelta(minutes=5))  # past the sweeper's 60 s margin
    assert cache.get_many("a", "b") == [None, None]
    report = cache.table_cache.sweep()
    assert (report.deleted, report.blobs_deleted, report.errors) == (2, 1, 0)
    assert cache.get("forever") == "y"


# -- counters -----------------------------------------------------------------------------
def test_inc_dec_on_a_non_int_raises(make_cachelib: Any) -> None:
    cache = make_cachelib()
    cache.set("s", "text")
    with pytest.raises(TypeError):
        cache.inc("s")
    with pytest.raises(TypeError):
        cache.dec("s")


def test_inc_from_threads_is_exact(make_cachelib: Any) -> None:
    # Missing key included: every thread's first inc may race to create it (add), and the
    # losers must increment the winner's row. A 10 s deadline: contention on one key is
    # TableCache's to resolve (CacheConflictError when its deadline runs out), and this
    # machine's two cores are shared.
    threads, per_thread = 8, 12
    caches = [make_cachelib(options={"retry": RetryPolicy(deadline=10.0)})
              for _ in range(threads)]
    errors: list[BaseException] = []

    def work(cache: TableCache) -> None:
        try:
            for _ in range(per_thread):
                cache.inc("hits")
        except BaseException as exc:  # reported below, not swallowed
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(c,)) for c in caches]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert caches[0].get("hits") == threads * per_thread


# -- namespaces and prefixes ---------------------------------------------------------------
def test_callable_key_prefix(make_cachelib: Any) -> None:
    tenant = ["a"]
    cache = make_cachelib(key_prefix=lambda: f"{tenant[0]}:")
    cache.set("k", 1)
    tenant[0] = "b"
    assert cache.get("k") is None
    cache.set("k", 2)
    tenant[0] = "a"
    assert cache.get("k") == 1
    assert cache.table_cache.get("b:k") == 2


def test_clear_empties_the_app_name_namespace_not_only_a_prefix(make_cachelib: Any) -> None:
    a = make_cachelib(key_prefix="a:")
    b = make_cachelib(key_prefix="b:")
    other_app = make_cachelib(app_name="other")
    a.set("k", 1)
    b.set("k", 2)
    other_app.set("k", 3)
    assert a.clear()
    assert a.get("k") is None and b.get("k") is None  # same namespace: key_prefix does not scope
    assert other_app.get("k") == 3


def test_cache_argument_shares_a_table_cache_and_is_not_closed(make_cachelib: Any) -> None:
    owner = make_cachelib()
    shared = TableCache(cache=owner.table_cache, secret=SECRET)
    shared.set("k", "v")
    shared.close()  # not ours to close
    assert owner.get("k") == "v"
    with pytest.raises(ValueError):
        TableCache(cache=owner.table_cache, secret=SECRET, app_name="x")


def test_conflicting_connection_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        TableCache("UseDevelopmentStorage=true", secret=SECRET,
                   table_endpoint="http://x", blob_endpoint="http://y")
    with pytest.raises(ValueError):
        TableCache(secret=SECRET, table_endpoint="http://x")
    with pytest.raises(ValueError):
        TableCache("UseDevelopmentStorage=true", secret="")


def test_large_value_overflows_and_round_trips(make_cachelib: Any) -> None:
    cache = make_cachelib()
    value = {"blob": os.urandom(2 * 1024 * 1024), "n": 1}
    assert cache.set("big", value)
    assert cache.get("big") == value
    assert cache.delete("big") and cache.get("big") is None


# -- storage calls ------------------------------------------------------------------------
def test_single_key_operations_make_one_storage_call(
        make_cachelib: Any, request_counter: RequestCounter) -> None:
    cache = make_cachelib(key_prefix="pre:")
    ops: list[tuple[Callable[[], Any], int]] = [
        (lambda: cache.set("k", {"v": 1}), 1),
        (lambda: cache.get("k"), 1),
        (lambda: cache.get("missing"), 1),
        (lambda: cache.add("new", "x"), 1),
        (lambda: cache.has("k"), 1),
        (lambda: cache.delete("k"), 1),
        (lambda: cache.set("n", 1), 1),
        (lambda: cache.inc("n"), 2),
        (lambda: cache.dec("n", 3), 2),
        (lambda: cache.inc("fresh"), 2),  # a read finds nothing, then an insert
    ]
    for op, expected in ops:
        request_counter.reset()
        op()
        assert request_counter.count == expected
    # add over a live key costs what TableCache.add costs (its insert's conflict is
    # followed by a read, in case the row it hit has expired): nothing added here.
    request_counter.reset()
    assert not cache.add("new", "y")
    ours = request_counter.count
    request_counter.reset()
    assert not cache.table_cache.add("pre:new", b"y")
    assert ours == request_counter.count


def test_many_operations_add_no_calls_to_table_cache_s(
        make_cachelib: Any, request_counter: RequestCounter) -> None:
    cache = make_cachelib()
    mapping = {f"key-{i}": i if i % 2 else f"v{i}" for i in range(40)}
    raw = {k: cache._encode(v) for k, v in mapping.items()}
    direct, ours = cache.table_cache, cache

    def count(run: Any) -> int:
        request_counter.reset()
        run()
        return request_counter.count

    assert count(lambda: ours.set_many(mapping)) == count(lambda: direct.set_many(raw))
    assert count(lambda: ours.get_many(*mapping)) == count(lambda: direct.get_many(list(mapping)))
    direct_delete = count(lambda: direct.delete_many(list(mapping)))
    direct.set_many(raw)
    assert count(lambda: ours.delete_many(*mapping)) == direct_delete
    assert ours.get_many(*mapping) == [None] * len(mapping)
