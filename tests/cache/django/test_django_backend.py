"""``tablesessions.django.TableCache`` beyond Django's own tests: its settings
errors, the authentication of pickled values, native ints, and the storage calls
each Django cache operation costs (both faces, counted at the transport)."""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar

import pytest
from django.conf import settings

from ...frameworks.django_setup import configure

if not settings.configured:
    configure()

from django.core.cache.backends.base import DEFAULT_TIMEOUT, InvalidCacheKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

import tablesessions
import tablesessions.django
from tablesessions import django_cache
from tablesessions.cache import MAX_KEY_LENGTH
from tablesessions.encryption import KeyRing
from tablesessions.signed_pickle import PickleSigner
from tablesessions.testing import AzuriteServer, RequestCounter

from ...conftest import CANARY
from ..raw_rows import raw_entities, stored_text

BACKEND = "tablesessions.django.TableCache"
#: A connection string that parses (building the backend makes no storage call).
OFFLINE = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
           "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
           "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;")


def build(location: str = "cache", **params: Any) -> django_cache.TableCache:
    params.setdefault("OPTIONS", {"connection_string": OFFLINE})
    return django_cache.TableCache(location, params)


def test_the_django_module_exposes_the_backend() -> None:
    assert tablesessions.django.TableCache is django_cache.TableCache
    with pytest.raises(AttributeError):
        tablesessions.django.NoSuchThing  # noqa: B018


# -- settings errors -------------------------------------------------------------------
@pytest.mark.parametrize(("params", "message", "check_id"), [
    ({"OPTIONS": {"conection_string": OFFLINE}},
     "OPTIONS has the unknown option 'conection_string'. Did you mean 'connection_string'?",
     "E007"),
    ({"OPTIONS": {"connection_string": OFFLINE, "MAX_ENTRIES": 30}},
     "OPTIONS['MAX_ENTRIES'] is not supported: a table cannot count its rows cheaply", "E007"),
    ({"OPTIONS": {"connection_string": OFFLINE, "CULL_FREQUENCY": 3}},
     "OPTIONS['CULL_FREQUENCY'] is not supported", "E007"),
    ({"OPTIONS": {"connection_string": OFFLINE, "table_name": "x"}},
     "OPTIONS['table_name'] is not supported: the table is LOCATION", "E007"),
    ({"OPTIONS": {"connection_string": OFFLINE, "default_ttl": 5}},
     "OPTIONS['default_ttl'] is not supported: the default timeout is TIMEOUT", "E007"),
    ({"TIMEOUT": "soon"}, "TIMEOUT must be a number of seconds or None, not 'soon'", "E006"),
    ({"TIMEOUT": True}, "TIMEOUT must be a number of seconds or None, not bool", "E006"),
    ({"TIMEOUT": [1]}, "TIMEOUT must be a number of seconds or None, not list", "E006"),
    ({"KEY_PREFIX": 7}, "KEY_PREFIX must be str, not int", "E006"),
    ({"VERSION": "1"}, "VERSION must be int, not str", "E006"),
    ({"KEY_FUNCTION": 3}, "KEY_FUNCTION must be a callable or a dotted path, not int", "E006"),
    ({"OPTIONS": ["connection_string"]}, "OPTIONS must be a dict, not list", "E006"),
    ({"OPTIONS": {"connection_string": 5}}, "OPTIONS['connection_string'] must be a string",
     "E006"),
    ({"OPTIONS": {"table_endpoint": "https://a.table.core.windows.net"}},
     "OPTIONS sets only 'table_endpoint'", "E008"),
    ({"OPTIONS": {"connection_string": OFFLINE, "account_name": "a"}},
     "OPTIONS sets connection_string and endpoints/account_name: choose one", "E008"),
    ({"OPTIONS": {"connection_string": OFFLINE, "SIGNING_KEY": ""}},
     "OPTIONS['SIGNING_KEY'] must be a non-empty str or bytes", "E006"),
    ({"OPTIONS": {"connection_string": OFFLINE, "SIGNING_KEY_FALLBACKS": ["old"]}},
     "OPTIONS['SIGNING_KEY_FALLBACKS'] needs OPTIONS['SIGNING_KEY']", "E006"),
    ({"OPTIONS": {"connection_string": OFFLINE, "SIGNING_KEY": "k",
                  "SIGNING_KEY_FALLBACKS": "old"}},
     "OPTIONS['SIGNING_KEY_FALLBACKS'] must be a list of str or bytes", "E006"),
    ({"OPTIONS": {"connection_string": OFFLINE, "container_name": 3}},
     "OPTIONS['container_name'] must be a string, not int", "E006"),
    ({"OPTIONS": {"connection_string": OFFLINE, "max_parallel": 0}},  # TableCache's check
     "OPTIONS: max_parallel must be a positive int", "E009"),
    ({"OPTIONS": {"connection_string": OFFLINE, "sliding": "yes"}},
     "OPTIONS: sliding must be a bool", "E009"),
])
def test_a_bad_setting_is_named(params: dict[str, Any], message: str, check_id: str) -> None:
    """The check reports it with its id (no client, no storage call); the backend
    raises it on its first operation, as ImproperlyConfigured naming the setting."""
    [(alias, found_id, found)] = django_cache.cache_problems(
        {"default": {"BACKEND": BACKEND, "LOCATION": "cache",
                     "OPTIONS": {"connection_string": OFFLINE}, **params}})
    assert (alias, found_id) == ("default", f"tablesessions.{check_id}")
    assert message in found and "LOCATION 'cache'" in found
    backend = build(**params)  # Django's own cache checks build every cache: no raise here
    with pytest.raises(ImproperlyConfigured) as caught:
        backend.get("k")
    assert str(caught.value) == found
    backend.disconnect()  # nothing to close, and no error


@pytest.mark.parametrize(("location", "options", "message"), [
    ("a/b/c", {}, "LOCATION is 'table' or 'table/app_name', with one '/' at most"),
    ("cache/one", {"app_name": "two"}, "the app name is set twice"),
])
def test_a_bad_location_is_named(location: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        build(location, OPTIONS={"connection_string": OFFLINE, **options}).set("k", 1)


def test_no_connection_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TABLESESSIONS_CONNECTION_STRING", "TABLESESSIONS_TABLE_ENDPOINT",
                 "TABLESESSIONS_BLOB_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ImproperlyConfigured, match="no storage connection is configured"):
        build(OPTIONS={}).has_key("k")
    [(_, check_id, _)] = django_cache.cache_problems({"c": {"BACKEND": BACKEND}})
    assert check_id == "tablesessions.E008"
    monkeypatch.setenv("TABLESESSIONS_CONNECTION_STRING", OFFLINE)
    assert build(OPTIONS={})._settings.connection == {}  # from the environment


def test_location_gives_the_table_and_the_app_name() -> None:
    conf = build("mycache/shop")._settings
    assert (conf.table_name, conf.app_name, conf.container_name) == \
        ("mycache", "shop", "mycache-overflow")
    conf = build("", OPTIONS={"connection_string": OFFLINE, "app_name": "shop",
                              "container_name": "blobs"})._settings
    assert (conf.table_name, conf.app_name, conf.container_name) == ("cache", "shop", "blobs")


def test_manage_py_check_reports_a_bad_cache_setting() -> None:
    """``tablesessions.django.check_caches`` is registered: ``manage.py check``
    reports every wrong entry of this backend with its id, and other backends'
    entries are left to Django."""
    bad = {"default": {"BACKEND": BACKEND, "LOCATION": "cache",
                       "OPTIONS": {"conection_string": OFFLINE}},
           "second": {"BACKEND": "tablesessions.django_cache.TableCache", "TIMEOUT": "soon",
                      "OPTIONS": {"connection_string": OFFLINE}},
           "fine": {"BACKEND": BACKEND, "OPTIONS": {"connection_string": OFFLINE}},
           "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=bad):
        messages = tablesessions.django.check_caches()
        with pytest.raises(SystemCheckError) as caught:
            call_command("check")
    assert [(m.id, m.obj) for m in messages] == [
        ("tablesessions.E007", "settings.CACHES['default']"),
        ("tablesessions.E006", "settings.CACHES['second']")]
    assert "unknown option 'conection_string'" in messages[0].msg
    assert "tablesessions.E007" in str(caught.value) and "tablesessions.E006" in str(caught.value)
    with override_settings(CACHES={"default": bad["fine"], "local": bad["local"]}):
        assert tablesessions.django.check_caches() == []
        call_command("check", tags=["caches"])  # passes (the session check is another tag)


def test_the_cache_check_makes_no_storage_call_and_builds_no_client(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the cache check tried to connect")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    built = len(django_cache._clients)
    caches = {"default": {"BACKEND": BACKEND, "LOCATION": "checked/app",
                          "OPTIONS": {"connection_string": OFFLINE, "max_parallel": 2}}}
    with override_settings(CACHES=caches):
        assert tablesessions.django.check_caches() == []
    assert len(django_cache._clients) == built


def test_the_timeout_follows_django() -> None:
    backend = build(TIMEOUT=None)
    assert backend._ttl(DEFAULT_TIMEOUT) is None
    backend = build(TIMEOUT="60")
    assert backend._ttl(DEFAULT_TIMEOUT) == 60
    assert backend._ttl(0) is django_cache._EXPIRED
    assert backend._ttl(-5) is django_cache._EXPIRED
    assert backend._ttl(1.5) == 1.5


def test_an_over_long_key_is_refused_before_any_call() -> None:
    limit = MAX_KEY_LENGTH
    backend = build(KEY_FUNCTION=lambda key, prefix, version: key)
    with pytest.raises(InvalidCacheKey, match=f"longer than {limit}"):
        backend.get("k" * (limit + 1))  # OFFLINE: a storage call would fail differently


# -- against Azurite: both faces ---------------------------------------------------------
class Face:
    """The backend's sync methods, or their ``a*`` twins, behind one awaitable call."""

    def __init__(self, backend: django_cache.TableCache, is_async: bool) -> None:
        self.backend, self.is_async = backend, is_async

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.backend, "a" + name if self.is_async else name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            return await result if self.is_async else result

        return call


@pytest.fixture
def backend_factory(azurite: AzuriteServer, storage_names: tuple[str, str],
                    request_counter: RequestCounter,
                    ) -> Iterator[Callable[..., django_cache.TableCache]]:
    table, container = storage_names
    made: list[django_cache.TableCache] = []

    def make(**options: Any) -> django_cache.TableCache:
        options = {"connection_string": azurite.connection_string,
                   "container_name": container,
                   "client_options": request_counter.client_options(), **options}
        backend = django_cache.TableCache(f"{table}/django", {"OPTIONS": options})
        if not made:
            backend.create_storage()
        made.append(backend)
        return backend

    make.made = made  # type: ignore[attr-defined]
    yield make
    for backend in made:
        backend.disconnect()


@pytest.fixture
async def face(face_kind: str, backend_factory: Callable[..., django_cache.TableCache],
               request_counter: RequestCounter) -> AsyncIterator[Face]:
    backend = backend_factory()
    yield Face(backend, face_kind == "async")
    if face_kind == "async":  # every backend of the test: each secret has its own clients
        for made in backend_factory.made:  # type: ignore[attr-defined]
            await made.adisconnect()


def plain(backend: django_cache.TableCache) -> tablesessions.TableCache:
    """The library's own TableCache on the backend's namespace (no pickle)."""
    return backend._clients.sync()


class Planted:
    """A pickle that, loaded, would run code: it records that it ran instead."""

    ran: ClassVar[list[str]] = []

    def __reduce__(self) -> tuple[Any, ...]:
        return (Planted.ran.append, ("unpickled!",))


async def test_a_row_written_without_the_key_is_a_logged_miss_never_unpickled(
        face: Face, caplog: pytest.LogCaptureFixture) -> None:
    made = face.backend.make_key("planted")
    plain(face.backend).set(made, pickle.dumps(Planted()))       # no tag at all
    forged = PickleSigner("not-the-secret", context="django-cache")
    plain(face.backend).set(face.backend.make_key("forged"), forged.dumps(CANARY))
    with caplog.at_level(logging.WARNING, logger="tablesessions.security"):
        assert await face.get("planted", "miss") == "miss"
        assert await face.get_many(["planted", "forged"]) == {}
        assert await face.get("forged") is None
        assert await face.get_or_set("forged", "fresh") == "fresh"  # a miss: replaced
    assert Planted.ran == []
    refusals = [r for r in caplog.records if r.name == "tablesessions.security"]
    assert len(refusals) == 5
    text = " ".join(r.getMessage() for r in refusals)
    assert CANARY not in text and "planted" not in text and made not in text
    assert await face.get("forged") == "fresh"                  # get_or_set replaced it


async def test_secret_key_fallbacks_verify_and_never_sign(face: Face) -> None:
    with override_settings(SECRET_KEY="old-secret"):
        await face.set("k", {"v": 1})
    assert await face.get("k") is None                          # another SECRET_KEY
    with override_settings(SECRET_KEY="new-secret", SECRET_KEY_FALLBACKS=["old-secret"]):
        assert await face.get("k") == {"v": 1}                  # a fallback verifies
        await face.set("k2", {"v": 2})
    with override_settings(SECRET_KEY="old-secret"):
        assert await face.get("k2") is None                     # ...but never signs


async def test_a_configured_signing_key_replaces_secret_key(
        face: Face, backend_factory: Callable[..., django_cache.TableCache]) -> None:
    keyed = Face(backend_factory(SIGNING_KEY="cache-key"), face.is_async)
    await keyed.set("k", [1, 2])
    with override_settings(SECRET_KEY="rotated"):
        assert await keyed.get("k") == [1, 2]                   # SECRET_KEY is not used
    assert await face.get("k") is None                          # nor is it the key
    rotated = Face(backend_factory(SIGNING_KEY="next", SIGNING_KEY_FALLBACKS=["cache-key"]),
                   face.is_async)
    assert await rotated.get("k") == [1, 2]


async def test_ints_are_native_so_incr_never_unpickles(
        face: Face, backend_factory: Callable[..., django_cache.TableCache]) -> None:
    face = Face(backend_factory(key_ring=None), face.is_async)  # native: without encryption
    await face.set("n", 41)
    await face.set("flag", True)
    await face.set("big", 2**70)
    table = plain(face.backend)
    assert table.get(face.backend.make_key("n")) == 41            # a native int
    assert isinstance(table.get(face.backend.make_key("flag")), bytes)  # bool: pickled
    assert isinstance(table.get(face.backend.make_key("big")), bytes)   # past 64 bits
    assert await face.incr("n") == 42
    assert await face.get("flag") is True and await face.get("big") == 2**70
    with pytest.raises(TypeError):
        await face.incr("flag")
    with pytest.raises(ValueError, match="Key 'absent' not found"):
        await face.incr("absent")


async def test_values_are_encrypted_at_rest_by_default(
        face: Face, azurite: AzuriteServer, storage_names: tuple[str, str],
        request_counter: RequestCounter,
        backend_factory: Callable[..., django_cache.TableCache]) -> None:
    """Under a ring derived from SECRET_KEY: neither a pickled value nor an int is
    readable in the table, and incr still costs 2 calls."""
    table, _ = storage_names
    await face.set("doc", {"secret": CANARY})
    await face.set("n", 7_340_912_001)
    request_counter.reset()
    assert await face.incr("n") == 7_340_912_002
    assert request_counter.count == 2
    assert await face.get("doc") == {"secret": CANARY}
    rows = raw_entities(azurite.connection_string, table)
    assert len(rows) == 2
    raw = stored_text(rows)
    assert CANARY.encode() not in raw and b"7340912002" not in raw
    assert not any("IntValue" in row for row in rows)      # the counter is sealed too
    # The control: the same values with encryption opted out are readable there.
    clear = Face(backend_factory(key_ring=None), face.is_async)
    await clear.set("doc-clear", {"secret": CANARY})
    await clear.set("n-clear", 7_340_912_001)
    raw = stored_text(raw_entities(azurite.connection_string, table))
    assert CANARY.encode() in raw and b"7340912001" in raw


async def test_a_plaintext_row_is_a_logged_miss_under_the_derived_ring(
        face: Face, backend_factory: Callable[..., django_cache.TableCache],
        caplog: pytest.LogCaptureFixture) -> None:
    """A correctly signed pickle written in the clear (before encryption, or
    planted by someone with the signing key but not write-once access) is refused:
    the derived ring does not accept plaintext."""
    clear = Face(backend_factory(key_ring=None), face.is_async)
    await clear.set("k", {"v": CANARY})
    assert await clear.get("k") == {"v": CANARY}           # signed: it verifies
    with caplog.at_level(logging.WARNING, logger="tablesessions.security"):
        assert await face.get("k", "miss") == "miss"
    refusals = [r for r in caplog.records if r.name == "tablesessions.security"]
    assert len(refusals) == 1 and "SessionTamperedError" in refusals[0].getMessage()
    assert CANARY not in refusals[0].getMessage()


async def test_storage_calls_per_operation(face: Face, request_counter: RequestCounter) -> None:
    """What each Django operation costs, asserted against the TableCache operation
    it stands on: the backend adds no call of its own."""

    async def calls(name: str, *args: Any, **kwargs: Any) -> int:
        request_counter.reset()
        await getattr(face, name)(*args, **kwargs)
        return request_counter.count

    table = plain(face.backend)

    def core(op: Callable[[], Any]) -> int:
        request_counter.reset()
        op()
        return request_counter.count

    assert await calls("set", "a", "x") == core(lambda: table.set("core-a", b"x")) == 1
    assert await calls("get", "a") == core(lambda: table.get("core-a")) == 1
    assert await calls("add", "b", "y") == core(lambda: table.add("core-b", b"y")) == 1
    assert await calls("delete", "b") == core(lambda: table.delete("core-b")) == 1
    assert await calls("set", "n", 1) == 1
    assert await calls("incr", "n") == 2
    assert await calls("has_key", "a") == 1
    assert await calls("touch", "a", 60) == core(lambda: table.touch("core-a", 60))
    assert await calls("get_or_set", "a", "z") == 1                # a hit: one read
    assert await calls("get_or_set", "c", "z") == 2                # a miss: read + add
    assert await calls("set", "a", "x", 0) == 1                    # timeout 0: a delete
    many = {f"m{i}": i for i in range(10)}
    assert await calls("set_many", many) == core(
        lambda: table.set_many({f"core-m{i}": i for i in range(10)}))
    assert await calls("get_many", list(many)) == core(
        lambda: table.get_many([f"core-m{i}" for i in range(10)]))
    assert await calls("delete_many", list(many)) == core(
        lambda: table.delete_many([f"core-m{i}" for i in range(10)]))
    assert await calls("get_many", []) == 0
    assert await calls("delete_many", []) == 0
    assert await calls("set_many", {}) == 0


def test_incr_from_threads_is_exact(backend_factory: Callable[..., django_cache.TableCache],
                                    ) -> None:
    """Django builds one backend per thread; on one key their incr stay atomic."""
    backends = [backend_factory() for _ in range(4)]
    backends[0].set("counter", 0, timeout=None)
    errors: list[BaseException] = []

    def work(backend: django_cache.TableCache) -> None:
        try:
            for _ in range(10):
                backend.incr("counter")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in backends]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert backends[0].get("counter") == 40


def test_backends_of_one_configuration_share_clients_and_close_keeps_them() -> None:
    """Django builds a backend per thread and calls close() after every request:
    the clients (and their connection pool) survive both; disconnect() ends them."""
    first, second = build(), build()
    other = build("othercache")
    clients = first._clients.sync()
    assert second._clients.sync() is clients
    assert other._clients.sync() is not clients
    first.close()
    assert second._clients.sync() is clients
    first.disconnect()
    assert second._clients.sync() is not clients
    second.disconnect()
    other.disconnect()


def test_a_key_ring_option_encrypts_at_rest(
        backend_factory: Callable[..., django_cache.TableCache]) -> None:
    ring = KeyRing.from_secrets("at-rest-secret", context="django-cache-at-rest")
    sealed = backend_factory(key_ring=ring)
    sealed.set("doc", {"secret": CANARY})
    sealed.set("n", 1)
    assert sealed.get("doc") == {"secret": CANARY}
    assert sealed.incr("n") == 2
    derived = backend_factory()  # the same namespace, the ring derived from SECRET_KEY
    assert derived.get("doc") is None and derived.get("n") is None
    clear = backend_factory(key_ring=None)  # the same namespace, without a ring
    assert clear.get("doc") is None and clear.get("n") is None


def test_secret_key_derives_the_ring_and_a_new_secret_rederives_it() -> None:
    """No storage call: which ring each backend's TableCache encrypts under."""
    backend = build()
    ring = plain(backend).config.key_ring
    assert ring is not None
    assert plain(backend).config.accept_plaintext is False
    expected = KeyRing.from_secrets(settings.SECRET_KEY, context="django-cache")
    assert ring.key_ids == expected.key_ids
    with override_settings(SECRET_KEY="rotated", SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]):
        rotated = plain(backend).config.key_ring
        assert rotated is not None and rotated.primary != ring.primary
        assert ring.primary in rotated.key_ids               # the old secret still decrypts
    keyed = build(OPTIONS={"connection_string": OFFLINE, "SIGNING_KEY": "own"})
    own = plain(keyed).config.key_ring
    assert own is not None
    assert own.key_ids == KeyRing.from_secrets("own", context="django-cache").key_ids
    opted_out = build(OPTIONS={"connection_string": OFFLINE, "key_ring": None})
    assert plain(opted_out).config.key_ring is None
    for one in (backend, keyed, opted_out):
        one.disconnect()
