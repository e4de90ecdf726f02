"""Worker entry points for the multi-process tests (importable under spawn)."""

from __future__ import annotations

import time
from typing import Any

import tablesessions


def _store(conn: str, table: str, container: str) -> tablesessions.SessionStore:
    # A generous deadline: 8 processes share 2 cores, and the merge loop may
    # need several rounds under contention.
    return tablesessions.SessionStore.from_connection_string(
        conn, table_name=table, container_name=container, max_merge_attempts=50,
        retry=tablesessions.RetryPolicy(max_attempts=6, deadline=30))


def increment_own_key(conn: str, table: str, container: str, sid: str, worker: int,
                      times: int) -> int:
    """Plain read-modify-save (merge mode), each worker on its own key."""
    with _store(conn, table, container) as store:
        for _ in range(times):
            session = store.get(sid)
            assert session is not None
            key = f"w{worker}"
            session[key] = session.get(key, 0) + 1
            store.save(session)
    return times


def increment_locked(conn: str, table: str, container: str, sid: str, times: int) -> int:
    """The same increments on ONE shared key, under the lease lock."""
    with _store(conn, table, container) as store:
        for _ in range(times):
            with store.lock(sid, timeout=120, lease=10) as session:
                assert session is not None
                session["n"] = session["n"] + 1
    return times


def hold_lock_forever(conn: str, table: str, container: str, sid: str, lease: float,
                      ready: Any) -> None:
    with _store(conn, table, container) as store, store.lock(sid, lease=lease) as session:
        assert session is not None
        ready.set()
        time.sleep(3600)  # until SIGKILLed
