"""pytest fixtures for tablesessions, registered through the ``pytest11`` entry point.

Nothing starts at import: Azurite is launched the first time a test asks for a
fixture that needs it, and then shared by the whole session.  Isolation between
tests comes from fresh table/container names, not from fresh emulators.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tablesessions.testing import (
    AzuriteServer,
    FaultProxyPair,
    RequestCounter,
    unique_name,
)

__all__ = [
    "async_session_store",
    "azurite",
    "fault_proxy",
    "request_counter",
    "session_store",
    "storage_names",
]


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteServer]:
    """A private in-memory Azurite on free loopback ports, shared by the session.

    Fails (rather than skips) when Azurite cannot be found, so a CI machine
    without ``npm ci`` cannot pass silently.
    """
    with AzuriteServer() as server:
        yield server


@pytest.fixture
def storage_names() -> tuple[str, str]:
    """A fresh ``(table_name, container_name)`` pair, unique to this test."""
    return unique_name("tst"), unique_name("blob")


@pytest.fixture
def request_counter() -> RequestCounter:
    """A fresh :class:`RequestCounter`; attach with ``**request_counter.client_options()``."""
    return RequestCounter()


def _store_kwargs(storage_names: tuple[str, str], counter: RequestCounter) -> dict[str, Any]:
    table_name, container_name = storage_names
    return {
        "table_name": table_name,
        "container_name": container_name,
        "client_options": counter.client_options(),
    }


@pytest.fixture
def session_store(
    azurite: AzuriteServer, storage_names: tuple[str, str], request_counter: RequestCounter
) -> Iterator[Any]:
    """A sync ``tablesessions.SessionStore`` on fresh storage in Azurite.

    Its clients report to ``request_counter``, which is reset after
    ``create_storage()`` so a test sees only its own requests.
    """
    # Imported here so the plugin loads even while the store is broken or absent.
    tablesessions = importlib.import_module("tablesessions")
    store = tablesessions.SessionStore.from_connection_string(
        azurite.connection_string, **_store_kwargs(storage_names, request_counter)
    )
    try:
        store.create_storage()
        request_counter.reset()
        yield store
    finally:
        store.close()


async def _async_session_store(
    azurite: AzuriteServer, storage_names: tuple[str, str], request_counter: RequestCounter
) -> AsyncIterator[Any]:
    """An async ``tablesessions.aio.SessionStore`` on fresh storage in Azurite.

    Like ``session_store``: counted by ``request_counter``, reset after
    ``await create_storage()``, closed after the test.  Runs on the event loop
    scope set by ``asyncio_default_fixture_loop_scope``.
    """
    aio = importlib.import_module("tablesessions.aio")
    store = aio.SessionStore.from_connection_string(
        azurite.connection_string, **_store_kwargs(storage_names, request_counter)
    )
    try:
        await store.create_storage()
        request_counter.reset()
        yield store
    finally:
        await store.close()


def _needs_pytest_asyncio() -> None:
    """Needs pytest-asyncio, which is not installed."""
    # Fail, not skip: a skip shows only with -rs, so async tests would pass unseen.
    pytest.fail("async_session_store needs pytest-asyncio: pip install pytest-asyncio "
                "(and set asyncio_mode = \"auto\" in [tool.pytest.ini_options])",
                pytrace=False)


async_session_store: Any
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - pytest-asyncio is a dev dependency
    # The plugin must still load for projects that only use the sync fixtures.
    async_session_store = pytest.fixture(_needs_pytest_asyncio, name="async_session_store")
else:
    async_session_store = pytest_asyncio.fixture(_async_session_store, name="async_session_store")


@pytest.fixture
def fault_proxy(azurite: AzuriteServer) -> Iterator[FaultProxyPair]:
    """Fault-injecting proxies in front of Azurite's table and blob ports.

    ``fault_proxy.connection_string`` goes through both; ``.configure(...)``,
    ``.fail_next(...)`` and ``.outage(...)`` act on both; ``.table``/``.blob``
    are the single proxies and ``.stats`` their combined counters.  No faults
    are injected until configured.  Stopped after the test.
    """
    with FaultProxyPair(azurite) as pair:
        yield pair
