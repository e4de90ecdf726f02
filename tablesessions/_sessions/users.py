"""Binding sessions to users, and revoking all of a user's sessions in O(1).

Layout, beside the sessions in the same table (docs/data-format.md):

- a user record per user: PartitionKey ``<app>~users``, RowKey = SHA-256 of the
  app and user id, column ``Generation``;
- a bound session carries ``UserHash`` and the ``UserGeneration`` it was bound
  under; ``get`` reads the user record too and treats a session from an older
  generation as gone. So ``revoke_user`` is one conditional merge however many
  sessions the user has, and takes effect on every instance at once;
- an index entry per bound session: PartitionKey ``<app>~u~<user hash>``,
  RowKey = the session's row key, for ``user_sessions``; the sweeper deletes
  entries past their session's absolute deadline.

User ids are hashed, never stored: they are often e-mail addresses.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableTransactionError

from .._record.effects import (
    DeleteBatch,
    DeleteEntity,
    Effect,
    InsertEntity,
    Op,
    QueryPage,
    ReadEntity,
    UpdateEntity,
)
from .._record.keys import partition_key_for
from .._record.limits import MAX_BATCH_OPERATIONS, MAX_QUERY_PAGE
from .._record.rules import COL_EXPIRES
from ..models import Session
from .ids import row_key_for
from .rules import COL_ABSOLUTE, COL_CREATED, Rules

COL_USER = "UserHash"
COL_USER_GENERATION = "UserGeneration"
COL_GENERATION = "Generation"
USER_COLUMNS = (COL_USER, COL_USER_GENERATION)
MAX_USER_ID_CHARS = 1024


def user_hash(rules: Rules, user_id: str) -> str:
    if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID_CHARS:
        raise ValueError(f"user_id must be a non-empty str of at most {MAX_USER_ID_CHARS} chars")
    return hashlib.sha256(f"{rules.config.app_name}\x00{user_id}".encode()).hexdigest()


def users_partition(rules: Rules) -> str:
    return f"{rules.config.app_name}~users"


def index_partition(rules: Rules, uhash: str) -> str:
    return f"{rules.config.app_name}~u~{uhash}"


def generation(rules: Rules, uhash: str, *, create: bool) -> Op[int | None]:
    """The user's current generation (creating the record at 0 when asked)."""
    pk = users_partition(rules)
    while True:
        row = yield ReadEntity(pk, uhash, (COL_GENERATION,))
        if row is not None:
            return int(row.entity.get(COL_GENERATION) or 0)
        if not create:
            return None
        try:
            yield InsertEntity({"PartitionKey": pk, "RowKey": uhash, COL_GENERATION: 0})
            return 0
        except ResourceExistsError:
            continue  # created meanwhile (or our retried insert landed): read it


def is_revoked(rules: Rules, entity: Any) -> Op[bool]:
    """Whether a bound session's user was revoked since it was bound (1 read)."""
    uhash = entity.get(COL_USER)
    if not uhash:
        return False
    current = yield from generation(rules, str(uhash), create=False)
    return current is None or current != entity.get(COL_USER_GENERATION)


def bind(rules: Rules, session: Session, user_id: str) -> Op[None]:
    """Mark ``session`` as the user's and index it; the caller then saves it."""
    uhash = user_hash(rules, user_id)
    gen = yield from generation(rules, uhash, create=True)
    assert gen is not None
    session._columns[COL_USER] = uhash
    session._columns[COL_USER_GENERATION] = gen
    session._force = True
    yield from index_session(rules, session, uhash)


def bind_and_save(rules: Rules, session: Session, user_id: str) -> Op[None]:
    """``store.bind_user``: bind, then save, so the binding takes effect at once."""
    from .ops import save  # _ops imports this module

    yield from bind(rules, session, user_id)
    yield from save(rules, session)


def index_session(rules: Rules, session: Session, uhash: str) -> Op[None]:
    entry = {"PartitionKey": index_partition(rules, uhash), "RowKey": row_key_for(session.id),
             COL_EXPIRES: session.absolute_expires_at, COL_CREATED: session.created_at}
    # Already indexed (a re-bind, or our retried insert landed): nothing to do.
    with contextlib.suppress(ResourceExistsError):
        yield InsertEntity(entry)


def revoke(rules: Rules, user_id: str) -> Op[int]:
    """End every session of the user: bump the generation. Returns the new one."""
    uhash = user_hash(rules, user_id)
    pk = users_partition(rules)
    while True:
        row = yield ReadEntity(pk, uhash, (COL_GENERATION,))
        if row is None:
            try:
                yield InsertEntity({"PartitionKey": pk, "RowKey": uhash, COL_GENERATION: 1})
                return 1
            except ResourceExistsError:
                continue
        new = int(row.entity.get(COL_GENERATION) or 0) + 1
        try:
            yield UpdateEntity({"PartitionKey": pk, "RowKey": uhash, COL_GENERATION: new},
                               row.etag, replace=False)
            return new
        except ResourceModifiedError:
            continue  # a concurrent revoke: re-read and bump past it


def sessions_of(rules: Rules, user_id: str) -> Op[list[dict[str, Any]]]:
    """Metadata of the user's live sessions (no data, no ids: row key prefixes)."""
    uhash = user_hash(rules, user_id)
    current = yield from generation(rules, uhash, create=False)
    if current is None:
        return []
    out: list[dict[str, Any]] = []
    token: Any = None
    while True:
        rows, token = yield QueryPage("PartitionKey eq @pk", {"pk": index_partition(rules, uhash)},
                                      ("RowKey",), MAX_QUERY_PAGE, token)
        for entry in rows:
            rk = str(entry.entity["RowKey"])
            row = yield ReadEntity(partition_key_for(rules.config.app_name, rk), rk,
                                   (COL_EXPIRES, COL_ABSOLUTE, COL_CREATED, COL_USER,
                                    COL_USER_GENERATION, "Size", "BlobName"))
            if (row is None or not rules.is_live(row.entity, rules.now())
                    or row.entity.get(COL_USER) != uhash
                    or row.entity.get(COL_USER_GENERATION) != current):
                continue
            out.append({"session": rk[:12], "created_at": row.entity.get(COL_CREATED),
                        "expires_at": row.entity.get(COL_EXPIRES),
                        "absolute_expires_at": row.entity.get(COL_ABSOLUTE),
                        "size": row.entity.get("Size"),
                        "overflowed": bool(row.entity.get("BlobName"))})
        if not token:
            return out


#: Index entries past their session's absolute deadline, across all the app's
#: per-user partitions: a PartitionKey range, not a table scan.
_EXPIRED_INDEX = ("PartitionKey ge @lo and PartitionKey lt @hi and ExpiresAt lt @cutoff")


def sweep_index(rules: Rules, cutoff: Any, *, dry_run: bool,
                call: Callable[[Effect], Op[Any]]) -> Op[int]:
    """Delete index entries whose session is past its absolute deadline (the
    session itself is gone or about to be). Returns how many were (or would be)
    deleted. ``call`` is the sweeper's counting wrapper around one effect."""
    prefix = f"{rules.config.app_name}~u~"
    params = {"lo": prefix, "hi": prefix + "g", "cutoff": cutoff}  # hex digits sort below "g"
    by_partition: dict[str, list[tuple[str, str, str]]] = {}
    token: Any = None
    while True:
        rows, token = yield from call(QueryPage(_EXPIRED_INDEX, params,
                                                ("PartitionKey", "RowKey"), MAX_QUERY_PAGE,
                                                token))
        for row in rows:
            pk = str(row.entity["PartitionKey"])
            by_partition.setdefault(pk, []).append((pk, str(row.entity["RowKey"]), row.etag))
        if not token:
            break
    deleted = 0
    for entries in by_partition.values():
        for start in range(0, len(entries), MAX_BATCH_OPERATIONS):
            batch = tuple(entries[start:start + MAX_BATCH_OPERATIONS])
            if not dry_run:
                try:
                    yield from call(DeleteBatch(batch))
                except TableTransactionError:
                    # One entry changed or went meanwhile: delete the rest singly.
                    for pk, rk, etag in batch:
                        with contextlib.suppress(ResourceModifiedError):
                            yield from call(DeleteEntity(pk, rk, etag))
            deleted += len(batch)
    return deleted
