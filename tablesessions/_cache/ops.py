"""The cache's single-key operations as sans-I/O generators over ``_record.effects``.

Storage calls per operation (no contention, inline values; a blob adds one
call to a read or a write of an overflowed value): ``get`` 1 (2 when a sliding
entry is due for extension), ``set`` 1, ``add`` 1, ``delete`` 1, ``has_key`` 1,
``touch`` 2, ``incr``/``decr`` 2. The sync and async ``TableCache`` drive these.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from .._record import blobs
from .._record.contention import Rounds
from .._record.effects import (
    DeleteBlob,
    DeleteEntity,
    InsertEntity,
    Op,
    PutBlob,
    ReadEntity,
    Row,
    UpdateEntity,
    UpsertEntity,
)
from .._record.keys import log_id
from .._record.rules import COL_BLOB_DIGEST, COL_EXPIRES, COL_TOKEN, new_write_token
from ..exceptions import CacheConflictError, SessionConflictError, SessionDecodeError
from .rules import DEFAULT, EXPIRY_COLUMNS, MISSING, POINTER_COLUMNS, CacheRules, Prepared

logger = logging.getLogger("tablesessions.cache")
security_logger = logging.getLogger("tablesessions.security")

#: How often a reader re-reads a row whose blob vanished (replaced and removed
#: meanwhile) before treating the entry as a miss.
MAX_POINTER_REREADS = 3
_REREAD: Any = object()


def backoff(rounds: Rounds, what: str) -> Op[None]:
    """The next conflict round (jittered, inside the deadline), in cache terms.

    :raises CacheConflictError: when the deadline (or ``max_merge_attempts``) is spent.
    """
    try:
        yield from rounds.next()
    except SessionConflictError:
        raise CacheConflictError(f"{what}: the entry kept changing under concurrent writers "
                                 f"until the operation's deadline ran out") from None


def upload(rules: CacheRules, prepared: Prepared) -> Op[Prepared]:
    """Put an overflowing value's blob, before the row that points to it; return
    ``prepared`` with the pointer's digest: the upload's ETag (a read then checks
    it with If-Match, no pass over the bytes), or, when the answer was lost or
    the cache encrypts, what :meth:`~RecordRules.uploaded_pointer` binds instead."""
    if prepared.blob is None:
        return prepared
    name, stored = prepared.blob
    etag: str | None = None
    # A 409 can only be our own earlier attempt: the name is unguessable, never reused.
    with contextlib.suppress(ResourceExistsError):
        etag = yield PutBlob(name, stored)
    pointer = rules.uploaded_pointer(name, stored, etag)
    return Prepared({**prepared.columns, COL_BLOB_DIGEST: pointer.digest}, prepared.blob)


def delete_blob_quietly(name: str | None) -> Op[None]:
    """Best effort: a blob left behind is an orphan the sweeper removes."""
    if name is None:
        return
    try:
        yield DeleteBlob(name)
    except Exception as exc:
        logger.info("could not delete an overflow blob (%s); the sweeper will",
                    type(exc).__name__)


# -- reads ---------------------------------------------------------------------


def get(rules: CacheRules, key: object) -> Op[Any]:
    """The live value of ``key``, or ``MISSING``."""
    pk, rk = rules.keys(key)
    for _ in range(MAX_POINTER_REREADS):
        row = yield ReadEntity(pk, rk)
        value = yield from value_of(rules, row)
        if value is not _REREAD:
            return value
    logger.info("cache entry %s: its overflow blob kept disappearing; treated as a miss",
                log_id(rk))
    return MISSING


def value_of(rules: CacheRules, row: Row | None, *, slide_due: bool = True) -> Op[Any]:
    """The live value of a row read whole (``MISSING`` for none), or ``_REREAD``
    when its blob was replaced meanwhile. Slides the entry when due (unless
    ``slide_due`` is False: ``incr`` rewrites the row on this ETag itself)."""
    now = rules.now()
    if row is None or not rules.is_live(row.entity, now):
        return MISSING
    stored = None
    pointer = rules.pointer_of(row.entity)
    try:
        if pointer is not None:
            stored = yield from blobs.read(rules, pointer, row.entity)
            if stored is None:
                return _REREAD
        value = rules.value_of(row.entity, stored)
    except SessionDecodeError as exc:
        # Tampered, copied from another row, undecryptable or corrupt: a miss,
        # logged once without data or the raw key (the row key prefix lets an
        # operator find the row).
        security_logger.warning("cache entry %s: stored value rejected (%s); treated as a "
                                "miss", log_id(str(row.entity.get("RowKey"))),
                                type(exc).__name__)
        return MISSING
    if slide_due:
        yield from slide(rules, row, now)
    return value


def slide(rules: CacheRules, row: Row, now: dt.datetime) -> Op[None]:
    """Sliding expiration: extend a read entry by its TTL when less than half is
    left. One conditional merge of ``ExpiresAt``; a 412 means another writer
    set the entry meanwhile (and its expiry with it). Never fails the read."""
    until = rules.slide_to(row.entity, now)
    if until is None:
        return
    entity = {"PartitionKey": row.entity["PartitionKey"], "RowKey": row.entity["RowKey"],
              COL_EXPIRES: until}
    try:
        yield UpdateEntity(entity, row.etag, replace=False)
    except Exception as exc:
        logger.debug("cache entry %s: sliding extension skipped (%s)",
                     log_id(str(row.entity["RowKey"])), type(exc).__name__)


def has_key(rules: CacheRules, key: object) -> Op[bool]:
    pk, rk = rules.keys(key)
    row = yield ReadEntity(pk, rk, EXPIRY_COLUMNS)
    return row is not None and rules.is_live(row.entity, rules.now())


# -- writes --------------------------------------------------------------------


def set_(rules: CacheRules, key: object, value: Any, ttl: object = DEFAULT) -> Op[None]:
    """Insert or replace (last writer wins): blob first when the value overflows,
    then one upsert. The replaced row's blob, unknown without a read, is left to
    the sweeper's orphan pass."""
    pk, rk = rules.keys(key)
    expiry = rules.ttl(ttl)
    prepared = rules.prepare(rk, value)  # raises before any write
    prepared = yield from upload(rules, prepared)
    yield UpsertEntity(rules.entity(pk, rk, prepared, rules.expiry_columns(expiry, rules.now())))


def add(rules: CacheRules, key: object, value: Any, ttl: object = DEFAULT) -> Op[bool]:
    """Store only if there is no live entry; atomic. True when this call stored it.

    Insert (1 call). On 409: read the row; our own token means a retried insert
    had landed; a live entry means False; an expired one is replaced
    conditionally on its ETag (a concurrent writer wins, and we look again).
    """
    pk, rk = rules.keys(key)
    expiry = rules.ttl(ttl)
    prepared = rules.prepare(rk, value)
    prepared = yield from upload(rules, prepared)
    token = new_write_token()
    rounds = Rounds(rules, "add")
    while True:
        entity = rules.entity(pk, rk, prepared, rules.expiry_columns(expiry, rules.now()), token)
        try:
            yield InsertEntity(entity)
            return True
        except ResourceExistsError:
            pass
        row = yield ReadEntity(pk, rk, POINTER_COLUMNS)
        if row is None:  # deleted meanwhile: insert again
            yield from backoff(rounds, "add")
            continue
        if row.entity.get(COL_TOKEN) == token:
            return True  # our retried insert (or replace) had landed
        if rules.is_live(row.entity, rules.now()):
            yield from delete_blob_quietly(prepared.pointer_name)  # never referenced
            return False
        try:
            yield UpdateEntity(entity, row.etag, replace=True)
        except (ResourceModifiedError, ResourceNotFoundError):
            yield from backoff(rounds, "add")  # someone wrote or removed it: look again
            continue
        old = rules.pointer_of(row.entity)
        yield from delete_blob_quietly(None if old is None else old.name)
        return True


def delete(rules: CacheRules, key: object) -> Op[bool]:
    """Delete the row (1 call): True when there was one (live or expired, not yet
    swept). Its blob, unknown without a read, is left to the orphan pass."""
    pk, rk = rules.keys(key)
    deleted = yield DeleteEntity(pk, rk)
    return bool(deleted)


def touch(rules: CacheRules, key: object, ttl: object = DEFAULT) -> Op[bool]:
    """Give a live entry a new TTL: read + a conditional write (2 calls).

    A new TTL is a merge of the expiry columns; "never expires" replaces the
    row without them (a merge cannot remove a column), so that read is whole.
    """
    pk, rk = rules.keys(key)
    expiry = rules.ttl(ttl)
    rounds = Rounds(rules, "touch")
    while True:
        row = yield ReadEntity(pk, rk, None if expiry is None else EXPIRY_COLUMNS)
        now = rules.now()
        if row is None or not rules.is_live(row.entity, now):
            return False
        if expiry is None:
            entity, replace = rules.without_expiry(row.entity), True
        else:
            entity = {"PartitionKey": pk, "RowKey": rk, **rules.expiry_columns(expiry, now)}
            replace = False
        try:
            yield UpdateEntity(entity, row.etag, replace=replace)
            return True
        except ResourceNotFoundError:
            return False
        except ResourceModifiedError:
            # Another write (or our own landed retry: touching again is harmless).
            yield from backoff(rounds, "touch")


def decr(rules: CacheRules, key: object, delta: int) -> Op[int]:
    """``incr`` by ``-delta``. :raises TypeError: when ``delta`` is not an int."""
    if type(delta) is not int:
        raise TypeError(f"delta must be an int, not {type(delta).__name__}")
    return (yield from incr(rules, key, -delta))


def incr(rules: CacheRules, key: object, delta: int) -> Op[int]:
    """Add ``delta`` atomically; return the new value (2 calls without contention).

    Read, then replace conditionally on the ETag; on 412, back off, re-read and
    add again, within the deadline. A retried write whose first attempt landed
    finds its token among the row's ``RecentTokens`` and is not counted twice.
    A native ``IntValue`` row is never decoded; a payload holding an int (past
    int64, or in an encrypting cache) is, and the result is written back the same way.

    :raises ValueError: when there is no live entry.
    :raises TypeError: when the value is not an int, or ``delta`` is not one.
    :raises CacheConflictError: when the deadline runs out under contention.
    """
    if type(delta) is not int:
        raise TypeError(f"delta must be an int, not {type(delta).__name__}")
    pk, rk = rules.keys(key)
    token = new_write_token()
    rounds = Rounds(rules, "incr")
    written: int | None = None
    pointer_written: str | None = None
    row: Row | None = yield ReadEntity(pk, rk)
    while True:
        if row is not None and written is not None and token in rules.recent_tokens(row.entity):
            break  # our retried write had landed
        if pointer_written is not None:
            yield from delete_blob_quietly(pointer_written)  # that write never landed
            pointer_written = None
        if row is None or not rules.is_live(row.entity, rules.now()):
            raise ValueError("incr: no live cache entry for this key")
        current = yield from _int_of(rules, row)
        written = current + delta
        prepared = rules.prepare(rk, written)
        prepared = yield from upload(rules, prepared)
        pointer_written = prepared.pointer_name
        entity = rules.entity(pk, rk, prepared, rules.kept_expiry(row.entity))
        entity.update(rules.counter_columns(row.entity, token))
        try:
            yield UpdateEntity(entity, row.etag, replace=True)
        except ResourceNotFoundError:
            yield from delete_blob_quietly(pointer_written)
            raise ValueError("incr: the cache entry was deleted meanwhile") from None
        except ResourceModifiedError:
            yield from backoff(rounds, "incr")
            row = yield ReadEntity(pk, rk)
            continue
        old = rules.pointer_of(row.entity)
        yield from delete_blob_quietly(None if old is None else old.name)
        break
    return written


def _int_of(rules: CacheRules, row: Row) -> Op[int]:
    native = rules.native_int(row.entity)
    if native is not None:
        return native
    value = yield from value_of(rules, row, slide_due=False)
    if value is MISSING or value is _REREAD:
        raise ValueError("incr: no readable cache entry for this key")
    if type(value) is not int:
        raise TypeError(f"incr: the cached value is a {type(value).__name__}, not an int")
    return value


def get_or_set(rules: CacheRules, key: object, default: Any | Callable[[], Any],
               ttl: object = DEFAULT) -> Op[Any]:
    """``get``; on a miss, ``add`` the default (called first if callable) and
    return it, or, when another writer added first, what it stored."""
    value = yield from get(rules, key)
    if value is not MISSING:
        return value
    if callable(default):
        default = default()
    if (yield from add(rules, key, default, ttl)):
        return default
    value = yield from get(rules, key)
    return default if value is MISSING else value
