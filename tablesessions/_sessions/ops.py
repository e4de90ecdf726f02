"""The store's operations as sans-I/O generators over ``_effects``.

Each function yields storage effects and returns the operation's result. The
sync and async faces drive the same generator, so the protocols here (the ETag
merge loop, the ambiguous-write checks, the overflow write order) exist once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Mapping
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
    InsertEntity,
    Op,
    ReadEntity,
    Row,
    UpdateEntity,
)
from .._record.keys import log_id
from .._record.payload import EncodedKey
from .._record.rules import COL_BLOB, COL_EXPIRES, COL_TOKEN, new_write_token
from ..exceptions import SessionConflictError, SessionDecodeError, SessionTamperedError
from ..models import PENDING, BlobPointer, Session
from .ids import is_valid_session_id, new_session_id, row_key_for
from .rules import (
    COL_ABSOLUTE,
    COL_DELETED,
    COL_LOCK_ID,
    LOCK_COLUMNS,
    POINTER_COLUMNS,
    Rules,
    preserved_columns,
)
from .users import COL_USER, USER_COLUMNS, index_session, is_revoked

logger = logging.getLogger("tablesessions.store")
security_logger = logging.getLogger("tablesessions.security")

#: How often a reader re-reads the entity when the blob it points to was just
#: replaced and deleted by a concurrent save, before calling it corruption.
MAX_POINTER_REREADS = 3


def get(rules: Rules, session_id: object) -> Op[Session | None]:
    """Load a live session, or None. An invalid id never reaches storage."""
    if not isinstance(session_id, str) or not is_valid_session_id(session_id):
        return None
    pk, rk = rules.keys(session_id)
    for _ in range(MAX_POINTER_REREADS):
        row = yield ReadEntity(pk, rk)
        done, session = yield from _session_of(rules, session_id, row)
        if done:
            return session
    raise SessionDecodeError("overflow blob kept disappearing; the pointer may be dangling")


def _session_of(rules: Rules, session_id: str, row: Row | None
                ) -> Op[tuple[bool, Session | None]]:
    """(True, the live session of ``row`` or None), or (False, None) when its
    overflow blob was replaced meanwhile and the row must be read again."""
    now = rules.now()
    if row is None or not rules.is_live(row.entity, now) or not rules.within_cap(row.entity, now):
        return True, None
    if (yield from is_revoked(rules, row.entity)):
        return True, None
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
                                "session", log_id(rules.keys(session_id)[1]), exc)
        return True, None
    if entries is None:
        return False, None
    return True, rules.session_from(session_id, row.entity, row.etag, entries)


def _load_entries(rules: Rules, row: Row) -> Op[dict[str, EncodedKey] | None]:
    """The row's payload entries, or None when its blob was replaced meanwhile."""
    pointer = rules.pointer_of(row.entity)
    if pointer is None:
        return rules.entries_of(row.entity, rules.inline_bytes(row.entity))
    data = yield from blobs.read(rules, pointer, row.entity)
    if data is None:
        return None
    return rules.entries_of(row.entity, data)


# -- the write rule ---------------------------------------------------------------
# Every write to a session row is conditional on an ETag of a copy read (or
# written) live, and only while that copy is live by its own deadlines
# (``Rules.holds_live``); If-Match * is used only to write a tombstone, and the
# ETag it returns is never kept. Whenever an operation has to read the row
# back (a 412, or a held copy past its deadline), it goes through
# ``_read_live``: a missing, deleted or expired row ends the Session object for
# good (``_forget``). So no path (save, refresh, merge, overwrite, a caller's
# retry of a failed save, the lock, regenerate, update, user binding) can turn
# a tombstone, a deleted row or an expired row back into a live session.

#: What ``Rules.is_live`` needs of a row.
LIVENESS_COLUMNS = (COL_EXPIRES, COL_ABSOLUTE, COL_DELETED)


def _read_live(rules: Rules, session: Session, why: str,
               select: tuple[str, ...] | None = None) -> Op[Row | None]:
    """Re-read ``session``'s row: the row when it is live, else forget the
    session (``why`` is logged) and return None."""
    pk, rk = rules.keys(session.id)
    row: Row | None = yield ReadEntity(pk, rk, None if select is None
                                       else (*select, *LIVENESS_COLUMNS))
    if row is None or not rules.is_live(row.entity, rules.now()):
        _forget(session, why)
        return None
    return row


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


def update(rules: Rules, session_id: object, fn: Callable[[Session], object]
           ) -> Op[Session | None]:
    """``store.update``: read, apply ``fn``, write conditionally on the ETag; when
    another request changed the row meanwhile, apply ``fn`` again to the fresh
    copy that the conflict round read (backing off between rounds). Returns the
    session as saved, or None when there is no live session (``fn`` is then not
    called) or it was deleted meanwhile.
    """
    if not isinstance(session_id, str) or not is_valid_session_id(session_id):
        return None
    pk, rk = rules.keys(session_id)
    rounds = Rounds(rules, "update")
    row: Row | None = yield ReadEntity(pk, rk)
    while True:
        done, session = yield from _session_of(rules, session_id, row)
        if not done:
            yield from rounds.next()
            row = yield ReadEntity(pk, rk)  # its blob was replaced: read again
            continue
        if session is None:
            return None
        fn(session)
        entries = rules.encode_all(session)
        changed = rules.changed_keys(session, entries)
        if not (changed or session._force):
            yield from save(rules, session)  # at most the idle refresh
            return None if session._gone else session
        row = yield from _update(rules, session, entries, changed, policy="reapply",
                                 rounds=rounds)
        if row is None:
            return None if session._gone else session


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
        row = yield from _read_live(rules, session, "deleted or expired before its first save "
                                    "was acknowledged", (COL_TOKEN,))
        if row is None:
            return
        if row.entity.get(COL_TOKEN) not in session._tokens:
            raise SessionConflictError("a session with this id already exists") from None
        etag = row.etag
        if row.entity.get(COL_TOKEN) != token:  # an earlier attempt's content: write ours
            etag = yield UpdateEntity(entity, etag, replace=True)
    rules.mark_saved(session, etag, entries, pointer, expires)


def _upload_if_overflowing(rules: Rules, row_key: str, stored: bytes) -> Op[BlobPointer | None]:
    if not rules.overflows(stored):
        return None
    return (yield from blobs.upload(rules, row_key, stored))


def _delete_blob_quietly(name: str) -> Op[None]:
    """Best effort: a blob left behind is an orphan the sweeper removes."""
    try:
        yield DeleteBlob(name)
    except Exception as exc:
        logger.info("could not delete an old overflow blob (%s); the sweeper will",
                    type(exc).__name__)


def _update(rules: Rules, session: Session, entries: dict[str, EncodedKey],
            changed: set[str], require_lock: str | None = None,
            policy: str | None = None, rounds: Rounds | None = None) -> Op[Row | None]:
    """Conditional replace on the held ETag; on a 412, back off, re-read and
    resolve per ``policy`` (default: the store's ``concurrency``), until the
    write lands, the session turns out gone, or the deadline runs out.

    ``require_lock``: the write releases this lease lock; if another holder
    took it meanwhile, raise instead of merging. ``policy="reapply"``
    (``update``): when another request changed the row, return that fresh live
    row, for the caller to re-apply its change to. Otherwise returns None.
    ``rounds``: the caller's conflict rounds, when it loops itself.
    """
    assert session._stored is not None
    pk, rk = rules.keys(session.id)
    policy = policy or rules.config.concurrency
    etag, old_pointer = session._stored.etag, session._stored.pointer
    base = session._stored.entries
    rounds = rounds or Rounds(rules, "save")
    token: str | None = None
    pointer: BlobPointer | None = None
    # A held copy past its deadline names an expired row (or one someone else
    # has rewritten since): read before writing, never write on its ETag.
    conflict = not rules.holds_live(session, rules.now())
    while True:
        if conflict:
            fresh = yield from _read_live(rules, session,
                                          "deleted or expired meanwhile; not recreated")
            landed = fresh.entity.get(COL_TOKEN) if fresh is not None else None
            if fresh is not None and token is not None and landed == token:
                new_etag = fresh.etag  # our retried write had landed: not a conflict
                break
            if pointer is not None and (fresh is None or pointer != rules.pointer_of(fresh.entity)):
                yield from _delete_blob_quietly(pointer.name)  # never referenced
            pointer = None
            if fresh is None:
                return None
            if landed not in session._tokens:  # another request wrote it
                if require_lock is not None and fresh.entity.get(COL_LOCK_ID) != require_lock:
                    raise SessionConflictError("the lock's lease expired and another request "
                                               "took it; changes not saved") from None
                if policy == "strict":
                    raise SessionConflictError("the session was changed by another request") \
                        from None
                if policy == "reapply":
                    return fresh
                if policy == "merge":
                    fresh_entries = yield from _load_entries(rules, fresh)
                    if fresh_entries is None:
                        yield from rounds.next()
                        continue  # its blob was replaced again: re-read
                    entries = rules.merge(fresh_entries, base, entries, changed,
                                          rules.config.key_conflict)
                    base = fresh_entries
                    _adopt(session, entries, fresh_entries, changed)
                # "overwrite": last writer wins for the whole session; no merge.
                session._columns = _carried_columns(session, fresh.entity, require_lock)
            # Else an earlier save() of this object landed after reporting a
            # failure: the row is ours, so write the current content over it.
            etag, old_pointer = fresh.etag, rules.pointer_of(fresh.entity)
            conflict = False
        stored, codec = rules.pack(entries, rk)
        pointer = yield from _upload_if_overflowing(rules, rk, stored)
        token, expires = new_write_token(), rules.next_expiry(session, rules.now())
        session._tokens.add(token)
        entity = rules.entity(pk, rk, session, stored, codec, pointer, token, expires)
        try:
            new_etag = yield UpdateEntity(entity, etag, replace=True)
            break
        except ResourceNotFoundError:
            # Removed meanwhile (swept): a stale save never recreates it.
            if pointer is not None:
                yield from _delete_blob_quietly(pointer.name)
            _forget(session, "deleted by another request; not recreated")
            return None
        except ResourceModifiedError:
            conflict = True
            yield from rounds.next()
    if old_pointer is not None and old_pointer != pointer:
        yield from _delete_blob_quietly(old_pointer.name)
    rules.mark_saved(session, new_etag, entries, pointer, expires)
    return None


def _carried_columns(session: Session, fresh: Mapping[str, Any],
                     require_lock: str | None) -> dict[str, Any]:
    """Feature-owned columns for a write over ``fresh``: its lock columns (a lock
    taken meanwhile is kept; a releasing holder drops them) and this request's
    user binding when it has one (``bind_user`` in this request survives a merge)."""
    columns = preserved_columns(fresh)
    if require_lock is not None:
        columns = {k: v for k, v in columns.items() if k not in LOCK_COLUMNS}
    columns.update({c: session._columns[c] for c in USER_COLUMNS if c in session._columns})
    return columns


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
    # Values not yet decoded come from the stored copy that is dropped here:
    # decode them first, so that code reading the session after a logout (its
    # own, or one another request made that this save found) sees what it had,
    # not an error. One that fails to decode is dropped: the row is gone anyway.
    for key in [k for k, v in session._data.items() if v is PENDING]:
        try:
            session[key]
        except SessionDecodeError:
            del session._data[key]
    session._read.clear()
    session._stored = None
    session._changed.clear()
    session._force = False
    session._gone = True


def _refresh(rules: Rules, session: Session, expires: dt.datetime) -> Op[None]:
    """Extend the idle deadline: a merge of the expiry column, conditional on the
    held ETag (1 call). On a 412 the re-read decides: gone (forgotten), our own
    retried merge (adopted), or another request's write, which set the expiry
    itself: nothing to do, and the held ETag stays stale so that a later save of
    this object merges instead of overwriting that write."""
    stored = session._stored
    assert stored is not None
    if not rules.holds_live(session, rules.now()):
        # Live only if someone else rewrote it since our copy: nothing to refresh.
        yield from _read_live(rules, session, "expired; not refreshed", ())
        return
    pk, rk = rules.keys(session.id)
    token = new_write_token()
    session._tokens.add(token)
    try:
        etag = yield UpdateEntity(rules.refresh_entity(pk, rk, expires, token), stored.etag,
                                  replace=False)
    except ResourceNotFoundError:
        _forget(session, "deleted by another request; not refreshed")
        return
    except ResourceModifiedError:
        fresh = yield from _read_live(rules, session, "deleted or expired meanwhile; not "
                                      "refreshed", (COL_TOKEN,))
        if fresh is None or fresh.entity.get(COL_TOKEN) != token:
            return
        etag = fresh.etag  # our retried merge had landed
    session._tokens.clear()
    stored.etag = etag
    stored.expires_at = expires
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
    """Store the same data under a fresh id, then retire the old record (fixation defence).

    The creation time, absolute deadline and per-session expiry carry over, so
    regenerating can't extend a session's lifetime. The old row becomes a
    tombstone conditionally on a live ETag: if it was deleted or expired
    meanwhile (a logout in another request), the new copy is deleted too and the
    returned session ``is_deleted`` (saving it writes nothing), so a logged-out
    session never comes back under a new id.
    """
    if session._stored is not None and not rules.holds_live(session, rules.now()):
        yield from _read_live(rules, session, "expired; not regenerated", ())
    fresh = Session(new_session_id(), {} if session._gone else dict(session._materialize()),
                    created_at=session.created_at,
                    expires_at=session.expires_at,
                    absolute_expires_at=session.absolute_expires_at,
                    columns={k: v for k, v in session._columns.items()
                             if k not in LOCK_COLUMNS},
                    idle_timeout=session.idle_timeout,
                    browser_session=session.browser_session)
    fresh._absolute_request = session._absolute_request  # a pending set_expiry
    if session._gone:
        fresh._gone = True  # nothing to move: never written
        return fresh
    yield from _insert(rules, fresh)
    if fresh._columns.get(COL_USER):
        yield from index_session(rules, fresh, str(fresh._columns[COL_USER]))
    if session._stored is not None and not (yield from _retire(rules, session)):
        yield from delete(rules, fresh)  # the old one was logged out meanwhile
    return fresh


def _retire(rules: Rules, session: Session) -> Op[bool]:
    """Turn a regenerated session's old row into a tombstone, conditionally on a
    live ETag. Returns False when it was already deleted or expired."""
    assert session._stored is not None
    pk, rk = rules.keys(session.id)
    token = new_write_token()
    tombstone = {**rules.tombstone(pk, rk), COL_TOKEN: token}
    etag, pointers = session._stored.etag, {session._stored.pointer}
    rounds = Rounds(rules, "regenerate")
    while True:
        try:
            yield UpdateEntity(tombstone, etag, replace=True)
            break
        except ResourceNotFoundError:
            _forget(session, "removed meanwhile; not regenerated")
            return False
        except ResourceModifiedError:
            row = yield ReadEntity(pk, rk, (COL_TOKEN, COL_BLOB, *LIVENESS_COLUMNS))
            if row is not None and row.entity.get(COL_TOKEN) == token:
                break  # our retried tombstone had landed
            if row is None or not rules.is_live(row.entity, rules.now()):
                _forget(session, "deleted or expired meanwhile; not regenerated")
                return False
            etag = row.etag  # changed by another request: still live, retire that copy
            pointers.add(rules.pointer_of(row.entity))
            yield from rounds.next()
    _forget(session, "regenerated")
    for pointer in pointers:
        if pointer is not None:
            yield from _delete_blob_quietly(pointer.name)
    return True


def new(rules: Rules) -> Session:
    return rules.new_session(new_session_id())
