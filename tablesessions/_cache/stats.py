"""``TableCache.storage_stats``: count a namespace's entries without reading a value.

One query per partition (16 per namespace, plus one per further 1,000 rows),
selecting only the keys, the expiry, the size and the blob pointer: no payload
column is transferred, nothing is decoded, refreshed or changed.
"""

from __future__ import annotations

from typing import Any

from .._record.effects import Op, Parallel, QueryPage
from .._record.keys import PARTITION_SUFFIXES
from .._record.limits import MAX_QUERY_PAGE
from .._record.rules import COL_BLOB, COL_EXPIRES, COL_SIZE
from .._record.sweep import _PARTITION
from ..models import CacheStats
from .rules import COL_INT, CacheRules

#: Partitions scanned at once (as the session store's ``storage_stats``).
STATS_PARALLEL = 4
_COLUMNS = ("PartitionKey", "RowKey", COL_EXPIRES, COL_SIZE, COL_BLOB, COL_INT)


def storage_stats(rules: CacheRules) -> Op[CacheStats]:
    """Count the namespace's entries, expired ones, ones that never expire, stored
    bytes and overflowed ones. :raises: the first storage error."""
    now = rules.now()
    app = rules.config.app_name
    parts = yield Parallel(tuple(_partition(rules, f"{app}-{s}", now)
                                 for s in PARTITION_SUFFIXES), STATS_PARALLEL)
    total = CacheStats()
    for part in parts:
        if isinstance(part, BaseException):
            raise part
        total.add(part)
    return total


def _partition(rules: CacheRules, pk: str, now: Any) -> Op[CacheStats]:
    stats = CacheStats()
    token: Any = None
    while True:
        rows, token = yield QueryPage(_PARTITION, {"pk": pk}, _COLUMNS, MAX_QUERY_PAGE, token)
        for row in rows:
            e = row.entity
            stats.entries += 1
            stats.expired += not rules.is_live(e, now)
            stats.no_expiry += e.get(COL_EXPIRES) is None
            stats.bytes += int(e.get(COL_SIZE) or 0)
            stats.overflowed += bool(e.get(COL_BLOB))
            stats.native_ints += e.get(COL_INT) is not None
        if token is None:
            return stats
