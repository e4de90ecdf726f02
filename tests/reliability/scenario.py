"""The fault-model scenario: thousands of session operations through a proxy that
faults a fixed share of requests, checked against an in-memory model.

Shared by ``tests/reliability/test_faults.py`` (which asserts on the figures)
and ``benchmarks/reliability.py`` (which prints them), so the documented
numbers come from exactly the code the suite runs.

What one run does, per step (seeded, so a run is repeatable):

* ``new``: a new session (some over ``inline_budget``, so they overflow to a
  blob) saved: an insert, perhaps a blob upload first.
* ``read``: ``get`` of a live, deleted or never-created id; the answer must
  equal the model (read-your-writes, including expiry).
* ``modify``: ``get``, set/delete/mutate keys (sometimes growing into or
  shrinking out of overflow), ``save``: a conditional replace.
* ``touch``: ``get`` then ``save`` unmodified; refreshes the idle expiry when
  due (the clock is injected and moves 30 s per step).
* ``stash``/``stale``: keep a loaded session, let other steps change or delete
  it, then modify and save the stale copy: a real 412 and a merge of just its
  changed keys (or nothing, if it was deleted meanwhile).
* ``delete``: by id or by a fresh ``Session``.

Then, once the proxies have stopped (so no held or delayed request can still
land), a clean store reads every id ever created and the raw table and
container are listed: the state must equal the model exactly, and every blob
must be referenced by exactly one live row.

An operation that raises is counted as a surfaced error, by type. Its outcome
is unknown (the write may have landed), so its session leaves the workload and
must end in one of the two states the write could leave: before or after.
Surfaced errors are never lost *acknowledged* writes.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

import tablesessions
import tablesessions.aio
from tablesessions import RetryPolicy, Session
from tablesessions._sessions.ids import row_key_for  # the RowKey of an id: to match raw rows
from tablesessions.testing import (
    AzuriteServer,
    Fault,
    FaultPlan,
    FaultProxyPair,
    RequestCounter,
    unique_name,
)
from tests.conftest import Face, FakeClock

FaceKind = Literal["sync", "async"]

#: The fault mix of issue 14: resets, 503s, 0.2-3 s latency, held answers and
#: half-open connections, equally likely.
FAULT_KINDS: dict[Fault | str, float] = {
    Fault.RESET: 1.0, Fault.BUSY_503: 1.0, Fault.DELAY: 1.0, Fault.HOLD: 1.0,
    Fault.HALF_OPEN: 1.0,
}
#: Every kind the proxy knows, for :func:`run_fault_scenario` ``kinds=``.
ALL_KINDS: dict[Fault | str, float] = {kind: 1.0 for kind in Fault}
DELAY = (0.2, 3.0)  # seconds a "latency" fault waits before forwarding
HOLD = 10.0  # seconds a held answer / half-open connection stays silent: > any deadline
#: Store options of the run. Idle expiry of a day with a 0.99 refresh threshold:
#: nothing expires during a run (2,000 steps x 30 s < 17 h), yet an unmodified
#: save refreshes once a session is ~15 minutes (30 steps) old.
IDLE = dt.timedelta(days=1)
STORE_OPTIONS: dict[str, Any] = {
    "inline_budget": 1000,
    "idle_timeout": IDLE,
    "absolute_timeout": dt.timedelta(days=30),
    "refresh_threshold": 0.99,
}
STEP = dt.timedelta(seconds=30)
KEYS = [f"k{i}" for i in range(6)]


@dataclass
class Record:
    """What the model says is stored for one live session."""

    data: dict[str, Any]
    expires: dt.datetime


@dataclass
class Figures:
    """What one run did and found."""

    face: str
    seed: int
    fault_rate: float
    deadline: float = 0.0
    fault_mix: str = ""
    operations: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    uncertain: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    acknowledged_writes: int = 0
    requests: int = 0
    pipeline_requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    retries_by_error: Counter[str] = field(default_factory=Counter)
    sessions_created: int = 0
    live_at_end: int = 0
    overflowed_at_end: int = 0
    blobs_at_end: int = 0
    orphan_blobs: int = 0
    missing_blobs: int = 0
    lost_writes: int = 0
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)

    @property
    def surfaced(self) -> int:
        """Operations that raised to the caller."""
        return sum(self.errors.values())

    @property
    def faults_injected(self) -> int:
        return sum(self.faults.values())

    @property
    def transport_retries(self) -> int:
        """Requests the proxies saw that no SDK pipeline sent: retries made below
        tenacity and the SDK (aiohttp re-sends an idempotent request once when its
        connection drops)."""
        return self.requests - self.pipeline_requests

    def latency_ms(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def rows(self) -> list[tuple[str, str]]:
        """(figure, value) pairs for a report."""
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items()))
        retried = ", ".join(f"{k} {v}" for k, v in self.retries_by_error.most_common())
        share = self.faults_injected / max(self.requests, 1)
        errors = ", ".join(f"{k} {v}" for k, v in self.errors.most_common())
        return [
            ("face", self.face),
            ("seed", str(self.seed)),
            ("fault mix", self.fault_mix),
            ("request deadline (s)", f"{self.deadline:g}"),
            ("session operations (get/save/delete calls)", f"{self.operations:,}"),
            ("steps by kind", kinds),
            ("acknowledged writes (saves that wrote, deletes)", f"{self.acknowledged_writes:,}"),
            ("HTTP requests seen by the proxies", f"{self.requests:,}"),
            ("faults injected", f"{self.faults_injected:,} ({share:.1%} of requests)"),
            ("faults by kind", faults),
            ("retries (tenacity)", f"{self.retries:,}"),
            ("retries by error", retried),
            ("re-sends below the SDK pipeline (aiohttp)", f"{self.transport_retries:,}"),
            ("errors surfaced to the caller",
             f"{self.surfaced} ({self.surfaced / max(self.operations, 1):.2%} of operations)"
             + (f": {errors}" if errors else "")),
            ("sessions created / live at end / overflowed at end",
             f"{self.sessions_created} / {self.live_at_end} / {self.overflowed_at_end}"),
            ("blobs at end / orphans / missing",
             f"{self.blobs_at_end} / {self.orphan_blobs} / {self.missing_blobs}"),
            ("lost acknowledged writes", str(self.lost_writes)),
            ("state mismatches vs model", str(len(self.mismatches))),
            ("operation latency p50 / p99 / max (ms)",
             f"{self.latency_ms(0.5):.0f} / {self.latency_ms(0.99):.0f} / "
             f"{self.latency_ms(1.0):.0f}"),
            ("wall time (s)", f"{self.seconds:.1f}"),
        ]

    def markdown(self) -> str:
        lines = ["| figure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.rows()]
        return "\n".join(lines)


class ScenarioError(AssertionError):
    """An operation raised although the retry budget should have absorbed the fault."""


class _Failed(Exception):
    """An operation surfaced an error (counted); the step stops there."""


class _RetryCounter(logging.Handler):
    """Counts tenacity's ``before_sleep`` log records (one per retry) made on the
    calling thread, so two runs side by side count only their own."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.by_error: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or not isinstance(record.args, tuple):
            return
        if str(record.msg).startswith("retrying storage call") and len(record.args) == 2:
            self.by_error[str(record.args[1])] += 1


@contextmanager
def _counting_retries() -> Iterator[_RetryCounter]:
    logger = logging.getLogger("tablesessions.retry")
    handler = _RetryCounter()
    with _LEVEL_LOCK:
        _LEVEL_USERS[0] += 1
        if _LEVEL_USERS[0] == 1:
            _LEVEL_USERS[1] = logger.level
            logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        with _LEVEL_LOCK:
            _LEVEL_USERS[0] -= 1
            if _LEVEL_USERS[0] == 0:
                logger.setLevel(_LEVEL_USERS[1])


# (users, saved level) of the retry logger, shared by runs on different threads.
_LEVEL_LOCK = threading.Lock()
_LEVEL_USERS = [0, logging.NOTSET]


def open_face(kind: FaceKind, conn: str, table: str, container: str, **options: Any) -> Face:
    """A store of the given face on ``conn``, behind the awaitable ``Face`` adapter."""
    cls = tablesessions.aio.SessionStore if kind == "async" else tablesessions.SessionStore
    return Face(cls.from_connection_string(conn, table_name=table, container_name=container,
                                           **options))


class _Run:
    """One scenario run: the model, the stores and the step functions."""

    def __init__(self, store: Face, clock: FakeClock, rng: random.Random,
                 figures: Figures) -> None:
        self.store, self.clock, self.rng, self.figures = store, clock, rng, figures
        self.live: dict[str, Record] = {}
        self.gone: list[str] = []
        self.stash: dict[str, Session] = {}
        self.created: list[str] = []
        self.serial = 0
        #: sessions a failed write left in one of these states (None: no session)
        self.uncertain: dict[str, list[Record | None]] = {}
        #: the session the write in flight touches, and the states it may leave
        self.at_risk: tuple[str, list[Record | None]] | None = None
        self.raise_errors = False

    # -- values ------------------------------------------------------------
    def _value(self) -> Any:
        self.serial += 1
        n, rng = self.serial, self.rng
        choice = rng.randrange(6)
        if choice == 0:
            return n
        if choice == 1:
            return f"v{n}-" + "x" * rng.randrange(40)
        if choice == 2:
            return {"n": n, "tags": [rng.randrange(100) for _ in range(rng.randrange(4))]}
        if choice == 3:
            return [n, None, True, 1.5]
        if choice == 4:
            return rng.randbytes(rng.randrange(1, 64)) + n.to_bytes(4, "big")
        # Incompressible and over inline_budget: this session overflows to a blob.
        return rng.randbytes(rng.randrange(1200, 4000)) + n.to_bytes(4, "big")

    # -- calls, timed and counted ---------------------------------------------
    async def _call(self, what: str, coro: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await coro
        except Exception as exc:
            if self.raise_errors:
                raise ScenarioError(f"{what} raised {type(exc).__name__} within the retry "
                                    f"budget (operation #{self.figures.operations + 1})"
                                    ) from exc
            self.figures.latencies.append(time.perf_counter() - started)
            self.figures.operations += 1
            self.figures.errors[type(exc).__name__] += 1
            raise _Failed from exc
        self.figures.latencies.append(time.perf_counter() - started)
        self.figures.operations += 1
        self.at_risk = None
        return result

    def _risk(self, sid: str, *states: Record | None) -> None:
        """Declare the states the next write may leave ``sid`` in, should it fail."""
        self.at_risk = (sid, list(states))

    def failed(self) -> None:
        """After a surfaced error: a write's session leaves the workload, uncertain."""
        if self.at_risk is None:
            return  # a read: nothing changed
        sid, states = self.at_risk
        self.at_risk = None
        self.uncertain[sid] = states
        self.live.pop(sid, None)
        self.stash.pop(sid, None)
        if sid in self.gone:
            self.gone.remove(sid)
        if sid not in self.created:
            self.created.append(sid)

    async def _get_checked(self, sid: str) -> Session | None:
        session: Session | None = await self._call("get", self.store.get(sid))
        expected = self.live.get(sid)
        if expected is None:
            if session is not None:
                self.figures.mismatches.append(f"{sid[:8]}: deleted/unknown id read back")
        elif session is None:
            self.figures.mismatches.append(f"{sid[:8]}: acknowledged session missing")
        elif dict(session) != expected.data:
            self.figures.mismatches.append(f"{sid[:8]}: read back data differs from the model")
        elif session.expires_at != expected.expires:
            behind = (expected.expires - session.expires_at).total_seconds()
            self.figures.mismatches.append(f"{sid[:8]}: read back expiry {behind:+.0f} s "
                                           "behind the model")
        return session

    def _due(self, record: Record) -> bool:
        # Rules.due_for_refresh with this run's options (no absolute cap within a run).
        now = self.clock()
        remaining = record.expires - now
        gain = now + IDLE - record.expires
        return remaining < IDLE * STORE_OPTIONS["refresh_threshold"] and \
            gain > dt.timedelta(seconds=1)

    def _mutate(self, session: Session) -> None:
        """Change one or two keys: set, delete, or mutate a nested value in place."""
        for _ in range(self.rng.randint(1, 2)):
            key = self.rng.choice(KEYS)
            action = self.rng.random()
            if key in session and action < 0.25:
                del session[key]
            elif key in session and isinstance(session[key], list) and action < 0.5:
                session[key].append(self._value())  # in place: found by comparing encodings
            else:
                session[key] = self._value()

    def _pick_live(self) -> str | None:
        # Insertion order, never sorted ids: ids are random, the run must not be.
        return self.rng.choice(list(self.live)) if self.live else None

    # -- steps -------------------------------------------------------------
    async def new(self) -> None:
        session = self.store.new()
        for key in self.rng.sample(KEYS, self.rng.randint(1, 4)):
            session[key] = self._value()
        self._risk(session.id, None, Record(copy.deepcopy(dict(session)), self.clock() + IDLE))
        await self._call("save(new)", self.store.save(session))
        self.live[session.id] = Record(copy.deepcopy(dict(session)), self.clock() + IDLE)
        self.created.append(session.id)
        self.figures.acknowledged_writes += 1

    async def read(self) -> None:
        roll = self.rng.random()
        if roll < 0.7 and self.live:
            sid = self._pick_live()
        elif roll < 0.9 and self.gone:
            sid = self.rng.choice(self.gone)
        else:
            sid = tablesessions.new_session_id()  # never stored
        assert sid is not None
        await self._get_checked(sid)

    async def modify(self) -> None:
        sid = self._pick_live()
        if sid is None:
            return await self.new()
        session = await self._get_checked(sid)
        if session is None:
            return None
        record = self.live[sid]
        self._mutate(session)
        after = copy.deepcopy(dict(session))
        if _shape(after) != _shape(record.data):
            self._risk(sid, record, Record(after, self.clock() + IDLE))
        else:
            self._risk(sid, record, Record(record.data, self.clock() + IDLE))
        await self._call("save(modify)", self.store.save(session))
        # Setting a key then deleting it (or setting an equal value) is no change:
        # the store writes nothing, and only the refresh rule moves the expiry.
        # repr per key, so that 1 -> True still counts as a change, as it does
        # for the store (it compares encodings).
        if _shape(after) != _shape(record.data):
            self.live[sid] = Record(after, self.clock() + IDLE)
            self.figures.acknowledged_writes += 1
        elif self._due(record):
            record.expires = self.clock() + IDLE
            self.figures.acknowledged_writes += 1
        return None

    async def touch(self) -> None:
        sid = self._pick_live()
        if sid is None:
            return
        session = await self._get_checked(sid)
        if session is None:
            return
        due = self._due(self.live[sid])
        record = self.live[sid]
        self._risk(sid, record, Record(record.data, self.clock() + IDLE))
        await self._call("save(touch)", self.store.save(session))
        if due:
            self.live[sid].expires = self.clock() + IDLE
            self.figures.acknowledged_writes += 1
        if session.expires_at != self.live[sid].expires:
            self.figures.mismatches.append(f"{sid[:8]}: refresh left the wrong expiry")

    async def stash_one(self) -> None:
        sid = self._pick_live()
        if sid is None or sid in self.stash:
            return
        session = await self._get_checked(sid)
        if session is not None:
            self.stash[sid] = session

    async def stale(self) -> None:
        if not self.stash:
            return await self.stash_one()
        sid = self.rng.choice(list(self.stash))
        session = self.stash.pop(sid)
        before = copy.deepcopy(dict(session))
        self._mutate(session)
        # The keys this copy changed: merge re-applies exactly these onto the fresh row.
        ours = dict(session)
        changed = {k for k in before.keys() | ours.keys() if before.get(k) != ours.get(k)}
        if not changed:
            return None
        current = self.live.get(sid)
        if current is None:
            self._risk(sid, None)
        else:
            merged_if = dict(current.data)
            for key in changed:
                if key in ours:
                    merged_if[key] = copy.deepcopy(ours[key])
                else:
                    merged_if.pop(key, None)
            self._risk(sid, current, Record(merged_if, self.clock() + IDLE))
        await self._call("save(stale)", self.store.save(session))
        record = self.live.get(sid)
        if record is None:  # deleted meanwhile: the stale save must not resurrect it
            if not session.is_deleted:
                self.figures.mismatches.append(f"{sid[:8]}: stale save of a deleted session")
            return None
        merged = dict(record.data)
        for key in changed:
            if key in ours:
                merged[key] = copy.deepcopy(ours[key])
            else:
                merged.pop(key, None)
        self.live[sid] = Record(merged, self.clock() + IDLE)
        self.figures.acknowledged_writes += 1
        if dict(session) != merged:
            self.figures.mismatches.append(f"{sid[:8]}: merged copy in memory differs")
        return None

    async def delete(self) -> None:
        sid = self._pick_live()
        if sid is None:
            return
        if self.rng.random() < 0.5:
            self._risk(sid, self.live[sid], None)
            await self._call("delete(id)", self.store.delete(sid))
        else:
            session = await self._get_checked(sid)
            self._risk(sid, self.live[sid], None)
            await self._call("delete(session)", self.store.delete(session))
        del self.live[sid]
        self.gone.append(sid)
        self.figures.acknowledged_writes += 1


def _shape(data: dict[str, Any]) -> dict[str, str]:
    return {key: repr(value) for key, value in data.items()}


STEPS = {"new": 12, "read": 30, "modify": 25, "touch": 12, "stash": 5, "stale": 8, "delete": 8}


def _matches(session: Session | None, state: Record | None) -> bool:
    if session is None or state is None:
        return session is None and state is None
    return dict(session) == state.data and session.expires_at == state.expires


async def _verify(run: _Run, clean: Face, table: TableClient, container: ContainerClient) -> None:
    """Compare storage, read without faults, with the model; count what is off."""
    figures = run.figures
    expected_keys = {row_key_for(sid) for sid in run.live}
    for sid in run.created:
        session: Session | None = await clean.get(sid)
        if sid in run.uncertain:  # a failed write: either state it could leave is right
            if not any(_matches(session, state) for state in run.uncertain[sid]):
                figures.mismatches.append(f"{sid[:8]}: a failed write left neither state")
            elif session is not None:
                expected_keys.add(row_key_for(sid))
            continue
        expected = run.live.get(sid)
        if expected is None:
            if session is not None:
                figures.mismatches.append(f"{sid[:8]}: deleted session is back")
                figures.lost_writes += 1
        elif not _matches(session, expected):
            figures.mismatches.append(f"{sid[:8]}: final state differs from the model")
            figures.lost_writes += 1
    rows = [r for r in table.list_entities(select=["RowKey", "ExpiresAt", "BlobName", "Deleted"])
            if not r.get("Deleted")]  # logout tombstones are the sweeper's to remove
    extra = {str(r["RowKey"]) for r in rows} - expected_keys
    if extra:
        figures.mismatches.append(f"{len(extra)} rows in the table the model does not have")
    referenced = {str(r["BlobName"]) for r in rows if r.get("BlobName")}
    blobs = {b.name for b in container.list_blobs()}
    figures.uncertain = len(run.uncertain)
    figures.live_at_end = len(run.live)
    figures.overflowed_at_end = len(referenced)
    figures.blobs_at_end = len(blobs)
    figures.orphan_blobs = len(blobs - referenced)
    figures.missing_blobs = len(referenced - blobs)


def describe_mix(rate: float, kinds: dict[Fault | str, float], delay: tuple[float, float],
                 hold: float) -> str:
    """The fault mix in words, for the report."""
    total = sum(kinds.values())
    names = {Fault.DELAY: f"latency {delay[0]:g}-{delay[1]:g} s",
             Fault.HOLD: f"held answer ({hold:g} s)", Fault.HALF_OPEN: "half-open connection"}
    parts = [f"{names.get(Fault(k), Fault(k).value)} {rate * w / total:.1%}"
             for k, w in kinds.items() if w]
    return f"{rate:.0%} of requests: " + ", ".join(parts)


async def run_fault_scenario(
    azurite: AzuriteServer,
    face: FaceKind,
    *,
    operations: int = 2000,
    seed: int = 20240,
    fault_rate: float = 0.2,
    kinds: dict[Fault | str, float] | None = None,
    delay: tuple[float, float] = DELAY,
    hold: float = HOLD,
    retry: RetryPolicy | None = None,
    raise_errors: bool = False,
    **store_options: Any,
) -> Figures:
    """Run the scenario on one face against ``azurite``, through a fresh pair of
    fault proxies, on fresh storage.

    :param operations: stop after at least this many get/save/delete calls.
    :param fault_rate: share of HTTP requests (table and blob alike) that get a fault.
    :param kinds: the fault mix by weight (default :data:`FAULT_KINDS`, issue 14's).
    :param delay: (min, max) seconds a ``delay`` fault waits before forwarding.
    :param hold: seconds a held answer or a half-open connection stays silent.
    :param retry: the proxied store's policy; by default the request-path
        default, ``RetryPolicy()`` (4 attempts within 2 s), as an app gets it.
    :param raise_errors: raise :class:`ScenarioError` on the first surfaced
        error instead of counting it.
    :param store_options: more options for the proxied store (e.g. ``read_timeout``).
    :returns: the figures; the caller asserts on them.
    """
    retry = retry or RetryPolicy()
    kinds = FAULT_KINDS if kinds is None else kinds
    figures = Figures(face=face, seed=seed, fault_rate=fault_rate, deadline=retry.deadline,
                      fault_mix=describe_mix(fault_rate, kinds, delay, hold))
    clock = FakeClock()
    table_name, container_name = unique_name("rel"), unique_name("rel")
    options = {**STORE_OPTIONS, "clock": clock}
    counter = RequestCounter()
    clean = open_face(face, azurite.connection_string, table_name, container_name, **options)
    raw_table = TableClient.from_connection_string(azurite.connection_string, table_name)
    raw_container = ContainerClient.from_connection_string(azurite.connection_string,
                                                           container_name)
    try:
        with FaultProxyPair(azurite) as proxies:
            store = open_face(face, proxies.connection_string, table_name, container_name,
                              retry=retry, client_options=counter.client_options(),
                              **options, **store_options)
            try:
                await clean.create_storage()
                # Different seeds per proxy: the table and blob fault sequences are independent.
                for proxy, proxy_seed in ((proxies.table, seed), (proxies.blob, seed + 1)):
                    proxy.configure(FaultPlan(rate=fault_rate, kinds=kinds, seed=proxy_seed,
                                              delay=delay[0], delay_max=delay[1], hold=hold))
                run = _Run(store, clock, random.Random(seed), figures)
                run.raise_errors = raise_errors
                steps, weights = list(STEPS), list(STEPS.values())
                actions = {"new": run.new, "read": run.read, "modify": run.modify,
                           "touch": run.touch, "stash": run.stash_one, "stale": run.stale,
                           "delete": run.delete}
                started = time.perf_counter()
                with _counting_retries() as retries:
                    while figures.operations < operations:
                        kind = run.rng.choices(steps, weights)[0]
                        figures.by_kind[kind] += 1
                        clock.advance(STEP)
                        try:
                            await actions[kind]()
                        except _Failed:
                            run.failed()
                figures.seconds = time.perf_counter() - started
                stats = proxies.stats
                figures.requests = stats.seen
                figures.pipeline_requests = counter.count
                figures.faults = {kind.value: n for kind, n in stats.faults.items()}
                figures.retries = sum(retries.by_error.values())
                figures.retries_by_error = retries.by_error
                figures.sessions_created = len(run.created)
            finally:
                await store.close()
        # The proxies have stopped: no held or delayed request can land any more.
        await _verify(run, clean, raw_table, raw_container)
    finally:
        await clean.close()
        raw_table.close()
        raw_container.close()
    return figures


async def run_both_faces(azurite: AzuriteServer, **kwargs: Any) -> tuple[Figures, Figures]:
    """Run the scenario on the sync and the async face side by side.

    Each run is sequential and has its own proxies, tables and seeded faults;
    running the two at once only overlaps their waiting. The sync run gets a
    thread (and an event loop of its own for the awaitable ``Face`` adapter).
    """

    def sync_run() -> Figures:
        return asyncio.run(run_fault_scenario(azurite, "sync", **kwargs))

    sync_figures, async_figures = await asyncio.gather(
        asyncio.to_thread(sync_run), run_fault_scenario(azurite, "async", **kwargs))
    return sync_figures, async_figures
