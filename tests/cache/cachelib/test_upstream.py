"""cachelib's own backend tests (cachelib 0.17.0, pallets-eco/cachelib ``tests/``, from its
sdist on PyPI) against :class:`tablesessions.cachelib.TableCache` on a real Azurite.

Upstream names and assertions are kept; only the backend and its configuration change.

Ported, as ``test_redis_cache.py`` / ``test_dynamodb_cache.py`` run them:
``CommonTests`` (``common.py``), ``ClearTests`` (``clear.py``), ``HasTests`` (``has.py``),
``DeleteManyWithPrefixTests`` (``delete_many_with_prefix.py``), ``SerializerTests``
(``serializer.py``), each with and without a key prefix (upstream's ``key_prefix``
fixture); the check-connection tests of ``test_dynamodb_cache.py`` and
``test_redis_cache.py``; ``test_interface_uniformity.py``; and the timeout tests of
``test_base_cache.py``, which check ``BaseCache._normalize_timeout``, the timeout rule this
backend inherits.

Excluded, with reasons (also in docs/cache.md):

- ``test_base_cache.py``'s other tests (``test_get``, ``test_delete``, ``test_get_many``,
  ``test_get_dict``, ``test_set``, ``test_add``, ``test_set_many``, ``test_delete_many``,
  ``test_delete_many_raise_errors``, ``test_has``, ``test_clear``, ``test_inc``,
  ``test_dec``: 13): they pin the no-op ``BaseCache`` itself (``delete`` of a missing key
  is True, ``has`` raises ``NotImplementedError``), which a real backend contradicts by
  design; ``CommonTests`` cover the same methods for backends.
- ``TestRedisCache.test_callable_key``: Redis-specific; it passes a function as the key,
  which Redis turns into the function's ``repr`` (a per-process address). This backend
  takes ``str`` keys only and raises ``TypeError`` otherwise.
- ``TestDynamoDbCacheCheckConnectionLive.test_missing_table_is_created_regardless_of_flag``:
  DynamoDB-specific; this backend never creates storage implicitly (``create_storage=True``
  or ``create_storage()`` do), and a missing table raises ``StorageNotFoundError``.
- ``test_serializers.py``: tests cachelib's serializer classes, no backend.
- ``test_file_system_cache.py``, ``test_simple_cache.py``, ``test_memcached_cache.py``,
  ``test_uwsgi_cache.py``, ``test_mongodb_cache.py``, ``test_valkey_cache.py``: their
  backend-specific tests (threshold culling, file modes, ``SillySerializer`` on Redis
  bytes) concern other storage; their shared mixins are the ones run here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cachelib import BaseCache

from tablesessions.cachelib import TableCache
from tablesessions.testing import ACCOUNT_KEY

from .clear import ClearTests
from .common import CommonTests
from .delete_many_with_prefix import DeleteManyWithPrefixTests
from .has import HasTests
from .serializer import SerializerTests


@pytest.fixture
def cache_factory(request: pytest.FixtureRequest, key_prefix: Any, make_cachelib: Any) -> None:
    # As upstream's test_dynamodb_cache.py: the prefix from the key_prefix fixture, and
    # a clear() before each test (here the table is fresh as well).
    def _factory(self: Any, *args: Any, **kwargs: Any) -> TableCache:
        kwargs.setdefault("key_prefix", key_prefix)
        rc: TableCache = make_cachelib(*args, **kwargs)
        rc.clear()
        return rc

    if request.cls:
        request.cls.cache_factory = _factory


@pytest.mark.usefixtures("cache_factory")
class TestTableCache(
    CommonTests, ClearTests, HasTests, DeleteManyWithPrefixTests, SerializerTests
):
    pass


def _unreachable() -> str:
    # Nothing listens on port 1, so connections are refused immediately.
    return ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;"
            "TableEndpoint=http://127.0.0.1:1/devstoreaccount1;")


class TestTableCacheCheckConnection:
    # From TestDynamoDbCacheCheckConnection / TestRedisCacheCheckConnection.
    def test_unreachable_server_raises_when_enabled(self) -> None:
        with pytest.raises(RuntimeError, match="could not connect to Azure Table Storage"):
            TableCache(_unreachable(), secret="s", check_connection=True)

    def test_unreachable_server_is_lazy_by_default(self) -> None:
        cache = TableCache(_unreachable(), secret="s")
        assert isinstance(cache, TableCache)


class TestTableCacheCheckConnectionLive:
    # From TestRedisCacheCheckConnectionLive.
    def test_reachable_server_constructs_and_works(self, make_cachelib: Any) -> None:
        cache = make_cachelib(check_connection=True)
        assert cache.set("check-connection-key", "value")
        assert cache.get("check-connection-key") == "value"


class TestInterfaceUniformity:
    # From test_interface_uniformity.py, with this backend as the cache list.
    cache_list: list[Any]

    @pytest.fixture(autouse=True)
    def create_cache_list(self, request: pytest.FixtureRequest, make_cachelib: Any) -> None:
        request.cls.cache_list = [make_cachelib()]

    def test_types_have_all_base_methods(self) -> None:
        public_api_methods = [
            meth
            for meth in inspect.getmembers(BaseCache, predicate=inspect.isfunction)
            if not meth[0].startswith("_")
        ]
        for cache_type in self.cache_list:
            for meth in public_api_methods:
                assert hasattr(cache_type, meth[0]) and callable(meth[1])


class TestBaseCacheTimeouts:
    # test_base_cache.py's timeout tests, on this backend instead of BaseCache (its
    # constructor makes no storage call, so the account need not be reachable).
    cache_factory: Callable[..., Any]

    @pytest.fixture(autouse=True)
    def _install_factory(self, request: pytest.FixtureRequest) -> None:
        def _factory(self: Any, *args: Any, **kwargs: Any) -> TableCache:
            return TableCache(_unreachable(), *args, secret="s", **kwargs)

        request.cls.cache_factory = _factory

    @pytest.mark.parametrize(
        "default_timeout,input_timeout,expected",
        [
            (42, None, 42),  # None falls back to default
            (300, 0, 0),  # explicit zero stays zero (permanent)
            (300, 60, 60),  # explicit value is returned as-is
            (0, None, 0),  # default_timeout=0 means permanently cached by default
            (300, timedelta(seconds=60), 60),  # timedelta is converted to seconds
            (300, timedelta(minutes=2), 120),
            (300, timedelta(days=1), 86400),
            (300, timedelta(), 0),  # a zero timedelta is permanent, like 0
            (300, timedelta(milliseconds=500), 1),  # sub-second timeouts round up
            (300, timedelta(seconds=1, milliseconds=200), 2),
            (timedelta(minutes=1), None, 60),  # timedelta default
            (timedelta(minutes=1), 30, 30),  # explicit value beats timedelta default
        ],
    )
    def test_normalize_timeout(self, default_timeout: Any, input_timeout: Any,
                               expected: int) -> None:
        cache = self.cache_factory(default_timeout=default_timeout)
        assert cache._normalize_timeout(input_timeout) == expected

    def test_default_timeout_timedelta_is_stored_as_seconds(self) -> None:
        cache = self.cache_factory(default_timeout=timedelta(minutes=5))
        assert cache.default_timeout == 300

    @pytest.mark.parametrize(
        "input_timeout,expected",
        [
            (0.1, 1),  # subsecond floats round up, not down to "never expires"
            (5.0, 5),
            (5.5, 6),
        ],
    )
    def test_float_timeout_is_deprecated_and_rounded_up(self, input_timeout: float,
                                                        expected: int) -> None:
        cache = self.cache_factory()
        with pytest.warns(DeprecationWarning, match="Float timeouts are deprecated"):
            assert cache._normalize_timeout(input_timeout) == expected

    def test_float_default_timeout_is_deprecated(self) -> None:
        with pytest.warns(DeprecationWarning, match="Float timeouts are deprecated"):
            cache = self.cache_factory(default_timeout=1.5)
        assert cache.default_timeout == 2

    def test_invalid_timeout_type_raises(self) -> None:
        cache = self.cache_factory()
        with pytest.raises(TypeError, match="timeout must be an int"):
            cache._normalize_timeout("60")
