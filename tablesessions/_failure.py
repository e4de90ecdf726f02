"""The ``on_storage_error`` policy and the missing-storage rule, shared by both faces."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Literal

from azure.core.exceptions import AzureError, HttpResponseError

from .config import OnStorageError, StoreConfig
from .exceptions import StorageNotFoundError

logger = logging.getLogger("tablesessions.store")


@dataclass
class StoreStats:
    """Counters a caller can watch. With ``on_storage_error="empty"`` these are
    the only trace of a swallowed failure besides a log line, so alert on them."""

    read_errors_absorbed: int = 0
    write_errors_absorbed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def _count(self, kind: Literal["read", "write"]) -> None:
        with self._lock:
            if kind == "read":
                self.read_errors_absorbed += 1
            else:
                self.write_errors_absorbed += 1


def absorb(policy: OnStorageError, stats: StoreStats, kind: Literal["read", "write"],
           exc: Exception) -> bool:
    """Return True when ``exc`` is a storage failure the policy turns into a no-op.

    Only Azure storage errors qualify: a ``TypeError`` for an unsupported value
    or a ``SessionTooLargeError`` is the caller's bug and always propagates.
    """
    if policy != "empty" or not isinstance(exc, (AzureError, StorageNotFoundError)):
        return False
    stats._count(kind)
    logger.error("session %s failed and was %s (on_storage_error='empty'): %s", kind,
                 "treated as no session" if kind == "read" else "dropped", type(exc).__name__)
    return True


#: The service's error codes for a missing table or container. A missing *entity*
#: (``ResourceNotFound``) or blob (``BlobNotFound``) is a normal 404 and is not here.
MISSING_STORAGE_CODES = {"TableNotFound": "table", "ContainerNotFound": "container"}


def error_code(exc: BaseException) -> str | None:
    """The service's error code of ``exc``: the ``x-ms-error-code`` header first
    (``create_entity`` raises a raw error without ``.error_code``), else ``.error_code``
    (a table batch's error carries the code only there)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    code: object = headers.get("x-ms-error-code") if headers is not None else None
    if not code:
        code = getattr(exc, "error_code", None)
    if not code:
        return None
    return str(getattr(code, "value", code))


def missing_storage(exc: BaseException, config: StoreConfig) -> StorageNotFoundError | None:
    """The :class:`StorageNotFoundError` that ``exc`` means, or None when it means
    something else (including a missing entity or blob, which stays a 404)."""
    if not isinstance(exc, HttpResponseError) or exc.status_code != 404:
        return None
    kind = MISSING_STORAGE_CODES.get(error_code(exc) or "")
    if kind is None:
        return None
    return StorageNotFoundError(kind, config.table_name if kind == "table"
                                else config.container_name)
