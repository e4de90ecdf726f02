"""FaultProxy between real SDK clients and a real Azurite, one fault kind at a time."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator, Mapping

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from tablesessions.testing import (
    AzuriteServer,
    Fault,
    FaultPlan,
    FaultProxy,
    FaultProxyPair,
    RequestCounter,
    unique_name,
)

CONNECTION_ERRORS = (ServiceRequestError, ServiceResponseError)
STATUS_CASES = [
    (Fault.BUSY_503, 503, "ServerBusy"),
    (Fault.ERROR_500, 500, "OperationTimedOut"),
    (Fault.THROTTLE_429, 429, "TooManyRequests"),
    (Fault.TIMEOUT_408, 408, "RequestTimeout"),
]


@pytest.fixture
def table_name(azurite: AzuriteServer) -> str:
    """A fresh table, created directly (not through any proxy)."""
    name = unique_name("t")
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        service.create_table(name)
    return name


@pytest.fixture
def direct_table(azurite: AzuriteServer, table_name: str) -> Iterator[TableClient]:
    """The table as Azurite has it, bypassing the proxies."""
    with TableClient.from_connection_string(
        azurite.connection_string, table_name=table_name
    ) as client:
        yield client


@pytest.fixture
def proxied_table(fault_proxy: FaultProxyPair, table_name: str) -> Iterator[TableClient]:
    """The same table through the fault proxy, with the SDK's retries off."""
    with TableClient.from_connection_string(
        fault_proxy.connection_string, table_name=table_name, retry_total=0
    ) as client:
        yield client


@pytest.fixture
def proxied_container(
    azurite: AzuriteServer, fault_proxy: FaultProxyPair
) -> Iterator[ContainerClient]:
    """A fresh blob container, reached through the fault proxy without retries."""
    name = unique_name("c")
    with BlobServiceClient.from_connection_string(azurite.connection_string) as direct:
        direct.create_container(name)
    with ContainerClient.from_connection_string(
        fault_proxy.connection_string, container_name=name, retry_total=0
    ) as client:
        yield client


def _error_code_header(error: HttpResponseError) -> str:
    # The SDK types .response loosely; at run time it is an HttpResponse with headers.
    headers: Mapping[str, str] = getattr(error.response, "headers", {})
    return headers.get("x-ms-error-code", "")


def _entity(row: str, **values: object) -> dict[str, object]:
    return {"PartitionKey": "p", "RowKey": row, **values}


def test_proxy_is_transparent_without_faults(
    fault_proxy: FaultProxyPair, proxied_table: TableClient, direct_table: TableClient
) -> None:
    proxied_table.create_entity(_entity("a", v=1))
    proxied_table.upsert_entity(_entity("b", v=2))
    proxied_table.submit_transaction([("upsert", _entity(f"t{i}", v=i)) for i in range(5)])
    assert proxied_table.get_entity("p", "a")["v"] == 1
    rows = list(proxied_table.query_entities("PartitionKey eq @pk", parameters={"pk": "p"}))
    assert len(rows) == 7
    proxied_table.delete_entity("p", "a")
    with pytest.raises(ResourceNotFoundError):
        direct_table.get_entity("p", "a")
    stats = fault_proxy.stats
    assert stats.seen == stats.forwarded == 6
    assert stats.injected == 0
    assert stats.upstream_errors == 0


def test_blob_round_trip_keeps_sizes_and_bodies(proxied_container: ContainerClient) -> None:
    big = bytes(range(256)) * 20_000  # ~5 MB: several ranged GETs with the SDK defaults
    proxied_container.upload_blob("big", big)
    proxied_container.upload_blob("empty", b"")
    blob = proxied_container.get_blob_client("big")
    assert blob.get_blob_properties().size == len(big)  # a HEAD: Content-Length must survive
    assert blob.download_blob().readall() == big
    assert proxied_container.download_blob("empty").readall() == b""


def test_streamed_upload_arrives_intact(
    proxied_container: ContainerClient, azurite: AzuriteServer
) -> None:
    parts = [b"alpha-" * 1000, b"beta-" * 1000]
    proxied_container.upload_blob("streamed", iter(parts))
    with ContainerClient.from_connection_string(
        azurite.connection_string, container_name=proxied_container.container_name
    ) as direct:
        assert direct.download_blob("streamed").readall() == b"".join(parts)


@pytest.mark.parametrize(("kind", "status", "code"), STATUS_CASES)
def test_status_faults_reach_the_table_client_and_are_not_forwarded(
    fault_proxy: FaultProxyPair,
    proxied_table: TableClient,
    direct_table: TableClient,
    kind: Fault,
    status: int,
    code: str,
) -> None:
    fault_proxy.table.fail_next(kind)
    with pytest.raises(HttpResponseError) as info:
        proxied_table.create_entity(_entity("x"))
    assert info.value.status_code == status
    assert _error_code_header(info.value) == code
    with pytest.raises(ResourceNotFoundError):
        direct_table.get_entity("p", "x")
    stats = fault_proxy.table.stats
    assert (stats.seen, stats.forwarded, stats.faults) == (1, 0, {kind: 1})


def test_status_fault_body_is_parsed_by_the_blob_client(
    fault_proxy: FaultProxyPair, proxied_container: ContainerClient
) -> None:
    fault_proxy.blob.fail_next(Fault.BUSY_503)
    with pytest.raises(HttpResponseError) as info:
        proxied_container.upload_blob("b", b"data")
    assert info.value.status_code == 503
    assert getattr(info.value, "error_code", None) == "ServerBusy"
    assert _error_code_header(info.value) == "ServerBusy"
    proxied_container.upload_blob("b", b"data")  # the fault was for one request only
    assert proxied_container.download_blob("b").readall() == b"data"


def test_reset_fails_the_request_without_forwarding(
    fault_proxy: FaultProxyPair, proxied_table: TableClient, direct_table: TableClient
) -> None:
    fault_proxy.table.fail_next(Fault.RESET)
    with pytest.raises(CONNECTION_ERRORS):
        proxied_table.create_entity(_entity("x"))
    with pytest.raises(ResourceNotFoundError):
        direct_table.get_entity("p", "x")
    assert fault_proxy.table.stats.forwarded == 0
    proxied_table.create_entity(_entity("x"))  # a new connection works again
    assert direct_table.get_entity("p", "x")["RowKey"] == "x"


def test_drop_response_is_an_ambiguous_write(
    fault_proxy: FaultProxyPair, proxied_table: TableClient, direct_table: TableClient
) -> None:
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE)
    with pytest.raises(CONNECTION_ERRORS):
        proxied_table.create_entity(_entity("x", v="written"))
    # The client saw a failure, yet the write happened upstream ...
    assert direct_table.get_entity("p", "x")["v"] == "written"
    assert fault_proxy.table.stats.forwarded == 1
    # ... so a naive retry of the insert collides with its own first attempt.
    with pytest.raises(HttpResponseError) as info:
        proxied_table.create_entity(_entity("x", v="written"))
    assert info.value.status_code == 409


def test_delay_adds_at_least_the_configured_time(
    fault_proxy: FaultProxyPair, proxied_table: TableClient
) -> None:
    proxied_table.upsert_entity(_entity("x"))
    fault_proxy.configure(delay=0.4)
    fault_proxy.table.fail_next(Fault.DELAY)
    started = time.monotonic()
    assert proxied_table.get_entity("p", "x")["RowKey"] == "x"
    assert time.monotonic() - started >= 0.4
    assert fault_proxy.table.stats.faults == {Fault.DELAY: 1}


def test_fail_next_honours_method_filter_and_count(
    fault_proxy: FaultProxyPair, proxied_table: TableClient
) -> None:
    proxied_table.upsert_entity(_entity("x"))
    fault_proxy.table.fail_next("503", n=2, methods={"PATCH", "PUT"})
    assert proxied_table.get_entity("p", "x")["RowKey"] == "x"  # GET is not targeted
    for _ in range(2):
        with pytest.raises(HttpResponseError):
            proxied_table.upsert_entity(_entity("x", v=1))
    proxied_table.upsert_entity(_entity("x", v=2))  # the third write goes through
    assert proxied_table.get_entity("p", "x")["v"] == 2


def test_outage_fails_everything_until_lifted(
    fault_proxy: FaultProxyPair, proxied_table: TableClient
) -> None:
    fault_proxy.outage(True)
    for _ in range(3):
        with pytest.raises(HttpResponseError) as info:
            proxied_table.get_entity("p", "x")
        assert info.value.status_code == 503
    fault_proxy.outage(True, kind=Fault.RESET)
    with pytest.raises(CONNECTION_ERRORS):
        proxied_table.upsert_entity(_entity("x"))
    fault_proxy.outage(False)
    proxied_table.upsert_entity(_entity("x"))
    assert fault_proxy.table.stats.faults == {Fault.BUSY_503: 3, Fault.RESET: 1}


def _outcomes(proxy: FaultProxy, requests: int) -> list[int]:
    statuses = []
    for _ in range(requests):
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        try:
            connection.request("GET", "/devstoreaccount1/Tables")
            statuses.append(connection.getresponse().status)
        finally:
            connection.close()
    return statuses


def test_random_faults_follow_rate_and_are_reproducible_by_seed(azurite: AzuriteServer) -> None:
    plan = FaultPlan(rate=0.5, kinds={Fault.BUSY_503: 1, Fault.ERROR_500: 1}, seed=1234)
    with FaultProxy(azurite.table_port, plan=plan) as first:
        one = _outcomes(first, 60)
    with FaultProxy(azurite.table_port, plan=plan) as second:
        two = _outcomes(second, 60)
        second.configure(seed=99)
        three = _outcomes(second, 60)
    assert one == two
    assert one != three
    injected = sum(status in (500, 503) for status in one)
    assert 15 <= injected <= 45
    assert {500, 503} <= set(one)
    assert second.stats.seen == 120


def test_random_faults_respect_the_filters(
    fault_proxy: FaultProxyPair, proxied_table: TableClient
) -> None:
    fault_proxy.configure(rate=1.0, kinds={"503": 1}, methods={"PATCH"}, path_contains="(")
    for _ in range(3):
        with pytest.raises(HttpResponseError):
            proxied_table.upsert_entity(_entity("x"))  # PATCH .../table(PK,RK)
    proxied_table.create_entity(_entity("y"))  # a POST: not targeted
    assert proxied_table.get_entity("p", "y")["RowKey"] == "y"
    fault_proxy.clear()
    proxied_table.upsert_entity(_entity("x"))
    assert fault_proxy.stats.faults == {Fault.BUSY_503: 3}


def test_sdk_retries_through_transient_faults(
    fault_proxy: FaultProxyPair, table_name: str, request_counter: RequestCounter
) -> None:
    fault_proxy.table.fail_next(Fault.BUSY_503, n=2)
    with TableClient.from_connection_string(
        fault_proxy.connection_string,
        table_name=table_name,
        retry_backoff_factor=0.01,
        **request_counter.client_options(),
    ) as client:
        client.upsert_entity(_entity("x"))
    assert request_counter.count == 3  # every attempt is counted, not just the call
    assert fault_proxy.table.stats.forwarded == 1


def _get(connection: http.client.HTTPConnection) -> bytes:
    connection.request("GET", "/devstoreaccount1/Tables")
    return connection.getresponse().read()


def test_stop_is_prompt_even_with_open_keepalive_connections(azurite: AzuriteServer) -> None:
    proxy = FaultProxy(azurite.table_port).start()
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        _get(connection)  # the connection now idles in keep-alive
        started = time.monotonic()
        proxy.stop()
        assert time.monotonic() - started < 2
        with pytest.raises((OSError, http.client.HTTPException)):
            _get(connection)
    finally:
        connection.close()
    proxy.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = proxy.port


def test_plan_validation() -> None:
    with pytest.raises(ValueError):
        FaultPlan(rate=1.5)
    with pytest.raises(ValueError):
        FaultPlan(rate=0.5, kinds={Fault.RESET: 0})
    with pytest.raises(ValueError):
        FaultPlan(kinds={"teapot": 1})
    assert FaultPlan(methods={"put"}).methods == frozenset({"PUT"})


# -- hung connections and latency ranges (issue 14) ------------------------------------


def _timeout_client(fault_proxy: FaultProxyPair, table_name: str) -> TableClient:
    return TableClient.from_connection_string(
        fault_proxy.connection_string, table_name=table_name, retry_total=0, read_timeout=0.3)


def test_hold_forwards_then_withholds_the_answer(
    fault_proxy: FaultProxyPair, table_name: str, direct_table: TableClient
) -> None:
    fault_proxy.configure(hold=30.0)
    fault_proxy.table.fail_next(Fault.HOLD)
    with _timeout_client(fault_proxy, table_name) as client:
        started = time.monotonic()
        with pytest.raises(ServiceResponseError):  # the read timeout, not a reset
            client.create_entity(_entity("x", v="held"))
        assert 0.3 <= time.monotonic() - started < 5
        # The write landed before the answer was held: an ambiguous write.
        assert direct_table.get_entity("p", "x")["v"] == "held"
        assert fault_proxy.table.stats.forwarded == 1
        assert client.get_entity("p", "x")["v"] == "held"  # a fresh connection works


def test_half_open_is_silent_and_forwards_nothing(
    fault_proxy: FaultProxyPair, table_name: str, direct_table: TableClient
) -> None:
    fault_proxy.configure(hold=30.0)
    fault_proxy.table.fail_next(Fault.HALF_OPEN)
    with _timeout_client(fault_proxy, table_name) as client:
        started = time.monotonic()
        with pytest.raises(ServiceResponseError):
            client.create_entity(_entity("x"))
        assert 0.3 <= time.monotonic() - started < 5
        assert fault_proxy.table.stats.forwarded == 0
        with pytest.raises(ResourceNotFoundError):
            direct_table.get_entity("p", "x")


def test_delay_range_and_hung_kinds_are_opt_in(
    fault_proxy: FaultProxyPair, proxied_table: TableClient
) -> None:
    assert not set(FaultPlan().kinds) & {Fault.HOLD, Fault.HALF_OPEN}
    proxied_table.upsert_entity(_entity("x"))
    fault_proxy.configure(delay=0.2, delay_max=0.4, seed=3)
    waits = []
    for _ in range(3):
        fault_proxy.table.fail_next(Fault.DELAY)
        started = time.monotonic()
        proxied_table.get_entity("p", "x")
        waits.append(time.monotonic() - started)
    assert all(0.2 <= w < 0.4 + 0.3 for w in waits), waits
    assert len({round(w, 2) for w in waits}) > 1, "the delay was not drawn from the range"
    with pytest.raises(ValueError):
        FaultPlan(delay=1.0, delay_max=0.5)
