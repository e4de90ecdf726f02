"""The cache's multi-key operations: batched per partition (sans-I/O).

An app's entries spread over 16 partitions (``_record.keys``), and Table
Storage batches only within one: so ``set_many`` sends one entity group
transaction per partition touched (at most 100 operations and 4 MiB each),
``get_many`` one query per partition per 14 keys (a filter holds at most 15
comparisons: the PartitionKey and 14 RowKeys), and ``delete_many`` those
queries then one transaction per partition. The partitions run in parallel
(``Parallel``: threads in the sync face, tasks in the async one).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableTransactionError

from .._record.effects import (
    DeleteEntity,
    ListBlobs,
    Op,
    Parallel,
    QueryPage,
    ReadEntity,
    Row,
    Transaction,
    TxOp,
)
from .._record.keys import PARTITION_SUFFIXES, log_id
from .._record.limits import MAX_BATCH_OPERATIONS, MAX_QUERY_PAGE, MAX_TRANSACTION_BYTES
from .._record.rules import COL_BLOB
from .._record.sweep import _failed_index as failed_index
from .ops import _REREAD, delete_blob_quietly, get, upload, value_of
from .rules import DEFAULT, MISSING, CacheRules, Prepared

logger = logging.getLogger("tablesessions.cache")

#: RowKeys per query: a filter holds at most 15 comparisons (AZURE-FACTS), one
#: of them the PartitionKey.
KEYS_PER_QUERY = 14
_DELETE_COLUMNS = ("PartitionKey", "RowKey", COL_BLOB)
#: Per entity in a transaction body, beyond its binary columns: the multipart
#: headers, the JSON names and the other columns.
_ENTITY_OVERHEAD = 2048
#: What one transaction's estimated body may reach: an eighth under the service's
#: 4 MiB, for what the estimate misses.
_BATCH_BUDGET = MAX_TRANSACTION_BYTES * 7 // 8

GetStrategy = Literal["query", "point"]


def _rk_filter(count: int) -> str:
    # Spaces around the parentheses: the SDK splits the filter on spaces (AZURE-FACTS).
    keys = " or ".join(f"RowKey eq @r{i}" for i in range(count))
    return f"PartitionKey eq @pk and ( {keys} )"


#: Every filter ``_query_rows`` uses, by key count, made once from constants: the
#: keys themselves only ever travel as parameters (tests/security checks this).
_RK_FILTERS: tuple[str, ...] = tuple(_rk_filter(n) for n in range(KEYS_PER_QUERY + 1))


def _by_partition(rules: CacheRules, keys: Iterable[object]) -> dict[str, dict[str, str]]:
    """{pk: {rk: key}} of distinct keys, in first-seen order; validates every key first."""
    groups: dict[str, dict[str, str]] = {}
    for key in keys:
        pk, rk = rules.keys(key)
        groups.setdefault(pk, {})[rk] = key  # type: ignore[assignment]  # checked a str
    return groups


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _query_rows(pk: str, rks: Sequence[str], select: tuple[str, ...] | None) -> Op[list[Row]]:
    """The rows of ``rks`` (at most 14) in partition ``pk``: one query, more pages
    only if the service splits it."""
    params: dict[str, Any] = {"pk": pk, **{f"r{i}": rk for i, rk in enumerate(rks)}}
    rows: list[Row] = []
    token: Any = None
    while True:
        page, token = yield QueryPage(_RK_FILTERS[len(rks)], params, select, MAX_QUERY_PAGE, token)
        rows.extend(page)
        if token is None:
            return rows


# -- get_many ------------------------------------------------------------------------


def get_many(rules: CacheRules, keys: Iterable[object],
             strategy: GetStrategy = "query") -> Op[dict[str, Any]]:
    """{key: value} of the keys that have a live entry.

    ``"query"``: one query per partition per 14 keys (a partition asked for one
    key gets a point read instead); ``"point"``: one point read per key. Both in
    parallel, ``max_parallel`` at once.
    """
    groups = _by_partition(rules, keys)
    subs: list[Op[dict[str, Any]]] = []
    for pk, by_rk in groups.items():
        rks = list(by_rk)
        if strategy == "point" or len(rks) == 1:
            subs.extend(_get_one(rules, by_rk[rk]) for rk in rks)
        else:
            subs.extend(_get_chunk(rules, pk, chunk, by_rk)
                        for chunk in _chunks(rks, KEYS_PER_QUERY))
    found: dict[str, Any] = {}
    for part in (yield from _parallel(rules, subs)):
        found.update(part)
    # In the callers' order, as dicts are.
    order = [key for by_rk in groups.values() for key in by_rk.values()]
    return {key: found[key] for key in order if key in found}


def _get_one(rules: CacheRules, key: str) -> Op[dict[str, Any]]:
    value = yield from get(rules, key)
    return {} if value is MISSING else {key: value}


def _get_chunk(rules: CacheRules, pk: str, rks: Sequence[str],
               by_rk: Mapping[str, str]) -> Op[dict[str, Any]]:
    rows = yield from _query_rows(pk, rks, None)
    out: dict[str, Any] = {}
    for row in rows:
        key = by_rk.get(str(row.entity.get("RowKey")))
        if key is None:
            continue
        value = yield from value_of(rules, row)
        if value is _REREAD:  # its blob was replaced meanwhile: read it alone
            value = yield from get(rules, key)
        if value is not MISSING:
            out[key] = value
    return out


def _parallel(rules: CacheRules, subs: Sequence[Op[Any]]) -> Op[list[Any]]:
    """Run sub-operations ``max_parallel`` at once; the first failure raises."""
    if not subs:
        return []
    if len(subs) == 1:
        return [(yield from subs[0])]
    results = yield Parallel(tuple(subs), min(rules.config.max_parallel, len(subs)))
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)


# -- set_many ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Write:
    key: str
    entity: dict[str, Any]
    prepared: Prepared
    size: int  # estimated bytes in a transaction body


def _body_size(entity: Mapping[str, Any]) -> int:
    # Binary travels as base64 (4/3) in the JSON body, strings as UTF-8.
    size = _ENTITY_OVERHEAD
    for value in entity.values():
        if isinstance(value, (bytes, bytearray)):
            size += math.ceil(len(value) * 4 / 3)
        elif isinstance(value, str):
            size += len(value.encode("utf-8", "surrogatepass"))
    return size


def _batches(writes: Sequence[_Write]) -> list[list[_Write]]:
    """Split one partition's writes into transactions of at most 100 operations
    and about 3.5 MiB (``_BATCH_BUDGET``)."""
    batches: list[list[_Write]] = []
    current: list[_Write] = []
    size = 0
    for w in writes:
        if current and (len(current) == MAX_BATCH_OPERATIONS
                        or size + w.size > _BATCH_BUDGET):
            batches.append(current)
            current, size = [], 0
        current.append(w)
        size += w.size
    if current:
        batches.append(current)
    return batches


def set_many(rules: CacheRules, mapping: Mapping[Any, Any],
             ttl: object = DEFAULT) -> Op[list[str]]:
    """Write every entry: blobs first (in parallel), then one transaction per
    partition touched (per 100 entries or 4 MiB). Every key and value is
    validated and encoded before the first write.

    :returns: the keys whose write failed (their partition's transaction or
        blob failed; the other partitions are written). Raises the first error
        when nothing could be written.
    """
    expiry = rules.ttl(ttl)
    now = rules.now()
    columns = rules.expiry_columns(expiry, now)
    groups: dict[str, list[_Write]] = {}
    for key, value in mapping.items():
        pk, rk = rules.keys(key)
        prepared = rules.prepare(rk, value)
        entity = rules.entity(pk, rk, prepared, columns)
        groups.setdefault(pk, []).append(_Write(str(key), entity, prepared, _body_size(entity)))
    if not groups:
        return []
    failed: list[str] = []
    errors: list[BaseException] = []
    blobs = [w for writes in groups.values() for w in writes if w.prepared.blob is not None]
    if blobs:
        results = yield Parallel(tuple(upload(rules, w.prepared) for w in blobs),
                                 min(rules.config.max_parallel, len(blobs)))
        lost = {w.key for w, r in zip(blobs, results, strict=True) if isinstance(r, BaseException)}
        errors.extend(r for r in results if isinstance(r, BaseException))
        # The uploaded pointers (their ETags) go into the rows.
        uploaded = {id(w): r for w, r in zip(blobs, results, strict=True)
                    if not isinstance(r, BaseException)}
        groups = {pk: [w if id(w) not in uploaded else
                       _Write(w.key, {**w.entity, **uploaded[id(w)].columns}, uploaded[id(w)],
                              w.size)
                       for w in ws if w.key not in lost] for pk, ws in groups.items()}
        if lost:
            failed.extend(lost)
    batches = [batch for writes in groups.values() if writes for batch in _batches(writes)]
    subs = tuple(_submit(tuple(TxOp("upsert", w.entity) for w in batch)) for batch in batches)
    if subs:
        results = yield Parallel(subs, min(rules.config.max_parallel, len(subs)))
        for batch, result in zip(batches, results, strict=True):
            if isinstance(result, BaseException):
                errors.append(result)
                failed.extend(w.key for w in batch)
    if failed:
        if len(failed) == len(mapping) and errors:
            raise errors[0]
        logger.warning("set_many: %d of %d entries failed (%s)", len(failed), len(mapping),
                       type(errors[0]).__name__ if errors else "error")
    return failed


def _submit(ops: tuple[TxOp, ...]) -> Op[None]:
    yield Transaction(ops)


# -- delete_many, clear --------------------------------------------------------------


def delete_many(rules: CacheRules, keys: Iterable[object]) -> Op[int]:
    """Delete every listed entry; return how many rows there were.

    Per partition: the queries find the rows (and their blobs), then one
    transaction (per 100) deletes them conditionally on the ETags seen; a row
    rewritten since is left to its newer writer. Then the known blobs go.
    """
    groups = _by_partition(rules, keys)
    subs = [_delete_in(rules, pk, list(by_rk)) for pk, by_rk in groups.items()]
    counts = yield from _parallel(rules, subs)
    return sum(counts)


def _delete_in(rules: CacheRules, pk: str, rks: Sequence[str]) -> Op[int]:
    if len(rks) == 1:
        row = yield ReadEntity(pk, rks[0], _DELETE_COLUMNS)
        rows = [] if row is None else [row]
    else:
        rows = []
        for chunk in _chunks(rks, KEYS_PER_QUERY):
            rows.extend((yield from _query_rows(pk, chunk, _DELETE_COLUMNS)))
    return (yield from delete_rows(rules, rows))


def delete_rows(rules: CacheRules, rows: Sequence[Row]) -> Op[int]:
    """Delete rows of one partition as read (conditionally on their ETags), in
    transactions of at most 100, then their blobs; return how many went."""
    deleted = 0
    for batch in _chunks(list(rows), MAX_BATCH_OPERATIONS):
        gone = yield from _delete_batch(list(batch))
        deleted += len(gone)
        for row in gone:
            name = row.entity.get(COL_BLOB)
            yield from delete_blob_quietly(str(name) if name else None)
    return deleted


def _delete_batch(left: list[Row]) -> Op[list[Row]]:
    """One transaction of conditional deletes; a row changed (412) or removed (404)
    since the read fails the whole batch and is dropped, the rest resubmitted."""
    while left:
        ops = tuple(TxOp("delete", row.entity, row.etag) for row in left)
        try:
            if len(ops) == 1:
                existed = yield DeleteEntity(str(left[0].entity["PartitionKey"]),
                                             str(left[0].entity["RowKey"]), left[0].etag)
                return left if existed else []
            yield Transaction(ops)
            return left
        except ResourceModifiedError:
            return []  # the single row was rewritten since: its newer writer wins
        except TableTransactionError as exc:
            if exc.status_code not in (404, 412):
                raise
            index = failed_index(exc, len(left))
            if index is None:
                return (yield from _delete_singly(left))
            dropped = left.pop(index)
            logger.debug("cache entry %s changed or went since it was read; kept",
                         log_id(str(dropped.entity["RowKey"])))
    return []


def _delete_singly(rows: Sequence[Row]) -> Op[list[Row]]:
    gone = []
    for row in rows:
        try:
            existed = yield DeleteEntity(str(row.entity["PartitionKey"]),
                                         str(row.entity["RowKey"]), row.etag)
        except ResourceModifiedError:
            continue
        if existed:
            gone.append(row)
    return gone


def clear(rules: CacheRules) -> Op[int]:
    """Delete every entry of this namespace (``app_name``): a scan of its 16
    partitions with batched deletes (and the blobs those rows point to), then
    the other blobs under ``<app>/`` (orphans) last modified before the clear
    began by the cache's clock, so that a value being written meanwhile keeps
    its blob. Returns how many rows were deleted."""
    started = rules.now()
    app = rules.config.app_name
    subs = [_clear_partition(rules, f"{app}-{s}") for s in PARTITION_SUFFIXES]
    counts = yield from _parallel(rules, subs)
    marker: str | None = None
    while True:
        blobs, marker = yield ListBlobs(rules.blob_prefix(), marker)
        names = [b.name for b in blobs if b.last_modified <= started]
        if names:
            yield from _parallel(rules, [delete_blob_quietly(n) for n in names])
        if marker is None:
            break
    return sum(counts)


def _clear_partition(rules: CacheRules, pk: str) -> Op[int]:
    deleted = 0
    token: Any = None
    while True:
        rows, token = yield QueryPage("PartitionKey eq @pk", {"pk": pk}, _DELETE_COLUMNS,
                                      MAX_QUERY_PAGE, token)
        deleted += yield from delete_rows(rules, rows)
        if token is None:
            return deleted
