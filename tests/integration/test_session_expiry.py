"""Per-session expiry (``Session.set_expiry``), on both faces, against a real Azurite.

The lifetime lives in the row, so every store instance enforces it on every
read and the sweeper deletes by it; the clock is injected, never slept on.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from azure.data.tables import TableClient

from tablesessions import Session
from tablesessions.testing import AzuriteServer, RequestCounter

from ..conftest import Face, FakeClock, MakeStore

SECOND = dt.timedelta(seconds=1)


def raw_row(azurite: AzuriteServer, table: str, store: Face, session_id: str) -> dict[str, Any]:
    pk, rk = store.store._rules.keys(session_id)
    with TableClient.from_connection_string(azurite.connection_string, table_name=table) as t:
        return dict(t.get_entity(pk, rk))


async def saved(store: Face, **expiry: Any) -> Session:
    session = store.new()
    session["user"] = "alice"
    if expiry:
        session.set_expiry(**expiry)
    await store.save(session)
    return session


async def test_a_short_idle_expiry_is_refused_after_it_on_every_instance(
        make_store: MakeStore, clock: FakeClock) -> None:
    one, other = await make_store(), await make_store()
    session = await saved(one, idle=dt.timedelta(seconds=30))
    assert session.idle_timeout == dt.timedelta(seconds=30)
    assert session.expires_at == clock() + dt.timedelta(seconds=30)
    clock.advance(29 * SECOND)
    loaded = await other.get(session.id)
    assert loaded is not None
    assert loaded.idle_timeout == dt.timedelta(seconds=30)
    clock.advance(2 * SECOND)  # 31 s idle: far inside the store's 20 min default
    assert await one.get(session.id) is None
    assert await other.get(session.id) is None


async def test_the_refresh_threshold_follows_the_sessions_own_idle_timeout(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter) -> None:
    store = await make_store()  # store default: 20 min idle, refresh under 10 min left
    session = await saved(store, idle=dt.timedelta(hours=1))
    clock.advance(dt.timedelta(minutes=35))  # 25 min left: < half of the session's hour
    loaded = await store.get(session.id)
    assert loaded is not None
    request_counter.reset()
    await store.save(loaded)
    assert [m for m, _ in request_counter.requests] == ["PATCH"]  # the expiry-only merge
    assert loaded.expires_at == clock() + dt.timedelta(hours=1)
    clock.advance(dt.timedelta(minutes=50))  # 85 min after creation, 50 after the refresh
    assert await store.get(session.id) is not None


async def test_an_own_absolute_deadline_ends_an_active_session(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    start = clock()
    by_delta = await saved(store, absolute=dt.timedelta(seconds=90))
    by_date = await saved(store, absolute=start + dt.timedelta(seconds=90))
    assert by_delta.absolute_expires_at == by_date.absolute_expires_at == start + 90 * SECOND
    for _ in range(2):  # keep them busy: writes every 40 s
        clock.advance(40 * SECOND)
        for session in (by_delta, by_date):
            loaded = await store.get(session.id)
            assert loaded is not None
            loaded["n"] = 1
            await store.save(loaded)
            assert loaded.expires_at == start + 90 * SECOND
    clock.advance(11 * SECOND)
    assert await store.get(by_delta.id) is None
    assert await store.get(by_date.id) is None


async def test_a_deadline_in_the_past_expires_the_session_at_once(make_store: MakeStore) -> None:
    store = await make_store()
    session = await saved(store, absolute=-10 * SECOND)
    assert await store.get(session.id) is None


async def test_without_an_explicit_absolute_timeout_a_session_may_outlive_the_default(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    assert store.config.max_absolute_timeout is None  # the 12 h default is no cap
    session = await saved(store, idle=dt.timedelta(days=30), absolute=dt.timedelta(days=30))
    assert session.absolute_expires_at == clock() + dt.timedelta(days=30)
    clock.advance(dt.timedelta(hours=13))
    assert await store.get(session.id) is not None


async def test_an_explicit_absolute_timeout_caps_every_session(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(absolute_timeout=dt.timedelta(hours=1))
    assert store.config.max_absolute_timeout == dt.timedelta(hours=1)
    start = clock()
    session = await saved(store, idle=dt.timedelta(days=30), absolute=dt.timedelta(days=30))
    assert session.absolute_expires_at == start + dt.timedelta(hours=1)
    dated = await saved(store, absolute=start + dt.timedelta(days=30))
    assert dated.absolute_expires_at == start + dt.timedelta(hours=1)
    clock.advance(dt.timedelta(minutes=59))
    assert await store.get(session.id) is not None
    clock.advance(dt.timedelta(minutes=2))
    assert await store.get(session.id) is None
    assert await store.get(dated.id) is None


async def test_the_cap_also_bounds_rows_written_without_it(
        make_store: MakeStore, clock: FakeClock) -> None:
    open_store = await make_store()
    capped = await make_store(absolute_timeout=dt.timedelta(hours=1))
    session = await saved(open_store, idle=dt.timedelta(days=2), absolute=dt.timedelta(days=2))
    clock.advance(dt.timedelta(hours=2))
    assert await open_store.get(session.id) is not None
    assert await capped.get(session.id) is None


async def test_browser_flag_and_idle_round_trip_and_reset(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    one, other = await make_store(), await make_store()
    session = await saved(one, idle=dt.timedelta(minutes=5), browser_session=True)
    row = raw_row(azurite, storage_names[0], one, session.id)
    assert row["IdleSeconds"] == 300
    assert row["BrowserSession"] is True
    loaded = await other.get(session.id)
    assert loaded is not None
    assert loaded.browser_session is True
    assert loaded.idle_timeout == dt.timedelta(minutes=5)
    loaded.set_expiry(idle=None, browser_session=False)
    assert loaded.modified
    await other.save(loaded)
    row = raw_row(azurite, storage_names[0], one, session.id)
    assert "IdleSeconds" not in row
    assert "BrowserSession" not in row
    again = await one.get(session.id)
    assert again is not None
    assert (again.idle_timeout, again.browser_session) == (None, False)


async def test_a_row_without_the_expiry_columns_reads_as_store_defaults(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str],
        clock: FakeClock) -> None:
    store = await make_store()
    session = await saved(store, idle=dt.timedelta(minutes=5), browser_session=True)
    # What a row written before per-session expiry looks like: no such columns.
    pk, rk = store.store._rules.keys(session.id)
    with TableClient.from_connection_string(azurite.connection_string,
                                            table_name=storage_names[0]) as table:
        old = {k: v for k, v in table.get_entity(pk, rk).items()
               if k not in ("IdleSeconds", "BrowserSession")}
        old["ExpiresAt"] = clock() + store.config.idle_timeout
        table.delete_entity(pk, rk)
        table.create_entity(old)
    loaded = await store.get(session.id)
    assert loaded is not None
    assert loaded["user"] == "alice"
    assert (loaded.idle_timeout, loaded.browser_session) == (None, False)
    clock.advance(dt.timedelta(minutes=19))
    assert await store.get(session.id) is not None
    clock.advance(dt.timedelta(minutes=2))
    assert await store.get(session.id) is None


async def test_regenerate_carries_the_per_session_expiry_over(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    start = clock()
    session = await saved(store, idle=dt.timedelta(seconds=30), browser_session=True,
                          absolute=dt.timedelta(minutes=5))
    fresh = await store.regenerate(session)
    assert fresh.id != session.id
    assert fresh.idle_timeout == dt.timedelta(seconds=30)
    assert fresh.browser_session is True
    assert fresh.absolute_expires_at == start + dt.timedelta(minutes=5)
    loaded = await store.get(fresh.id)
    assert loaded is not None
    assert (loaded.idle_timeout, loaded.browser_session) == (dt.timedelta(seconds=30), True)
    clock.advance(31 * SECOND)
    assert await store.get(fresh.id) is None


async def test_regenerate_resolves_a_pending_set_expiry(make_store: MakeStore,
                                                        clock: FakeClock) -> None:
    store = await make_store()
    session = await saved(store)
    session.set_expiry(idle=dt.timedelta(seconds=30))
    fresh = await store.regenerate(session)
    clock.advance(31 * SECOND)
    assert await store.get(fresh.id) is None


async def test_the_sweeper_removes_a_short_per_session_expiry_session(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    short = await saved(store, idle=dt.timedelta(seconds=30))
    default = await saved(store)
    # Past the 30 s and the sweeper's safety margin, well inside the 20 min default.
    clock.advance(dt.timedelta(minutes=3))
    report = await store.sweep()
    assert report.deleted == 1
    assert await store.get(default.id) is not None
    clock.advance(-dt.timedelta(minutes=3))  # even back in time the row is gone, not expired
    assert await store.get(short.id) is None


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"idle": dt.timedelta(0)}, ValueError),
    ({"idle": dt.timedelta(milliseconds=500)}, ValueError),
    ({"idle": dt.timedelta(seconds=2**31)}, ValueError),
    ({"idle": 300}, TypeError),
    ({"absolute": dt.datetime(2030, 1, 1)}, ValueError),  # naive
    ({"absolute": 300}, TypeError),
    ({"browser_session": 1}, TypeError),
])
def test_set_expiry_rejects_bad_values(kwargs: dict[str, Any], error: type[Exception]) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    session = Session("x", {}, created_at=now, expires_at=now, absolute_expires_at=now)
    with pytest.raises(error):
        session.set_expiry(**kwargs)
    assert session.idle_timeout is None
    assert session.browser_session is False


async def test_modified_false_drops_a_pending_deadline(make_store: MakeStore,
                                                      clock: FakeClock) -> None:
    store = await make_store()
    session = await saved(store)
    deadline = session.absolute_expires_at
    session.set_expiry(absolute=dt.timedelta(seconds=30))
    session.modified = False
    clock.advance(dt.timedelta(minutes=15))  # the idle refresh is due
    await store.save(session)
    assert session.absolute_expires_at == deadline
    clock.advance(dt.timedelta(minutes=1))
    assert await store.get(session.id) is not None
