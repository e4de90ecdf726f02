"""Fixtures of the reliability suite: raw access to the test's storage, bypassing
the store and the proxies, to check what really landed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from tablesessions._sessions.ids import row_key_for  # to find a session's row by its id
from tablesessions.testing import AzuriteServer


class RawStorage:
    """The test's table and container as Azurite has them."""

    def __init__(self, table: TableClient, container: ContainerClient) -> None:
        self.table = table
        self.container = container

    def rows(self) -> list[dict[str, Any]]:
        """Session rows, without logout tombstones (the sweeper's to remove)."""
        return [dict(e) for e in self.table.list_entities() if not e.get("Deleted")]

    def tombstones(self) -> list[dict[str, Any]]:
        """Rows a delete left behind, so that a late duplicate insert gets 409."""
        return [dict(e) for e in self.table.list_entities() if e.get("Deleted")]

    def row(self, session_id: str) -> dict[str, Any] | None:
        key = row_key_for(session_id)
        found = [dict(e) for e in self.table.query_entities(
            "RowKey eq @rk", parameters={"rk": key})]
        return found[0] if found else None

    def etag(self, session_id: str) -> str:
        key = row_key_for(session_id)
        (entity,) = self.table.query_entities("RowKey eq @rk", parameters={"rk": key})
        return str(entity.metadata["etag"])

    def blobs(self) -> list[str]:
        return sorted(blob.name for blob in self.container.list_blobs())


@pytest.fixture
def raw(azurite: AzuriteServer, storage_names: tuple[str, str]) -> Iterator[RawStorage]:
    """Direct SDK clients on this test's ``storage_names`` (created by ``make_store``)."""
    table_name, container_name = storage_names
    with TableClient.from_connection_string(azurite.connection_string, table_name) as table, \
            ContainerClient.from_connection_string(azurite.connection_string,
                                                   container_name) as container:
        yield RawStorage(table, container)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` until true; :raises AssertionError: after ``timeout`` s."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)
