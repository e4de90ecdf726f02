"""Fixtures of the TableCache suites: one behaviour suite runs against both faces
(``face_kind`` from tests/conftest.py), as the session suites do."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import tablesessions
import tablesessions.aio
from tablesessions.testing import AzuriteServer, RequestCounter
from tests.conftest import FakeClock


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
    """Build caches of this test's face on a fresh table; the first creates the
    storage. All share the request counter (reset after each is built) and the clock."""
    made: list[CacheFace] = []
    table, container = storage_names

    async def make(conn: str | None = None, **options: Any) -> CacheFace:
        options.setdefault("table_name", table)
        options.setdefault("container_name", container)
        options.setdefault("clock", clock)
        options.setdefault("client_options", request_counter.client_options())
        cls = tablesessions.aio.TableCache if face_kind == "async" else tablesessions.TableCache
        face = CacheFace(cls.from_connection_string(conn or azurite.connection_string, **options))
        if not made:
            await face.create_storage()
        made.append(face)
        request_counter.reset()
        return face

    yield make
    for face in made:
        await face.close()


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
