"""The opt-in lease lock: ASP.NET-style exclusive sessions, without the stale-lock hangs.

The lock lives in three columns of the session's own entity (LockId, LockedAt,
LockExpiresAt), taken with an ETag-conditional merge, so taking it costs no
extra entity. The lease expires: a crashed holder blocks others for at most
``lease`` seconds, never indefinitely (aspnet-redis-providers #21, #85).
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import time
from typing import Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from .._record.contention import Rounds
from .._record.effects import Op, ReadEntity, Sleep, UpdateEntity
from .._record.rules import COL_EXPIRES
from ..exceptions import LockTimeoutError
from ..models import Session
from .ids import is_valid_session_id
from .ops import _forget, _load_entries, _read_live, _update
from .rules import COL_LOCK_EXPIRES, COL_LOCK_ID, COL_LOCKED_AT, LOCK_COLUMNS, Rules
from .users import is_revoked

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
#: Waiters poll with full jitter between these bounds (seconds): fast hand-over
#: without a thundering herd of reads on one partition.
POLL_MIN, POLL_MAX = 0.02, 0.25


def acquire(rules: Rules, session_id: object, timeout: float, lease: float) -> Op[Session | None]:
    """Take the lease and load the session under it; None if there is no live session.

    :raises LockTimeoutError: when another holder keeps it past ``timeout``.
    """
    if not isinstance(session_id, str) or not is_valid_session_id(session_id):
        return None
    if timeout < 0 or lease <= 0:
        raise ValueError("timeout must be >= 0 and lease > 0")
    pk, rk = rules.keys(session_id)
    lock_id = secrets.token_hex(8)
    started = time.monotonic()
    polls = 0
    while True:
        row = yield ReadEntity(pk, rk)
        now = rules.now()
        if row is None or not rules.is_live(row.entity, now):
            return None
        if (yield from is_revoked(rules, row.entity)):
            return None
        holder = row.entity.get(COL_LOCK_ID) or None
        until = row.entity.get(COL_LOCK_EXPIRES)
        etag = row.etag
        if holder != lock_id and (holder is None or not isinstance(until, dt.datetime)
                                  or until <= now):
            take = {"PartitionKey": pk, "RowKey": rk, COL_LOCK_ID: lock_id, COL_LOCKED_AT: now,
                    COL_LOCK_EXPIRES: now + dt.timedelta(seconds=lease)}
            try:
                etag = yield UpdateEntity(take, row.etag, replace=False)
            except ResourceNotFoundError:
                return None
            except ResourceModifiedError:
                continue  # raced (or our retried merge landed): re-read decides
            holder = lock_id
            row_entity = {**row.entity, **take}
        else:
            row_entity = dict(row.entity)
        if holder == lock_id:
            entries = yield from _load_entries(rules, row)
            if entries is None:
                continue  # its blob was replaced just before we locked: re-read
            return rules.session_from(session_id, row_entity, etag, entries)
        waited = time.monotonic() - started
        if waited >= timeout:
            locked_at = row.entity.get(COL_LOCKED_AT)
            age = (now - locked_at).total_seconds() if isinstance(locked_at, dt.datetime) else None
            raise LockTimeoutError(f"session is locked by another request (waited {waited:.2f}s)",
                                   holder=str(holder), age=age)
        polls += 1
        yield Sleep(min(random.uniform(POLL_MIN, POLL_MAX * min(polls, 4) / 4 + POLL_MIN),  # noqa: S311 - jitter, not crypto
                        max(timeout - waited, 0.0)))


def release(rules: Rules, session: Session, *, save: bool) -> Op[None]:
    """Save (when ``save`` and modified) and release in one write.

    :raises SessionConflictError: when the lease expired and another request
        took the lock, so this holder's changes cannot be applied safely.
    """
    stored = session._stored
    lock_id = session.lock_id
    if stored is None or lock_id is None:
        return
    pk, rk = rules.keys(session.id)
    for column in LOCK_COLUMNS:
        session._columns.pop(column, None)
    entries = rules.encode_all(session)
    changed = rules.changed_keys(session, entries)
    if save and (changed or session._force):
        yield from _update(rules, session, entries, changed, require_lock=lock_id)
        return
    now = rules.now()
    clear: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk, COL_LOCK_ID: "",
                             COL_LOCK_EXPIRES: _EPOCH}
    if rules.due_for_refresh(session, now):
        clear[COL_EXPIRES] = rules.next_expiry(session, now)
    # The write rule (_ops): conditional on a live ETag, and the new ETag is
    # kept only when the write was made on the copy this session holds.
    held = stored.etag
    etag: str | None = held if rules.holds_live(session, now) else None
    rounds = Rounds(rules, "releasing the lock")
    while True:
        if etag is None:
            fresh = yield from _read_live(rules, session, "deleted or expired while locked",
                                          (COL_LOCK_ID,))
            if fresh is None or fresh.entity.get(COL_LOCK_ID) != lock_id:
                return  # gone, or not ours any more: nothing of ours to release
            etag = fresh.etag  # a plain save touched the row; the lock is still ours
        try:
            new_etag = yield UpdateEntity(clear, etag, replace=False)
        except ResourceNotFoundError:
            _forget(session, "deleted while locked")
            return
        except ResourceModifiedError:
            etag = None
            yield from rounds.next()
            continue
        if etag == held:
            stored.etag = new_etag
            if COL_EXPIRES in clear:
                stored.expires_at = session.expires_at = clear[COL_EXPIRES]
        return
