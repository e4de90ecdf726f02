"""The cache rules (sans-I/O): keys, TTLs, and the entity layout of one entry.

One cache entry is one entity (docs/data-format.md, "Cache entries"):

* RowKey = SHA-256 of the key's UTF-8 (``surrogatepass``) under a cache-only
  domain prefix, so any ``str`` is a valid key and no raw key reaches storage;
  PartitionKey = ``<app>-<first hex digit>`` (``_record.keys``), 16 per app.
* ``ExpiresAt`` only for entries that expire: an entry without it never does,
  and the sweeper's ``ExpiresAt lt @cutoff`` never matches it.
* ``TtlSeconds`` for sliding entries: the TTL a read extends them by.
* ``IntValue`` (Edm.Int64) for an ``int`` (not ``bool``) within int64, unless
  the cache encrypts: ``incr`` then reads and conditionally replaces one column
  and never decodes a payload.
* Any other value: a one-entry payload through :class:`RecordRules` (typed JSON,
  ``bytes`` as raw segments, compressed, sealed, chunked or overflowed to a blob).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from azure.data.tables import EdmType, EntityProperty

from .._record.keys import partition_key_for
from .._record.payload import FORMAT_VERSION, decode_key, encode_key
from .._record.rules import (
    COL_BLOB,
    COL_BLOB_DIGEST,
    COL_BLOB_SIZE,
    COL_CHUNKS,
    COL_CODEC,
    COL_EXPIRES,
    COL_SIZE,
    COL_TOKEN,
    COL_VERSION,
    RecordRules,
)
from ..config import CacheConfig, timeout_setting
from ..exceptions import (
    CacheValueTooLargeError,
    InvalidCacheKeyError,
    SessionDecodeError,
    SessionTamperedError,
)
from ..models import BlobPointer

#: The longest key accepted, in characters (``len(key)``). Keys are hashed, so
#: the limit is not the service's (RowKeys are 64 hex digits whatever the key):
#: it bounds what a caller can make the cache hash per call, and it is four
#: times memcached's 250, which Django's and cachelib's key schemes fit.
MAX_KEY_LENGTH: Final = 1024

#: Hashed before every key: a cache RowKey can never equal a session's (the
#: SHA-256 of a bare session id), even in one table under one app name.
_KEY_DOMAIN = b"tablesessions cache key\x00"

COL_TTL = "TtlSeconds"
COL_INT = "IntValue"
#: The last tokens written by ``incr`` (newest first, space-separated): a
#: retried increment whose first attempt landed finds its token here even when
#: other writers incremented after it, so it never counts twice.
COL_RECENT = "RecentTokens"
RECENT_TOKENS = 16

#: The payload's one key.
_ENTRY = "v"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: The columns that decide whether an entry is live, and by how much a read slides it.
EXPIRY_COLUMNS = (COL_EXPIRES, COL_TTL)
#: What ``delete_many``, ``clear`` and ``add`` need of a row: no payload.
POINTER_COLUMNS = ("PartitionKey", "RowKey", COL_EXPIRES, COL_BLOB, COL_BLOB_SIZE,
                   COL_BLOB_DIGEST, COL_TOKEN)
_PAYLOAD_COLUMNS = (COL_VERSION, COL_CODEC, COL_SIZE, COL_CHUNKS, COL_BLOB, COL_BLOB_SIZE,
                    COL_BLOB_DIGEST)


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: ``ttl=DEFAULT``: the cache's ``default_ttl``.
DEFAULT: Final[Any] = _Default()
#: What the operations return for "no live entry" (a stored None is a value).
MISSING: Final[Any] = _Missing()

Ttl = dt.timedelta | int | float | None


def row_key_for(key: str) -> str:
    """The RowKey of a cache key: SHA-256 (hex) of the domain prefix and its UTF-8."""
    return hashlib.sha256(_KEY_DOMAIN + key.encode("utf-8", "surrogatepass")).hexdigest()


def check_key(key: object) -> str:
    """Return ``key`` if the cache accepts it.

    :raises TypeError: for a key that is not a ``str``.
    :raises InvalidCacheKeyError: for a key over :data:`MAX_KEY_LENGTH` characters.
    """
    if not isinstance(key, str):
        raise TypeError(f"cache keys are str, not {type(key).__name__}")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidCacheKeyError(f"cache key of {len(key):,} characters is over the "
                                   f"{MAX_KEY_LENGTH:,}-character limit (MAX_KEY_LENGTH)")
    return key


@dataclass(frozen=True, slots=True)
class Prepared:
    """One value ready to write: its value columns, and the blob (name, bytes)
    to upload before the row when it overflows."""

    columns: dict[str, Any]
    blob: tuple[str, bytes] | None = None

    @property
    def pointer_name(self) -> str | None:
        return None if self.blob is None else self.blob[0]


def _int_column(entity: Mapping[str, Any]) -> int | None:
    value = entity.get(COL_INT)
    if isinstance(value, EntityProperty):
        value = value.value
    return value if type(value) is int else None


class CacheRules(RecordRules):
    """Every cache decision, bound to one :class:`CacheConfig`; the payload rules
    it shares with sessions are :class:`RecordRules`'."""

    config: CacheConfig
    too_large = CacheValueTooLargeError

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)

    # -- keys and TTLs ---------------------------------------------------------
    def keys(self, key: object) -> tuple[str, str]:
        """(PartitionKey, RowKey) of a cache key; see :func:`check_key` for errors."""
        rk = row_key_for(check_key(key))
        return partition_key_for(self.config.app_name, rk), rk

    def ttl(self, ttl: object) -> dt.timedelta | None:
        """A ``ttl`` argument as a duration, or None for "never expires".

        :raises TypeError: / :raises ValueError: as :func:`~tablesessions.config.timeout_setting`
            (a ``bool``, a non-positive or non-finite number).
        """
        if ttl is DEFAULT:
            return self.config.default_ttl
        return timeout_setting(ttl, "ttl")

    def expiry_columns(self, ttl: dt.timedelta | None, now: dt.datetime) -> dict[str, Any]:
        """``ExpiresAt`` (and ``TtlSeconds`` when sliding), or nothing for no expiry."""
        if ttl is None:
            return {}
        columns: dict[str, Any] = {COL_EXPIRES: now + ttl}
        if self.config.sliding:
            columns[COL_TTL] = EntityProperty(max(1, round(ttl.total_seconds())), EdmType.INT64)
        return columns

    @staticmethod
    def is_live(entity: Mapping[str, Any], now: dt.datetime) -> bool:
        """An entry without ``ExpiresAt`` never expires; else it lives until then."""
        expires = entity.get(COL_EXPIRES)
        return expires is None or (isinstance(expires, dt.datetime) and now < expires)

    def slide_to(self, entity: Mapping[str, Any], now: dt.datetime) -> dt.datetime | None:
        """The new ``ExpiresAt`` a read should write (sliding expiration), or None.

        Throttled like the session refresh: only once less than half of the
        entry's TTL is left, so a hot key costs one merge per half TTL, not one
        per read.
        """
        if not self.config.sliding:
            return None
        seconds, expires = entity.get(COL_TTL), entity.get(COL_EXPIRES)
        if isinstance(seconds, EntityProperty):
            seconds = seconds.value
        if type(seconds) is not int or seconds <= 0 or not isinstance(expires, dt.datetime):
            return None
        ttl = dt.timedelta(seconds=seconds)
        return now + ttl if expires - now < ttl / 2 else None

    # -- values ----------------------------------------------------------------
    def stores_natively(self, value: object) -> bool:
        """Whether ``value`` goes into the ``IntValue`` column: an ``int`` (not a
        ``bool``, nor a subclass) within int64, in a cache that does not encrypt
        (an encrypting cache seals every value, counters included)."""
        return (type(value) is int and INT64_MIN <= value <= INT64_MAX
                and self.config.key_ring is None)

    def prepare(self, row_key: str, value: Any) -> Prepared:
        """Encode ``value`` for row ``row_key``: no I/O, nothing written yet.

        :raises TypeError: for a value the typed JSON codec refuses.
        :raises CacheValueTooLargeError: over ``max_value_bytes``.
        """
        if self.stores_natively(value):
            return Prepared({COL_INT: EntityProperty(value, EdmType.INT64)})
        try:
            encoded = encode_key(_ENTRY, value)
        except TypeError as exc:
            # The codec names a session key ("session key 'v.items[3]': ..."): here
            # it is the cache value, and the path inside it is what helps.
            text = str(exc)
            prefix = f"session key '{_ENTRY}"
            path, sep, reason = text[len(prefix):].partition("': ")
            if text.startswith(prefix) and sep:
                where = f" at {path.lstrip('.')!r}" if path else ""
                text = f"cache value{where}: {reason}"
            raise TypeError(text) from None
        stored, codec = self.pack({_ENTRY: encoded}, row_key)
        pointer: BlobPointer | None = None
        blob = None
        if self.overflows(stored):
            # The digest comes with the upload (``ops.upload``: its ETag), so no
            # pass over the bytes here.
            pointer = BlobPointer(self.new_blob_name(row_key), len(stored), "")
            blob = (pointer.name, stored)
        return Prepared({COL_VERSION: FORMAT_VERSION, COL_CODEC: codec,
                         **self.payload_columns(stored, pointer)}, blob)

    def entity(self, pk: str, rk: str, prepared: Prepared, expiry: Mapping[str, Any],
               token: str | None = None) -> dict[str, Any]:
        """The whole row of an entry (what an upsert or a replace writes)."""
        entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk, **expiry, **prepared.columns}
        if token is not None:
            entity[COL_TOKEN] = token
        return entity

    @staticmethod
    def kept_expiry(entity: Mapping[str, Any]) -> dict[str, Any]:
        """The expiry columns of a stored row, to carry over a rewrite (``incr``)."""
        return {c: entity[c] for c in EXPIRY_COLUMNS if entity.get(c) is not None}

    def native_int(self, entity: Mapping[str, Any]) -> int | None:
        """The ``IntValue`` of a row, or None when its value is a payload (or when
        this cache requires encryption: :meth:`value_of` then refuses the row)."""
        return None if self._refuses_plaintext() else _int_column(entity)

    def _refuses_plaintext(self) -> bool:
        return self.config.key_ring is not None and not self.config.accept_plaintext

    def value_of(self, entity: Mapping[str, Any], stored: bytes | None) -> Any:
        """Decode a row's value; ``stored`` is its payload (inline or the blob's).

        :raises SessionDecodeError: for a payload that fails decryption or
            integrity, or is malformed (the cache treats it as a miss).
        """
        native = _int_column(entity)
        if native is not None:
            if self._refuses_plaintext():
                # A clear counter where every value is sealed: planted, or written
                # before encryption was turned on. Refused like a plaintext payload.
                raise SessionTamperedError("plaintext int where encryption is required")
            return native
        if stored is None:
            stored = self.inline_bytes(entity)
        entries = self.entries_of(entity, stored)
        entry = entries.get(_ENTRY)
        if entry is None or len(entries) != 1:
            raise SessionDecodeError("cache payload does not hold exactly one value")
        try:
            return decode_key(entry)
        except ValueError as exc:
            raise SessionDecodeError("cache payload could not be decoded") from exc

    @staticmethod
    def has_payload(entity: Mapping[str, Any]) -> bool:
        return any(entity.get(c) is not None for c in _PAYLOAD_COLUMNS)

    @staticmethod
    def recent_tokens(entity: Mapping[str, Any]) -> list[str]:
        return str(entity.get(COL_RECENT) or "").split()

    def counter_columns(self, entity: Mapping[str, Any], token: str) -> dict[str, Any]:
        """``WriteToken`` and ``RecentTokens`` of an ``incr`` write over ``entity``."""
        recent = [token, *self.recent_tokens(entity)][:RECENT_TOKENS]
        return {COL_TOKEN: token, COL_RECENT: " ".join(recent)}

    @staticmethod
    def without_expiry(entity: Mapping[str, Any]) -> dict[str, Any]:
        """A stored row, as a whole, minus its expiry columns (``touch(ttl=None)``)."""
        return {k: v for k, v in entity.items() if k not in EXPIRY_COLUMNS}
