"""tablesessions: web-app sessions in Azure Table Storage.

One entity per session, idle and absolute expiry checked on every read, large
payloads overflowing into Blob Storage, one tenacity retry layer, and an expiry
sweeper. The async store with the same API is ``tablesessions.aio.SessionStore``.
"""

from __future__ import annotations

from ._sessions.ids import is_valid_session_id, new_session_id
from .config import StoreConfig
from .exceptions import (
    LockTimeoutError,
    SessionConflictError,
    SessionDecodeError,
    SessionTooLargeError,
    StorageNotFoundError,
    TableSessionsError,
)
from .models import Session, SweepReport
from .retry import RetryPolicy, is_transient
from .store import SessionStore

__version__ = "0.1.0"

__all__ = [
    "LockTimeoutError",
    "RetryPolicy",
    "Session",
    "SessionConflictError",
    "SessionDecodeError",
    "SessionStore",
    "SessionTooLargeError",
    "StorageNotFoundError",
    "StoreConfig",
    "SweepReport",
    "TableSessionsError",
    "__version__",
    "is_transient",
    "is_valid_session_id",
    "new_session_id",
]
