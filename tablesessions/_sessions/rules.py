"""The session rules (sans-I/O): keys, entity layout, expiry, change tracking, merge.

Nothing here performs I/O; the operations in ``ops`` combine these rules with
storage effects, and the sync and async stores only execute those effects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from .._record.keys import partition_key_for
from .._record.payload import FORMAT_VERSION, EncodedKey, encode_key
from .._record.rules import COL_BLOB, COL_CODEC, COL_EXPIRES, COL_TOKEN, COL_VERSION, RecordRules
from ..config import StoreConfig
from ..exceptions import SessionConflictError
from ..models import PENDING, UNSET, BlobPointer, Session, _Stored
from .ids import row_key_for

# Session entity columns (see docs/data-format.md); the record columns are in
# ``_record.rules``.
COL_ABSOLUTE = "AbsoluteExpiresAt"
COL_CREATED = "CreatedAt"
#: Per-session expiry (``Session.set_expiry``); absent: the store's defaults.
COL_IDLE = "IdleSeconds"
COL_BROWSER = "BrowserSession"

COL_DELETED = "Deleted"
#: How long a deleted session's tombstone outlives the delete: longer than any
#: request can stay in flight (the service's own timeout caps at 30 s), so a
#: late duplicate insert always meets it and gets 409.
TOMBSTONE_TTL = dt.timedelta(minutes=5)
COL_LOCK_ID = "LockId"
COL_LOCKED_AT = "LockedAt"
COL_LOCK_EXPIRES = "LockExpiresAt"
LOCK_COLUMNS = (COL_LOCK_ID, COL_LOCKED_AT, COL_LOCK_EXPIRES)
#: Columns owned by other features (the lease lock, user binding): a data write
#: re-emits them as loaded, so a plain save never drops someone's lock.
PRESERVED_COLUMNS = (*LOCK_COLUMNS, "UserHash", "UserGeneration")

#: The columns the sweeper and ``delete`` need: no payload.
POINTER_COLUMNS = ("PartitionKey", "RowKey", COL_EXPIRES, COL_ABSOLUTE, COL_BLOB)


class Rules(RecordRules):
    """Every session decision the store makes, bound to one :class:`StoreConfig`;
    the payload rules it shares with the cache are :class:`RecordRules`'."""

    config: StoreConfig

    def __init__(self, config: StoreConfig) -> None:
        super().__init__(config)

    # -- keys and time ----------------------------------------------------
    def keys(self, session_id: str) -> tuple[str, str]:
        rk = row_key_for(session_id)
        return partition_key_for(self.config.app_name, rk), rk

    # -- new sessions ------------------------------------------------------
    def new_session(self, session_id: str) -> Session:
        now = self.now()
        absolute = now + self.config.absolute_timeout
        return Session(session_id, {}, created_at=now,
                       expires_at=min(now + self.config.idle_timeout, absolute),
                       absolute_expires_at=absolute)

    # -- expiry --------------------------------------------------------------
    @staticmethod
    def is_live(entity: Mapping[str, Any], now: dt.datetime) -> bool:
        """Both deadlines are checked on every read, sweeper or not; a tombstone is not live."""
        expires, absolute = entity.get(COL_EXPIRES), entity.get(COL_ABSOLUTE)
        if not isinstance(expires, dt.datetime) or not isinstance(absolute, dt.datetime):
            return False
        return now < expires and now < absolute and not entity.get(COL_DELETED)

    @staticmethod
    def holds_live(session: Session, now: dt.datetime) -> bool:
        """Whether the copy ``session`` holds is still live by its own deadlines.

        The write rule (docs/concurrency.md, "No resurrection"): a session row is
        only ever written conditionally on an ETag of a copy the store read (or
        wrote) *live*, and only while that copy has not expired. A tombstone,
        a deleted row or an expired row never carries such an ETag, so no write
        can turn it back into a live session. When this is False the operation
        re-reads the row before writing, and a re-read that finds no live row
        forgets the session.
        """
        stored = session._stored
        return (stored is not None and now < stored.expires_at
                and now < session.absolute_expires_at)

    def tombstone(self, pk: str, rk: str) -> dict[str, Any]:
        """What a deleted session's row becomes until the sweeper removes it."""
        until = self.now() + TOMBSTONE_TTL
        return {"PartitionKey": pk, "RowKey": rk, COL_DELETED: True, COL_EXPIRES: until,
                COL_ABSOLUTE: until}

    def idle_of(self, session: Session) -> dt.timedelta:
        """The session's own idle timeout, else the store's."""
        return session.idle_timeout or self.config.idle_timeout

    def within_cap(self, entity: Mapping[str, Any], now: dt.datetime) -> bool:
        """An explicitly configured absolute timeout also bounds rows written
        before it was set (or under a larger one): no session outlives it."""
        cap, created = self.config.max_absolute_timeout, entity.get(COL_CREATED)
        return cap is None or not isinstance(created, dt.datetime) or now < created + cap

    def resolve_expiry(self, session: Session, now: dt.datetime) -> None:
        """Turn a pending ``set_expiry(absolute=...)`` into the session's deadline,
        never past the configured cap."""
        request = session._absolute_request
        if request is UNSET:
            return
        if request is None:
            deadline = session.created_at + self.config.absolute_timeout
        elif isinstance(request, dt.timedelta):
            deadline = now + request
        else:
            deadline = request.astimezone(dt.timezone.utc)
        cap = self.config.max_absolute_timeout
        if cap is not None:
            deadline = min(deadline, session.created_at + cap)
        session.absolute_expires_at = deadline
        session._absolute_request = UNSET

    def next_expiry(self, session: Session, now: dt.datetime) -> dt.datetime:
        """The ``ExpiresAt`` a write at ``now`` stores (resolving a pending
        ``set_expiry`` first): the earlier of the idle and absolute deadlines."""
        self.resolve_expiry(session, now)
        return min(now + self.idle_of(session), session.absolute_expires_at)

    def due_for_refresh(self, session: Session, now: dt.datetime) -> bool:
        """Refresh only once less than ``refresh_threshold`` of the (session's own)
        idle time remains, so most read-only requests write nothing."""
        if session._stored is None:
            return False
        remaining = session._stored.expires_at - now
        gain = self.next_expiry(session, now) - session._stored.expires_at
        threshold = self.idle_of(session) * (1.0 if session._renew
                                             else self.config.refresh_threshold)
        return remaining < threshold and gain > dt.timedelta(seconds=1)

    def refresh_entity(self, pk: str, rk: str, expires: dt.datetime,
                       token: str) -> dict[str, Any]:
        # A merge of the expiry column (and a write token, so that a retried
        # refresh that meets its own first attempt as 412 knows it landed): the
        # data is not rewritten.
        return {"PartitionKey": pk, "RowKey": rk, COL_EXPIRES: expires, COL_TOKEN: token}

    # -- encoding ------------------------------------------------------------
    def encode_all(self, session: Session) -> dict[str, EncodedKey]:
        """Each key's encoding, re-encoding only what may have changed: keys set or
        deleted, and container values that were read (and so may have been
        mutated in place). Untouched keys reuse their loaded encoding, undecoded.

        :raises TypeError: naming the first unsupported key.
        """
        stored = session._stored.entries if session._stored else {}
        out: dict[str, EncodedKey] = {}
        for key, value in session._data.items():
            if value is PENDING:
                out[key] = stored[key]
            elif key in stored and key not in session._changed and key not in session._read:
                out[key] = stored[key]  # an immutable value, only read: unchanged
            else:
                out[key] = encode_key(key, value)
        return out

    def entity(self, pk: str, rk: str, session: Session, stored: bytes, codec: str,
               pointer: BlobPointer | None, token: str, expires: dt.datetime) -> dict[str, Any]:
        entity: dict[str, Any] = {
            **session._columns,
            "PartitionKey": pk,
            "RowKey": rk,
            COL_EXPIRES: expires,
            COL_ABSOLUTE: session.absolute_expires_at,
            COL_CREATED: session.created_at,
            COL_VERSION: FORMAT_VERSION,
            COL_CODEC: codec,
            COL_TOKEN: token,
        }
        entity.update(self.expiry_columns(session))
        entity.update(self.payload_columns(stored, pointer))
        return entity

    @staticmethod
    def expiry_columns(session: Session) -> dict[str, Any]:
        """The per-session expiry columns, written only when set (a replace drops
        them again when ``set_expiry`` resets them to the store's defaults)."""
        columns: dict[str, Any] = {}
        if session.idle_timeout is not None:
            columns[COL_IDLE] = int(session.idle_timeout.total_seconds())
        if session.browser_session:
            columns[COL_BROWSER] = True
        return columns

    # -- decoding --------------------------------------------------------------
    def session_from(self, session_id: str, entity: Mapping[str, Any], etag: str,
                     entries: Mapping[str, EncodedKey]) -> Session:
        # Values decode lazily, on first access (``Session.__getitem__``).
        data = dict.fromkeys(entries, PENDING)
        expires = entity[COL_EXPIRES]
        stored = _Stored(etag=etag, entries=dict(entries), pointer=self.pointer_of(entity),
                         expires_at=expires)
        idle = entity.get(COL_IDLE)
        # Rows written before these columns existed read as the store's defaults.
        own_idle = (dt.timedelta(seconds=int(idle))
                    if isinstance(idle, int) and not isinstance(idle, bool) and idle > 0 else None)
        return Session(session_id, data, created_at=entity[COL_CREATED], expires_at=expires,
                       absolute_expires_at=entity[COL_ABSOLUTE], stored=stored,
                       columns=preserved_columns(entity), idle_timeout=own_idle,
                       browser_session=entity.get(COL_BROWSER) is True)

    # -- after a write -----------------------------------------------------------
    @staticmethod
    def mark_saved(session: Session, etag: str, entries: Mapping[str, EncodedKey],
                   pointer: BlobPointer | None, expires: dt.datetime) -> None:
        session._stored = _Stored(etag=etag, entries=dict(entries), pointer=pointer,
                                  expires_at=expires)
        session._read.clear()
        session._tokens.clear()
        session.expires_at = expires
        session._changed.clear()
        session._force = False

    # -- change tracking and merge ---------------------------------------------------
    @staticmethod
    def changed_keys(session: Session, entries: Mapping[str, EncodedKey]) -> set[str]:
        """Keys this request set, deleted or mutated in place, by encoding."""
        base = session._stored.entries if session._stored else {}
        changed = {k for k in base if k not in entries}
        # Reused encodings are the same objects: the comparison is an identity check.
        changed |= {k for k, e in entries.items() if base.get(k) != e}
        return changed

    @staticmethod
    def merge(fresh: Mapping[str, EncodedKey], base: Mapping[str, EncodedKey],
              ours: Mapping[str, EncodedKey], changed: set[str], policy: str
              ) -> dict[str, EncodedKey]:
        """Re-apply this request's changed keys onto the fresh stored copy.

        A key both writers changed follows ``policy``: ours wins
        (``last_writer_wins``) or :class:`SessionConflictError` (``raise``).
        """
        merged = dict(fresh)
        for key in sorted(changed):
            theirs, mine = fresh.get(key), ours.get(key)
            if theirs != base.get(key) and theirs != mine and policy == "raise":
                raise SessionConflictError(f"session key {key!r} was changed by another request")
            if key in ours:
                merged[key] = ours[key]
            else:
                merged.pop(key, None)
        return merged


def preserved_columns(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The feature-owned columns of a row that a data write must carry over."""
    return {c: entity[c] for c in PRESERVED_COLUMNS if entity.get(c) not in (None, "")}


def changed_in_place(session: Session) -> set[str]:
    """Keys whose container values were mutated since load (``Session.modified``).

    Only containers handed out by ``__getitem__`` can have changed without
    ``__setitem__``; scalars are immutable and pending values were never seen.
    """
    if session._stored is None:
        return set()
    base = session._stored.entries
    return {key for key in session._read - session._changed
            if key in session._data and base.get(key) != encode_key(key, session._data[key])}
