"""A missing table or container is an error, not "no session" (issue 14, item 7).

A half-provisioned deployment (``tablesessions init`` never run, or the table
deleted) used to read as "no session" while writes failed: everyone was logged
out silently. Reads and writes now raise ``StorageNotFoundError`` naming what is
missing; a missing *entity* or *blob* stays the normal None.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

import tablesessions
from tablesessions import StorageNotFoundError
from tablesessions._record.storage_errors import error_code  # reads x-ms-error-code
from tablesessions.testing import AzuriteServer, RequestCounter, unique_name
from tests.conftest import Face, MakeStore


def _check(err: StorageNotFoundError, kind: str, name: str) -> None:
    assert (err.kind, err.name) == (kind, name)
    assert name in str(err) and "tablesessions init" in str(err)
    assert isinstance(err.__cause__, ResourceNotFoundError)
    code = "TableNotFound" if kind == "table" else "ContainerNotFound"
    assert error_code(err.__cause__) == code


def _fresh(store: Face, **data: object) -> tablesessions.Session:
    session = store.new()
    session.update(data)
    return session


async def _stored(store: Face, **data: object) -> tablesessions.Session:
    session = _fresh(store, **data)
    await store.save(session)
    return session


async def test_every_operation_on_a_missing_table_raises(make_store: MakeStore) -> None:
    clean = await make_store()  # the container exists; the table below does not
    session = await _stored(clean, user="ada")
    missing = unique_name("nosuch")
    store = await make_store(table_name=missing)

    operations: dict[str, Callable[[], Awaitable[Any]]] = {
        "get": lambda: store.get(session.id),
        "get unknown id": lambda: store.get(tablesessions.new_session_id()),
        "save new": lambda: store.save(_fresh(store, n=1)),
        "save loaded": lambda: store.save(session),
        "delete id": lambda: store.delete(session.id),
        "delete session": lambda: store.delete(session),
    }
    session["n"] = 2  # so "save loaded" really writes
    for name, call in operations.items():
        with pytest.raises(StorageNotFoundError) as info:
            await call()
        _check(info.value, "table", missing)
        assert info.type is StorageNotFoundError, name
    # The real table was never touched.
    stored = await clean.get(session.id)
    assert stored is not None and dict(stored) == {"user": "ada"}


async def test_a_missing_entity_is_still_no_session(make_store: MakeStore,
                                                    request_counter: RequestCounter) -> None:
    store = await make_store()
    assert await store.get(tablesessions.new_session_id()) is None
    assert request_counter.count == 1  # one point read, nothing else
    await store.delete(tablesessions.new_session_id())  # idempotent, no error


async def test_a_missing_container_raises_on_overflow(make_store: MakeStore,
                                                      azurite: AzuriteServer) -> None:
    clean = await make_store(inline_budget=100)
    big = await _stored(clean, blob=os.urandom(5000))  # overflows into the real container
    small = await _stored(clean, n=1)
    missing = unique_name("nosuch")
    store = await make_store(container_name=missing, inline_budget=100)

    with pytest.raises(StorageNotFoundError) as info:
        await store.save(_fresh(store, blob=os.urandom(5000)))
    _check(info.value, "container", missing)

    # Reading a row whose payload is in the (now) missing container fails loudly.
    with ContainerClient.from_connection_string(azurite.connection_string,
                                                clean.container_name) as container:
        container.delete_container()
    with pytest.raises(StorageNotFoundError) as info:
        await clean.get(big.id)
    _check(info.value, "container", clean.container_name)
    # An inline session needs no container: still readable.
    assert (await clean.get(small.id) or {}) == {"n": 1}


async def test_empty_policy_absorbs_missing_storage(make_store: MakeStore) -> None:
    await make_store()
    store = await make_store(table_name=unique_name("nosuch"), on_storage_error="empty")
    assert await store.get(tablesessions.new_session_id()) is None
    assert await store.save(_fresh(store, n=1)) is None
    stats = store.store.stats
    assert (stats.read_errors_absorbed, stats.write_errors_absorbed) == (1, 1)
