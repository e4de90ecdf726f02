"""Concurrency with real worker processes against Azurite (issue 6)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor

import tablesessions
from tablesessions.testing import AzuriteServer

from . import _workers

WORKERS, TIMES = 8, 50


def _new_session(azurite: AzuriteServer, names: tuple[str, str], **data: int) -> str:
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=names[0], container_name=names[1]) as store:
        store.create_storage()
        session = store.new()
        session.update(data)
        store.save(session)
        return session.id


def _read(azurite: AzuriteServer, names: tuple[str, str], sid: str) -> dict[str, object]:
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=names[0], container_name=names[1]) as store:
        session = store.get(sid)
        assert session is not None
        return dict(session)


def test_eight_processes_incrementing_their_own_keys_lose_nothing(
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    sid = _new_session(azurite, storage_names)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(WORKERS, mp_context=ctx) as pool:
        futures = [pool.submit(_workers.increment_own_key, azurite.connection_string,
                               *storage_names, sid, w, TIMES) for w in range(WORKERS)]
        done = [f.result() for f in futures]
    assert done == [TIMES] * WORKERS
    assert _read(azurite, storage_names, sid) == {f"w{w}": TIMES for w in range(WORKERS)}


def test_lock_mode_increments_on_one_shared_key_are_exact(
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    sid = _new_session(azurite, storage_names, n=0)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(WORKERS, mp_context=ctx) as pool:
        futures = [pool.submit(_workers.increment_locked, azurite.connection_string,
                               *storage_names, sid, TIMES) for _ in range(WORKERS)]
        assert [f.result() for f in futures] == [TIMES] * WORKERS
    assert _read(azurite, storage_names, sid) == {"n": WORKERS * TIMES}


def test_a_sigkilled_holder_blocks_others_only_until_its_lease_ends(
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    sid = _new_session(azurite, storage_names, n=0)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    lease = 3.0
    holder = ctx.Process(target=_workers.hold_lock_forever,
                         args=(azurite.connection_string, *storage_names, sid, lease, ready))
    holder.start()
    assert ready.wait(60)
    taken = time.monotonic()
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=storage_names[0],
            container_name=storage_names[1]) as store, \
            store.lock(sid, timeout=30) as session:
        waited = time.monotonic() - taken
        assert session is not None
        session["n"] = 1
    assert waited < lease + 5  # the lease, not a stale lock, bounded the wait
    assert _read(azurite, storage_names, sid) == {"n": 1}
