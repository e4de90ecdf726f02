"""RequestCounter attached to real sync and async Table/Blob clients; name helpers."""

from __future__ import annotations

import re

import pytest
from azure.data.tables import TableClient, TableServiceClient
from azure.data.tables.aio import TableServiceClient as AsyncTableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient

from tablesessions.testing import AzuriteServer, RequestCounter, unique_name

TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


def test_client_options_is_the_request_hook() -> None:
    counter = RequestCounter()
    assert counter.client_options() == {"raw_request_hook": counter.on_request}


def test_one_get_entity_is_exactly_one_request(
    azurite: AzuriteServer, request_counter: RequestCounter
) -> None:
    name = unique_name("t")
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_table(name).upsert_entity({"PartitionKey": "p", "RowKey": "r"})
    with TableClient.from_connection_string(
        azurite.connection_string, table_name=name, **request_counter.client_options()
    ) as client:
        client.get_entity("p", "r")
    assert request_counter.count == 1
    assert request_counter.requests == [
        ("GET", f"/devstoreaccount1/{name}(PartitionKey='p',RowKey='r')")
    ]
    assert request_counter.count_where(method="get", service="table") == 1
    assert request_counter.count_where(service="blob") == 0


def test_counts_survive_child_clients_of_a_service_client(
    azurite: AzuriteServer, request_counter: RequestCounter
) -> None:
    name = unique_name("t")
    with TableServiceClient.from_connection_string(
        azurite.connection_string, **request_counter.client_options()
    ) as service:
        table = service.create_table(name)  # POST /Tables
        table.upsert_entity({"PartitionKey": "p", "RowKey": "r"})  # PATCH
        service.get_table_client(name).submit_transaction(
            [("upsert", {"PartitionKey": "p", "RowKey": str(i)}) for i in range(3)]
        )  # one POST $batch
    assert [method for method, _ in request_counter.requests] == ["POST", "PATCH", "POST"]
    assert request_counter.requests[2] == ("POST", "/devstoreaccount1/$batch")
    assert request_counter.count_where(service="table") == 3


def test_counts_blob_requests_with_service_guess(
    azurite: AzuriteServer, request_counter: RequestCounter
) -> None:
    with BlobServiceClient.from_connection_string(
        azurite.connection_string, **request_counter.client_options()
    ) as service:
        container = service.create_container(unique_name("c"))  # PUT ?restype=container
        container.upload_blob("b", b"x")  # PUT
        container.get_blob_client("b").download_blob().readall()  # GET
    assert request_counter.count == 3
    assert request_counter.count_where(method="PUT", service="blob") == 2
    assert request_counter.count_where(service="table") == 0
    assert all("?" not in path for _, path in request_counter.requests)
    request_counter.reset()
    assert request_counter.count == 0
    assert request_counter.requests == []


def test_explicit_port_mapping_wins() -> None:
    counter = RequestCounter(ports={12345: "table"})
    assert counter._guess_service("127.0.0.1", 12345, {}) == "table"
    assert counter._guess_service("127.0.0.1", 1, {}) == "blob"
    assert counter._guess_service("acct.table.core.windows.net", None, {}) == "table"
    assert counter._guess_service("127.0.0.1", 1, {"DataServiceVersion": "3.0"}) == "table"


async def test_counts_async_table_and_blob_clients(
    azurite: AzuriteServer, request_counter: RequestCounter
) -> None:
    name = unique_name("t")
    async with AsyncTableServiceClient.from_connection_string(
        azurite.connection_string, **request_counter.client_options()
    ) as tables:
        table = await tables.create_table(name)
        await table.upsert_entity({"PartitionKey": "p", "RowKey": "r"})
        request_counter.reset()
        await table.get_entity("p", "r")
        assert request_counter.requests == [
            ("GET", f"/devstoreaccount1/{name}(PartitionKey='p',RowKey='r')")
        ]
    async with AsyncBlobServiceClient.from_connection_string(
        azurite.connection_string, **request_counter.client_options()
    ) as blobs:
        container = await blobs.create_container(unique_name("c"))
        await container.upload_blob("b", b"x")
    assert request_counter.count == 3
    assert request_counter.count_where(service="blob") == 2


def test_unique_names_are_valid_for_tables_and_containers(
    storage_names: tuple[str, str],
) -> None:
    table_name, container_name = storage_names
    assert TABLE_NAME.fullmatch(table_name)
    assert CONTAINER_NAME.fullmatch(container_name)
    assert TABLE_NAME.fullmatch(unique_name("a"))
    assert CONTAINER_NAME.fullmatch(unique_name("a"))
    assert len({unique_name() for _ in range(100)}) == 100


@pytest.mark.parametrize("bad", ["", "1abc", "has-dash", "Upper", "x" * 40])
def test_unique_name_rejects_bad_prefixes(bad: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        unique_name(bad)
