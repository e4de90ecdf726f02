"""Pin the public surface, and keep the sync and async faces identical."""

from __future__ import annotations

import inspect

import tablesessions
import tablesessions.aio
import tablesessions.exceptions as exc


def test_exported_members() -> None:
    assert sorted(tablesessions.__all__) == sorted([
        "CacheConfig", "CacheConflictError", "CacheError", "CacheValueTooLargeError",
        "InvalidCacheKeyError", "PayloadTooLargeError", "TableCache",
        "LockTimeoutError", "RetryPolicy", "Session", "SessionConflictError",
        "SessionDecodeError", "SessionStore", "SessionTooLargeError", "StorageNotFoundError",
        "StoreConfig",
        "SweepReport", "TableSessionsError", "__version__", "is_transient",
        "is_valid_session_id", "new_session_id",
    ])
    for name in tablesessions.__all__:
        assert hasattr(tablesessions, name)


def test_errors_share_one_base_and_are_reexported() -> None:
    for name in ("SessionTooLargeError", "SessionConflictError", "SessionDecodeError",
                 "LockTimeoutError", "StorageNotFoundError"):
        cls = getattr(exc, name)
        assert issubclass(cls, exc.TableSessionsError)
        assert getattr(tablesessions, name) is cls


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(member) for name, member in inspect.getmembers(cls)
            if not name.startswith("_") and callable(member)}


def test_sync_and_async_faces_expose_the_same_methods_and_signatures() -> None:
    sync = public_methods(tablesessions.SessionStore)
    aio = public_methods(tablesessions.aio.SessionStore)
    assert sync.keys() == aio.keys()
    for name, sig in sync.items():
        assert str(sig) == str(aio[name]).replace("AsyncIterator", "Iterator"), name
    for name in ("new", "get", "save", "delete", "regenerate", "create_storage", "sweep",
                 "close", "lock"):
        assert name in sync
    assert hasattr(tablesessions.SessionStore, "__enter__")
    assert hasattr(tablesessions.aio.SessionStore, "__aenter__")
    # The I/O methods are coroutines on the async face, plain on the sync one.
    for name in ("get", "save", "delete", "regenerate", "create_storage", "sweep", "close"):
        assert inspect.iscoroutinefunction(getattr(tablesessions.aio.SessionStore, name))
        assert not inspect.iscoroutinefunction(getattr(tablesessions.SessionStore, name))
