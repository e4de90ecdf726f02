"""The objects the store hands out: :class:`Session` and :class:`SweepReport`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ._record.payload import EncodedKey, decode_key


@dataclass(frozen=True, slots=True)
class BlobPointer:
    """Where an overflowed payload lives: an immutable blob, its size and digest
    (SHA-256 hex, or ``gcm:`` and the AES-GCM tag of an encrypted blob)."""

    name: str
    size: int
    digest: str


@dataclass(slots=True)
class _Stored:
    """What the store knows about the stored copy this session was loaded from:
    its ETag, each key's encoding (reused by saves for untouched keys, and the
    base a merge compares against), the overflow pointer and the stored expiry."""

    etag: str
    entries: dict[str, EncodedKey]
    pointer: BlobPointer | None
    expires_at: dt.datetime


class _Pending:
    """Marks a value not decoded yet: keys decode on first access (a request
    that reads one key of a large session pays for that key only)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<pending>"


PENDING: Any = _Pending()


class _Unset:
    """Marks an argument of :meth:`Session.set_expiry` the caller did not pass."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()

#: The longest per-session idle timeout: stored as whole seconds in an Int32 column.
MAX_IDLE = dt.timedelta(seconds=2**31 - 1)


class Session(MutableMapping[str, Any]):
    """One session's data: a ``MutableMapping[str, Any]`` plus its metadata.

    It records which keys this request set or deleted, and ``save`` also notices
    in-place changes to nested values (``session["cart"].append(x)``) by
    comparing encodings, so only real changes are written and merged.

    Attributes: ``id`` (the secret token: put it in a cookie, never in logs),
    ``created_at``, ``expires_at`` (the earlier of the idle and absolute
    deadlines), ``absolute_expires_at``, ``modified``, and the per-session
    expiry set by :meth:`set_expiry`: ``idle_timeout`` (None: the store's) and
    ``browser_session``.
    """

    __slots__ = ("_absolute_request", "_changed", "_columns", "_data", "_force", "_gone", "_read",
                 "_renew", "_stored", "_tokens", "absolute_expires_at", "browser_session",
                 "created_at", "expires_at", "id", "idle_timeout")

    def __init__(
        self,
        session_id: str,
        data: dict[str, Any],
        *,
        created_at: dt.datetime,
        expires_at: dt.datetime,
        absolute_expires_at: dt.datetime,
        stored: _Stored | None = None,
        columns: dict[str, Any] | None = None,
        idle_timeout: dt.timedelta | None = None,
        browser_session: bool = False,
    ) -> None:
        self.id = session_id
        self.created_at = created_at
        self.expires_at = expires_at
        self.absolute_expires_at = absolute_expires_at
        #: this session's own sliding timeout; None: the store's ``idle_timeout``
        self.idle_timeout = idle_timeout
        #: the cookie should carry no Max-Age/Expires (the server still expires it)
        self.browser_session = browser_session
        #: a deadline ``set_expiry(absolute=...)`` asked for, resolved (and capped)
        #: by the store at the next save: UNSET, None, a datetime or a timedelta
        self._absolute_request: Any = UNSET
        #: slide the idle expiry at every save, not only past the refresh threshold
        self._renew = False
        self._data = data
        self._changed: set[str] = set()
        #: container values handed out: only these can have changed in place
        self._read: set[str] = set()
        #: write tokens of this object's unacknowledged writes: a save retried by
        #: the caller recognises a row its failed predecessor wrote after all
        self._tokens: set[str] = set()
        self._force = False
        self._stored = stored
        self._gone = False
        #: feature-owned entity columns (lease lock, user binding) that every
        #: data write carries over as they are
        self._columns: dict[str, Any] = dict(columns or {})

    # -- MutableMapping ---------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        if value is PENDING:
            assert self._stored is not None
            try:
                value = decode_key(self._stored.entries[key])
            except (ValueError, TypeError) as exc:
                from .exceptions import SessionDecodeError

                raise SessionDecodeError(f"stored value of key {key!r} does not decode: "
                                         f"{type(exc).__name__}") from None
            self._data[key] = value
        if isinstance(value, (dict, list)):
            self._read.add(key)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._data  # without decoding the value

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"session keys must be str, got {type(key).__name__}")
        self._data[key] = value
        self._changed.add(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed.add(key)

    def _materialize(self) -> dict[str, Any]:
        """Decode every pending value; return the data dict (internal use)."""
        for key in [k for k, v in self._data.items() if v is PENDING]:
            self[key]
        return self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        # Never the id or the data: reprs end up in logs and tracebacks.
        return f"<Session keys={len(self._data)} new={self.is_new} modified={self.modified}>"

    # -- state ------------------------------------------------------------
    @property
    def is_new(self) -> bool:
        """Whether this session has never been saved."""
        return self._stored is None and not self._gone

    @property
    def is_deleted(self) -> bool:
        """Whether this session was deleted (here or by another request); saving it
        writes nothing."""
        return self._gone

    @property
    def modified(self) -> bool:
        """Whether ``save`` would write data: a key was set or deleted, a nested
        value changed in place, ``modified = True`` was set, or the session is new."""
        if self._force or self._changed or self._stored is None:
            return True
        from ._sessions.rules import changed_in_place  # local: _core imports this module

        return bool(changed_in_place(self))

    @modified.setter
    def modified(self, value: bool) -> None:
        self._force = bool(value)
        if not value:
            self._changed.clear()
            # A pending set_expiry deadline is an unsaved change too: a later
            # expiry-only refresh must not half-apply it.
            self._absolute_request = UNSET

    # -- per-session expiry ---------------------------------------------------
    def set_expiry(self, *, idle: dt.timedelta | None = UNSET,
                   absolute: dt.datetime | dt.timedelta | None = UNSET,
                   browser_session: bool = UNSET) -> None:
        """Give this session its own lifetime; takes effect at the next ``save``.

        Stored in the row, so every instance enforces it on every read and the
        sweeper deletes by it. Marks the session modified. Arguments not passed
        keep their current value.

        :param idle: this session's sliding timeout (whole seconds, 1 s up to
            about 68 years); None: the store's ``idle_timeout``.
        :param absolute: this session's hard deadline: an aware ``datetime``, or a
            ``timedelta`` from the save that follows; None: ``created_at`` plus the
            store's ``absolute_timeout``. A deadline in the past expires the
            session at once. An explicitly configured store ``absolute_timeout``
            (or ``max_absolute_timeout``) caps it: no session outlives that.
        :param browser_session: the integrations send the cookie without
            ``Max-Age``/``Expires``, so the browser drops it when it closes; the
            server still expires the session by its deadlines.
        :raises TypeError: for a value of the wrong type.
        :raises ValueError: for a naive datetime or an idle timeout out of range.
        """
        # Validate everything before changing anything.
        if idle is not UNSET and idle is not None:
            if not isinstance(idle, dt.timedelta):
                raise TypeError(f"idle must be a timedelta or None, not {type(idle).__name__}")
            if not dt.timedelta(seconds=1) <= idle <= MAX_IDLE:
                raise ValueError("idle must be between 1 second and 2**31-1 seconds")
        if isinstance(absolute, dt.datetime):
            if absolute.tzinfo is None or absolute.utcoffset() is None:
                raise ValueError("absolute must be a timezone-aware datetime")
        elif absolute is not UNSET and absolute is not None \
                and not isinstance(absolute, dt.timedelta):
            raise TypeError("absolute must be a datetime, a timedelta or None, "
                            f"not {type(absolute).__name__}")
        if browser_session is not UNSET and not isinstance(browser_session, bool):
            raise TypeError("browser_session must be a bool")
        if idle is not UNSET:
            self.idle_timeout = idle
        if absolute is not UNSET:
            self._absolute_request = absolute
        if browser_session is not UNSET:
            self.browser_session = browser_session
        self._force = True

    def renew(self) -> None:
        """Have every following ``save`` of this object slide the idle expiry
        forward, even before the refresh threshold is reached: one expiry-only
        write (no data rewrite) whenever it moves the deadline by over a second.

        For "save on every request" settings (Django's
        ``SESSION_SAVE_EVERY_REQUEST``), where the cookie's lifetime restarts on
        every response and the server's must follow it.
        """
        self._renew = True

    @property
    def lock_id(self) -> str | None:
        """The id of the lease lock this session was loaded under, if any."""
        value = self._columns.get("LockId")
        return str(value) if value else None


@dataclass(slots=True)
class StorageStats:
    """What ``store.storage_stats()`` and ``tablesessions stats`` report for one app.

    ``histogram`` maps a size bucket label (e.g. ``"<1KiB"``) to a session count.
    """

    sessions: int = 0
    expired: int = 0
    bytes: int = 0
    overflowed: int = 0
    histogram: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"sessions": self.sessions, "expired": self.expired, "bytes": self.bytes,
                "overflowed": self.overflowed, "histogram": dict(self.histogram)}


@dataclass(slots=True)
class CacheStats:
    """What ``TableCache.storage_stats()`` and ``tablesessions cache stats`` report for
    one namespace (``app_name``). ``bytes``: stored payload bytes (after compression
    and encryption; a native int counts 0); ``no_expiry``: entries written with
    ``ttl=None``; ``native_ints``: ints in their own column (a cache without a key ring).
    """

    entries: int = 0
    expired: int = 0
    no_expiry: int = 0
    bytes: int = 0
    overflowed: int = 0
    native_ints: int = 0

    def add(self, other: CacheStats) -> None:
        """Add ``other``'s counts to these."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class SweepReport:
    """What one sweep run did.

    ``scanned`` counts the expired rows the queries returned; ``deleted`` those
    deleted (in a dry run: that would be); ``skipped`` those left alone because
    another request refreshed, changed or deleted them after the scan.
    ``complete`` is False when the time budget ran out, the lease was lost or a
    partition failed (the next run resumes there), and when the run was
    ``skipped_locked`` because another sweeper held the lease.
    """

    scanned: int = 0
    deleted: int = 0
    blobs_deleted: int = 0
    orphans_deleted: int = 0
    errors: int = 0
    duration: dt.timedelta = dt.timedelta(0)
    complete: bool = True
    skipped_locked: bool = False
    dry_run: bool = False
    requests: int = 0
    #: per-user index entries (``bind_user``) removed past their session's deadline
    index_entries_deleted: int = 0
    error_messages: list[str] = field(default_factory=list)
    skipped: int = 0

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-ready dict (durations in seconds)."""
        return {
            "scanned": self.scanned,
            "deleted": self.deleted,
            "blobs_deleted": self.blobs_deleted,
            "orphans_deleted": self.orphans_deleted,
            "skipped": self.skipped,
            "errors": self.errors,
            "duration": self.duration.total_seconds(),
            "complete": self.complete,
            "skipped_locked": self.skipped_locked,
            "dry_run": self.dry_run,
            "requests": self.requests,
            "index_entries_deleted": self.index_entries_deleted,
            "error_messages": list(self.error_messages),
        }
