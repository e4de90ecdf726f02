"""The ``on_storage_error`` policy and the missing-storage rule, shared by both faces."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Literal

from azure.core.exceptions import AzureError, HttpResponseError

from ..config import OnStorageError, RecordConfig
from ..exceptions import StorageNotFoundError
from .storage_errors import missing_storage

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
           exc: Exception, what: str = "session") -> bool:
    """Return True when ``exc`` is a storage failure the policy turns into a no-op.

    Only Azure storage errors qualify: a ``TypeError`` for an unsupported value
    or a ``SessionTooLargeError`` is the caller's bug and always propagates.
    ``what`` names the record in the log line (``"session"``, ``"cache"``).
    """
    if policy != "empty" or not isinstance(exc, (AzureError, StorageNotFoundError)):
        return False
    stats._count(kind)
    outcome = "dropped" if kind == "write" else (
        "treated as no session" if what == "session" else "treated as a miss")
    logger.error("%s %s failed and was %s (on_storage_error='empty'): %s", what, kind,
                 outcome, type(exc).__name__)
    return True


def storage_not_found(exc: BaseException, config: RecordConfig) -> StorageNotFoundError | None:
    """The :class:`StorageNotFoundError` that ``exc`` means, or None when it means
    something else (including a missing entity or blob, which stays a 404).

    Which error codes mean "the table or container is missing" is
    ``_storage_errors``' rule, shared with the CLI and the sweeper; this only
    builds the error a store caller sees."""
    if not isinstance(exc, HttpResponseError) or exc.status_code != 404:
        return None
    code = missing_storage(exc)
    if code is None:
        return None
    if code == "TableNotFound":
        return StorageNotFoundError("table", config.table_name)
    return StorageNotFoundError("container", config.container_name)
