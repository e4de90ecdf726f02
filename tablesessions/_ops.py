"""The store's operations as sans-I/O generators over ``_effects``.

Each function yields storage effects and returns the operation's result. The
sync and async faces drive the same generator, so the protocols here (the ETag
merge loop, the ambiguous-write checks, the overflow write order) exist once.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from ._core import (
    COL_DELETED,
    COL_LOCK_ID,
    COL_TOKEN,
    LOCK_COLUMNS,
    POINTER_COLUMNS,
    Rules,
    new_write_token,
    preserved_columns,
)
from ._effects import (
    CreateStorage,
    DeleteBlob,
    InsertEntity,
    Op,
    PutBlob,
    ReadBlob,
    ReadEntity,
    Row,
    UpdateEntity,
)
from ._ids import is_valid_session_id, log_id, new_session_id, row_key_for
from ._payload import EncodedKey
from ._users import COL_USER, index_session, is_revoked
from .exceptions import SessionConflictError, SessionDecodeError, SessionTamperedError
from .models import PENDING, BlobPointer, Session

logger = logging.getLogger("tablesessions.store")
security_logger = logging.getLogger("tablesessions.security")

#: How often a reader re-reads the entity when the blob it points to was just
#: replaced and deleted by a concurrent save, before calling it corruption.
MAX_POINTER_REREADS = 3


def create_storage() -> Op[None]:
    yield CreateStorage()


def get(rules: Rules, session_id: object) -> Op[Session | None]:
    """Load a live session, or None. An invalid id never reaches storage."""
    if not isinstance(session_id, str) or not is_valid_session_id(session_id):
        return None
    pk, rk = rules.keys(session_id)
    for _ in range(MAX_POINTER_REREADS):
        row = yield ReadEntity(pk, rk)
        if row is None or not rules.is_live(row.entity, rules.now()):
            return None
        if (yield from is_revoked(rules, row.entity)):
            return None
        try:
            entries = yield from _load_entries(rules, row)
        except SessionDecodeError as exc:
            # Unencrypted, a corrupt payload is the documented SessionDecodeError.
            # Encrypted, any integrity failure is treated as tampering.
            if not (isinstance(exc, SessionTamperedError) or rules.config.key_ring):
                raise
            # Once per occurrence, without data or the raw id: an operator can
            # correlate the row key prefix with the table.
            security_logger.warning("session %s: stored payload rejected (%s); treated as no "
                                    "session", log_id(rk), exc)
            return None
        if entries is not None:
            return rules.session_from(session_id, row.entity, row.etag, entries)
    raise SessionDecodeError("overflow blob kept disappearing; the pointer may be dangling")


def _load_entries(rules: Rules, row: Row) -> Op[dict[str, EncodedKey] | None]:
    """The row's payload entries, or None when its blob was replaced meanwhile."""
    pointer = rules.pointer_of(row.entity)
    if pointer is None:
        return rules.entries_of(row.entity, rules.inline_bytes(row.entity))
    try:
        data = yield ReadBlob(pointer.name, pointer.size)
    except ResourceNotFoundError:
        return None
    rules.verify_blob(pointer, data, row.entity)
    return rules.entries_of(row.entity, data)


def save(rules: Rules, session: Session) -> Op[None]:
    """Write what changed: insert, conditional replace with merge, refresh, or nothing."""
    if session._gone:
        return  # deleted (here or by another request): never resurrected
    if session.is_new:
        yield from _insert(rules, session)
        return
    entries = rules.encode_all(session)
    changed = rules.changed_keys(session, entries)
    if changed or session._force:
        yield from _update(rules, session, entries, changed)
        return
    now = rules.now()
    if rules.due_for_refresh(session, now):
        yield from _refresh(rules, session, rules.next_expiry(session, now))


def _insert(rules: Rules, session: Session) -> Op[None]:
    pk, rk = rules.keys(session.id)
    entries = rules.encode_all(session)
    stored, codec = rules.pack(entries, rk)
    pointer = yield from _upload_if_overflowing(rules, rk, stored)
    token, expires = new_write_token(), rules.next_expiry(session, rules.now())
    session._tokens.add(token)
    entity = rules.entity(pk, rk, session, stored, codec, pointer, token, expires)
    try:
        etag = yield InsertEntity(entity)
    except ResourceExistsError:
        # 409: a retried insert whose first attempt landed (our token), or an
        # earlier save() of this same object that failed after landing.
        row = yield ReadEntity(pk, rk, (COL_TOKEN, COL_DELETED))
        if row is not None and row.entity.get(COL_DELETED):
            _forget(session, "deleted before its first save was acknowledged")
            return
        if row is None or row.entity.get(COL_TOKEN) not in session._tokens:
            raise SessionConflictError("a session with this id already exists") from None
        etag = row.etag
        if row.entity.get(COL_TOKEN) != token:  # an earlier attempt's content: write ours
            etag = yield UpdateEntity(entity, etag, replace=True)
    rules.mark_saved(session, etag, entries, pointer, expires)


def _upload_if_overflowing(rules: Rules, row_key: str, stored: bytes) -> Op[BlobPointer | None]:
    if not rules.overflows(stored):
        return None
    pointer = rules.new_pointer(row_key, stored)
    # A 409 can only be our own earlier attempt: the name is unguessable, never reused.
    with contextlib.suppress(ResourceExistsError):
        yield PutBlob(pointer.name, stored)
    return pointer


def _delete_blob_quietly(name: str) -> Op[None]:
    """Best effort: a blob left behind is an orphan the sweeper removes."""
    try:
        yield DeleteBlob(name)
    except Exception as exc:
        logger.info("could not delete an old overflow blob (%s); the sweeper will",
                    type(exc).__name__)


def _update(rules: Rules, session: Session, entries: dict[str, EncodedKey],
            changed: set[str], require_lock: str | None = None) -> Op[None]:
    """Conditional replace; on a 412, re-read and merge (bounded).

    ``require_lock``: the write releases this lease lock; if another holder
    took it meanwhile, raise instead of merging.
    """
    assert session._stored is not None
    pk, rk = rules.keys(session.id)
    config = rules.config
    etag, old_pointer = session._stored.etag, session._stored.pointer
    base = session._stored.entries
    for _ in range(config.max_merge_attempts):
        stored, codec = rules.pack(entries, rk)
        pointer = yield from _upload_if_overflowing(rules, rk, stored)
        token, expires = new_write_token(), rules.next_expiry(session, rules.now())
        session._tokens.add(token)
        entity = rules.entity(pk, rk, session, stored, codec, pointer, token, expires)
        try:
            # Conditional in every mode: If-Match * would overwrite a logout's tombstone.
            new_etag = yield UpdateEntity(entity, etag, replace=True)
        except ResourceNotFoundError:
            # Deleted meanwhile (a logout elsewhere): a stale save never resurrects it.
            if pointer is not None:
                yield from _delete_blob_quietly(pointer.name)
            _forget(session, "deleted by another request; not recreated")
            return
        except ResourceModifiedError:
            fresh = yield ReadEntity(pk, rk)
            landed = fresh.entity.get(COL_TOKEN) if fresh is not None else None
            if fresh is not None and landed == token:
                new_etag = fresh.etag  # our retried write had landed: not a conflict
            elif fresh is not None and landed in session._tokens and rules.is_live(
                    fresh.entity, rules.now()):
                # An earlier save() of this object landed after it had reported a
                # failure: the row is ours, so write the current content over it.
                etag, old_pointer = fresh.etag, rules.pointer_of(fresh.entity)
                if pointer is not None and pointer != old_pointer:
                    yield from _delete_blob_quietly(pointer.name)
                continue
            else:
                if pointer is not None:
                    yield from _delete_blob_quietly(pointer.name)  # never referenced
                if fresh is None or not rules.is_live(fresh.entity, rules.now()):
                    _forget(session, "deleted or expired meanwhile; not recreated")
                    return
                if require_lock is not None and fresh.entity.get(COL_LOCK_ID) != require_lock:
                    raise SessionConflictError("the lock's lease expired and another request "
                                               "took it; changes not saved") from None
                if config.concurrency == "strict":
                    raise SessionConflictError("the session was changed by another request") \
                        from None
                if config.concurrency == "overwrite":
                    # Last writer wins for the whole session: no merge, just the new ETag.
                    etag, old_pointer = fresh.etag, rules.pointer_of(fresh.entity)
                    continue
                fresh_entries = yield from _load_entries(rules, fresh)
                if fresh_entries is None:
                    continue  # its blob was replaced again: re-read next round
                entries = rules.merge(fresh_entries, base, entries, changed, config.key_conflict)
                base = fresh_entries
                _adopt(session, entries, fresh_entries, changed)
                columns = preserved_columns(fresh.entity)
                if require_lock is not None:
                    columns = {k: v for k, v in columns.items() if k not in LOCK_COLUMNS}
                session._columns = columns
                etag, old_pointer = fresh.etag, rules.pointer_of(fresh.entity)
                continue
        if old_pointer is not None and old_pointer != pointer:
            yield from _delete_blob_quietly(old_pointer.name)
        rules.mark_saved(session, new_etag, entries, pointer, expires)
        return
    raise SessionConflictError(f"gave up merging after {config.max_merge_attempts} attempts")


def _adopt(session: Session, merged: dict[str, EncodedKey], fresh: dict[str, EncodedKey],
           changed: set[str]) -> None:
    """Make the in-memory session show the merged state: our keys, their others
    (left pending, decoded from the fresh copy on first access)."""
    assert session._stored is not None
    data = {k: session._data[k] if k in changed else PENDING for k in merged}
    session._data.clear()
    session._data.update(data)
    session._stored.entries = fresh
    session._read -= {k for k in session._read if k not in changed}


def _forget(session: Session, why: str) -> None:
    logger.info("session %s %s", log_id(row_key_for(session.id)), why)
    session._stored = None
    session._changed.clear()
    session._force = False
    session._gone = True


def _refresh(rules: Rules, session: Session, expires: Any) -> Op[None]:
    assert session._stored is not None
    pk, rk = rules.keys(session.id)
    try:
        # If-Match * and only the expiry column: idempotent under retries, and it
        # can neither rewrite the data nor recreate a deleted session.
        etag = yield UpdateEntity(rules.refresh_entity(pk, rk, expires), None, replace=False)
    except ResourceNotFoundError:
        _forget(session, "deleted by another request; not refreshed")
        return
    session._stored.etag = etag
    session._stored.expires_at = expires
    session.expires_at = expires


def delete(rules: Rules, target: Session | object) -> Op[None]:
    """Delete a session and its blob. Idempotent; an invalid id never reaches storage.

    The row is replaced by a short-lived tombstone rather than removed: an
    insert held up in the network and arriving after the logout then gets 409
    instead of bringing the session back. The sweeper removes tombstones.
    Unconditional (If-Match *): a logout wins over any concurrent save. A blob
    that a racing save created in between becomes an orphan for the sweeper.
    """
    if isinstance(target, Session):
        if target._stored is None:
            return
        pointer = target._stored.pointer
        pk, rk = rules.keys(target.id)
    else:
        if not isinstance(target, str) or not is_valid_session_id(target):
            return
        pk, rk = rules.keys(target)
        row = yield ReadEntity(pk, rk, (*POINTER_COLUMNS, COL_DELETED))
        if row is None or row.entity.get(COL_DELETED):
            return
        pointer = rules.pointer_of(row.entity)
    with contextlib.suppress(ResourceNotFoundError):  # already gone (swept)
        yield UpdateEntity(rules.tombstone(pk, rk), None, replace=True)
    if isinstance(target, Session):
        # Only now: if the write failed, the caller can retry with the same object.
        _forget(target, "deleted")
    if pointer is not None:
        yield from _delete_blob_quietly(pointer.name)


def regenerate(rules: Rules, session: Session) -> Op[Session]:
    """Store the same data under a fresh id, then delete the old record (fixation defence).

    The creation time and absolute deadline carry over, so regenerating can't
    extend a session's lifetime.
    """
    fresh = Session(new_session_id(), dict(session._materialize()),
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    absolute_expires_at=session.absolute_expires_at,
                    columns={k: v for k, v in session._columns.items()
                             if k not in LOCK_COLUMNS})
    yield from _insert(rules, fresh)
    if fresh._columns.get(COL_USER):
        yield from index_session(rules, fresh, str(fresh._columns[COL_USER]))
    yield from delete(rules, session)
    return fresh


def new(rules: Rules) -> Session:
    return rules.new_session(new_session_id())
