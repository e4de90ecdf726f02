"""Fixtures for the upstream ports: a real Azurite-backed store per test, and
Starlette's ``TestClient`` as its own suite builds it (asyncio backend)."""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import Callable, Iterator

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx works the same here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

import tablesessions
import tablesessions.aio
from tablesessions.testing import AzuriteServer

TestClientFactory = Callable[..., TestClient]


@pytest.fixture
def test_client_factory() -> TestClientFactory:
    # Upstream also runs every test on trio; aiohttp (the async Azure SDK's
    # transport) is asyncio-only, so the ports run on asyncio alone.
    return functools.partial(TestClient, backend="asyncio")


@pytest.fixture
def store(azurite: AzuriteServer,
          storage_names: tuple[str, str]) -> Iterator[tablesessions.aio.SessionStore]:
    """An async store on a fresh table, shared by every TestClient loop of the test."""
    table, container = storage_names
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=table, container_name=container) as sync:
        sync.create_storage()
    aio = tablesessions.aio.SessionStore.from_connection_string(
        azurite.connection_string, table_name=table, container_name=container)
    yield aio
    asyncio.run(aio.close())
