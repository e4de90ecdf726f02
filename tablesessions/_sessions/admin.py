"""Operator views as sans-I/O generators: ``storage_stats`` and ``inspect``.

Neither reads a payload unless asked (``inspect --show-data``), and neither
refreshes or changes anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from .._record.effects import (
    Op,
    Parallel,
    QueryPage,
    ReadEntity,
)
from .._record.keys import PARTITION_SUFFIXES, log_id
from .._record.limits import MAX_QUERY_PAGE
from .._record.rules import (
    COL_BLOB,
    COL_BLOB_DIGEST,
    COL_BLOB_SIZE,
    COL_CHUNKS,
    COL_CODEC,
    COL_EXPIRES,
    COL_SIZE,
    COL_VERSION,
)
from .._record.sweep import _PARTITION
from ..exceptions import SessionDecodeError
from ..models import StorageStats
from .ids import is_valid_session_id
from .ops import MAX_POINTER_REREADS, _load_entries
from .rules import COL_ABSOLUTE, COL_CREATED, COL_DELETED, LOCK_COLUMNS, Rules

#: Partitions ``storage_stats`` scans at once.
STATS_PARALLEL = 4
_STATS_COLUMNS = ("PartitionKey", "RowKey", COL_EXPIRES, COL_SIZE, COL_BLOB, COL_BLOB_SIZE,
                  COL_DELETED)
_META_COLUMNS = ("PartitionKey", "RowKey", COL_CREATED, COL_EXPIRES, COL_ABSOLUTE, COL_VERSION,
                 COL_CODEC, COL_SIZE, COL_CHUNKS, COL_BLOB, COL_BLOB_SIZE, COL_BLOB_DIGEST,
                 *LOCK_COLUMNS)
#: Size histogram buckets: (exclusive upper bound in bytes, label).
_BUCKETS = ((1 << 10, "<1KiB"), (4 << 10, "<4KiB"), (16 << 10, "<16KiB"), (64 << 10, "<64KiB"),
            (256 << 10, "<256KiB"), (1 << 20, "<1MiB"), (16 << 20, "<16MiB"))
_TOP_BUCKET = ">=16MiB"

def storage_stats(rules: Rules) -> Op[StorageStats]:
    """Count the app's sessions, expired ones, bytes, overflowed ones and sizes.

    Scans the 16 partitions (no payload columns). :raises: the first storage error.
    """
    now = rules.now()
    app = rules.config.app_name
    subs = tuple(_stats_partition(f"{app}-{s}", now) for s in PARTITION_SUFFIXES)
    results = yield Parallel(subs, STATS_PARALLEL)
    total = StorageStats(histogram={label: 0 for _, label in _BUCKETS} | {_TOP_BUCKET: 0})
    for part in results:
        if isinstance(part, BaseException):
            raise part
        total.sessions += part.sessions
        total.expired += part.expired
        total.bytes += part.bytes
        total.overflowed += part.overflowed
        for label, count in part.histogram.items():
            total.histogram[label] += count
    return total


def _stats_partition(pk: str, now: dt.datetime) -> Op[StorageStats]:
    stats = StorageStats(histogram={label: 0 for _, label in _BUCKETS} | {_TOP_BUCKET: 0})
    token: Any = None
    while True:
        rows, token = yield QueryPage(_PARTITION, {"pk": pk}, _STATS_COLUMNS, MAX_QUERY_PAGE,
                                      token)
        for row in rows:
            e = row.entity
            expires = e.get(COL_EXPIRES)
            size = int(e.get(COL_SIZE) or 0)
            stats.sessions += 1
                # A logout's tombstone counts as expired: the sweeper removes it.
            stats.expired += (not isinstance(expires, dt.datetime) or not now < expires
                              or bool(e.get(COL_DELETED)))
            stats.bytes += size
            stats.overflowed += bool(e.get(COL_BLOB))
            stats.histogram[_bucket(size)] += 1
        if token is None:
            return stats


def _bucket(size: int) -> str:
    return next((label for bound, label in _BUCKETS if size < bound), _TOP_BUCKET)


# -- inspect -----------------------------------------------------------------------


def inspect(rules: Rules, session_id: object, *,
            show_data: bool = False) -> Op[dict[str, Any] | None]:
    """Describe one session, expired or not, without refreshing it; None if absent.

    An invalid id yields no effect. Only the row key's prefix identifies the
    session in the result; its data is decoded only with ``show_data``.
    """
    if not isinstance(session_id, str) or not is_valid_session_id(session_id):
        return None
    pk, rk = rules.keys(session_id)
    info: dict[str, Any] = {}
    for _ in range(MAX_POINTER_REREADS):
        row = yield ReadEntity(pk, rk, None if show_data else _META_COLUMNS)
        if row is None:
            return None
        info = _describe(rules, pk, rk, row.entity)
        if not show_data:
            return info
        try:
            entries = yield from _load_entries(rules, row)
            if entries is None:
                continue  # its blob was replaced meanwhile: re-read the row
            info["data"] = dict(rules.session_from(session_id, row.entity, row.etag, entries))
        except SessionDecodeError as exc:
            info["data_error"] = str(exc)
        return info
    info["data_error"] = "the overflow blob kept being replaced; try again"
    return info


def _describe(rules: Rules, pk: str, rk: str, entity: Mapping[str, Any]) -> dict[str, Any]:
    pointer = rules.pointer_of(entity)
    lock = {c: entity[c] for c in LOCK_COLUMNS if entity.get(c) not in (None, "")}
    return {
        "row_key_prefix": log_id(rk),
        "partition_key": pk,
        "created_at": entity.get(COL_CREATED),
        "expires_at": entity.get(COL_EXPIRES),
        "absolute_expires_at": entity.get(COL_ABSOLUTE),
        "expired": not rules.is_live(entity, rules.now()),
        "size": entity.get(COL_SIZE),
        "codec": entity.get(COL_CODEC),
        "format_version": entity.get(COL_VERSION),
        "chunks": entity.get(COL_CHUNKS),
        "overflow": None if pointer is None else {
            "blob_name": pointer.name, "blob_size": pointer.size, "blob_digest": pointer.digest},
        "lock": lock or None,
    }
