"""Is the sweeper's slowdown on large tables Azurite's or ours? (issue 18, item 6)

    .venv/bin/python -m benchmarks.sweeper_scale --sizes 10000 40000

For each table size, one fresh Azurite holds two identical tables (half the
sessions expired). One is swept by ``store.sweep()``; the other gets **the same
work done with the bare SDK**: the same per-partition query
(``PartitionKey eq @pk and ExpiresAt lt @cutoff``, 1,000 rows a page, the same
columns) and the same conditional delete batches of up to 100, on the same 4
threads, with no library code at all. The order of the two alternates per size.
Also timed: one query page of 1,000 expired rows from a single partition with
the bare SDK (median of 5), which no library code touches.

If the bare-SDK sweep slows down per 10,000 sessions as much as the library's,
the slowdown is in the emulator, not in tablesessions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.data.tables import TableClient, TableServiceClient

import tablesessions
from tablesessions._record.keys import PARTITION_SUFFIXES
from tablesessions._record.limits import MAX_BATCH_OPERATIONS, MAX_QUERY_PAGE
from tablesessions.testing import AzuriteServer, unique_name

from .bench_sweeper import APP, THREADS, _entities

_EXPIRED = "PartitionKey eq @pk and ExpiresAt lt @cutoff"
_COLUMNS = ["PartitionKey", "RowKey", "ExpiresAt", "AbsoluteExpiresAt", "BlobName"]


def _seed(conn: str, table: str, entities: list[dict[str, Any]]) -> None:
    """Upsert ``entities`` in batches of 100 per partition on 4 threads. An
    emulator starved of CPU sometimes resets a connection mid-batch; an upsert
    batch is idempotent, so it is simply sent again."""
    by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entity in entities:
        by_partition[entity["PartitionKey"]].append(entity)
    chunks = [rows[i:i + MAX_BATCH_OPERATIONS] for rows in by_partition.values()
              for i in range(0, len(rows), MAX_BATCH_OPERATIONS)]

    def send(client: TableClient, chunk: list[dict[str, Any]]) -> None:
        for attempt in range(5):
            try:
                client.submit_transaction([("upsert", entity) for entity in chunk])
                return
            except (ServiceRequestError, ServiceResponseError):
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))

    with TableClient.from_connection_string(conn, table) as client, \
            ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda chunk: send(client, chunk), chunks))


def _bare_sweep(conn: str, table: str) -> dict[str, Any]:
    """The sweep's storage work, written with the bare SDK."""
    cutoff = dt.datetime.now(dt.timezone.utc)
    pages = batches = deleted = 0
    query_s = delete_s = 0.0

    def partition(suffix: str) -> tuple[int, int, int, float, float]:
        p = b = d = 0
        q_s = d_s = 0.0
        with TableClient.from_connection_string(conn, table) as client:
            token = None
            while True:
                started = time.perf_counter()
                pager = client.query_entities(
                    _EXPIRED, parameters={"pk": f"{APP}-{suffix}", "cutoff": cutoff},
                    select=_COLUMNS, results_per_page=MAX_QUERY_PAGE,
                ).by_page(continuation_token=token)
                rows = list(next(pager, []))
                token = pager.continuation_token  # type: ignore[attr-defined]
                q_s += time.perf_counter() - started
                p += 1
                started = time.perf_counter()
                for i in range(0, len(rows), MAX_BATCH_OPERATIONS):
                    chunk = rows[i:i + MAX_BATCH_OPERATIONS]
                    client.submit_transaction([
                        ("delete", {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"]},
                         {"etag": r.metadata["etag"],
                          "match_condition": MatchConditions.IfNotModified})
                        for r in chunk])
                    b += 1
                    d += len(chunk)
                d_s += time.perf_counter() - started
                if not token:
                    return p, b, d, q_s, d_s

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        for p, b, d, q_s, d_s in pool.map(partition, PARTITION_SUFFIXES):
            pages, batches, deleted = pages + p, batches + b, deleted + d
            query_s, delete_s = query_s + q_s, delete_s + d_s
    return {"wall_seconds": round(time.perf_counter() - started, 3), "deleted": deleted,
            "scan_pages": pages, "delete_batches": batches,
            "query_seconds_summed_over_threads": round(query_s, 3),
            "delete_seconds_summed_over_threads": round(delete_s, 3)}


def _library_sweep(conn: str, table: str) -> dict[str, Any]:
    with tablesessions.SessionStore.from_connection_string(
            conn, table_name=table, container_name=unique_name("blobs"), app_name=APP) as store:
        store.create_storage()
        started = time.perf_counter()
        report = store.sweep(max_parallel=THREADS)
        wall = time.perf_counter() - started
    if not report.complete or report.errors:
        raise RuntimeError(f"the sweep did not finish cleanly: {report}")
    return {"wall_seconds": round(wall, 3), "deleted": report.deleted}


def _page_time(conn: str, table: str) -> float:
    """Median ms of one bare query page of expired rows from one partition."""
    cutoff = dt.datetime.now(dt.timezone.utc)
    times = []
    with TableClient.from_connection_string(conn, table) as client:
        for _ in range(5):
            started = time.perf_counter()
            pager = client.query_entities(
                _EXPIRED, parameters={"pk": f"{APP}-0", "cutoff": cutoff}, select=_COLUMNS,
                results_per_page=MAX_QUERY_PAGE).by_page()
            list(next(pager, []))
            times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def measure(sessions: int, *, library_first: bool) -> dict[str, Any]:
    now = dt.datetime.now(dt.timezone.utc)
    expired = sessions // 2
    entities = [*_entities(expired, now - dt.timedelta(days=1)),
                *_entities(sessions - expired, now)]
    with AzuriteServer() as azurite:
        conn = azurite.connection_string
        lib_table, bare_table = unique_name("lib"), unique_name("bare")
        with TableServiceClient.from_connection_string(conn) as service:
            service.create_table(lib_table)
            service.create_table(bare_table)
        started = time.perf_counter()
        _seed(conn, lib_table, entities)
        seed_first_s = time.perf_counter() - started
        _seed(conn, bare_table, entities)
        seed_s = time.perf_counter() - started
        page_ms = _page_time(conn, bare_table)
        if library_first:
            library = _library_sweep(conn, lib_table)
            bare = _bare_sweep(conn, bare_table)
        else:
            bare = _bare_sweep(conn, bare_table)
            library = _library_sweep(conn, lib_table)
    if library["deleted"] != expired or bare["deleted"] != expired:
        raise RuntimeError(f"deleted {library['deleted']} / {bare['deleted']} of {expired}")
    per_10k = 10_000 / sessions
    return {"sessions": sessions, "expired": expired, "seed_seconds": round(seed_s, 1),
            # the same upserts into a second table, after the first one holds them all
            "seed_seconds_first_table": round(seed_first_s, 1),
            "seed_seconds_second_table": round(seed_s - seed_first_s, 1),
            "library": library, "bare_sdk": bare, "first": "library" if library_first else "bare",
            "one_page_ms": page_ms,
            "library_seconds_per_10k": round(library["wall_seconds"] * per_10k, 2),
            "bare_seconds_per_10k": round(bare["wall_seconds"] * per_10k, 2),
            "library_over_bare": round(library["wall_seconds"] / bare["wall_seconds"], 2)}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [HEADER, RULE]
    lines += [row(r) for r in rows]
    return "\n".join(lines)


HEADER = ("| sessions (half expired) | library sweep s | bare-SDK sweep s | library s per 10k "
          "| bare s per 10k | library / bare | one bare query page ms | seeding s (table 1 + 2) |")
RULE = "|---:|---:|---:|---:|---:|---:|---:|---:|"


def row(r: dict[str, Any]) -> str:
    """One markdown row of :func:`measure`'s figures."""
    return (f"| {r['sessions']:,} | {r['library']['wall_seconds']:.2f} | "
            f"{r['bare_sdk']['wall_seconds']:.2f} | {r['library_seconds_per_10k']:.2f} | "
            f"{r['bare_seconds_per_10k']:.2f} | {r['library_over_bare']:.2f} | "
            f"{r['one_page_ms']:.1f} | {r['seed_seconds_first_table']:.1f} + "
            f"{r['seed_seconds_second_table']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 40_000])
    args = parser.parse_args(argv)
    rows = []
    print(HEADER, RULE, sep="\n", flush=True)
    for i, n in enumerate(args.sizes):  # each row as soon as it is measured
        rows.append(measure(n, library_first=i % 2 == 0))
        print(row(rows[-1]), flush=True)
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
