"""The asyncio faces: ``tablesessions.aio.SessionStore`` and
``tablesessions.aio.TableCache``, the same APIs, awaitable."""

from __future__ import annotations

from .cache import TableCache
from .store import SessionStore

__all__ = ["SessionStore", "TableCache"]
