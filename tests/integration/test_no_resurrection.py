"""No write path turns a tombstone, a deleted row or an expired row back into a
live session (issue 14, item 1), on both faces.

The rule lives once, in the core (``_ops``: every write is conditional on the
ETag of a copy read live and still live by its own deadlines; a read-back of a
dead row forgets the Session object). These are the concrete paths;
``test_resurrection_model.py`` interleaves them at random.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

from tablesessions.encryption import KeyRing
from tablesessions.testing import RequestCounter

from ..conftest import Face, FakeClock, MakeStore

REFRESH_DUE = dt.timedelta(minutes=15)  # under half of the 20 min idle time left
PAST_IDLE = dt.timedelta(minutes=25)


async def _saved(store: Face, **data: Any) -> str:
    session = store.new()
    session.update(data)
    await store.save(session)
    return session.id


@contextlib.asynccontextmanager
async def _locked(store: Face, sid: str, **kw: Any) -> Any:
    cm = store.store.lock(sid, **kw)
    if store.is_async:
        async with cm as session:
            yield session
    else:
        with cm as session:
            yield session


async def test_the_issue_14_repro_a_refresh_then_a_save_after_logout(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    sid = await _saved(store, user="alice")
    a = await store.get(sid)
    assert a is not None
    clock.advance(REFRESH_DUE)  # the idle refresh is now due
    await store.delete(await store.get(sid))  # logout in another request
    await store.save(a)  # the refresh meets the tombstone
    assert a.is_deleted
    a["cart"] = ["x"]
    await store.save(a)  # writes nothing
    assert await store.get(sid) is None


async def test_saving_the_same_object_twice_after_logout(make_store: MakeStore) -> None:
    store = await make_store()
    sid = await _saved(store, user="alice")
    a = await store.get(sid)
    assert a is not None
    a["cart"] = [1]
    await store.save(a)
    await store.delete(sid)
    for n in range(3):  # "retry a failed save with the same object"
        a["cart"] = [n]
        await store.save(a)
    assert a.is_deleted
    assert await store.get(sid) is None


async def test_a_held_copy_past_its_deadline_is_not_written_back(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    sid = await _saved(store, user="alice")
    a = await store.get(sid)
    assert a is not None
    clock.advance(PAST_IDLE)  # the row expired; the sweeper has not run
    a["cart"] = ["x"]
    await store.save(a)  # its ETag still matches: only the deadline check stops it
    assert a.is_deleted
    assert await store.get(sid) is None


async def test_a_held_copy_past_its_deadline_still_saves_onto_a_row_kept_alive(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    sid = await _saved(store, n=0)
    a = await store.get(sid)
    assert a is not None
    clock.advance(REFRESH_DUE)
    other = await store.get(sid)
    await store.save(other)  # another request's refresh kept the row alive
    clock.advance(dt.timedelta(minutes=10))  # past a's copy, not past the row
    a["cart"] = ["x"]
    await store.save(a)
    assert not a.is_deleted
    assert await store.get(sid) == {"n": 0, "cart": ["x"]}


async def test_the_refresh_stays_one_call_when_nothing_raced(
        make_store: MakeStore, clock: FakeClock, request_counter: RequestCounter) -> None:
    store = await make_store()
    sid = await _saved(store, n=0)
    clock.advance(REFRESH_DUE)
    a = await store.get(sid)
    request_counter.reset()
    await store.save(a)
    assert [m for m, _ in request_counter.requests] == ["PATCH"]
    request_counter.reset()
    a["n"] = 1
    await store.save(a)  # the refresh's ETag was adopted: 1 replace, no 412
    assert [m for m, _ in request_counter.requests] == ["PUT"]


async def test_a_refresh_after_another_requests_write_does_not_hide_it(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    sid = await _saved(store, a=0, b=0)
    one = await store.get(sid)
    clock.advance(REFRESH_DUE)
    two = await store.get(sid)
    two["b"] = 2
    await store.save(two)
    await store.save(one)  # refresh: 412, another request's write: nothing to do
    one["a"] = 1
    await store.save(one)  # merges onto two's write rather than overwriting it
    assert await store.get(sid) == {"a": 1, "b": 2}


async def test_lock_exit_after_logout_does_not_resurrect(make_store: MakeStore,
                                                         clock: FakeClock) -> None:
    store = await make_store()
    for change in (True, False):
        sid = await _saved(store, n=0)
        async with _locked(store, sid) as held:
            assert held is not None
            await store.delete(sid)  # logout in a request that does not lock
            clock.advance(REFRESH_DUE)  # the release would refresh too
            if change:
                held["n"] = 1
        assert await store.get(sid) is None
        assert held.is_deleted


async def test_lock_released_past_the_rows_deadline_does_not_revive_it(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    sid = await _saved(store, n=0)
    async with _locked(store, sid, lease=3600) as held:
        assert held is not None
        clock.advance(PAST_IDLE)
    assert held.is_deleted
    assert await store.get(sid) is None


async def test_regenerate_of_a_logged_out_session_yields_a_deleted_one(
        make_store: MakeStore) -> None:
    store = await make_store()
    sid = await _saved(store, user="alice")
    a = await store.get(sid)
    assert a is not None
    await store.delete(sid)  # logout elsewhere, while this request logs in
    fresh = await store.regenerate(a)
    assert fresh.is_deleted and fresh.id != sid
    assert await store.get(fresh.id) is None
    assert await store.get(sid) is None
    fresh["user"] = "bob"
    await store.save(fresh)  # writes nothing
    assert await store.get(fresh.id) is None


async def test_regenerate_of_an_expired_copy_yields_a_deleted_one(
        make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    sid = await _saved(store, user="alice")
    a = await store.get(sid)
    clock.advance(PAST_IDLE)
    fresh = await store.regenerate(a)
    assert fresh.is_deleted
    assert await store.get(fresh.id) is None


async def test_regenerate_after_another_requests_write_still_moves_the_session(
        make_store: MakeStore, request_counter: RequestCounter) -> None:
    store = await make_store()
    sid = await _saved(store, user="alice")
    a = await store.get(sid)
    b = await store.get(sid)
    b["seen"] = 1
    await store.save(b)  # a's ETag is stale now, the session still live
    request_counter.reset()
    fresh = await store.regenerate(a)
    assert not fresh.is_deleted
    assert await store.get(fresh.id) == {"user": "alice"}
    assert await store.get(sid) is None
    assert a.is_deleted


async def test_regenerate_costs_an_insert_and_a_conditional_tombstone(
        make_store: MakeStore, request_counter: RequestCounter) -> None:
    store = await make_store()
    sid = await _saved(store, user="alice")
    a = await store.get(sid)
    request_counter.reset()
    fresh = await store.regenerate(a)
    assert [m for m, _ in request_counter.requests] == ["POST", "PUT"]
    assert await store.get(fresh.id) == {"user": "alice"}


async def test_update_and_bind_user_of_a_deleted_session(make_store: MakeStore) -> None:
    store = await make_store()
    sid = await _saved(store, n=0)
    a = await store.get(sid)
    await store.delete(sid)
    assert await store.update(sid, lambda s: s.update(n=1)) is None
    await store.bind_user(a, "alice@example.com")
    assert a.is_deleted
    assert await store.get(sid) is None


async def test_overwrite_mode_never_recreates_a_deleted_session(make_store: MakeStore) -> None:
    store = await make_store(concurrency="overwrite")
    sid = await _saved(store, n=0)
    a = await store.get(sid)
    await store.delete(sid)
    a["n"] = 1
    await store.save(a)
    assert a.is_deleted
    assert await store.get(sid) is None


async def test_key_rotation_skips_expired_rows(make_store: MakeStore, clock: FakeClock) -> None:
    old, new = KeyRing.generate_key(), KeyRing.generate_key()
    store = await make_store(key_ring=KeyRing({"k1": old}))
    sid = await _saved(store, user="alice")
    clock.advance(PAST_IDLE)
    rotating = await make_store(key_ring=KeyRing({"k1": old, "k2": new}, primary="k2"))
    report = await rotating.rotate_keys()
    assert report.rotated == 0 and report.skipped == 1
    assert await rotating.get(sid) is None



async def test_a_session_found_logged_out_can_still_be_read(make_store: MakeStore) -> None:
    """A request whose save meets another request's logout keeps its in-memory
    view: values it never decoded are still readable, and saving again writes
    nothing (found by the hypothesis model: reading them raised AssertionError)."""
    store = await make_store()
    sid = await _saved(store, user="alice", cart=["x"], n=1)
    a = await store.get(sid)  # nothing decoded yet
    await store.delete(await store.get(sid))  # logout in another request
    a["n"] = 2
    await store.save(a)  # meets the tombstone: forgotten
    assert a.is_deleted
    assert (a["user"], a["cart"], a["n"]) == ("alice", ["x"], 2)
    a["n"] = 3
    await store.save(a)
    assert await store.get(sid) is None


async def test_a_session_deleted_here_can_still_be_read(make_store: MakeStore) -> None:
    store = await make_store()
    sid = await _saved(store, user="alice")
    a = await store.get(sid)
    await store.delete(a)
    assert a.is_deleted and a.get("user") == "alice"
    await store.save(a)
    assert await store.get(sid) is None
