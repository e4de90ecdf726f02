"""tablesessions: web-app sessions in Azure Table Storage.

One entity per session, idle and absolute expiry checked on every read, large
payloads overflowing into Blob Storage, one tenacity retry layer, and an expiry
sweeper; and :class:`TableCache`, a key-value cache on the same record layer.
The async twins with the same APIs are in ``tablesessions.aio``.
"""

from __future__ import annotations

from ._sessions.ids import is_valid_session_id, new_session_id
from .cache import TableCache
from .config import CacheConfig, StoreConfig
from .exceptions import (
    CacheConflictError,
    CacheError,
    CacheValueTooLargeError,
    InvalidCacheKeyError,
    LockTimeoutError,
    PayloadTooLargeError,
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
    "CacheConfig",
    "CacheConflictError",
    "CacheError",
    "CacheValueTooLargeError",
    "InvalidCacheKeyError",
    "LockTimeoutError",
    "PayloadTooLargeError",
    "RetryPolicy",
    "Session",
    "SessionConflictError",
    "SessionDecodeError",
    "SessionStore",
    "SessionTooLargeError",
    "StorageNotFoundError",
    "StoreConfig",
    "SweepReport",
    "TableCache",
    "TableSessionsError",
    "__version__",
    "is_transient",
    "is_valid_session_id",
    "new_session_id",
]
