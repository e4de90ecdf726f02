"""Flask-Caching (``CACHE_TYPE``) and Flask-Session's cachelib backend on tablesessions,
with real Flask apps on a real Azurite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cachelib.serializers import JSONSerializer, SimpleSerializer
from flask import Flask, session
from flask_caching import Cache

from tablesessions.cachelib import SIGNING_CONTEXT
from tablesessions.cachelib import TableCache as CachelibTableCache
from tablesessions.encryption import KeyRing
from tablesessions.flask_caching import TableCache
from tablesessions.signed_pickle import PickleSigner
from tablesessions.testing import AzuriteServer, RequestCounter
from tests.conftest import CANARY

from ..raw_rows import raw_entities, stored_text

FLASK_SECRET = "flask-secret-key"


@pytest.fixture
def caching_config(azurite: AzuriteServer, storage_names: tuple[str, str],
                   request_counter: RequestCounter) -> dict[str, Any]:
    table_name, container_name = storage_names
    return {
        "SECRET_KEY": FLASK_SECRET,
        "CACHE_TYPE": "tablesessions.flask_caching.TableCache",
        "CACHE_DEFAULT_TIMEOUT": 60,
        "CACHE_TABLESESSIONS_CONNECTION_STRING": azurite.connection_string,
        "CACHE_TABLESESSIONS_TABLE_NAME": table_name,
        "CACHE_TABLESESSIONS_CONTAINER_NAME": container_name,
        "CACHE_OPTIONS": {"create_storage": True,
                          "options": {"client_options": request_counter.client_options()}},
    }


@pytest.fixture
def make_app(caching_config: dict[str, Any]) -> Iterator[Any]:
    made: list[Cache] = []

    def make(**config: Any) -> tuple[Flask, Cache]:
        app = Flask(__name__)
        app.config.update({**caching_config, **config})
        cache = Cache(app)
        made.append(cache)
        return app, cache

    yield make
    for cache in made:
        _backend(cache).close()


def _backend(cache: Cache) -> TableCache:
    backend: Any = cache.cache
    assert isinstance(backend, TableCache)
    return backend


def test_cache_type_builds_the_backend_from_the_app_config(make_app: Any) -> None:
    app, cache = make_app(CACHE_KEY_PREFIX="site:", CACHE_DEFAULT_TIMEOUT=42)
    backend = _backend(cache)
    assert type(backend) is TableCache and isinstance(backend, CachelibTableCache)
    assert backend.default_timeout == 42 and backend.key_prefix == "site:"
    assert backend.ignore_delete_many_errors is False  # Flask-Caching's CACHE_IGNORE_ERRORS
    with app.app_context():
        cache.set("k", {"v": 1})
        assert cache.get("k") == {"v": 1}
    # Signed with a key derived from SECRET_KEY, under the cachelib context.
    stored = backend.table_cache.get("site:k")
    assert PickleSigner(FLASK_SECRET, context=SIGNING_CONTEXT).loads(stored) == {"v": 1}


def test_cached_view_and_memoize_are_served_from_the_table(make_app: Any) -> None:
    app, cache = make_app()
    calls: list[str] = []

    @app.get("/slow")  # type: ignore[untyped-decorator]
    @cache.cached(timeout=30)  # type: ignore[untyped-decorator]
    def slow() -> str:
        calls.append("view")
        return f"rendered {len(calls)}"

    @cache.memoize(timeout=30)  # type: ignore[untyped-decorator]
    def square(n: int) -> int:
        calls.append(f"square {n}")
        return n * n

    client = app.test_client()
    assert client.get("/slow").text == "rendered 1"
    assert client.get("/slow").text == "rendered 1"
    with app.app_context():
        assert square(4) == 16 and square(4) == 16 and square(5) == 25
        cache.delete_memoized(square, 4)
        assert square(4) == 16
    assert calls == ["view", "square 4", "square 5", "square 4"]


def test_a_second_instance_shares_the_cache(make_app: Any) -> None:
    app1, cache1 = make_app()
    app2, cache2 = make_app()
    with app1.app_context():
        cache1.set("shared", [1, 2, 3])
        assert _backend(cache1).inc("hits") == 1
    with app2.app_context():
        assert cache2.get("shared") == [1, 2, 3]
        assert _backend(cache2).inc("hits") == 2


def test_values_are_encrypted_under_a_ring_derived_from_secret_key(
        make_app: Any, azurite: AzuriteServer, storage_names: tuple[str, str],
        caching_config: dict[str, Any]) -> None:
    app, cache = make_app()
    ring = _backend(cache).table_cache.config.key_ring
    assert ring is not None
    assert ring.key_ids == KeyRing.from_secrets(FLASK_SECRET, context="cachelib").key_ids
    with app.app_context():
        cache.set("doc", {"card": CANARY})
        assert cache.get("doc") == {"card": CANARY}
    table, _ = storage_names
    assert CANARY.encode() not in stored_text(raw_entities(azurite.connection_string, table))
    options = {**caching_config["CACHE_OPTIONS"], "key_ring": None}  # opted out
    clear_app, clear = make_app(CACHE_OPTIONS=options)
    assert _backend(clear).table_cache.config.key_ring is None
    with clear_app.app_context():
        clear.set("doc-clear", {"card": CANARY})
    assert CANARY.encode() in stored_text(raw_entities(azurite.connection_string, table))


def test_secret_key_fallbacks_verify(make_app: Any) -> None:
    old_app, old_cache = make_app(SECRET_KEY="old-key")
    with old_app.app_context():
        old_cache.set("k", "written before the rotation")
    app, cache = make_app(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=["old-key"])
    bare_app, bare_cache = make_app(SECRET_KEY="new-key")
    with app.app_context():
        assert cache.get("k") == "written before the rotation"
    with bare_app.app_context():
        assert bare_cache.get("k") is None


def test_own_secret_setting_wins_over_secret_key(make_app: Any) -> None:
    app, cache = make_app(CACHE_TABLESESSIONS_SECRET="cache-only-secret")
    with app.app_context():
        cache.set("k", "v")
    stored = _backend(cache).table_cache.get("flask_cache_k")
    assert PickleSigner("cache-only-secret", context=SIGNING_CONTEXT).loads(stored) == "v"


def test_no_secret_is_refused_at_init(make_app: Any) -> None:
    with pytest.raises(ValueError, match="SECRET_KEY"):
        make_app(SECRET_KEY=None)


def test_cache_serializer_json_is_used_and_pickle_is_refused(make_app: Any) -> None:
    app, cache = make_app(CACHE_SERIALIZER=JSONSerializer)
    assert isinstance(_backend(cache).serializer, JSONSerializer)
    with app.app_context():
        cache.set("k", {"a": [1]})
        assert cache.get("k") == {"a": [1]}
    assert _backend(cache).table_cache.get("flask_cache_k") == b'{"a": [1]}'
    with pytest.raises(TypeError, match="unauthenticated"):
        make_app(CACHE_SERIALIZER=SimpleSerializer)


# -- Flask-Session's cachelib backend -----------------------------------------------------
def _session_app(backend: CachelibTableCache) -> Flask:
    from flask_session import Session  # type: ignore[import-untyped]

    app = Flask(__name__)
    app.config.update(SECRET_KEY=FLASK_SECRET, SESSION_TYPE="cachelib",
                      SESSION_CACHELIB=backend, SESSION_PERMANENT=True)
    Session(app)

    @app.post("/login/<name>")
    def login(name: str) -> str:
        session["user"] = name
        session["cart"] = [1, 2]
        return "ok"

    @app.get("/me")
    def me() -> str:
        return f"{session.get('user')} {session.get('cart')}"

    @app.post("/logout")
    def logout() -> str:
        session.clear()
        return "bye"

    return app


def test_flask_session_cachelib_backend_across_two_instances(make_cachelib: Any) -> None:
    first, second = _session_app(make_cachelib()), _session_app(make_cachelib())
    client = first.test_client()
    assert client.post("/login/alice").text == "ok"
    cookie = client.get_cookie("session")
    assert cookie is not None
    other = second.test_client()
    other.set_cookie("session", cookie.value)
    assert other.get("/me").text == "alice [1, 2]"  # the second instance reads the table
    # The stored session is a signed pickle in the table, never a plain one.
    backend = second.config["SESSION_CACHELIB"]
    stored = backend.table_cache.get(f"session:{cookie.value}")
    assert isinstance(stored, bytes) and stored.startswith(b"TSP1")
    other.post("/logout")
    assert client.get("/me").text == "None None"
