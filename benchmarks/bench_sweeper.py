"""Sweeper at scale on Azurite: ``store.sweep()`` versus one delete request per entity.

    .venv/bin/python -m benchmarks.bench_sweeper                 # 40,000 sessions
    .venv/bin/python -m benchmarks.bench_sweeper --sessions 400  # CI smoke

It starts its own Azurite, seeds two identical tables (half the sessions expired
a day ago), sweeps one with the library and empties the other's expired rows
with the bare SDK (one query scan, then one ``delete_entity`` per row, on the
same number of threads as the sweep's partitions). Storage transactions are
counted at the transport by ``RequestCounter``. Prints a markdown table and
writes JSON to ``benchmarks/results/sweeper.json``.

Seeding runs the library's own ``save`` operation (``_ops.save``: encoding,
packing, keys, expiry columns) with an executor that collects the entity it
would insert, and writes those with batched upserts: far faster than 40,000
single inserts, and the rows are exactly what ``store.save`` writes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient, TableServiceClient

import tablesessions
from tablesessions._record import sweep as sweeper
from tablesessions._record.driver import drive
from tablesessions._record.effects import Effect, InsertEntity
from tablesessions._record.keys import PARTITION_SUFFIXES
from tablesessions._record.limits import MAX_BATCH_OPERATIONS, MAX_QUERY_PAGE
from tablesessions._sessions import ops as _ops
from tablesessions._sessions.rules import Rules
from tablesessions.config import StoreConfig
from tablesessions.testing import AzuriteServer, RecordedRequest, RequestCounter, unique_name

APP = "bench"
THREADS = 4  # the sweep's default max_parallel: the same concurrency for both
#: Requests a first sweep makes besides scanning and deleting: the lease acquire
#: (acquire, 404 as the lock blob is absent, create it, acquire: 3), the checkpoint
#: read, one orphan listing page (per 5,000 blobs) and the lease release; plus a
#: renewal every 15 s. (Later runs: 4.) The user-index query counts as a scan page.
FIXED_REQUESTS = 6
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "sweeper.json"


def _entities(count: int, when: dt.datetime) -> Iterator[dict[str, Any]]:
    """``count`` session entities as ``store.save`` would write them at ``when``."""
    rules = Rules(StoreConfig(app_name=APP, clock=lambda: when))
    captured: list[dict[str, Any]] = []

    def collect(effect: Effect) -> str:
        if not isinstance(effect, InsertEntity):
            raise AssertionError(f"a small new session should only insert, not {effect!r}")
        captured.append(dict(effect.entity))
        return "etag"

    for i in range(count):
        session = _ops.new(rules)
        session["user"] = f"user-{i}"
        session["cart"] = [i, i + 1, i + 2]
        drive(_ops.save(rules, session), collect)
        yield captured.pop()


def _seed(conn: str, table: str, entities: list[dict[str, Any]]) -> None:
    by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entity in entities:
        by_partition[entity["PartitionKey"]].append(entity)
    chunks = [rows[i:i + MAX_BATCH_OPERATIONS] for rows in by_partition.values()
              for i in range(0, len(rows), MAX_BATCH_OPERATIONS)]
    with TableClient.from_connection_string(conn, table) as client, \
            ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda chunk: client.submit_transaction(
            [("upsert", entity) for entity in chunk]), chunks))


def _kinds(records: list[RecordedRequest]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for r in records:
        if r.service == "table" and r.method == "GET" and r.path.endswith("()"):
            out["scan_pages"] += 1
        elif r.service == "table" and r.method == "POST" and r.path.endswith("$batch"):
            out["delete_batches"] += 1
        elif r.service == "table" and r.method == "DELETE":
            out["single_deletes"] += 1
        else:
            out["other"] += 1  # lease, checkpoint, orphan listing, blob deletes
    return dict(out)


def _count_rows(conn: str, table: str) -> int:
    with TableClient.from_connection_string(conn, table) as client:
        return sum(1 for _ in client.list_entities(select=["RowKey"]))


def _sweep(conn: str, table: str, container: str, max_parallel: int) -> dict[str, Any]:
    counter = RequestCounter()
    with tablesessions.SessionStore.from_connection_string(
            conn, table_name=table, container_name=container, app_name=APP,
            client_options=counter.client_options()) as store:
        store.create_storage()
        # A dry run first: what the scan alone costs (no lease, no writes).
        counter.reset()
        started = time.perf_counter()
        preview = store.sweep(dry_run=True, max_parallel=max_parallel)
        dry = {"would_delete": preview.deleted, "transactions": counter.count,
               "wall_seconds": round(time.perf_counter() - started, 3)}
        counter.reset()
        started = time.perf_counter()
        report = store.sweep(max_parallel=max_parallel)
        wall = time.perf_counter() - started
    if not report.complete or report.errors:
        raise RuntimeError(f"the sweep did not finish cleanly: {report}")
    return {"deleted": report.deleted, "transactions": counter.count,
            "effects_reported": report.requests, "wall_seconds": round(wall, 3),
            "lease_renewals_allowed": int(wall // sweeper.RENEW_EVERY),
            **_kinds(counter.records), "report": report.to_dict(), "dry_run": dry}


def _one_per_entity(conn: str, table: str) -> dict[str, Any]:
    """The naive baseline: find the expired rows, then delete each with its own request."""
    counter = RequestCounter()
    now = dt.datetime.now(dt.timezone.utc)
    with TableClient.from_connection_string(conn, table, **counter.client_options()) as client:
        started = time.perf_counter()
        keys = [(e["PartitionKey"], e["RowKey"]) for e in client.query_entities(
            "ExpiresAt lt @now", parameters={"now": now}, select=["PartitionKey", "RowKey"],
            results_per_page=MAX_QUERY_PAGE)]
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda key: client.delete_entity(*key), keys))
        wall = time.perf_counter() - started
    return {"deleted": len(keys), "transactions": counter.count,
            "wall_seconds": round(wall, 3), **_kinds(counter.records)}


def run(sessions: int, *, max_parallel: int = THREADS,
        output: Path | None = DEFAULT_OUTPUT) -> dict[str, Any]:
    """Run the comparison; return (and write to ``output``, unless None) the figures."""
    if sessions < 2:
        raise ValueError("need at least 2 sessions")
    expired_n = sessions // 2
    now = dt.datetime.now(dt.timezone.utc)
    seed_started = time.perf_counter()
    entities = [*_entities(expired_n, now - dt.timedelta(days=1)),
                *_entities(sessions - expired_n, now)]
    expired_per_partition: dict[str, int] = defaultdict(int)
    for entity in entities[:expired_n]:
        expired_per_partition[entity["PartitionKey"]] += 1

    with AzuriteServer() as azurite:
        conn = azurite.connection_string
        swept, naive = unique_name("sweep"), unique_name("naive")
        with TableServiceClient.from_connection_string(conn) as service:
            service.create_table(swept)
            service.create_table(naive)
        _seed(conn, swept, entities)
        _seed(conn, naive, entities)
        seed_seconds = time.perf_counter() - seed_started
        sweep = _sweep(conn, swept, unique_name("blobs"), max_parallel)
        baseline = _one_per_entity(conn, naive)
        left = {"sweep": _count_rows(conn, swept), "one_per_entity": _count_rows(conn, naive)}

    batches_floor = math.ceil(expired_n / MAX_BATCH_OPERATIONS)
    batches_per_partition = sum(math.ceil(n / MAX_BATCH_OPERATIONS)
                                for n in expired_per_partition.values())
    pages = sweep.get("scan_pages", 0)
    figures: dict[str, Any] = {
        "sessions": sessions,
        "expired": expired_n,
        "live_left": left,
        "seed_seconds": round(seed_seconds, 1),
        "sweep": sweep,
        "one_per_entity": baseline,
        "bound": {
            "ceil_expired_over_100": batches_floor,
            "per_partition_batches": batches_per_partition,
            "partitions": len(PARTITION_SUFFIXES),
            "issue_bound": batches_floor + pages,
            "within_issue_bound": sweep["transactions"] <= batches_floor + pages,
            "partitioned_bound": batches_per_partition + pages + FIXED_REQUESTS
            + sweep["lease_renewals_allowed"],
            "within_partitioned_bound": sweep["transactions"]
            <= batches_per_partition + pages + FIXED_REQUESTS + sweep["lease_renewals_allowed"],
        },
        "transactions_ratio": round(baseline["transactions"] / max(sweep["transactions"], 1), 1),
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "cpus": os.cpu_count(), "azurite": "3.35.0 (in-memory)"},
        "when": now.isoformat(timespec="seconds"),
    }
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return figures


def markdown(f: dict[str, Any]) -> str:
    s, b, bound = f["sweep"], f["one_per_entity"], f["bound"]
    rows = [
        "| approach | deleted | storage transactions | scan pages | delete requests "
        "| other | wall time |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| `store.sweep()` | {s['deleted']:,} | {s['transactions']:,} | "
        f"{s.get('scan_pages', 0):,} | {s.get('delete_batches', 0):,} batches | "
        f"{s.get('other', 0):,} | {s['wall_seconds']:.2f} s |",
        f"| one request per entity (bare SDK, {THREADS} threads) | {b['deleted']:,} | "
        f"{b['transactions']:,} | {b.get('scan_pages', 0):,} | "
        f"{b.get('single_deletes', 0):,} | {b.get('other', 0):,} | {b['wall_seconds']:.2f} s |",
        f"| `store.sweep(dry_run=True)` (the scan alone) | 0 (would: "
        f"{s['dry_run']['would_delete']:,}) | {s['dry_run']['transactions']:,} | "
        f"{s['dry_run']['transactions'] - 1:,} | 0 | 1 | {s['dry_run']['wall_seconds']:.2f} s |",
    ]
    notes = [
        "",
        f"{f['sessions']:,} sessions, {f['expired']:,} expired; Azurite 3.35.0 in memory, "
        f"{f['machine']['cpus']} CPUs, Python {f['machine']['python']}.",
        f"Delete batches: ceil(expired/100) = {bound['ceil_expired_over_100']:,}; per "
        f"partition it is {bound['per_partition_batches']:,} (a batch holds one partition's "
        f"rows, so up to {bound['partitions'] - 1} more than the floor).",
        f"Issue bound ceil(expired/100) + scan pages = {bound['issue_bound']:,}; with "
        f"per-partition batches, the {FIXED_REQUESTS} fixed requests (lease acquire = 2, "
        f"checkpoint read, orphan listing, lease release) and a lease renewal per 15 s "
        f"(up to {s['lease_renewals_allowed']}) it is "
        f"{bound['partitioned_bound']:,}. The sweep used {s['transactions']:,}: "
        f"{'within' if bound['within_issue_bound'] else 'over'} the issue bound, "
        f"{'within' if bound['within_partitioned_bound'] else 'over'} the partitioned one.",
        f"The sweep used {f['transactions_ratio']}x fewer transactions.",
    ]
    return "\n".join(rows + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=40_000,
                        help="sessions to create, half of them expired (default 40,000)")
    parser.add_argument("--max-parallel", type=int, default=THREADS)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    figures = run(args.sessions, max_parallel=args.max_parallel, output=args.output)
    print(markdown(figures))
    print(f"\nJSON: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
