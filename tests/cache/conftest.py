"""Fixtures of the TableCache suites: one behaviour suite runs against both faces
(``face_kind`` from tests/conftest.py), as the session suites do."""

from __future__ import annotations

import inspect
import pickle
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import tablesessions
import tablesessions.aio
from tablesessions.testing import AzuriteServer, RequestCounter
from tests.conftest import FakeClock, fresh_faces

from . import planted


class CacheFace:
    """The sync or the async cache behind one awaitable interface (sync calls
    simply block; it is a test)."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache
        self.is_async = isinstance(cache, tablesessions.aio.TableCache)

    def __getattr__(self, name: str) -> Any:
        member = getattr(self.cache, name)
        if not callable(member):
            return member

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = member(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return call


MakeCache = Callable[..., Any]


@pytest.fixture
async def make_cache(face_kind: str, azurite: AzuriteServer, storage_names: tuple[str, str],
                     request_counter: RequestCounter, clock: FakeClock
                     ) -> AsyncIterator[MakeCache]:
    """Build caches of this test's face (see ``tests.conftest.fresh_faces``)."""
    async with fresh_faces((tablesessions.TableCache, tablesessions.aio.TableCache), CacheFace,
                           face_kind, azurite, storage_names, request_counter, clock) as make:
        yield make


@pytest.fixture
async def cache(make_cache: MakeCache) -> CacheFace:
    face: CacheFace = await make_cache()
    return face


class RawStorage:
    """The test's table and container read straight through the SDK (no cache code)."""

    def __init__(self, conn: str, table: str, container: str) -> None:
        from azure.data.tables import TableClient
        from azure.storage.blob import ContainerClient

        self.table = TableClient.from_connection_string(conn, table_name=table)
        self.container = ContainerClient.from_connection_string(conn, container_name=container)

    def rows(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.table.list_entities()]

    def blobs(self) -> list[str]:
        return [b.name for b in self.container.list_blobs()
                if not b.name.endswith(".sweeper.lock")]

    def close(self) -> None:
        self.table.close()
        self.container.close()


@pytest.fixture
def raw(azurite: AzuriteServer, storage_names: tuple[str, str]) -> Any:
    storage = RawStorage(azurite.connection_string, *storage_names)
    yield storage
    storage.close()


@pytest.fixture(autouse=True)
def _clear_ran() -> None:
    planted.RAN.clear()


@pytest.fixture
def loads_calls(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every call of pickle.loads, recorded before it runs."""
    calls: list[bytes] = []
    real = pickle.loads

    def spy(data: Any, /, **kwargs: Any) -> Any:
        calls.append(bytes(data))
        return real(data, **kwargs)

    monkeypatch.setattr(pickle, "loads", spy)  # the module attribute the signer calls
    return calls
