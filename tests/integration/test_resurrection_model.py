"""Stateful property test: nothing deleted (or expired) is ever served again.

Hypothesis interleaves get, save (modified), save (unmodified: the idle
refresh when due), delete, regenerate, the lease lock, ``update``,
``bind_user`` and clock moves across several ``Session`` objects of the same
ids, on both faces against Azurite, and checks after every step:

- once an id is not served (deleted, or expired) it is never served again, by
  ``get``, ``lock`` or ``update``;
- an id stops being served only for a reason: it was deleted (a logout or a
  regenerate), or the clock passed the latest expiry any acknowledged write
  gave it;
- a modified save of a dead id writes nothing and marks the object deleted.

Bounded: a few dozen short runs, well under a minute per face.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

import tablesessions
import tablesessions.aio
from tablesessions import Session
from tablesessions.testing import AzuriteServer

from ..conftest import FakeClock

#: Clock moves, in minutes, around the 20 min idle timeout and its 10 min
#: refresh threshold: nothing due, refresh due, just expired, long expired.
MOVES = (1, 6, 11, 15, 21, 40)
SLACK = dt.timedelta(milliseconds=1)  # datetime round trip through the table


class _Runner:
    """One store of either face, driven synchronously (the async one on a private loop)."""

    def __init__(self, kind: str, azurite: AzuriteServer, names: tuple[str, str],
                 clock: FakeClock) -> None:
        self.loop = asyncio.new_event_loop() if kind == "async" else None
        cls: Any = tablesessions.aio.SessionStore if self.loop else tablesessions.SessionStore
        self.store = cls.from_connection_string(azurite.connection_string, table_name=names[0],
                                                container_name=names[1], clock=clock)
        self.call("create_storage")

    def call(self, name: str, *args: Any) -> Any:
        result = getattr(self.store, name)(*args)
        return self.loop.run_until_complete(result) if self.loop else result

    def locked(self, sid: str, body: Callable[[Session], None]) -> Session | None:
        if self.loop is None:
            with self.store.lock(sid, timeout=1, lease=3600) as held:
                if held is not None:
                    body(held)
                return held  # type: ignore[no-any-return]

        async def go() -> Session | None:
            async with self.store.lock(sid, timeout=1, lease=3600) as held:
                if held is not None:
                    body(held)
                return held  # type: ignore[no-any-return]

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.call("close")
        if self.loop is not None:
            self.loop.close()


class Resurrection(RuleBasedStateMachine):
    runner: _Runner
    clock: FakeClock

    def __init__(self) -> None:
        super().__init__()
        self.handles: list[Session] = []
        self.ids: list[str] = []
        self.dead: set[str] = set()
        self.deleted: set[str] = set()
        #: the latest expiry an acknowledged write gave each id
        self.expiry: dict[str, dt.datetime] = {}
        self.absolute: dict[str, dt.datetime] = {}

    # -- bookkeeping ------------------------------------------------------------
    def _track(self, session: Session) -> None:
        """After an operation: record what an acknowledged write did to the expiry."""
        if not session.is_deleted and session.id not in self.dead:
            self.expiry[session.id] = max(self.expiry[session.id], session.expires_at)

    def _may_be_dead(self, sid: str) -> bool:
        now = self.clock.now
        return (sid in self.deleted or now >= self.expiry[sid] - SLACK
                or now >= self.absolute[sid] - SLACK)

    def _served(self, sid: str, served: bool) -> None:
        if served:
            assert sid not in self.dead, "a deleted or expired session was served again"
        else:
            assert self._may_be_dead(sid), "a live session was not served"
            self.dead.add(sid)

    def _handle(self, pick: int) -> Session:
        return self.handles[pick % len(self.handles)]

    def _adopt(self, session: Session) -> None:
        self.handles.append(session)
        if session.id not in self.expiry:
            self.ids.append(session.id)
            self.expiry[session.id] = session.expires_at
            self.absolute[session.id] = session.absolute_expires_at

    # -- rules --------------------------------------------------------------------
    @initialize()
    def create(self) -> None:
        session = self.runner.store.new()
        session.update(user="alice", n=0)
        self.runner.call("save", session)
        self._adopt(session)

    @rule(pick=st.integers(min_value=0))
    def get(self, pick: int) -> None:
        sid = self.ids[pick % len(self.ids)]
        session = self.runner.call("get", sid)
        self._served(sid, session is not None)
        if session is not None:
            self._adopt(session)

    @rule(pick=st.integers(min_value=0), key=st.sampled_from(["n", "cart", "user"]))
    def modify_and_save(self, pick: int, key: str) -> None:
        session = self._handle(pick)
        was_dead = session.id in self.dead
        # Setting a key to the value this copy already holds is no change: its
        # save writes nothing (and so cannot find out the row is dead).
        changes = session.get(key) != len(self.handles)
        session[key] = len(self.handles)
        self.runner.call("save", session)
        if was_dead and changes:
            assert session.is_deleted, "a modified save of a dead session was accepted"
        self._track(session)

    @rule(pick=st.integers(min_value=0))
    def save_unmodified(self, pick: int) -> None:
        session = self._handle(pick)
        self.runner.call("save", session)  # the idle refresh, when due
        self._track(session)

    @rule(pick=st.integers(min_value=0), by_id=st.booleans())
    def delete(self, pick: int, by_id: bool) -> None:
        session = self._handle(pick)
        self.runner.call("delete", session.id if by_id else session)
        # A Session object is only ever forgotten once its row is dead, so either
        # way the id is dead now.
        self.deleted.add(session.id)
        self.dead.add(session.id)

    @rule(pick=st.integers(min_value=0))
    def regenerate(self, pick: int) -> None:
        session = self._handle(pick)
        was_dead = session.id in self.dead
        fresh = self.runner.call("regenerate", session)
        if was_dead:
            assert fresh.is_deleted, "regenerate moved a dead session to a new id"
        if fresh.is_deleted:
            self._served(session.id, False)
            return
        self.deleted.add(session.id)
        self.dead.add(session.id)
        self._adopt(fresh)

    @rule(pick=st.integers(min_value=0), change=st.booleans())
    def lock(self, pick: int, change: bool) -> None:
        sid = self.ids[pick % len(self.ids)]

        def body(session: Session) -> None:
            if change:
                session["n"] = len(self.handles)

        held = self.runner.locked(sid, body)
        self._served(sid, held is not None)
        if held is not None:
            self._track(held)
            self._adopt(held)

    @rule(pick=st.integers(min_value=0))
    def update(self, pick: int) -> None:
        sid = self.ids[pick % len(self.ids)]
        calls: list[int] = []

        def bump(session: Session) -> None:
            calls.append(1)
            session["n"] = session.get("n", 0) + 1

        updated = self.runner.call("update", sid, bump)
        self._served(sid, updated is not None)
        if updated is not None:
            assert calls, "update returned a session without applying fn"
            self._track(updated)
            self._adopt(updated)

    @rule(pick=st.integers(min_value=0))
    def bind_user(self, pick: int) -> None:
        session = self._handle(pick)
        was_dead = session.id in self.dead
        self.runner.call("bind_user", session, "alice@example.com")
        if was_dead:
            assert session.is_deleted
        self._track(session)

    @rule(minutes=st.sampled_from(MOVES))
    def advance(self, minutes: int) -> None:
        self.clock.advance(dt.timedelta(minutes=minutes))


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_nothing_deleted_or_expired_is_ever_served_again(
        kind: str, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    clock = FakeClock()
    runner = _Runner(kind, azurite, storage_names, clock)

    class Machine(Resurrection):
        pass

    Machine.runner, Machine.clock = runner, clock
    try:
        run_state_machine_as_test(Machine, settings=settings(
            max_examples=25, stateful_step_count=25, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow]))
    finally:
        runner.close()
