"""TableCache against the bare Azure SDK calls doing the same work (issue 16).

    .venv/bin/python -m benchmarks.cache [--quick]    # its own Azurite; prints markdown

Also part of ``python -m benchmarks.run`` (the "TableCache" section). Each
floor writes or reads a copy of the entity the library wrote for the same
value (same columns and bytes, already encoded), so a ratio isolates what the
library adds: key hashing, encoding and decoding, expiry checks, integrity
checks, retries and deadlines. The ``*_many`` floors send the same requests
through a pool as wide as the library's ``Parallel`` (``max_parallel``, 8).
Where the library encodes or decodes JSON, the floor's target row does so
too, with orjson (the other row: the SDK calls alone). The
set_many row compares the library with itself: one ``set_many`` of 100 keys
against 100 ``set`` calls. Timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from azure.core import MatchConditions
from azure.data.tables import EdmType, EntityProperty, TableClient, UpdateMode
from azure.storage.blob import ContainerClient

import tablesessions
from tablesessions._cache.many import KEYS_PER_QUERY
from tablesessions._cache.rules import row_key_for
from tablesessions.testing import RequestCounter, unique_name

from .harness import Comparison, Stopwatch, compare
from .payloads import KIB, MIB, incompressible, session_data
from .report import comparisons_table, floors_list

GET_SET_TARGET = 0.9
SET_MANY_TARGET = 5.0
MANY = 100
TTL = dt.timedelta(seconds=300)


@dataclass(frozen=True)
class CachePlan:
    small: int
    large: int
    huge: int
    many: int
    warmup: int

    @classmethod
    def for_mode(cls, quick: bool) -> CachePlan:
        if quick:
            return cls(small=3, large=3, huge=2, many=2, warmup=1)
        return cls(small=300, large=150, huge=15, many=20, warmup=10)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _plain(entity: Any) -> dict[str, Any]:
    return {str(k): v for k, v in dict(entity).items()}


@dataclass
class CacheRig:
    cache: tablesessions.TableCache
    table: TableClient
    container: ContainerClient
    pool: ThreadPoolExecutor

    @classmethod
    @contextmanager
    def open(cls, conn: str) -> Iterator[CacheRig]:
        names = unique_name("cbench"), unique_name("cbench")
        cache = tablesessions.TableCache.from_connection_string(
            conn, table_name=names[0], container_name=names[1])
        cache.create_storage()
        table = TableClient.from_connection_string(conn, table_name=names[0])
        container = ContainerClient.from_connection_string(conn, container_name=names[1])
        # The floors' pool is as wide as the library's Parallel.
        pool = ThreadPoolExecutor(cache.config.max_parallel, thread_name_prefix="floor")
        try:
            yield cls(cache, table, container, pool)
        finally:
            pool.shutdown()
            cache.close()
            table.close()
            container.close()

    def stored(self, key: str) -> dict[str, Any]:
        """The row the library wrote for ``key``, read back raw (untimed)."""
        rk = row_key_for(key)
        return _plain(self.table.get_entity(f"{self.cache.app_name}-{rk[0]}", rk))

    def floor_copy(self, template: dict[str, Any]) -> dict[str, Any]:
        rk = secrets.token_hex(32)
        entity = {**template, "PartitionKey": f"floor-{rk[0]}", "RowKey": rk}
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        return entity


def _value_scenarios(rig: CacheRig, label: str, value: Any, iterations: int,
                     warmup: int) -> list[Comparison]:
    cache = rig.cache
    key = f"bench:{label}"
    cache.set(key, value)
    template = rig.stored(key)
    blob = template.get("BlobName")
    blob_bytes = (rig.container.download_blob(str(blob)).readall() if blob else b"")
    copy = rig.floor_copy(template)
    keys = {"partition_key": copy["PartitionKey"], "row_key": copy["RowKey"]}
    out: list[Comparison] = []
    old_blobs: list[str] = []

    def lib_set(watch: Stopwatch) -> None:
        with watch:
            cache.set(key, value)

    def floor_set_with(encode: bool) -> Callable[[Stopwatch], None]:
        def floor_set(watch: Stopwatch) -> None:
            with watch:
                if encode:
                    orjson.dumps(value)
                entity = {**copy, "ExpiresAt": _utcnow() + TTL}
                if blob:
                    name = f"floor/{copy['RowKey']}/{secrets.token_urlsafe(18)}"
                    rig.container.upload_blob(name, blob_bytes, overwrite=False)
                    entity["BlobName"] = name
                rig.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            if blob:
                old_blobs.append(entity["BlobName"])

        return floor_set

    what = (f"1 upload_blob of the same {len(blob_bytes):,} bytes + 1 upsert_entity" if blob
            else f"1 upsert_entity of the same {int(template['Size']):,}-byte payload")
    # bytes need no encoding: the floor's call is the whole work. Other values:
    # once against the SDK call alone, once with orjson encoding the value (the
    # least a hand-written cache must do), which is the row the target is on.
    variants = [(False, "", GET_SET_TARGET)] if isinstance(value, bytes) else [
        (False, " (floor: SDK call only)", None), (True, "", GET_SET_TARGET)]
    for encode, suffix, target in variants:
        note = f"floor: {'orjson.dumps of the value + ' if encode else ''}{what}"
        out.append(compare(f"cache set {label}{suffix}", lib_set, floor_set_with(encode),
                           iterations=iterations, warmup=warmup, target=target, notes=note))
    for name in old_blobs[:-1]:
        rig.container.delete_blob(name)

    floor_entity = rig.table.get_entity(**keys)
    floor_blob = floor_entity.get("BlobName")
    as_json = b"" if isinstance(value, bytes) else orjson.dumps(value)

    def lib_get(watch: Stopwatch) -> None:
        with watch:
            got = cache.get(key)
        assert got is not None

    def floor_get_with(decode: bool) -> Callable[[Stopwatch], None]:
        def floor_get(watch: Stopwatch) -> None:
            with watch:
                row = rig.table.get_entity(**keys)
                if floor_blob:
                    rig.container.download_blob(str(row["BlobName"])).readall()
                if decode:
                    orjson.loads(as_json)

        return floor_get

    what = ("1 get_entity + 1 download_blob" if floor_blob else "1 get_entity")
    for decode, suffix, target in variants:
        note = f"floor: {what}" + (" + orjson.loads of the value's JSON" if decode
                                   else ", nothing decoded")
        out.append(compare(f"cache get {label}{suffix}", lib_get, floor_get_with(decode),
                           iterations=iterations, warmup=warmup, target=target, notes=note))
    return out


def _incr(rig: CacheRig, iterations: int, warmup: int) -> Comparison:
    cache = rig.cache
    cache.set("bench:counter", 0)
    copy = rig.floor_copy(rig.stored("bench:counter"))
    keys = {"partition_key": copy["PartitionKey"], "row_key": copy["RowKey"]}

    def lib(watch: Stopwatch) -> None:
        with watch:
            cache.incr("bench:counter")

    def floor(watch: Stopwatch) -> None:
        with watch:
            row = rig.table.get_entity(**keys)
            value = row["IntValue"]
            current = value.value if isinstance(value, EntityProperty) else int(value)
            row["IntValue"] = EntityProperty(current + 1, EdmType.INT64)
            rig.table.update_entity(row, mode=UpdateMode.REPLACE, etag=row.metadata["etag"],
                                    match_condition=MatchConditions.IfNotModified)

    return compare("cache incr", lib, floor, iterations=iterations, warmup=warmup,
                   notes="floor: 1 get_entity + 1 update_entity (replace) with If-Match")


def _by_partition(rks: list[str], prefix: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for rk in rks:
        groups[f"{prefix}-{rk[0]}"].append(rk)
    return groups


def _many(rig: CacheRig, iterations: int, warmup: int) -> list[Comparison]:
    cache = rig.cache
    data = session_data(KIB)
    mapping = {f"bench:many:{i}": {**data, "i": i} for i in range(MANY)}
    assert cache.set_many(mapping) == []
    templates = [rig.stored(k) for k in mapping]
    floor_rows = []
    for t in templates:  # the same entities under floor keys, same partitions
        rk = str(t["RowKey"])
        floor_rows.append({**t, "PartitionKey": f"floorm-{rk[0]}"})
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in floor_rows:
        groups[str(row["PartitionKey"])].append(row)
    for rows in groups.values():
        rig.table.submit_transaction([("upsert", r, {"mode": UpdateMode.REPLACE}) for r in rows])
    out: list[Comparison] = []

    def lib_set_many(watch: Stopwatch) -> None:
        with watch:
            failed = cache.set_many(mapping)
        assert failed == []

    values = list(mapping.values())

    def floor_set_many_with(encode: bool) -> Callable[[Stopwatch], None]:
        def floor_set_many(watch: Stopwatch) -> None:
            with watch:
                if encode:
                    for value in values:
                        orjson.dumps(value)
                expires = _utcnow() + TTL

                def submit(rows: list[dict[str, Any]]) -> None:
                    rig.table.submit_transaction([("upsert", {**r, "ExpiresAt": expires},
                                                   {"mode": UpdateMode.REPLACE}) for r in rows])

                list(rig.pool.map(submit, groups.values()))

        return floor_set_many

    # As the single-value rows: once against the SDK calls alone, once with
    # orjson encoding the 100 values (the target's row).
    many_variants = [(False, " (floor: SDK calls only)", None), (True, "", GET_SET_TARGET)]
    for encode, suffix, target in many_variants:
        out.append(compare(
            f"cache set_many {MANY}{suffix}", lib_set_many, floor_set_many_with(encode),
            iterations=iterations, warmup=warmup, target=target,
            notes=f"floor: {'orjson.dumps of the 100 values + ' if encode else ''}the same "
                  f"{len(groups)} transactions (one per partition) through a pool as wide as "
                  "the library's"))

    def lib_sets(watch: Stopwatch) -> None:
        with watch:
            for k, v in mapping.items():
                cache.set(k, v)

    out.append(compare(f"cache set_many {MANY} vs {MANY} set calls", lib_set_many, lib_sets,
                       iterations=max(2, iterations // 2), warmup=min(warmup, 2),
                       target=SET_MANY_TARGET,
                       notes=f"both sides the library: 1 set_many against {MANY} set"))

    keys = list(mapping)
    query_groups = _by_partition([str(r["RowKey"]) for r in floor_rows], "floorm")

    def lib_get_many(watch: Stopwatch) -> None:
        with watch:
            got = cache.get_many(keys)
        assert len(got) == MANY

    as_json = [orjson.dumps(v) for v in values]

    def floor_get_many_with(decode: bool) -> Callable[[Stopwatch], None]:
        def query(item: tuple[str, list[str]]) -> int:
            pk, rks = item
            n = 0
            for i in range(0, len(rks), KEYS_PER_QUERY):
                chunk = rks[i : i + KEYS_PER_QUERY]
                flt = "PartitionKey eq @pk and ( " + " or ".join(
                    f"RowKey eq @r{j}" for j in range(len(chunk))) + " )"
                params = {"pk": pk, **{f"r{j}": rk for j, rk in enumerate(chunk)}}
                n += len(list(rig.table.query_entities(flt, parameters=params)))
            return n

        def floor_get_many(watch: Stopwatch) -> None:
            with watch:
                found = sum(rig.pool.map(query, query_groups.items()))
                if decode:
                    for data in as_json:
                        orjson.loads(data)
            assert found == MANY

        return floor_get_many

    for decode, suffix, target in many_variants:
        out.append(compare(
            f"cache get_many {MANY}{suffix}", lib_get_many, floor_get_many_with(decode),
            iterations=iterations, warmup=warmup, target=target,
            notes="floor: the same queries (one per partition per 14 keys) through a pool of "
                  f"{rig.cache.config.max_parallel}"
                  + (" + orjson.loads of the 100 values' JSON" if decode else ", nothing decoded")))
    return out


def get_many_strategies(rig: CacheRig, iterations: int, warmup: int) -> Comparison:
    """get_many of 100 keys: per-partition queries (library) against 100 parallel
    point reads (as ``floor``): the measurement behind the choice."""
    from tablesessions._cache import many as _many

    keys = [f"bench:many:{i}" for i in range(MANY)]
    rules = rig.cache._rules

    def strategy(name: Any) -> Callable[[Stopwatch], None]:
        def step(watch: Stopwatch) -> None:
            with watch:
                # Each call its own deadline: this measures the strategies, not the
                # 2 s request deadline (100 point reads on a loaded machine can pass it).
                got = rig.cache._run(_many.get_many(rules, keys, strategy=name), background=True)
            assert len(got) == MANY

        return step

    return compare(f"get_many {MANY}: queries vs point reads", strategy("query"),
                   strategy("point"), iterations=iterations, warmup=warmup,
                   notes="both sides the library; floor column: 100 point reads, "
                         f"{rig.cache.config.max_parallel} at once")


#: The modelled delays per request (benchmarks/latency.py): about an in-region
#: call, and a cross-region one.
DELAYS_MS = (2, 10)


def _set_many_vs_sets(cache: tablesessions.TableCache, mapping: dict[str, Any], name: str,
                      iterations: int, warmup: int, notes: str) -> Comparison:
    def lib_set_many(watch: Stopwatch) -> None:
        with watch:
            failed = cache.set_many(mapping)
        assert failed == []

    def lib_sets(watch: Stopwatch) -> None:
        with watch:
            for k, v in mapping.items():
                cache.set(k, v)

    return compare(name, lib_set_many, lib_sets, iterations=iterations, warmup=warmup,
                   target=SET_MANY_TARGET, notes=notes)


def set_many_at_latency(azurite: Any, quick: bool) -> list[Comparison]:
    """set_many of 100 keys against 100 ``set`` calls with every request held
    2 ms and 10 ms by a loopback proxy: a **latency model, not Azure** (see
    benchmarks/latency.py). Against Azurite alone the ratio is bounded by
    Azurite, which runs a transaction's operations one by one (about 16 ms per
    transaction plus 1.5 ms per entity, measured); a network's round trips are
    what batching saves."""
    from tablesessions.testing import Fault, FaultPlan, FaultProxyPair

    iterations, warmup = (2, 1) if quick else (6, 1)
    data = session_data(KIB)
    mapping = {f"bench:lat:{i}": {**data, "i": i} for i in range(MANY)}
    out: list[Comparison] = []
    for ms in DELAYS_MS:
        delay = FaultPlan(rate=1.0, kinds={Fault.DELAY: 1.0}, delay=ms / 1000)
        with FaultProxyPair(azurite, plan=delay) as proxies, \
                CacheRig.open(proxies.connection_string) as rig:
            out.append(_set_many_vs_sets(
                rig.cache, mapping, f"cache set_many {MANY} vs {MANY} set calls @ +{ms} ms",
                iterations, warmup, notes=f"both sides the library, every request held {ms} ms "
                                          "by a proxy (a latency model, not Azure)"))
    return out


def count_calls(conn: str) -> list[tuple[str, int]]:
    """Storage calls per cache operation, counted at the transport."""
    counter = RequestCounter()
    rows: list[tuple[str, int]] = []
    with tablesessions.TableCache.from_connection_string(
            conn, table_name=unique_name("ccalls"), container_name=unique_name("ccalls"),
            client_options=counter.client_options(), inline_budget=64 * KIB) as cache:
        cache.create_storage()

        def measure(name: str, fn: Callable[[], object]) -> None:
            counter.reset()
            fn()
            rows.append((name, counter.count))

        mapping = {f"k{i}": i for i in range(MANY)}
        measure("set (inline)", lambda: cache.set("a", {"x": 1}))
        measure("get (inline)", lambda: cache.get("a"))
        measure("get (miss)", lambda: cache.get("absent"))
        measure("add (absent)", lambda: cache.add("b", 1))
        measure("add (live: 409 + read)", lambda: cache.add("b", 1))
        measure("has_key", lambda: cache.has_key("a"))
        measure("touch", lambda: cache.touch("a", 60))
        measure("incr", lambda: cache.incr("b"))
        measure("delete", lambda: cache.delete("a"))
        measure("set (overflow to a blob)", lambda: cache.set("big", incompressible(MIB)))
        measure("get (overflowed)", lambda: cache.get("big"))
        measure(f"set_many {MANY}", lambda: cache.set_many(mapping))
        measure(f"get_many {MANY}", lambda: cache.get_many(list(mapping)))
        measure(f"delete_many {MANY}", lambda: cache.delete_many(list(mapping)))
        partitions = len({row_key_for(k)[0] for k in mapping})
        rows.append((f"(partitions touched by those {MANY} keys)", partitions))
    return rows


def cache_section(conn: str, quick: bool, azurite: Any = None
                  ) -> tuple[dict[str, Any], str]:
    """Run every cache scenario; return (JSON-ready figures, markdown). Given the
    ``AzuriteServer``, also set_many at the modelled latencies."""
    plan = CachePlan.for_mode(quick)
    comparisons: list[Comparison] = []
    with CacheRig.open(conn) as rig:
        comparisons += _value_scenarios(rig, "1 KiB", session_data(KIB), plan.small,
                                        plan.warmup)
        comparisons += _value_scenarios(rig, "64 KiB", session_data(64 * KIB), plan.large,
                                        plan.warmup)
        comparisons += _value_scenarios(rig, "5 MiB", incompressible(5 * MIB), plan.huge,
                                        min(plan.warmup, 2))
        comparisons.append(_incr(rig, plan.small, plan.warmup))
        comparisons += _many(rig, plan.many, min(plan.warmup, 3))
        strategies = get_many_strategies(rig, plan.many, min(plan.warmup, 3))
    if azurite is not None:
        comparisons += set_many_at_latency(azurite, quick)
    calls = count_calls(conn)
    table = "\n".join(["| operation | storage calls |", "|---|---:|",
                       *(f"| {name} | {n} |" for name, n in calls)])
    md = "\n".join([
        "## TableCache against the raw SDK floor", "",
        comparisons_table(comparisons), "", "Floors:", "", floors_list(comparisons), "",
        "get_many strategy (library against itself):", "",
        comparisons_table([strategies]), "",
        "Storage calls per cache operation (counted at the transport):", "", table])
    figures = {"comparisons": [c.to_dict() for c in comparisons],
               "get_many_strategies": strategies.to_dict(),
               "calls": dict(calls)}
    return figures, md


def main(argv: list[str] | None = None) -> int:
    from tablesessions.testing import AzuriteServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few operations each")
    args = parser.parse_args(argv)
    with AzuriteServer() as azurite:
        _, md = cache_section(azurite.connection_string, args.quick, azurite)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
