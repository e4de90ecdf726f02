"""Fixtures for the cachelib suite: upstream's ``key_prefix`` (cachelib 0.17.0
``tests/conftest.py``, unchanged) and a ``cache_factory`` building this backend on a fresh
table in the session's Azurite (the role upstream's per-backend ``cache_factory`` plays)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tablesessions.cachelib import TableCache
from tablesessions.testing import AzuriteServer, RequestCounter

SECRET = "cachelib-suite-secret"


@pytest.fixture(
    params=[None, "test-key-prefix:"], ids=["no_key_prefix", "with_key_prefix"]
)
def key_prefix(request: pytest.FixtureRequest) -> Any:
    """Runs dependent tests once without a key_prefix and once with one set,
    so backends that support key_prefix are exercised in both configurations.
    """
    return request.param


@pytest.fixture
def make_cachelib(azurite: AzuriteServer, storage_names: tuple[str, str],
               request_counter: RequestCounter) -> Iterator[Any]:
    """Build ``TableCache`` instances on this test's own table; close them afterwards.

    The first call creates the table and the container; the request counter is reset
    after each build, so a test sees only its own storage calls.
    """
    table_name, container_name = storage_names
    made: list[TableCache] = []

    def make(*args: Any, **kwargs: Any) -> TableCache:
        kwargs.setdefault("secret", SECRET)
        options = {"client_options": request_counter.client_options(),
                   **kwargs.pop("options", {})}
        cache = TableCache(azurite.connection_string, *args, table_name=table_name,
                           container_name=container_name, create_storage=not made,
                           options=options, **kwargs)
        made.append(cache)
        request_counter.reset()
        return cache

    try:
        yield make
    finally:
        for cache in made:
            cache.close()
