"""The synchronous :class:`TableCache`: a key-value cache on Azure Table Storage,
large values in Blob Storage, on the same record layer as the session store.

``ttl`` everywhere: :data:`DEFAULT` (the cache's ``default_ttl``), a
``datetime.timedelta``, seconds as an ``int`` or ``float`` (> 0), or None (never
expires). See docs/cache.md for the semantics and the storage calls of each method.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._cache import many as _many
from ._cache import ops as _ops
from ._cache import stats as _stats
from ._cache.base import DEFAULT_TTL_SECONDS, CacheBase, make_cache_config
from ._cache.rules import DEFAULT, MAX_KEY_LENGTH, MISSING
from ._record import sweep as _sweep
from ._record.sync_face import SyncFace, connection_string_clients, endpoint_clients
from .config import TimeoutLike
from .models import CacheStats, SweepReport

__all__ = ["DEFAULT", "MAX_KEY_LENGTH", "TableCache"]


class TableCache(CacheBase, SyncFace):
    """A shared key-value cache in Azure Table Storage (values over the entity
    budget in Blob Storage), for apps on several instances.

    Build it like :class:`~tablesessions.SessionStore`: :meth:`from_connection_string`
    (Azurite, account keys), the constructor with endpoints and a token
    credential, :meth:`from_account` or :meth:`from_env`. Thread-safe: share one
    per process, and :meth:`close` it (or use ``with``).

    Keys: any ``str`` up to :data:`MAX_KEY_LENGTH` characters (hashed: any
    character is fine). Values: what :mod:`tablesessions.serialization` encodes
    (str, int, float, bool, None, list, dict, datetime, date, UUID, Decimal,
    tuple, bytes; never pickle); ``bytes`` are stored as they are; an ``int``
    (not a bool) within int64 is stored natively, so :meth:`incr` is 2 calls.

    Storage failures propagate as ``azure.core.exceptions.*`` unless
    ``on_storage_error="empty"`` (reads miss, writes are dropped and counted in
    ``stats``; ``incr``, ``clear`` and ``sweep`` always raise). A missing table
    or container raises :class:`~tablesessions.StorageNotFoundError`.
    """

    def __init__(
        self,
        table_endpoint: str,
        blob_endpoint: str,
        *,
        credential: Any = None,
        table_name: str = "cache",
        container_name: str = "cache-overflow",
        app_name: str = "default",
        default_ttl: TimeoutLike | None = DEFAULT_TTL_SECONDS,
        **options: Any,
    ) -> None:
        """Connect with a token credential (default: ``DefaultAzureCredential()``,
        closed with the cache).

        :param app_name: the namespace (several caches can share one table).
        :param default_ttl: the TTL of entries written with ``ttl=DEFAULT``; None:
            they never expire.
        :param options: any other :class:`~tablesessions.config.CacheConfig` field
            (``sliding``, ``max_value_bytes``, ``key_ring``, ``retry``, ...).
        :raises TypeError: for an unknown option. :raises ValueError: for a bad value.
        """
        config = make_cache_config(table_name, container_name, app_name, default_ttl, options)
        CacheBase.__init__(self, config)
        self._attach(*endpoint_clients(config, table_endpoint, blob_endpoint, credential))

    @classmethod
    def from_connection_string(
        cls,
        conn_str: str,
        *,
        table_name: str = "cache",
        container_name: str = "cache-overflow",
        app_name: str = "default",
        default_ttl: TimeoutLike | None = DEFAULT_TTL_SECONDS,
        **options: Any,
    ) -> TableCache:
        """Connect with a storage connection string (Azurite, or account-key auth)."""
        config = make_cache_config(table_name, container_name, app_name, default_ttl, options)
        cache = cls.__new__(cls)
        CacheBase.__init__(cache, config)
        cache._attach(*connection_string_clients(config, conn_str), None)
        return cache

    # -- public API ----------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        """Return the live value of ``key``, or ``default``. 1 call (2 for an
        overflowed value; one more when a sliding entry is extended).

        A stored value that fails decryption or its integrity check is a miss,
        logged on ``tablesessions.security`` (no data, no raw key).
        """
        value = self._run(_ops.get(self._rules, key), kind="read", default=MISSING)
        return default if value is MISSING else value

    def set(self, key: str, value: Any, ttl: Any = DEFAULT) -> None:
        """Store ``value`` (insert or replace: last writer wins). 1 call (2 when it
        overflows to a blob).

        :raises TypeError: for a value the codec refuses (nothing is written).
        :raises CacheValueTooLargeError: over ``max_value_bytes`` (nothing is written).
        """
        self._run(_ops.set_(self._rules, key, value, ttl), kind="write")

    def add(self, key: str, value: Any, ttl: Any = DEFAULT) -> bool:
        """Store ``value`` only if ``key`` has no live entry; atomic. 1 call.

        :returns: True when this call stored it.
        """
        return bool(self._run(_ops.add(self._rules, key, value, ttl), kind="write",
                              default=False))

    def delete(self, key: str) -> bool:
        """Delete ``key``'s entry. 1 call.

        :returns: True when there was a row (live, or expired and not yet swept).
        """
        return bool(self._run(_ops.delete(self._rules, key), kind="write", default=False))

    def touch(self, key: str, ttl: Any = DEFAULT) -> bool:
        """Give a live entry a new TTL (counted from now). 2 calls.

        :returns: False when there is no live entry.
        """
        return bool(self._run(_ops.touch(self._rules, key, ttl), kind="write", default=False))

    def has_key(self, key: str) -> bool:
        """Whether ``key`` has a live entry (reads no payload). 1 call."""
        return bool(self._run(_ops.has_key(self._rules, key), kind="read", default=False))

    def incr(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` to an int entry atomically and return the new value.

        2 calls without contention (read, conditional replace); exact under
        concurrency (conflicts back off and retry within the deadline). The
        entry keeps its expiry.

        :raises ValueError: when ``key`` has no live entry.
        :raises TypeError: when the value (or ``delta``) is not an int.
        :raises CacheConflictError: when the deadline runs out under contention.
        """
        return self._run(_ops.incr(self._rules, key, delta))

    def decr(self, key: str, delta: int = 1) -> int:
        """``incr(key, -delta)``."""
        return self._run(_ops.decr(self._rules, key, delta))

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Return ``{key: value}`` for the keys with a live entry: one query per
        partition per 14 keys, the partitions in parallel."""
        return self._run(_many.get_many(self._rules, keys), kind="read", default={})

    def set_many(self, mapping: Mapping[str, Any], ttl: Any = DEFAULT) -> list[str]:
        """Store every entry: one entity group transaction per partition touched
        (per 100 entries), in parallel. Every key and value is checked before
        the first write.

        :returns: the keys that failed (empty on success).
        """
        return self._run(_many.set_many(self._rules, mapping, ttl), kind="write",
                         default=list(mapping))

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete every listed entry: per partition a query, then one transaction.

        :returns: how many rows there were.
        """
        return self._run(_many.delete_many(self._rules, keys), kind="write", default=0)

    def get_or_set(self, key: str, default: Any | Callable[[], Any],
                   ttl: Any = DEFAULT) -> Any:
        """Return ``key``'s value; on a miss, ``add`` ``default`` (called first when
        callable) and return it, or what a concurrent writer added first."""
        failed = object()
        value = self._run(_ops.get_or_set(self._rules, key, default, ttl), kind="read",
                          default=failed)
        if value is failed:
            return default() if callable(default) else default
        return value

    def clear(self) -> int:
        """Delete every entry of this cache's namespace (``app_name``) and its blobs.

        :returns: how many rows were deleted.
        """
        return self._run(_many.clear(self._rules), background=True)

    def sweep(self, *, dry_run: bool = False, time_budget: dt.timedelta | None = None,
              orphan_grace: dt.timedelta = dt.timedelta(hours=1),
              max_parallel: int = 4) -> SweepReport:
        """Delete expired entries and their blobs, and orphan blobs older than
        ``orphan_grace``: the session store's sweeper, on this namespace.
        Entries without expiry are never swept."""
        return self._run(_sweep.sweep(self._rules, dry_run=dry_run, time_budget=time_budget,
                                      orphan_grace=orphan_grace, max_parallel=max_parallel),
                         background=True)

    def storage_stats(self) -> CacheStats:
        """Count this namespace's entries, expired ones, bytes and overflowed ones
        (what ``tablesessions cache stats`` prints). Reads no value: one query per
        partition (16, plus one per further 1,000 rows), keys and four small columns."""
        return self._run(_stats.storage_stats(self._rules), background=True)
