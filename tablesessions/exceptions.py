"""Errors a caller can act on.

Storage failures are not wrapped: they propagate as ``azure.core.exceptions.*``,
chained, so existing Azure error handling keeps working. The one exception is a
missing table or container, a deployment mistake with one fix: it raises
:class:`StorageNotFoundError`, with the azure error as its ``__cause__``. A
missing or expired session is a normal ``None``, never an exception.
"""

from __future__ import annotations


class TableSessionsError(Exception):
    """Base class of every error this library raises on purpose."""


class PayloadTooLargeError(TableSessionsError, ValueError):
    """An encoded record (a session, a cache value) is larger than a configured limit.

    The base of :class:`SessionTooLargeError` and :class:`CacheValueTooLargeError`;
    raised before anything is written, so what is stored is unchanged.
    """

    noun = "payload"
    default_limit_name = "max_payload_bytes"

    def __init__(self, size: int, limit: int, what: str | None = None) -> None:
        self.size = size
        self.limit = limit
        what = what or self.default_limit_name
        super().__init__(f"encoded {self.noun} is {size:,} bytes, over the {what} limit "
                         f"of {limit:,}")


class SessionTooLargeError(PayloadTooLargeError):
    """The encoded session is larger than a configured limit.

    Raised by ``save`` before anything is written, so the stored session is
    unchanged. Store less in the session, or raise ``max_session_bytes``.
    """

    noun = "session"
    default_limit_name = "max_session_bytes"


class CacheError(TableSessionsError):
    """Base class of the errors only :class:`~tablesessions.TableCache` raises."""


class CacheValueTooLargeError(CacheError, PayloadTooLargeError):
    """The encoded cache value is larger than the cache's ``max_value_bytes``.

    Raised by ``set``, ``add``, ``set_many`` and ``get_or_set`` before anything
    is written (for ``set_many``: before any of its entries is written). Cache
    less, or raise ``max_value_bytes``.
    """

    noun = "cache value"
    default_limit_name = "max_value_bytes"


class InvalidCacheKeyError(CacheError, ValueError):
    """A cache key is longer than ``tablesessions.cache.MAX_KEY_LENGTH`` characters.

    Raised before any storage call. Any ``str`` up to that length is a valid key
    (keys are hashed, so ``/ \\ # ?``, control characters and Unicode are fine);
    a key that is not a ``str`` raises ``TypeError``.
    """


class CacheConflictError(CacheError):
    """An atomic cache operation (``incr``/``decr``, ``add`` over an expired entry,
    ``touch``) kept losing to concurrent writers of the same key until its
    deadline (``retry.deadline``) ran out. Nothing was changed by this call;
    retry it, or raise the deadline for keys this hot.
    """


class SessionConflictError(TableSessionsError):
    """Another request changed the same session, and the conflict policy says raise.

    Raised by ``save`` with ``concurrency="strict"``, or with
    ``key_conflict="raise"`` when both requests changed the same key. Reload the
    session and apply the change again, or use ``store.lock()``.
    """


class SessionDecodeError(TableSessionsError):
    """A stored payload failed its integrity check or could not be decoded.

    Raised by ``get`` when an overflow blob's digest or size does not match its
    pointer, or the payload is malformed. This means corruption or tampering in
    storage, not a client bug; the session should be deleted.
    """


class SessionTamperedError(SessionDecodeError):
    """An encrypted payload failed authentication: tampered, copied from another
    session's row, plaintext where encryption is required, or under a key no
    longer in the ring.

    ``get`` turns this into "no session" and logs one WARNING on the
    ``tablesessions.security`` logger (no data, no raw id); it is raised only
    where a silent None would lose a write (``save`` merging onto such a row).
    """


class LockTimeoutError(TableSessionsError, TimeoutError):
    """``store.lock()`` could not take the lease before its ``timeout``.

    ``holder`` is the current lock id and ``age`` how long it has been held,
    for diagnostics. Retry later, or raise the timeout.
    """

    def __init__(self, message: str, *, holder: str | None = None, age: float | None = None):
        self.holder = holder
        self.age = age
        super().__init__(message)


class StorageNotFoundError(TableSessionsError):
    """The store's table or overflow container does not exist.

    Raised by every operation that reaches the missing table or container,
    reads included: a half-provisioned deployment must fail loudly, not log
    everyone out as "no session". With ``on_storage_error="empty"`` it is
    absorbed like any other storage failure (counted in ``store.stats``).
    ``kind`` is ``"table"`` or ``"container"``, ``name`` its name, and
    ``__cause__`` the azure ``ResourceNotFoundError`` (``TableNotFound`` or
    ``ContainerNotFound``). Run ``tablesessions init`` (or
    ``store.create_storage()``) once per deployment.
    """

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"the {kind} {name!r} does not exist: run `tablesessions init` "
                         "(or store.create_storage()) to create the table and the container")
