"""The expiry sweeper, stats and inspect (issue 7), on both faces against Azurite.

Sessions expire by moving injected clocks, never by sleeping. A few tests drive
the sans-I/O generator with a scripted fake storage, for what Azurite never
does (empty pages with a continuation token, transaction errors without an index).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableClient, TableTransactionError
from azure.storage.blob import ContainerClient

import tablesessions
from tablesessions._record import sweep as _sweep
from tablesessions._record import sweep_checkpoint as _sweep_checkpoint
from tablesessions._record.driver import drive
from tablesessions._record.effects import (
    DeleteBatch,
    DeleteBlob,
    DeleteEntity,
    Effect,
    InsertEntity,
    LeaseBlob,
    ListBlobs,
    Parallel,
    QueryPage,
    ReadEntity,
    Row,
    UpdateEntity,
)
from tablesessions._sessions.rules import Rules
from tablesessions.config import StoreConfig
from tablesessions.models import SweepReport
from tablesessions.testing import AzuriteServer, RequestCounter

from ..conftest import Face, FakeClock, MakeStore

APP = "shop"
IDLE = dt.timedelta(minutes=20)
BIG = 3000  # bytes of incompressible data: over the 1,000-byte inline budget used here
Hook = Callable[[Any], None]


# -- helpers -------------------------------------------------------------------------


def row_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


def table_rows(azurite: AzuriteServer, table: str) -> dict[str, dict[str, Any]]:
    with TableClient.from_connection_string(azurite.connection_string, table) as client:
        return {str(e["RowKey"]): dict(e) for e in client.list_entities()}


def blob_names(azurite: AzuriteServer, container: str) -> set[str]:
    with ContainerClient.from_connection_string(azurite.connection_string, container) as c:
        return {b.name for b in c.list_blobs()}


def put_blob(azurite: AzuriteServer, container: str, name: str) -> None:
    with ContainerClient.from_connection_string(azurite.connection_string, container) as c:
        c.upload_blob(name, b"orphan?")


def is_query(request: Any) -> bool:
    url = str(request.http_request.url)
    return request.http_request.method == "GET" and "()" in url.split("?")[0]


def table_queries(counter: RequestCounter) -> int:
    return sum(1 for r in counter.records if r.method == "GET" and r.path.endswith("()"))


def hooked(counter: RequestCounter, on_request: Hook | None = None,
           on_response: Hook | None = None) -> dict[str, Any]:
    """Client options that keep counting into ``counter`` and call extra hooks."""

    def request_hook(request: Any) -> None:
        counter.on_request(request)
        if on_request is not None:
            on_request(request)

    options: dict[str, Any] = {"raw_request_hook": request_hook}
    if on_response is not None:
        options["raw_response_hook"] = on_response
    return options


async def web_store(make_store: MakeStore, **options: Any) -> Face:
    options.setdefault("app_name", APP)
    options.setdefault("idle_timeout", IDLE)
    options.setdefault("inline_budget", 1000)
    face: Face = await make_store(**options)
    return face


async def save_new(store: Face, data: dict[str, Any] | None = None, *,
                   partition: str | None = None) -> tablesessions.Session:
    """Save a new session (in the given partition digit, when asked)."""
    session = store.new()
    while partition is not None and row_key(session.id)[0] != partition:
        session = store.new()
    session.update(data or {"user": "someone"})
    await store.save(session)
    return session


# -- what is swept and what is kept -----------------------------------------------------


async def test_sweep_deletes_expired_and_keeps_live(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter,
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    table, container = storage_names
    store = await web_store(make_store)
    expired = [await save_new(store, {"n": i}) for i in range(12)]
    expired.append(await save_new(store, {"big": os.urandom(BIG)}))
    [expired_blob] = blob_names(azurite, container)
    clock.advance(IDLE + dt.timedelta(minutes=10))
    live = [await save_new(store, {"n": i}) for i in range(4)]
    live.append(await save_new(store, {"big": os.urandom(BIG)}))
    live_blob = next(iter(blob_names(azurite, container) - {expired_blob}))

    request_counter.reset()
    report: SweepReport = await store.sweep()

    assert (report.scanned, report.deleted, report.blobs_deleted) == (13, 13, 1)
    assert (report.orphans_deleted, report.skipped, report.errors) == (0, 0, 0)
    assert report.complete and not report.skipped_locked and not report.dry_run
    assert report.duration > dt.timedelta(0)
    # Every effect is one request, except the first run's lease acquire: acquire
    # (404: no lock blob yet), create it, acquire again. Later runs: one request.
    assert request_counter.count == report.requests + 2
    request_counter.reset()
    again: SweepReport = await store.sweep()
    assert request_counter.count == again.requests
    assert set(table_rows(azurite, table)) == {row_key(s.id) for s in live}
    assert blob_names(azurite, container) == {live_blob, _sweep.lock_blob_name(APP)}
    for session in live:
        loaded = await store.get(session.id)
        assert loaded is not None and dict(loaded) == dict(session)

    again = await store.sweep()
    assert (again.scanned, again.deleted, again.errors, again.complete) == (0, 0, 0, True)


async def test_a_session_refreshed_after_the_scan_is_never_deleted(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter,
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    table, container = storage_names
    web = await web_store(make_store)
    target = await save_new(web, {"user": "stays"})
    digit = row_key(target.id)[0]
    neighbours = [await save_new(web, partition=digit) for _ in range(3)]
    elsewhere = [await save_new(web, partition="f" if digit != "f" else "e") for _ in range(2)]

    # The web tier lives at T0+15 min: the target is live and due for its idle refresh.
    # The sweeper lives at T0+30 min: by its clock all six expired at T0+20 min.
    clock.advance(dt.timedelta(minutes=15))
    refresher = tablesessions.SessionStore.from_connection_string(
        azurite.connection_string, table_name=table, container_name=container, app_name=APP,
        idle_timeout=IDLE, clock=clock)
    refreshed: list[dt.datetime] = []

    def refresh_before_its_delete(request: Any) -> None:
        # Right before the batch that deletes the target, hence after its scan.
        body = request.http_request.body
        if (isinstance(body, bytes) and row_key(target.id).encode() in body
                and not refreshed):
            session = refresher.get(target.id)
            assert session is not None
            refresher.save(session)  # merges a later ExpiresAt: a new ETag
            refreshed.append(session.expires_at)

    sweeper_clock = FakeClock()
    sweeper_clock.now = clock.now + dt.timedelta(minutes=15)
    sweeper = await web_store(make_store, clock=sweeper_clock,
                              client_options=hooked(request_counter, refresh_before_its_delete))
    try:
        report = await sweeper.sweep()
    finally:
        refresher.close()

    assert refreshed, "the sweep never sent a delete batch"
    assert report.scanned == 6
    assert report.deleted == 5 and report.skipped == 1 and report.errors == 0
    assert set(table_rows(azurite, table)) == {row_key(target.id)}
    assert table_rows(azurite, table)[row_key(target.id)]["ExpiresAt"] == refreshed[0]
    # The failed batch was resubmitted without the refreshed row; the other partition's
    # batch went through at once.
    assert request_counter.count_where("POST", "table") == 3
    assert not {row_key(s.id) for s in neighbours + elsewhere} & set(table_rows(azurite, table))
    loaded = await web.get(target.id)
    assert loaded is not None and loaded["user"] == "stays"


async def test_batches_hold_at_most_100_deletes_and_are_never_empty(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter) -> None:
    store = await web_store(make_store)
    for _ in range(230):
        await save_new(store, partition="0")
    for _ in range(7):
        await save_new(store, partition="9")
    clock.advance(IDLE * 2)
    sizes: list[int] = []

    def count_deletes(request: Any) -> None:
        if "$batch" in str(request.http_request.url):
            body = request.http_request.body
            assert isinstance(body, bytes)
            sizes.append(body.count(b"DELETE "))

    sweeper = await web_store(make_store, client_options=hooked(request_counter, count_deletes))
    report = await sweeper.sweep()

    assert report.deleted == 237 and report.errors == 0 and report.complete
    # Per partition ceil(n/100): 230 -> 100+100+30 and 7 -> 7; never 0, never > 100.
    assert sorted(sizes) == [7, 30, 100, 100]
    assert request_counter.count_where("POST", "table") == 4


async def test_dry_run_reports_and_writes_nothing(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter,
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    table, container = storage_names
    store = await web_store(make_store)
    for i in range(4):
        await save_new(store, {"n": i})
    await save_new(store, {"big": os.urandom(BIG)})
    put_blob(azurite, container, f"{APP}/{'a' * 64}/lost")
    clock.advance(IDLE * 2)
    await save_new(store)  # live
    rows, blobs = table_rows(azurite, table), blob_names(azurite, container)

    request_counter.reset()
    report = await store.sweep(dry_run=True, orphan_grace=dt.timedelta(minutes=5))

    assert report.dry_run and report.complete and not report.skipped_locked
    assert (report.scanned, report.deleted, report.blobs_deleted) == (5, 5, 1)
    assert report.orphans_deleted == 1
    assert {m for m, _ in request_counter.requests} == {"GET"}  # no lease, no write
    assert request_counter.count == report.requests
    assert table_rows(azurite, table).keys() == rows.keys()
    assert blob_names(azurite, container) == blobs


# -- orphans --------------------------------------------------------------------------------


async def test_orphans_older_than_the_grace_go_and_everything_else_stays(
        make_store: MakeStore, clock: FakeClock, azurite: AzuriteServer,
        storage_names: tuple[str, str]) -> None:
    _, container = storage_names
    store = await web_store(make_store, idle_timeout=dt.timedelta(hours=6))
    live = await save_new(store, {"big": os.urandom(BIG)})
    [live_blob] = blob_names(azurite, container)
    rk = row_key(live.id)
    stale = f"{APP}/{rk}/stale-upload"  # under a live row that points elsewhere
    lost = f"{APP}/{'f' * 64}/no-row"  # no row at all
    keep = {f"{APP}/not-a-row-key/x", f"other/{rk}/x", f"{APP}x/{rk}/y"}
    for name in (stale, lost, *keep):
        put_blob(azurite, container, name)

    young = await store.sweep()  # the blobs are seconds old: inside the 1 h grace
    assert young.orphans_deleted == 0 and young.errors == 0
    lock = _sweep.lock_blob_name(APP)
    assert lock in blob_names(azurite, container)

    clock.advance(dt.timedelta(hours=2))
    old = await store.sweep()

    assert old.orphans_deleted == 2 and old.deleted == 0 and old.errors == 0
    assert blob_names(azurite, container) == {live_blob, lock, *keep}
    loaded = await store.get(live.id)
    assert loaded is not None and loaded["big"] == live["big"]


# -- one sweeper at a time ------------------------------------------------------------------


async def test_a_second_sweeper_skips_while_the_first_holds_the_lease(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter,
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    table, container = storage_names
    store = await web_store(make_store)
    for _ in range(6):
        await save_new(store)
    clock.advance(IDLE * 2)
    inside, go_on = threading.Event(), threading.Event()

    def hold_first_query(request: Any) -> None:
        if is_query(request) and not inside.is_set():
            inside.set()
            go_on.wait(30)

    first = tablesessions.SessionStore.from_connection_string(
        azurite.connection_string, table_name=table, container_name=container, app_name=APP,
        clock=clock, client_options={"raw_request_hook": hold_first_query})
    try:
        running = asyncio.ensure_future(asyncio.to_thread(first.sweep))
        assert await asyncio.to_thread(inside.wait, 30)
        request_counter.reset()
        second = await store.sweep()
        go_on.set()
        first_report = await running
    finally:
        go_on.set()
        first.close()

    assert second.skipped_locked and not second.complete
    assert (second.deleted, second.scanned, second.errors, second.requests) == (0, 0, 0, 1)
    assert request_counter.count_where(service="table") == 0  # it never scanned
    assert first_report.deleted == 6 and first_report.complete
    third = await store.sweep()  # released at the end: the next one runs
    assert not third.skipped_locked and third.complete


# -- time budget and resume ------------------------------------------------------------------


async def test_time_budget_stops_early_and_the_next_run_resumes(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter,
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    table, _ = storage_names
    store = await web_store(make_store)
    for digit in "05a":
        for _ in range(2):
            await save_new(store, partition=digit)
    clock.advance(IDLE * 2)
    checkpoint_pk, _row = _sweep_checkpoint.checkpoint_keys(APP)

    request_counter.reset()
    # A spent budget: only the first pending partition runs (progress is guaranteed).
    first = await store.sweep(time_budget=dt.timedelta(0), max_parallel=1)
    assert not first.complete and first.deleted == 2 and first.errors == 0
    assert table_queries(request_counter) == 1
    rows = table_rows(azurite, table)
    assert len([r for r in rows.values() if r["PartitionKey"] != checkpoint_pk]) == 4
    [checkpoint] = [r for r in rows.values() if r["PartitionKey"] == checkpoint_pk]
    assert checkpoint["PendingPartitions"] == "123456789abcdef"

    request_counter.reset()
    second = await store.sweep()
    assert second.complete and second.deleted == 4 and second.errors == 0
    # Resumed: partition 0 is not rescanned (15 partitions + the user-index pass).
    assert table_queries(request_counter) == 16
    assert table_rows(azurite, table) == {}  # the checkpoint goes with the finished cycle

    request_counter.reset()
    third = await store.sweep()
    assert third.complete and table_queries(request_counter) == 17  # a fresh cycle


async def test_a_clock_running_past_the_budget_stops_between_pages(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await web_store(make_store)
    for digit in "0123":
        await save_new(store, partition=digit)
    clock.advance(IDLE * 2)
    ticking = FakeClock()
    ticking.now = clock.now
    lock = threading.Lock()

    def tick() -> dt.datetime:
        with lock:  # every look at the clock costs a minute
            ticking.now += dt.timedelta(minutes=1)
            return ticking.now

    sweeper = await web_store(make_store, clock=tick)
    report = await sweeper.sweep(time_budget=dt.timedelta(minutes=3), max_parallel=1)
    assert not report.complete and 1 <= report.deleted < 4
    rest = await sweeper.sweep()
    assert rest.complete and report.deleted + rest.deleted == 4


# -- parallel partitions -------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3])
async def test_partitions_run_in_parallel_up_to_the_limit(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter,
        limit: int) -> None:
    store = await web_store(make_store)
    for digit in "0123456789abcdef":
        await save_new(store, partition=digit)
    clock.advance(IDLE * 2)
    mutex = threading.Lock()
    flight = {"now": 0, "max": 0}

    def sent(request: Any) -> None:
        if is_query(request):
            with mutex:
                flight["now"] += 1
                flight["max"] = max(flight["max"], flight["now"])
            time.sleep(0.02)  # widen the window in which the others can overlap

    def received(response: Any) -> None:
        if is_query(response):
            with mutex:
                flight["now"] -= 1

    sweeper = await web_store(make_store, client_options=hooked(request_counter, sent, received))
    report = await sweeper.sweep(max_parallel=limit)
    assert report.complete and report.deleted == 16 and report.errors == 0
    if limit == 1:
        assert flight["max"] == 1
    else:
        assert 2 <= flight["max"] <= limit


# -- stats and inspect -----------------------------------------------------------------------------


async def test_storage_stats_counts_the_apps_sessions(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter) -> None:
    store = await web_store(make_store)
    for i in range(2):
        await save_new(store, {"n": i})
    clock.advance(IDLE * 2)
    for i in range(3):
        await save_new(store, {"n": i})
    await save_new(store, {"big": os.urandom(BIG)})
    other = await make_store(app_name="otherapp")
    await save_new(other)  # another app in the same table is not counted

    request_counter.reset()
    stats = await store.storage_stats()
    assert (stats.sessions, stats.expired, stats.overflowed) == (6, 2, 1)
    assert stats.bytes > BIG
    assert sum(stats.histogram.values()) == 6
    assert stats.histogram["<4KiB"] == 1
    assert table_queries(request_counter) == 16 and request_counter.count == 16
    assert stats.to_dict()["sessions"] == 6


async def test_inspect_shows_metadata_and_data_only_when_asked(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter) -> None:
    store = await web_store(make_store)
    session = await save_new(store, {"secret": "hunter2", "big": os.urandom(BIG)})
    rk = row_key(session.id)

    request_counter.reset()
    info = await store.inspect(session.id)
    assert info is not None and request_counter.count == 1
    assert info["row_key_prefix"] == rk[:12] and info["partition_key"] == f"{APP}-{rk[0]}"
    assert info["expired"] is False and info["lock"] is None
    assert info["overflow"]["blob_name"].startswith(f"{APP}/{rk}/")
    assert info["expires_at"] == session.expires_at and info["size"] > BIG
    assert "data" not in info and "hunter2" not in repr(info) and session.id not in repr(info)

    full = await store.inspect(session.id, show_data=True)
    assert full is not None and full["data"] == dict(session)

    clock.advance(IDLE * 2)  # expired: invisible to get, still shown to operators
    assert await store.get(session.id) is None
    late = await store.inspect(session.id)
    assert late is not None and late["expired"] is True

    request_counter.reset()
    assert await store.inspect("not-a-session-id") is None
    assert await store.inspect("' or PartitionKey ne '' or '") is None
    assert request_counter.count == 0  # an invalid id never reaches storage
    assert await store.inspect(tablesessions.new_session_id()) is None


# -- the generator against scripted storage: what Azurite never does ---------------------------


class ScriptedStorage:
    """Performs effects in memory: empty pages with tokens, failing batches."""

    def __init__(self, pages: dict[str, list[tuple[list[Row], Any]]]) -> None:
        self.pages = pages
        self.effects: list[Effect] = []
        self.batches: list[int] = []
        self.batch_errors: list[TableTransactionError] = []
        self.stale: set[str] = set()
        self.renew_fails = False

    def __call__(self, effect: Effect) -> Any:
        if isinstance(effect, Parallel):
            results: list[Any] = []
            for op in effect.ops:
                try:
                    results.append(drive(op, self))
                except Exception as exc:
                    results.append(exc)
            return results
        self.effects.append(effect)
        if isinstance(effect, LeaseBlob):
            if effect.lease_id is not None and not effect.release and self.renew_fails:
                raise ResourceModifiedError("lease lost")
            return None if effect.release else "lease-1"
        if isinstance(effect, QueryPage):
            pk = effect.parameters.get("pk")  # None: the user-index range query
            script = self.pages.get(pk, [([], None)]) if pk else [([], None)]
            return script[0 if effect.continuation is None else int(effect.continuation)]
        if isinstance(effect, DeleteBatch):
            self.batches.append(len(effect.deletes))
            if self.batch_errors:
                raise self.batch_errors.pop(0)
            return None
        if isinstance(effect, DeleteEntity):
            if effect.row_key in self.stale:
                raise ResourceModifiedError("412")
            return None
        if isinstance(effect, ListBlobs):
            return [], None
        if isinstance(effect, (ReadEntity, InsertEntity, UpdateEntity, DeleteBlob)):
            return None if isinstance(effect, ReadEntity) else "etag"
        raise AssertionError(f"unexpected effect {effect!r}")


def rows(pk: str, start: int, count: int) -> list[Row]:
    return [Row({"PartitionKey": pk, "RowKey": f"{i:064x}", "ExpiresAt": None}, f"e{i}")
            for i in range(start, start + count)]


@pytest.fixture
def rules() -> Rules:
    return Rules(StoreConfig(app_name=APP))


def test_scan_follows_tokens_through_empty_pages(rules: Rules) -> None:
    pk = f"{APP}-3"
    # Empty page with a token, a short page, an empty page with a token, the last page.
    storage = ScriptedStorage({pk: [([], "1"), (rows(pk, 0, 70), "2"), ([], "3"),
                                    (rows(pk, 70, 80), None)]})
    report = drive(_sweep.sweep(rules), storage)

    assert report.complete and report.scanned == 150 and report.deleted == 150
    queries = [e for e in storage.effects
               if isinstance(e, QueryPage) and "pk" in e.parameters]  # not the index pass
    mine = [q for q in queries if q.parameters.get("pk") == pk]
    assert [q.continuation for q in mine] == [None, "1", "2", "3"]
    assert len(queries) == 16 + 3
    for query in queries:
        assert query.filter == "PartitionKey eq @pk and ExpiresAt lt @cutoff"
        assert "(" not in query.filter and APP not in query.filter  # values only as parameters
        assert query.select == ("PartitionKey", "RowKey", "ExpiresAt", "BlobName")
        assert query.page_size == 1000
    assert storage.batches == [100, 50]  # carried across pages, never empty
    assert report.requests == len(storage.effects)


def test_a_batch_error_without_an_index_falls_back_to_single_deletes(rules: Rules) -> None:
    pk = f"{APP}-0"
    storage = ScriptedStorage({pk: [(rows(pk, 0, 5), None)]})
    error = TableTransactionError(message="The update condition was not satisfied.",
                                  response=None)
    error.status_code = 412
    storage.batch_errors.append(error)
    storage.stale = {f"{2:064x}"}

    report = drive(_sweep.sweep(rules), storage)

    singles = [e for e in storage.effects if isinstance(e, DeleteEntity)]
    assert len(singles) == 5 and all(e.etag for e in singles)  # conditional, one each
    assert report.deleted == 4 and report.skipped == 1 and report.errors == 0


def test_a_batch_error_with_an_index_drops_only_that_row(rules: Rules) -> None:
    pk = f"{APP}-0"
    storage = ScriptedStorage({pk: [(rows(pk, 0, 5), None)]})
    error = TableTransactionError(message="3:The update condition was not satisfied.",
                                  response=None)
    error.status_code = 412
    storage.batch_errors.append(error)

    report = drive(_sweep.sweep(rules), storage)
    assert storage.batches == [5, 4]
    resubmitted = [e for e in storage.effects if isinstance(e, DeleteBatch)][1]
    assert f"{3:064x}" not in {rk for _, rk, _ in resubmitted.deletes}
    assert report.deleted == 4 and report.skipped == 1


def test_a_lost_lease_stops_the_sweep(rules: Rules, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sweep, "RENEW_EVERY", -1.0)  # renew at every check
    storage = ScriptedStorage({})
    storage.renew_fails = True
    report = drive(_sweep.sweep(rules, max_parallel=1), storage)
    assert not report.complete and report.errors == 1
    assert "lease" in report.error_messages[0]
    assert sum(isinstance(e, QueryPage) for e in storage.effects) == 1


def test_a_failing_partition_is_counted_and_the_rest_still_run(rules: Rules) -> None:
    class Failing(ScriptedStorage):
        def __call__(self, effect: Effect) -> Any:
            if isinstance(effect, QueryPage) and effect.parameters.get("pk") == f"{APP}-7":
                raise ResourceModifiedError("boom")
            return super().__call__(effect)

    pk = f"{APP}-8"
    storage = Failing({pk: [(rows(pk, 0, 3), None)]})
    report = drive(_sweep.sweep(rules), storage)
    assert report.errors == 1 and "partition shop-7" in report.error_messages[0]
    assert report.deleted == 3 and not report.complete  # partition 7 waits for the next run
    saved = [e for e in storage.effects if isinstance(e, InsertEntity)]
    assert saved and saved[0].entity["PendingPartitions"] == "7"


def test_bad_arguments_are_rejected_before_any_effect(rules: Rules) -> None:
    for kwargs in ({"max_parallel": 0}, {"time_budget": dt.timedelta(seconds=-1)},
                   {"orphan_grace": dt.timedelta(seconds=-1)}):
        with pytest.raises(ValueError):
            next(_sweep.sweep(rules, **kwargs))
