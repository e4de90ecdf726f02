"""The shared record rules (sans-I/O): how one record's payload is packed,
sealed, chunked into columns or overflowed into a blob, and read back.

Sessions (``_sessions.rules.Rules``) and the key-value cache (``_cache``) both
build on :class:`RecordRules`; what is specific to either (session expiry and
merge, cache TTLs and counters) lives with it, not here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import secrets
from collections.abc import Mapping
from typing import Any

from ..config import RecordConfig
from ..encryption import UndecryptableError
from ..exceptions import (
    PayloadTooLargeError,
    SessionDecodeError,
    SessionTamperedError,
    SessionTooLargeError,
)
from ..models import BlobPointer
from .payload import (
    CODEC_PLAIN,
    FORMAT_VERSION,
    EncodedKey,
    assemble,
    chunk_columns,
    join_columns,
    raw_size,
    split,
)

# Columns every record has (see docs/data-format.md).
#: When the record stops being served; the sweeper deletes rows past it.
COL_EXPIRES = "ExpiresAt"
COL_VERSION = "FormatVersion"
COL_CODEC = "Codec"
COL_SIZE = "Size"
COL_CHUNKS = "Chunks"
COL_TOKEN = "WriteToken"  # noqa: S105 - a column name, not a secret
COL_BLOB = "BlobName"
COL_BLOB_SIZE = "BlobSize"
COL_BLOB_DIGEST = "BlobDigest"
KNOWN_CODECS = frozenset({CODEC_PLAIN})
#: "<codec>+aesgcm:<key id>" marks an encrypted payload.
_SEALED = "+aesgcm:"
#: A ``BlobDigest`` of "gcm:<hex tag>": the sealed blob's AES-GCM tag (its last
#: 16 bytes) stands for it; rows written before it carry a SHA-256 hex digest.
_GCM_DIGEST = "gcm:"
GCM_TAG_BYTES = 16
#: A ``BlobDigest`` of "etag:<ETag>": the plaintext blob's ETag as the upload
#: returned it; the read checks the blob's ETag against it, so no pass over the bytes.
_ETAG_DIGEST = "etag:"


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


class RecordRules:
    """The payload rules of one record table, bound to its config."""

    #: What :meth:`pack` raises for a payload over ``max_payload_bytes``: each
    #: record type names its own (sessions keep ``SessionTooLargeError``).
    too_large: type[PayloadTooLargeError] = SessionTooLargeError

    def __init__(self, config: RecordConfig) -> None:
        self.config = config

    def now(self) -> dt.datetime:
        now = self.config.clock()
        if now.tzinfo is None:
            raise ValueError("clock must return a timezone-aware datetime")
        return now.astimezone(dt.timezone.utc)

    def blob_prefix(self, row_key: str | None = None) -> str:
        """Blob names start with ``<app>/<row key>/`` so sweeps and the CLI can list per app."""
        app = self.config.app_name
        return f"{app}/" if row_key is None else f"{app}/{row_key}/"

    def pack(self, entries: Mapping[str, EncodedKey], row_key: str) -> tuple[bytes, str]:
        """Return (stored bytes, codec): encoded (large fragments compressed), then
        encrypted when a key ring is set.

        :raises PayloadTooLargeError: (``too_large``) before any write.
        """
        size = raw_size(entries)
        if size > self.config.max_payload_bytes:
            raise self.too_large(size, self.config.max_payload_bytes)
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

    def new_blob_name(self, row_key: str) -> str:
        # An unguessable, never-reused name: blobs are immutable, so a reader can
        # never see a half-replaced payload, and a 409 on a retried upload can
        # only be our own earlier attempt.
        return f"{self.blob_prefix(row_key)}{secrets.token_urlsafe(18)}"

    def new_pointer(self, row_key: str, stored: bytes) -> BlobPointer:
        """A pointer bound to the bytes (a ``gcm:`` tag or SHA-256), for a writer
        that does not keep the upload's ETag; see :meth:`uploaded_pointer`."""
        return BlobPointer(self.new_blob_name(row_key), len(stored), self._blob_digest(stored))

    def uploaded_pointer(self, name: str, stored: bytes, etag: str | None) -> BlobPointer:
        """The pointer to blob ``name`` just uploaded with ``stored``, whose upload
        answered ``etag`` (None: unknown, e.g. a retried upload that found its own
        first attempt).

        Encrypted: the AES-GCM tag. Plaintext: the ETag when known (the service
        assigns a new one on any write to the blob, so a read that finds it proves
        the blob is still this upload's), else SHA-256 of the bytes.
        """
        if self.config.key_ring is None and etag:
            return BlobPointer(name, len(stored), f"{_ETAG_DIGEST}{etag}")
        return BlobPointer(name, len(stored), self._blob_digest(stored))

    @staticmethod
    def blob_etag(pointer: BlobPointer) -> str | None:
        """The ETag a read of this pointer's blob must match (If-Match), if it names one."""
        if pointer.digest.startswith(_ETAG_DIGEST):
            return pointer.digest[len(_ETAG_DIGEST):]
        return None

    def _blob_digest(self, stored: bytes) -> str:
        """What binds the blob to this write's bytes (docs/overflow.md, "Integrity").

        Encrypted (``pack`` and ``reseal`` seal whenever there is a key ring): the
        AES-GCM tag, the ciphertext's last 16 bytes, already computed by the
        encryption and checked again by the decryption, so no second pass over
        the bytes either way. Plaintext: SHA-256 of the payload.
        """
        if self.config.key_ring is not None:
            return f"{_GCM_DIGEST}{stored[-GCM_TAG_BYTES:].hex()}"
        return hashlib.sha256(stored).hexdigest()

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

    def verify_blob(self, pointer: BlobPointer, data: bytes, entity: Mapping[str, Any],
                    *, matched: bool = False) -> None:
        """Check the blob is the one this row's write uploaded, before decoding it.

        An ``etag:`` digest is the upload's ETag: ``matched`` says the read
        checked the blob's ETag against it (``_record.blobs.read``); any write to
        the blob since gives it a new one, so it costs no pass over the bytes.
        A ``gcm:`` digest is the ciphertext's tag: equal tags plus the
        decryption that follows (which authenticates every byte under the key and
        the row's associated data) prove the blob is this write's, again with no
        pass over the bytes. Only a sealed row may carry one. Otherwise SHA-256
        (plaintext rows written before ETag pointers, or whose upload's answer
        was lost).

        :raises SessionDecodeError: when the blob is not the one the pointer names.
        """
        if len(data) == pointer.size:
            digest = pointer.digest
            if digest.startswith(_ETAG_DIGEST):
                if matched:
                    return
            elif digest.startswith(_GCM_DIGEST):
                tag = digest[len(_GCM_DIGEST):]
                if self.key_id_of(entity) is not None and data[-GCM_TAG_BYTES:].hex() == tag:
                    return
            elif hashlib.sha256(data).hexdigest() == digest:
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
            return split(stored, max_size=self.config.max_payload_bytes)
        except ValueError as exc:
            raise SessionDecodeError(str(exc)) from exc
