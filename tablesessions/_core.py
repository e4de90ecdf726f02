"""The sans-I/O rules: keys, entity layout, expiry, size budget, change tracking, merge.

Nothing here performs I/O; the operations in ``_ops`` combine these rules with
storage effects, and the sync and async stores only execute those effects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import secrets
from collections.abc import Mapping
from typing import Any

from ._ids import partition_key_for, row_key_for
from ._payload import (
    CODEC_PLAIN,
    FORMAT_VERSION,
    EncodedKey,
    assemble,
    chunk_columns,
    encode_key,
    join_columns,
    raw_size,
    split,
)
from .config import StoreConfig
from .encryption import UndecryptableError
from .exceptions import (
    SessionConflictError,
    SessionDecodeError,
    SessionTamperedError,
    SessionTooLargeError,
)
from .models import PENDING, UNSET, BlobPointer, Session, _Stored

# Entity columns (see docs/data-format.md).
COL_EXPIRES = "ExpiresAt"
COL_ABSOLUTE = "AbsoluteExpiresAt"
COL_CREATED = "CreatedAt"
#: Per-session expiry (``Session.set_expiry``); absent: the store's defaults.
COL_IDLE = "IdleSeconds"
COL_BROWSER = "BrowserSession"
COL_VERSION = "FormatVersion"
COL_CODEC = "Codec"
COL_SIZE = "Size"
COL_CHUNKS = "Chunks"
COL_TOKEN = "WriteToken"  # noqa: S105 - a column name, not a secret
COL_BLOB = "BlobName"
COL_BLOB_SIZE = "BlobSize"
COL_BLOB_DIGEST = "BlobDigest"

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
KNOWN_CODECS = frozenset({CODEC_PLAIN})
#: "<codec>+aesgcm:<key id>" marks an encrypted payload.
_SEALED = "+aesgcm:"
#: A ``BlobDigest`` of "gcm:<hex tag>": the sealed blob's AES-GCM tag (its last
#: 16 bytes) stands for it; rows written before it carry a SHA-256 hex digest.
_GCM_DIGEST = "gcm:"
GCM_TAG_BYTES = 16


#: Our own generator (user code may seed the global one), reseeded from the OS in
#: every forked child so that pre-forked workers never share a sequence.
_token_rng = random.Random()  # noqa: S311 - uniqueness, not secrecy
_token_bits = _token_rng.getrandbits
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_token_rng.seed)


def new_write_token() -> str:
    """A per-write token: a retried write that finds it already stored succeeded.

    Unique, not secret: 64 bits from a private ``random.Random`` (seeded from the
    OS, reseeded in every forked child). ``secrets`` would call ``os.urandom``,
    which releases the GIL; in the async face that hands the GIL to the event
    loop's resolver threads, and the save waits to get it back (measured ~1 ms
    per save at 32 tasks).
    """
    return f"{_token_bits(64):016x}"


class Rules:
    """Every decision the store makes, bound to one :class:`StoreConfig`."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config

    # -- keys and time ----------------------------------------------------
    def keys(self, session_id: str) -> tuple[str, str]:
        rk = row_key_for(session_id)
        return partition_key_for(self.config.app_name, rk), rk

    def now(self) -> dt.datetime:
        now = self.config.clock()
        if now.tzinfo is None:
            raise ValueError("clock must return a timezone-aware datetime")
        return now.astimezone(dt.timezone.utc)

    def blob_prefix(self, row_key: str | None = None) -> str:
        """Blob names start with ``<app>/<row key>/`` so sweeps and the CLI can list per app."""
        app = self.config.app_name
        return f"{app}/" if row_key is None else f"{app}/{row_key}/"

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

    def pack(self, entries: Mapping[str, EncodedKey], row_key: str) -> tuple[bytes, str]:
        """Return (stored bytes, codec): encoded (large fragments compressed), then
        encrypted when a key ring is set. :raises SessionTooLargeError: before any write."""
        size = raw_size(entries)
        if size > self.config.max_session_bytes:
            raise SessionTooLargeError(size, self.config.max_session_bytes)
        stored = assemble(entries, threshold=self.config.compress_threshold,
                          level=self.config.compression_level)
        codec = CODEC_PLAIN
        ring = self.config.key_ring
        if ring is None:
            return stored, codec
        sealed, kid = ring.encrypt(stored, self._aad(row_key, codec))
        return sealed, f"{codec}{_SEALED}{kid}"

    def _aad(self, row_key: str, codec: str) -> bytes:
        # Binds a ciphertext to its app, row and format: copied elsewhere, it fails.
        return "\x00".join(("tablesessions", self.config.app_name, row_key,
                             str(FORMAT_VERSION), codec)).encode()

    def key_id_of(self, entity: Mapping[str, Any]) -> str | None:
        """The key id a row is encrypted under, or None for plaintext."""
        _, sep, kid = str(entity.get(COL_CODEC)).partition(_SEALED)
        return kid if sep else None

    def overflows(self, stored: bytes) -> bool:
        return len(stored) > self.config.inline_budget

    def new_pointer(self, row_key: str, stored: bytes) -> BlobPointer:
        # An unguessable, never-reused name: blobs are immutable, so a reader can
        # never see a half-replaced payload, and a 409 on a retried upload can
        # only be our own earlier attempt.
        name = f"{self.blob_prefix(row_key)}{secrets.token_urlsafe(18)}"
        return BlobPointer(name, len(stored), self._blob_digest(stored))

    def _blob_digest(self, stored: bytes) -> str:
        """What binds the blob to this write (docs/overflow.md, "Integrity").

        Encrypted (``pack`` and ``reseal`` seal whenever there is a key ring): the
        AES-GCM tag, the ciphertext's last 16 bytes, already computed by the
        encryption and checked again by the decryption, so no second pass over
        the bytes either way. Plaintext: SHA-256 of the payload.
        """
        if self.config.key_ring is not None:
            return f"{_GCM_DIGEST}{stored[-GCM_TAG_BYTES:].hex()}"
        return hashlib.sha256(stored).hexdigest()

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

    @staticmethod
    def payload_columns(stored: bytes, pointer: BlobPointer | None) -> dict[str, Any]:
        """The data columns: inline chunks, or an overflow pointer."""
        if pointer is None:
            columns: dict[str, Any] = chunk_columns(stored)
            return {COL_SIZE: len(stored), COL_CHUNKS: len(columns), **columns}
        return {COL_SIZE: len(stored), COL_CHUNKS: 0, COL_BLOB: pointer.name,
                COL_BLOB_SIZE: pointer.size, COL_BLOB_DIGEST: pointer.digest}

    def reseal(self, entity: Mapping[str, Any], stored: bytes) -> tuple[bytes, str]:
        """Re-encrypt a stored payload under the primary key (key rotation, and
        encrypting rows written before encryption was turned on).

        :raises SessionTamperedError: when the current ciphertext fails to decrypt.
        """
        ring = self.config.key_ring
        if ring is None:
            raise ValueError("rotating keys needs a key_ring")
        rk = str(entity.get("RowKey"))
        codec, sealed, kid = str(entity.get(COL_CODEC)).partition(_SEALED)
        if sealed:
            try:
                stored = ring.decrypt(stored, kid, self._aad(rk, codec))
            except UndecryptableError as exc:
                raise SessionTamperedError(str(exc)) from None
        new, new_kid = ring.encrypt(stored, self._aad(rk, codec))
        return new, f"{codec}{_SEALED}{new_kid}"

    # -- decoding --------------------------------------------------------------
    @staticmethod
    def pointer_of(entity: Mapping[str, Any]) -> BlobPointer | None:
        name = entity.get(COL_BLOB)
        if not name:
            return None
        return BlobPointer(str(name), int(entity.get(COL_BLOB_SIZE) or 0),
                           str(entity.get(COL_BLOB_DIGEST) or ""))

    @staticmethod
    def inline_bytes(entity: Mapping[str, Any]) -> bytes:
        try:
            data = join_columns(entity, int(entity.get(COL_CHUNKS) or 0))
        except ValueError as exc:
            raise SessionDecodeError(str(exc)) from exc
        if len(data) != entity.get(COL_SIZE):
            raise SessionDecodeError("inline payload size does not match its Size column")
        return data

    def verify_blob(self, pointer: BlobPointer, data: bytes, entity: Mapping[str, Any]) -> None:
        """Check the blob is the one this row's write uploaded, before decoding it.

        A ``gcm:`` digest is the ciphertext's tag: equal tags plus the decryption
        that follows (which authenticates every byte under the key and the row's
        associated data) prove the blob is this write's, so it costs no pass
        over the bytes. Only a sealed row may carry one. Otherwise SHA-256.

        :raises SessionDecodeError: when the blob is not the one the pointer names.
        """
        if len(data) == pointer.size:
            if pointer.digest.startswith(_GCM_DIGEST):
                tag = pointer.digest[len(_GCM_DIGEST):]
                if self.key_id_of(entity) is not None and data[-GCM_TAG_BYTES:].hex() == tag:
                    return
            elif hashlib.sha256(data).hexdigest() == pointer.digest:
                return
        raise SessionDecodeError("overflow blob does not match its pointer's size and digest")

    def entries_of(self, entity: Mapping[str, Any], stored: bytes) -> dict[str, EncodedKey]:
        """Decrypt, decompress and split a stored payload.

        :raises SessionTamperedError: when decryption fails or plaintext is refused.
        :raises SessionDecodeError: for any other malformed payload.
        """
        codec, sealed, kid = str(entity.get(COL_CODEC)).partition(_SEALED)
        ring = self.config.key_ring
        if sealed:
            if ring is None:
                raise SessionTamperedError("payload is encrypted but no key ring is configured")
            try:
                stored = ring.decrypt(stored, kid, self._aad(str(entity.get("RowKey")), codec))
            except UndecryptableError as exc:
                raise SessionTamperedError(str(exc)) from None
        elif ring is not None and not self.config.accept_plaintext:
            raise SessionTamperedError("plaintext payload where encryption is required")
        if entity.get(COL_VERSION) != FORMAT_VERSION or codec not in KNOWN_CODECS:
            raise SessionDecodeError(f"unsupported format {entity.get(COL_VERSION)}/{codec}")
        try:
            return split(stored, max_size=self.config.max_session_bytes)
        except ValueError as exc:
            raise SessionDecodeError(str(exc)) from exc

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
