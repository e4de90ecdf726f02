"""Conflict rounds, driven by hand (sans-I/O): jittered backoff, bounded by the
operation's deadline, every write conditional on an ETag."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from azure.core.exceptions import ResourceModifiedError

from tablesessions import RetryPolicy, SessionConflictError, StoreConfig
from tablesessions._record import contention as _contention
from tablesessions._record.effects import Op, ReadEntity, Row, Sleep, TimeLeft, UpdateEntity
from tablesessions._sessions import ops as _ops
from tablesessions._sessions.ids import new_session_id
from tablesessions._sessions.rules import Rules
from tablesessions.models import Session

from ..conftest import FakeClock


class Contended:
    """Answers a save as a row that another writer changes before every write:
    each write gets 412, each read a fresh live copy. Time passes 10 ms per
    storage call and as slept."""

    def __init__(self, rules: Rules, session: Session, deadline: float | None,
                 call: float = 0.01) -> None:
        self.rules, self.session, self.deadline, self.call = rules, session, deadline, call
        self.elapsed = 0.0
        self.sleeps: list[float] = []
        self.writes: list[UpdateEntity] = []
        self.reads = 0

    def row(self) -> Row:
        other = Session(self.session.id, {"theirs": self.reads}, created_at=self.rules.now(),
                        expires_at=self.session.expires_at,
                        absolute_expires_at=self.session.absolute_expires_at)
        pk, rk = self.rules.keys(self.session.id)
        entries = self.rules.encode_all(other)
        stored, codec = self.rules.pack(entries, rk)
        entity = self.rules.entity(pk, rk, other, stored, codec, None, "foreign",
                                   self.session.expires_at)
        return Row(entity, f"etag-{self.reads}")

    def drive(self, op: Op[Any]) -> Any:
        effect = next(op)
        while True:
            try:
                if isinstance(effect, UpdateEntity):
                    self.writes.append(effect)
                    self.elapsed += self.call
                    effect = op.throw(ResourceModifiedError("412"))
                    continue
                if isinstance(effect, ReadEntity):
                    self.reads += 1
                    self.elapsed += self.call
                    result: Any = self.row()
                elif isinstance(effect, Sleep):
                    self.sleeps.append(effect.seconds)
                    self.elapsed += effect.seconds
                    result = None
                elif isinstance(effect, TimeLeft):
                    result = None if self.deadline is None else self.deadline - self.elapsed
                else:
                    raise AssertionError(f"unexpected effect {effect!r}")
                effect = op.send(result)
            except StopIteration as stop:
                return stop.value


def _loaded(clock: FakeClock, deadline: float = 2.0, **options: Any) -> tuple[Rules, Session]:
    rules = Rules(StoreConfig(clock=clock, retry=RetryPolicy(deadline=deadline), **options))
    session = rules.new_session(new_session_id())
    session["mine"] = 0
    rules.mark_saved(session, "etag-0", rules.encode_all(session), None, session.expires_at)
    session["mine"] = 1
    return rules, session


@pytest.fixture
def upper_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the jitter deterministic: every pause is its window's upper bound."""
    monkeypatch.setattr("tablesessions._record.contention.random.uniform",
                        lambda a, b: max(a, b))


def test_merge_rounds_back_off_and_end_at_the_deadline(clock: FakeClock,
                                                       upper_bound: None) -> None:
    rules, session = _loaded(clock)
    world = Contended(rules, session, deadline=2.0)
    with pytest.raises(SessionConflictError, match="deadline ran out"):
        world.drive(_ops.save(rules, session))
    assert len(world.writes) > 5  # no longer a fixed 5-attempt budget
    assert world.elapsed <= 2.0  # it never slept past the deadline
    # Counted in rounds: the first conflict came after one 10 ms call, and a
    # round (re-read + write) then measures 20 ms.
    assert world.sleeps[0] == pytest.approx(0.01, rel=0.05)
    assert world.sleeps[1] > world.sleeps[0]  # the window grows...
    rounds = 0.02 * _contention.WINDOW_ROUNDS
    assert max(world.sleeps) <= rounds + 1e-9  # ...up to its cap, in measured rounds
    # ...and shrinks as the deadline nears: the oldest writers retry soonest.
    assert world.sleeps[-1] < max(world.sleeps) / 2
    # The write rule: every data write is conditional on an ETag just read live.
    assert all(w.etag == f"etag-{i}" for i, w in enumerate(world.writes))


def test_the_jitter_is_random_within_its_window(clock: FakeClock) -> None:
    rules, session = _loaded(clock)
    world = Contended(rules, session, deadline=2.0)
    with pytest.raises(SessionConflictError):
        world.drive(_ops.save(rules, session))
    assert len(set(world.sleeps)) > len(world.sleeps) // 2  # not lock-step
    # Equal jitter: never a near-zero pause early on (it would re-collide at once).
    assert min(world.sleeps[:3]) >= 0.005


def test_the_window_scales_with_the_measured_round(clock: FakeClock,
                                                   upper_bound: None) -> None:
    """A slow store (100 ms calls) spaces rounds 10x wider than a fast one."""
    pauses = []
    for call in (0.01, 0.1):
        rules, session = _loaded(clock, deadline=20.0)
        world = Contended(rules, session, deadline=20.0, call=call)
        with pytest.raises(SessionConflictError):
            world.drive(_ops.save(rules, session))
        pauses.append(world.sleeps[:3])
    # The first pause rests on the time spent before the first conflict, capped
    # (a first write delayed by a fault says nothing about the next round)...
    assert pauses[0][0] == pytest.approx(0.01, rel=0.05)
    assert pauses[1][0] == pytest.approx(_contention.FIRST_ROUND_CAP, rel=0.05)
    # ...later ones on measured rounds: 10x the call time, 10x the pause (the age
    # factor differs a little: the slow store has spent more of its deadline).
    assert pauses[1][1] > 8 * pauses[0][1]
    assert pauses[1][2] > 8 * pauses[0][2]


def test_without_a_shared_deadline_the_count_is_the_safety_cap(clock: FakeClock) -> None:
    rules, session = _loaded(clock, max_merge_attempts=7)
    world = Contended(rules, session, deadline=None)
    with pytest.raises(SessionConflictError, match="after 7 attempts"):
        world.drive(_ops.save(rules, session))
    assert len(world.writes) == 7


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_overwrite_and_merge_rounds_are_bounded_the_same_way(clock: FakeClock, mode: str,
                                                             upper_bound: None) -> None:
    rules, session = _loaded(clock, deadline=1.0, concurrency=mode)
    world = Contended(rules, session, deadline=1.0)
    with pytest.raises(SessionConflictError, match="deadline"):
        world.drive(_ops.save(rules, session))
    assert world.elapsed <= 1.0
    assert all(w.replace and w.etag for w in world.writes)


def test_update_reapplies_fn_to_each_fresh_copy(clock: FakeClock, upper_bound: None) -> None:
    rules, session = _loaded(clock, deadline=0.5)
    world = Contended(rules, session, deadline=0.5)
    seen: list[object] = []

    def bump(s: Session) -> None:
        seen.append(s["theirs"])
        s["n"] = s.get("n", 0) + 1

    with pytest.raises(SessionConflictError, match="update"):
        world.drive(_ops.update(rules, session.id, bump))
    # One read per round, fn applied to each fresh copy once.
    assert seen == list(range(1, world.reads + 1))
    assert len(world.writes) == world.reads


def test_refresh_is_conditional_on_the_held_etag(clock: FakeClock) -> None:
    rules, session = _loaded(clock)
    session.modified = False
    clock.advance(dt.timedelta(minutes=15))
    op = _ops.save(rules, session)
    write = next(op)
    assert isinstance(write, UpdateEntity)
    assert write.etag == "etag-0" and not write.replace  # never If-Match *
    op.close()
