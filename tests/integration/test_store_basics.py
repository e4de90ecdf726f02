"""The Foundation contract, on both faces, against a real Azurite."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from decimal import Decimal
from typing import Any

import pytest
from azure.data.tables import TableClient

from tablesessions import SessionTooLargeError
from tablesessions.testing import AzuriteServer, RequestCounter

from ..conftest import FakeClock, MakeStore

MALFORMED = ["", "short", "x" * 43 + "#", "../../etc/passwd", "a" * 42 + "?", "\x00" * 43,
             "A" * 42 + "B", "a" * 10_000, "' or 1 eq 1 or '", None]


async def test_create_storage_is_idempotent(make_store: MakeStore) -> None:
    store = await make_store()
    await store.create_storage()  # again: no error
    session = store.new()
    session["x"] = 1
    await store.save(session)
    assert (await store.get(session.id)) == {"x": 1}


async def test_round_trips(make_store: MakeStore, request_counter: RequestCounter) -> None:
    store = await make_store()
    session = store.new()
    session["user"] = "alice"
    await store.save(session)
    assert request_counter.requests == [("POST", request_counter.requests[0][1])]  # one insert

    request_counter.reset()
    loaded = await store.get(session.id)
    assert loaded is not None
    assert [m for m, _ in request_counter.requests] == ["GET"]

    request_counter.reset()
    await store.save(loaded)  # unmodified, not due for refresh
    assert request_counter.count == 0

    loaded["user"] = "bob"
    await store.save(loaded)
    assert [m for m, _ in request_counter.requests] == ["PUT"]  # one conditional replace

    request_counter.reset()
    for bad in MALFORMED:
        assert await store.get(bad) is None
        await store.delete(bad)
    assert request_counter.count == 0


async def test_new_session_is_unsaved_until_save(make_store: MakeStore,
                                                 request_counter: RequestCounter) -> None:
    store = await make_store()
    session = store.new()
    assert session.is_new and session.modified and len(session) == 0
    assert request_counter.count == 0
    assert await store.get(session.id) is None


async def test_values_round_trip_through_storage(make_store: MakeStore) -> None:
    store = await make_store()
    value: dict[str, Any] = {
        "s": "ünï", "i": 2**40, "f": 0.1, "b": True, "n": None, "l": [1, [2]],
        "d": {"a": {"b": []}}, "dt": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc),
        "date": dt.date(2020, 2, 29), "u": uuid.uuid4(), "bytes": b"\x00\x01\xff",
        "dec": Decimal("1.10"),
    }
    session = store.new()
    session.update(value)
    await store.save(session)
    loaded = await store.get(session.id)
    assert loaded is not None
    assert dict(loaded) == value
    assert loaded.created_at == session.created_at
    assert loaded.expires_at == session.expires_at


async def test_unsupported_value_names_the_key_and_writes_nothing(
        make_store: MakeStore, request_counter: RequestCounter) -> None:
    store = await make_store()
    session = store.new()
    session["ok"] = 1
    session["cart"] = {"items": {1, 2}}
    with pytest.raises(TypeError, match=r"cart\.items"):
        await store.save(session)
    assert request_counter.count == 0


async def test_payload_over_the_cap_is_refused_before_any_write(
        make_store: MakeStore, request_counter: RequestCounter) -> None:
    store = await make_store(max_session_bytes=50_000)
    session = store.new()
    session["a"] = "small"
    await store.save(session)
    request_counter.reset()
    session["big"] = "x" * 60_000
    with pytest.raises(SessionTooLargeError, match="50,000"):
        await store.save(session)
    assert request_counter.count == 0
    assert await store.get(session.id) == {"a": "small"}


async def test_idle_and_absolute_expiry_are_checked_on_every_read(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(idle_timeout=dt.timedelta(minutes=10),
                             absolute_timeout=dt.timedelta(minutes=25))
    session = store.new()
    session["k"] = 1
    await store.save(session)
    clock.advance(dt.timedelta(minutes=9))
    assert await store.get(session.id) is not None
    clock.advance(dt.timedelta(minutes=2))
    assert await store.get(session.id) is None  # idle: no sweeper involved

    keep = store.new()
    await store.save(keep)
    for _ in range(6):  # active every 4 minutes: idle never lapses...
        clock.advance(dt.timedelta(minutes=4))
        loaded = await store.get(keep.id)
        assert loaded is not None
        loaded["tick"] = clock.now.isoformat()
        await store.save(loaded)
    clock.advance(dt.timedelta(minutes=2))
    assert await store.get(keep.id) is None  # ...but the absolute deadline does


async def test_refresh_is_throttled_and_merges_only_the_expiry(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter,
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    store = await make_store(idle_timeout=dt.timedelta(minutes=20), refresh_threshold=0.5)
    session = store.new()
    session["k"] = "v"
    await store.save(session)
    raw = TableClient.from_connection_string(azurite.connection_string, storage_names[0])
    before = next(iter(raw.list_entities()))

    clock.advance(dt.timedelta(minutes=5))
    loaded = await store.get(session.id)
    assert loaded is not None
    request_counter.reset()
    await store.save(loaded)
    assert request_counter.count == 0  # 15 min left > 10 min threshold: no write

    clock.advance(dt.timedelta(minutes=6))
    loaded = await store.get(session.id)
    assert loaded is not None
    request_counter.reset()
    await store.save(loaded)
    assert [m for m, _ in request_counter.requests] == ["PATCH"]  # a merge
    after = next(iter(raw.list_entities()))
    assert after["ExpiresAt"] > before["ExpiresAt"]
    # The data was not rewritten: only the expiry and the write token that lets
    # a retried refresh recognise its own landed merge.
    assert {k for k in after if after[k] != before.get(k)} == {"ExpiresAt", "WriteToken"}
    assert after["D0"] == before["D0"]
    raw.close()


async def test_only_a_hash_of_the_id_is_stored(make_store: MakeStore, azurite: AzuriteServer,
                                               storage_names: tuple[str, str]) -> None:
    store = await make_store()
    session = store.new()
    session["x"] = 1
    await store.save(session)
    raw = TableClient.from_connection_string(azurite.connection_string, storage_names[0])
    [entity] = list(raw.list_entities())
    raw.close()
    assert session.id not in repr(dict(entity))
    assert len(entity["RowKey"]) == 64
    assert entity["PartitionKey"] == f"default-{entity['RowKey'][0]}"
    assert entity["FormatVersion"] == 1
    assert entity["Codec"] == "ts1"


async def test_app_name_isolates_apps_sharing_a_table(make_store: MakeStore) -> None:
    shop = await make_store(app_name="shop")
    blog = await make_store(app_name="blog")
    session = shop.new()
    session["cart"] = [1]
    await shop.save(session)
    assert await blog.get(session.id) is None
    assert await shop.get(session.id) == {"cart": [1]}


async def test_delete_is_idempotent(make_store: MakeStore) -> None:
    store = await make_store()
    session = store.new()
    await store.save(session)
    await store.delete(session.id)
    await store.delete(session.id)
    await store.delete(session)
    assert await store.get(session.id) is None


async def test_regenerate_moves_the_data_to_a_new_id(make_store: MakeStore) -> None:
    store = await make_store()
    session = store.new()
    session["user"] = "alice"
    await store.save(session)
    fresh = await store.regenerate(session)
    assert fresh.id != session.id
    assert await store.get(session.id) is None
    again = await store.get(fresh.id)
    assert again == {"user": "alice"}
    assert again.absolute_expires_at == session.absolute_expires_at


async def test_a_deleted_session_is_never_resurrected(make_store: MakeStore) -> None:
    store = await make_store()
    session = store.new()
    session["n"] = 1
    await store.save(session)
    stale = await store.get(session.id)
    assert stale is not None
    await store.delete(session.id)  # a logout in another request
    stale["n"] = 2
    await store.save(stale)  # a stale save must not recreate it
    assert stale.is_deleted
    await store.save(stale)
    assert await store.get(session.id) is None


async def test_context_manager_closes() -> None:
    import tablesessions

    with tablesessions.SessionStore.from_connection_string("UseDevelopmentStorage=true") as s:
        assert s.table_name == "sessions"


@pytest.mark.parametrize("microsecond", [0, 1, 999_999])
async def test_stored_datetimes_are_the_sessions_to_the_microsecond(
        make_store: MakeStore, clock: FakeClock, azurite: AzuriteServer,
        storage_names: tuple[str, str], microsecond: int) -> None:
    # The store writes UTC datetimes as Edm.DateTime text itself (calls._wire),
    # not through the SDK's formatter: what lands must be the same instants.
    clock.now = clock.now.replace(microsecond=microsecond)
    store = await make_store()
    session = store.new()
    session["k"] = "v"
    await store.save(session)
    raw = TableClient.from_connection_string(azurite.connection_string, storage_names[0])
    try:
        row = next(iter(raw.list_entities()))
    finally:
        raw.close()
    assert row["CreatedAt"] == session.created_at == clock.now
    assert row["ExpiresAt"] == session.expires_at
    assert row["AbsoluteExpiresAt"] == session.absolute_expires_at
    assert row["ExpiresAt"].tzinfo is not None and row["ExpiresAt"].microsecond == microsecond
    assert (await store.get(session.id)) == {"k": "v"}  # and it reads back live


async def test_an_insert_asks_for_no_echo_and_keeps_the_rows_etag(
        make_store: MakeStore, request_counter: RequestCounter, azurite: AzuriteServer,
        storage_names: tuple[str, str]) -> None:
    # By default the service answers an insert with the whole entity echoed back;
    # the store asks for none (calls.py) and still needs the row's ETag: the next
    # save is a replace conditional on it.
    answers: list[tuple[str, int, str | None]] = []

    def hook(response: Any) -> None:
        http = response.http_response
        answers.append((str(response.http_request.method), http.status_code,
                        http.headers.get("Content-Length")))

    store = await make_store(client_options={**request_counter.client_options(),
                                             "raw_response_hook": hook})
    answers.clear()  # the table's and the container's creation
    session = store.new()
    session.update({"user": "alice", "cart": [secrets.token_hex(8) for _ in range(2_000)]})
    await store.save(session)
    assert answers in ([("POST", 204, "0")], [("POST", 204, None)])
    raw = TableClient.from_connection_string(azurite.connection_string, storage_names[0])
    try:
        row = next(iter(raw.list_entities()))
    finally:
        raw.close()
    assert row["Size"] > 15_000  # the row that came back with every insert before

    answers.clear()
    session["user"] = "bob"
    await store.save(session)  # If-Match with the ETag the insert answered
    assert [(m, status) for m, status, _ in answers] == [("PUT", 204)]
    assert (await store.get(session.id))["user"] == "bob"
