"""``TableCache.incr`` on ONE key from several processes, both faces (issue 16).

    .venv/bin/python -m benchmarks.cache_contention [--workers 8] [--times 50]
                                                    [--face both|sync|async] [--deadline S]

Starts its own Azurite; for each face, ``--workers`` spawned processes each
call ``cache.incr(key)`` ``--times`` times on one shared counter, with the
cache's default settings (2 s request deadline) unless ``--deadline``. Prints
one markdown row per face: final value exact (= workers x times, counting only
acknowledged calls), errors surfaced to callers, wall time, latencies.
Exits non-zero when a run is not exact. Timings on a shared 2-core machine
are noisy; the counts are what matters. ``tests/cache/test_cache_contention.py``
runs the same code and asserts on it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from concurrent.futures import Executor
from typing import Any

import tablesessions
import tablesessions.aio
from benchmarks.contention import Result, pool

KEY = "rate:counter"


def _options(deadline: float | None) -> dict[str, Any]:
    return {} if deadline is None else {"retry": tablesessions.RetryPolicy(deadline=deadline)}


def _sync_worker(conn: str, table: str, container: str, times: int, start_at: float,
                 deadline: float | None) -> tuple[dict[str, int], list[float], int]:
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    acked = 0
    with tablesessions.TableCache.from_connection_string(
            conn, table_name=table, container_name=container, **_options(deadline)) as cache:
        time.sleep(max(0.0, start_at - time.time()))
        for _ in range(times):
            began = time.perf_counter()
            try:
                cache.incr(KEY)
                acked += 1
            except Exception as exc:
                errors[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - began)
    return dict(errors), latencies, acked


async def _async_worker(conn: str, table: str, container: str, times: int, start_at: float,
                        deadline: float | None) -> tuple[dict[str, int], list[float], int]:
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    acked = 0
    async with tablesessions.aio.TableCache.from_connection_string(
            conn, table_name=table, container_name=container, **_options(deadline)) as cache:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        for _ in range(times):
            began = time.perf_counter()
            try:
                await cache.incr(KEY)
                acked += 1
            except Exception as exc:
                errors[type(exc).__name__] += 1
            latencies.append(time.perf_counter() - began)
    return dict(errors), latencies, acked


def worker(face: str, *args: Any) -> tuple[dict[str, int], list[float], int]:
    """One worker process: (error names with counts, latencies, acknowledged increments)."""
    if face == "async":
        return asyncio.run(_async_worker(*args))
    return _sync_worker(*args)


def run(executor: Executor, conn: str, names: tuple[str, str], face: str, workers: int,
        times: int, deadline: float | None = None) -> Result:
    """One run on a fresh counter; exact when the final value is the number of
    acknowledged increments (and so workers x times when none failed)."""
    with tablesessions.TableCache.from_connection_string(
            conn, table_name=names[0], container_name=names[1]) as cache:
        cache.create_storage()
        cache.set(KEY, 0, ttl=None)
        start_at = time.time() + 0.5
        futures = [executor.submit(worker, face, conn, *names, times, start_at, deadline)
                   for _ in range(workers)]
        errors: Counter[str] = Counter()
        latencies: list[float] = []
        acked = 0
        for f in futures:
            caught, took, ok = f.result()
            errors.update(caught)
            latencies += took
            acked += ok
        seconds = time.time() - start_at
        final = cache.get(KEY)
    return Result(face, "incr one key", workers, times, {"n": final, "acknowledged": acked},
                  final == acked, dict(errors), seconds, latencies, writes=latencies)


def main(argv: list[str] | None = None) -> int:
    from tablesessions.testing import AzuriteServer, unique_name

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--times", type=int, default=50)
    parser.add_argument("--face", choices=("both", "sync", "async"), default="both")
    parser.add_argument("--deadline", type=float, default=None,
                        help="the request deadline in seconds (default: the cache's, 2 s)")
    args = parser.parse_args(argv)
    faces = ("sync", "async") if args.face == "both" else (args.face,)
    failed = False
    print("| face | scenario | processes x ops | final = acknowledged | errors surfaced | wall "
          "| op latency p50 / p99 / max |")
    print("|---|---|---|---|---|---|---|")
    with AzuriteServer() as azurite, pool(args.workers) as executor:
        for face in faces:
            names = (unique_name("cinc"), unique_name("cinc"))
            result = run(executor, azurite.connection_string, names, face, args.workers,
                         args.times, args.deadline)
            # The shared row ends with storage calls per op, which this run does
            # not count: drop that column.
            print(result.row().rsplit(" | ", 1)[0] + " |", flush=True)
            failed = failed or not result.exact
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
