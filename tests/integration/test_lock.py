"""The opt-in lease lock (issue 6), on both faces."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from typing import Any

import pytest

from tablesessions import LockTimeoutError, SessionConflictError

from ..conftest import Face, FakeClock, MakeStore


@contextlib.asynccontextmanager
async def locked(store: Face, sid: str, **kw: Any) -> Any:
    cm = store.store.lock(sid, **kw)
    if store.is_async:
        async with cm as session:
            yield session
    else:
        with cm as session:
            yield session


async def saved(store: Face, **data: Any) -> str:
    s = store.new()
    s.update(data)
    await store.save(s)
    return s.id


async def test_lock_saves_and_releases_in_one_write(make_store: MakeStore) -> None:
    store = await make_store()
    sid = await saved(store, n=0)
    async with locked(store, sid) as session:
        assert session is not None
        assert session.lock_id is not None
        session["n"] += 1
    again = await store.get(sid)
    assert again == {"n": 1}
    assert again.lock_id is None  # released


async def test_missing_or_malformed_session_yields_none(make_store: MakeStore) -> None:
    store = await make_store()
    async with locked(store, "not-an-id") as session:
        assert session is None
    async with locked(store, store.new().id) as session:
        assert session is None


async def test_second_holder_times_out_with_diagnostics(make_store: MakeStore) -> None:
    store = await make_store()
    sid = await saved(store, n=0)
    async with locked(store, sid, lease=30) as held:
        assert held is not None
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as info:
            async with locked(store, sid, timeout=0.5):
                pass
        assert 0.4 <= time.monotonic() - started < 3
        assert info.value.holder == held.lock_id
        assert info.value.age is not None
        assert info.value.age >= 0


async def test_an_expired_lease_is_taken_over(make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store()
    sid = await saved(store, n=0)
    cm = store.store.lock(sid, lease=5)
    crashed = await cm.__aenter__() if store.is_async else cm.__enter__()  # never exits
    assert crashed is not None
    clock.advance(dt.timedelta(seconds=6))  # the holder's lease ran out
    async with locked(store, sid, timeout=2) as session:
        assert session is not None
        assert session.lock_id != crashed.lock_id
        session["n"] = 7
    crashed["n"] = 99

    async def exit_block() -> None:
        if store.is_async:
            await cm.__aexit__(None, None, None)
        else:
            cm.__exit__(None, None, None)

    with pytest.raises(SessionConflictError, match="lease expired"):
        await exit_block()
    assert await store.get(sid) == {"n": 7}


async def test_exception_in_the_block_releases_without_saving(make_store: MakeStore) -> None:
    store = await make_store()
    sid = await saved(store, n=0)
    async def failing_block() -> None:
        async with locked(store, sid) as session:
            session["n"] = 5
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_block()
    after = await store.get(sid)
    assert after == {"n": 0}
    assert after.lock_id is None
    async with locked(store, sid, timeout=0) as session:  # free at once
        assert session is not None


async def test_plain_saves_do_not_break_a_held_lock(make_store: MakeStore) -> None:
    store = await make_store()
    sid = await saved(store, a=0, b=0)
    async with locked(store, sid) as session:
        other = await store.get(sid)
        other["b"] = 1
        await store.save(other)  # a request that does not lock: merges as usual
        assert (await store.get(sid)).lock_id == session.lock_id
        session["a"] = 1
    assert await store.get(sid) == {"a": 1, "b": 1}


async def test_waiters_queue_and_every_increment_lands(make_store: MakeStore) -> None:
    store = await make_store()
    sid = await saved(store, n=0)

    async def bump() -> None:
        for _ in range(5):
            async with locked(store, sid, timeout=20) as session:
                session["n"] += 1

    if store.is_async:
        await asyncio.gather(*(bump() for _ in range(4)))
    else:
        import threading

        threads = [threading.Thread(target=asyncio.run, args=(bump(),)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert (await store.get(sid))["n"] == 20
