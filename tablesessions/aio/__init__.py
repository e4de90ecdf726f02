"""The asyncio face: ``tablesessions.aio.SessionStore``, same API, awaitable."""

from __future__ import annotations

from .store import SessionStore

__all__ = ["SessionStore"]
