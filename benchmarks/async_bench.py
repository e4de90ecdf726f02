"""Issue 5's benchmark: the async store with 32 concurrent tasks against the sync
store on one thread, with both faces' raw-SDK floors.

One *request* is what a web request that changes its session does: ``get``, set
one key, ``save`` (two storage calls), on a ~1 KiB session. There are 32
sessions. The sync store serves them one after another on one thread; the async
store runs 32 tasks, each looping over its own session. Rounds of the four
variants are interleaved (their order rotates per round) and each reports
requests per second over the round; the table shows the median round.

The floors do the same storage calls with the bare clients (``get_entity``,
then ``update_entity`` replace with If-Match), sync on one thread and
``azure.data.tables.aio`` with 32 tasks.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, UpdateMode
from azure.data.tables.aio import TableClient as AsyncTableClient

import tablesessions
import tablesessions.aio
from tablesessions.encryption import KeyRing

from .payloads import KIB, session_data
from .scenarios import IDLE, Rig, floor_keys, plain, utcnow

TASKS = 32


@dataclass(frozen=True)
class AsyncResult:
    """Requests per second (median round) of the four variants."""

    sync_library: float
    async_library: float
    sync_floor: float
    async_floor: float
    rounds: int
    requests_per_round: int
    #: median client CPU ms per request (this thread: the event loop or the sync loop)
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def async_over_sync(self) -> float:
        return self.async_library / self.sync_library

    def to_dict(self) -> dict[str, Any]:
        return {"sync_library_rps": round(self.sync_library, 1),
                "async_library_rps": round(self.async_library, 1),
                "sync_floor_rps": round(self.sync_floor, 1),
                "async_floor_rps": round(self.async_floor, 1),
                "async_over_sync": round(self.async_over_sync, 2),
                "sync_library_over_floor": round(self.sync_library / self.sync_floor, 3),
                "async_library_over_floor": round(self.async_library / self.async_floor, 3),
                "tasks": TASKS, "rounds": self.rounds,
                "requests_per_round": self.requests_per_round,
                "cpu_ms_per_request": {k: round(v, 4) for k, v in self.cpu_ms.items()}}


def _modify(entity: Any) -> dict[str, Any]:
    return {**plain(entity), "ExpiresAt": utcnow() + IDLE}


def async_benchmark(rig: Rig, *, rounds: int, per_task: int) -> AsyncResult:
    """Measure the four variants, ``rounds`` interleaved rounds of ``TASKS * per_task``
    requests each."""
    data = session_data(KIB)
    total = TASKS * per_task
    ids = []
    floor_rows = []
    for _ in range(TASKS):
        s = rig.store.new()
        s.update(data)
        rig.store.save(s)
        ids.append(s.id)
        pk, rk = floor_keys()
        rig.table.create_entity({**rig.stored_entity(rig.store, s), "PartitionKey": pk,
                                 "RowKey": rk})
        floor_rows.append((pk, rk))

    loop = asyncio.new_event_loop()
    # The same key ring as the sync store: the Flask flows hand it to TableSessions,
    # which encrypts a store given without an explicit key_ring (docs/security.md).
    ring = rig.store.config.key_ring
    options: dict[str, Any] = {"key_ring": ring} if isinstance(ring, KeyRing) else {}
    astore = tablesessions.aio.SessionStore.from_connection_string(
        rig.conn_str, table_name=rig.table_name, container_name=rig.container_name, **options)
    atable = AsyncTableClient.from_connection_string(rig.conn_str, table_name=rig.table_name)
    table: TableClient = rig.table
    store: tablesessions.SessionStore = rig.store

    def sync_library() -> None:
        for i in range(total):
            s = store.get(ids[i % TASKS])
            assert s is not None
            s["visits"] = s["visits"] + 1
            store.save(s)

    def sync_floor() -> None:
        for i in range(total):
            pk, rk = floor_rows[i % TASKS]
            e = table.get_entity(pk, rk)
            table.update_entity(_modify(e), mode=UpdateMode.REPLACE, etag=e.metadata["etag"],
                                match_condition=MatchConditions.IfNotModified)

    async def lib_task(sid: str) -> None:
        for _ in range(per_task):
            s = await astore.get(sid)
            assert s is not None
            s["visits"] = s["visits"] + 1
            await astore.save(s)

    async def floor_task(pk: str, rk: str) -> None:
        for _ in range(per_task):
            e = await atable.get_entity(pk, rk)
            await atable.update_entity(_modify(e), mode=UpdateMode.REPLACE,
                                       etag=e.metadata["etag"],
                                       match_condition=MatchConditions.IfNotModified)

    def gather(make: Callable[[], list[Awaitable[None]]]) -> Callable[[], None]:
        async def all_tasks() -> None:
            await asyncio.gather(*make())

        return lambda: loop.run_until_complete(all_tasks())

    variants: dict[str, Callable[[], None]] = {
        "sync_library": sync_library,
        "async_library": gather(lambda: [lib_task(sid) for sid in ids]),
        "sync_floor": sync_floor,
        "async_floor": gather(lambda: [floor_task(pk, rk) for pk, rk in floor_rows]),
    }
    names = list(variants)
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    try:
        # One untimed warm-up round opens the connection pools.
        for name in names:
            variants[name]()
        for r in range(rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                started, cpu_started = time.perf_counter(), time.thread_time()
                variants[name]()
                rates[name].append(total / (time.perf_counter() - started))
                cpu[name].append((time.thread_time() - cpu_started) * 1000 / total)
    finally:
        loop.run_until_complete(astore.close())
        loop.run_until_complete(atable.close())
        loop.close()
    med = {name: statistics.median(values) for name, values in rates.items()}
    return AsyncResult(med["sync_library"], med["async_library"], med["sync_floor"],
                       med["async_floor"], rounds, total,
                       {name: statistics.median(values) for name, values in cpu.items()})
