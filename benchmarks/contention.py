"""Contention on one session from several processes, on both faces (issue 14).

    .venv/bin/python -m benchmarks.contention [--workers 8] [--times 50]
                                              [--face both|sync|async] [--scenario ...]

Starts its own Azurite, then for each face and scenario runs ``--workers``
spawned processes, each doing ``--times`` operations on ONE shared session
with the store's default settings (2 s request deadline), and prints one
markdown row per run: final state exact?, errors surfaced to the caller,
wall time. Scenarios:

* ``distinct-keys``: plain get / change / save (merge mode), each worker
  incrementing its own key: exact when every key ends at ``--times``;
* ``counter``: ``store.update(sid, fn)`` incrementing ONE shared key: exact
  when it ends at workers x times;
* ``overwrite``: ``concurrency="overwrite"``, each worker replacing the whole
  session with ``{"w": worker, "i": i}``: exact when the final state is one
  worker's last write, whole (no mix of two writes);
* ``shared-key-merge`` (not in the default set): the counter done with plain
  get / save in merge mode, to show why ``update`` exists: increments are lost.

Exits non-zero when a run is not exact or surfaced an error (the
``shared-key-merge`` scenario excepted). Timings on a shared 2-core machine
are noisy; the counts are what matters. ``tests/integration/test_contention.py``
runs the same scenarios and asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import tablesessions
import tablesessions.aio
from tablesessions.testing import RequestCounter

SCENARIOS = ("distinct-keys", "counter", "overwrite")
#: The request deadline under which ``tests/integration/test_contention.py``
#: asserts 0 errors (docs/concurrency.md, "Measured", has the default-2-s runs).
TARGET_DEADLINE = 10.0
ALL_SCENARIOS = (*SCENARIOS, "shared-key-merge")


def _options(scenario: str, deadline: float | None, counter: RequestCounter
             ) -> dict[str, Any]:
    """The store's defaults, but for the scenario's mode and ``--deadline``, with
    ``counter`` counting the storage calls."""
    options: dict[str, Any] = {"concurrency": "overwrite"} if scenario == "overwrite" else {}
    options["client_options"] = counter.client_options()
    if deadline is not None:
        options["retry"] = tablesessions.RetryPolicy(deadline=deadline)
    return options


def _step(scenario: str, worker: int, i: int) -> tuple[str, Callable[[tablesessions.Session],
                                                                    None] | None]:
    """What one operation does: ("update", fn) or ("save", change applied to a get)."""
    key = f"w{worker}"

    def own_key(s: tablesessions.Session) -> None:
        s[key] = s.get(key, 0) + 1

    def shared(s: tablesessions.Session) -> None:
        s["n"] = s.get("n", 0) + 1

    def whole(s: tablesessions.Session) -> None:
        s.clear()
        s.update(w=worker, i=i)

    if scenario == "counter":
        return "update", shared
    change = {"distinct-keys": own_key, "overwrite": whole, "shared-key-merge": shared}
    return "save", change[scenario]


#: What a worker reports: the error names it caught, with counts; the latency of
#: each operation and of its write alone (``save`` or ``update``), in seconds; the
#: storage calls it made.
Figures = tuple[dict[str, int], list[float], list[float], int]


def _sync_worker(conn: str, table: str, container: str, sid: str, scenario: str, worker: int,
                 times: int, start_at: float, deadline: float | None) -> Figures:
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    writes: list[float] = []
    counter = RequestCounter()
    options = _options(scenario, deadline, counter)
    with tablesessions.SessionStore.from_connection_string(
            conn, table_name=table, container_name=container, **options) as store:
        time.sleep(max(0.0, start_at - time.time()))
        counter.reset()
        for i in range(times):
            kind, change = _step(scenario, worker, i)
            assert change is not None
            began = write_began = time.perf_counter()
            try:
                if kind == "update":
                    store.update(sid, change)
                else:
                    session = store.get(sid)
                    assert session is not None
                    change(session)
                    write_began = time.perf_counter()
                    store.save(session)
            except Exception as exc:
                errors[type(exc).__name__] += 1
            ended = time.perf_counter()
            latencies.append(ended - began)
            writes.append(ended - write_began)
    return dict(errors), latencies, writes, counter.count


async def _async_worker(conn: str, table: str, container: str, sid: str, scenario: str,
                        worker: int, times: int, start_at: float, deadline: float | None
                        ) -> Figures:
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    writes: list[float] = []
    counter = RequestCounter()
    options = _options(scenario, deadline, counter)
    async with tablesessions.aio.SessionStore.from_connection_string(
            conn, table_name=table, container_name=container, **options) as store:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        counter.reset()
        for i in range(times):
            kind, change = _step(scenario, worker, i)
            assert change is not None
            began = write_began = time.perf_counter()
            try:
                if kind == "update":
                    await store.update(sid, change)
                else:
                    session = await store.get(sid)
                    assert session is not None
                    change(session)
                    write_began = time.perf_counter()
                    await store.save(session)
            except Exception as exc:
                errors[type(exc).__name__] += 1
            ended = time.perf_counter()
            latencies.append(ended - began)
            writes.append(ended - write_began)
    return dict(errors), latencies, writes, counter.count


def worker(face: str, *args: Any) -> Figures:
    """One worker process's run (see :data:`Figures`)."""
    if face == "async":
        return asyncio.run(_async_worker(*args))
    return _sync_worker(*args)


def burn() -> None:
    """Spin one CPU until terminated (``--cpu-load``)."""
    while True:
        sum(range(10_000))


@contextlib.contextmanager
def cpu_load(n: int) -> Iterator[None]:
    """Keep ``n`` processes spinning meanwhile, as the other jobs of a loaded
    shared machine do (the figures in docs/concurrency.md say which load)."""
    spinning = [multiprocessing.get_context("spawn").Process(target=burn, daemon=True)
                for _ in range(n)]
    for p in spinning:
        p.start()
    try:
        yield
    finally:
        for p in spinning:
            p.terminate()
            p.join()


def warm() -> None:
    """Make a pool process import the store before the clock starts."""
    time.sleep(0.3)


@dataclass
class Result:
    face: str
    scenario: str
    workers: int
    times: int
    final: dict[str, Any]
    exact: bool
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    #: the write alone (``save``, or ``update``: then the whole operation)
    writes: list[float] = field(default_factory=list)
    calls: int = 0

    def quantile(self, q: float, of: list[float] | None = None) -> float:
        ordered = sorted(self.latencies if of is None else of)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    @property
    def surfaced(self) -> int:
        return sum(self.errors.values())

    def row(self) -> str:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "0"
        per_op = self.calls / max(1, len(self.latencies))
        return (f"| {self.face} | {self.scenario} | {self.workers} x {self.times} | "
                f"{'yes' if self.exact else 'NO'} | {errors} | {self.seconds:.1f} s | "
                f"{self.quantile(0.5, self.writes) * 1000:.0f} / "
                f"{self.quantile(0.99, self.writes) * 1000:.0f} / "
                f"{max(self.writes, default=0) * 1000:.0f} ms | {per_op:.1f} |")


def expected(scenario: str, workers: int, times: int, final: dict[str, Any]) -> bool:
    if scenario == "distinct-keys":
        return final == {f"w{w}": times for w in range(workers)}
    if scenario in ("counter", "shared-key-merge"):
        return final == {"n": workers * times}
    return final in [{"w": w, "i": times - 1} for w in range(workers)]


def pool(workers: int) -> ProcessPoolExecutor:
    """A warmed pool of ``workers`` spawned processes (spawn: no forked SDK state)."""
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    for f in [executor.submit(warm) for _ in range(workers)]:
        f.result()
    return executor


def run(executor: Executor, conn: str, names: tuple[str, str], face: str, scenario: str,
        workers: int, times: int, deadline: float | None = None) -> Result:
    """One scenario on one fresh session; returns its figures."""
    with tablesessions.SessionStore.from_connection_string(
            conn, table_name=names[0], container_name=names[1]) as store:
        store.create_storage()
        session = store.new()
        store.save(session)
        sid = session.id
        start_at = time.time() + 0.5
        futures = [executor.submit(worker, face, conn, *names, sid, scenario, w, times,
                                   start_at, deadline) for w in range(workers)]
        errors: Counter[str] = Counter()
        latencies: list[float] = []
        writes: list[float] = []
        calls = 0
        for f in futures:
            caught, took, wrote, made = f.result()
            errors.update(caught)
            latencies += took
            writes += wrote
            calls += made
        seconds = time.time() - start_at
        final = store.get(sid)
        assert final is not None
        state = dict(final)
    return Result(face, scenario, workers, times, state,
                  expected(scenario, workers, times, state), dict(errors), seconds, latencies,
                  writes, calls)


def main(argv: list[str] | None = None) -> int:
    from tablesessions.testing import AzuriteServer, unique_name

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--times", type=int, default=50)
    parser.add_argument("--face", choices=("both", "sync", "async"), default="both")
    parser.add_argument("--deadline", type=float, default=None,
                        help="the request deadline in seconds (default: the store's, 2 s)")
    parser.add_argument("--cpu-load", type=int, default=0, metavar="N",
                        help="also spin N processes on the CPU for the whole run, as the "
                             "other jobs of a loaded shared machine do (default 0)")
    parser.add_argument("--scenario", choices=ALL_SCENARIOS, action="append",
                        help=f"repeatable (default: {', '.join(SCENARIOS)})")
    args = parser.parse_args(argv)
    faces = ("sync", "async") if args.face == "both" else (args.face,)
    failed = False
    print("| face | scenario | processes x ops | final state exact | errors surfaced | wall "
          "| save (update) p50 / p99 / max | storage calls per op |")
    print("|---|---|---|---|---|---|---|---|")
    with AzuriteServer() as azurite, pool(args.workers) as executor, cpu_load(args.cpu_load):
        names = (unique_name("cont"), unique_name("cont"))
        for face in faces:
            for scenario in args.scenario or SCENARIOS:
                result = run(executor, azurite.connection_string, names, face, scenario,
                             args.workers, args.times, args.deadline)
                print(result.row(), flush=True)
                if scenario != "shared-key-merge" and (not result.exact or result.surfaced):
                    failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
