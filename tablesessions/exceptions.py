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


class SessionTooLargeError(TableSessionsError, ValueError):
    """The encoded session is larger than a configured limit.

    Raised by ``save`` before anything is written, so the stored session is
    unchanged. Store less in the session, or raise ``max_session_bytes``.
    """

    def __init__(self, size: int, limit: int, what: str = "max_session_bytes") -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"encoded session is {size:,} bytes, over the {what} limit of {limit:,}")


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
