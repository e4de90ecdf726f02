"""The async SDK clients, one set per event loop (used by ``async_face``).

The SDK's aiohttp sessions belong to the event loop they first ran on. An app
normally has one loop, but Starlette's ``TestClient`` (outside ``with client:``)
runs every request on a new one, where clients bound to an earlier, closed loop
fail with ``Event loop is closed`` (issue 15). So each loop gets its own
clients, built on first use there, and closed when that loop shuts down: a
suspended async generator holds them, and asyncio's ``shutdown_asyncgens``
(run by ``asyncio.run`` and anyio at the end of a loop) closes it while the
loop still runs.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger("tablesessions.store")
C = TypeVar("C")


class PerLoop(Generic[C]):
    """Hold one ``C`` (the clients) per running event loop.

    :param make: builds a new set of clients (no I/O).
    :param close: closes one set.
    """

    def __init__(self, make: Callable[[], C], close: Callable[[C], Awaitable[None]]) -> None:
        self._make = make
        self._close = close
        #: built now, so a bad endpoint or connection string fails at construction;
        #: adopted by the first loop that runs an operation
        self._spare: C | None = make()
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[C, AsyncGenerator[None, None] | None]] = \
            weakref.WeakKeyDictionary()

    async def bind(self) -> C:
        """This loop's clients, created (and their shutdown hook armed) on first use."""
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is None or entry[1] is None:
            clients = entry[0] if entry is not None else self._take()
            guard = self._guard(loop, clients)
            await guard.__anext__()  # registers it with the loop's shutdown_asyncgens
            entry = self._by_loop[loop] = (clients, guard)
        return entry[0]

    def get(self) -> C:
        """This loop's clients (sync; :meth:`bind` normally ran first)."""
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is None:
            entry = self._by_loop[loop] = (self._take(), None)
        return entry[0]

    def _take(self) -> C:
        clients, self._spare = self._spare if self._spare is not None else self._make(), None
        return clients

    async def _guard(self, loop: asyncio.AbstractEventLoop,
                     clients: C) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self._by_loop.pop(loop, None)
            try:
                await self._close(clients)
            except Exception as exc:  # closing at loop shutdown must not raise
                logger.debug("closing the clients of a finished event loop failed: %r", exc)

    async def close(self) -> None:
        """Close this loop's clients (and the unused spare). Other loops' clients
        close when their loop shuts down."""
        entry = self._by_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            if entry[1] is not None:
                await entry[1].aclose()  # its finally closes the clients
            else:
                await self._close(entry[0])
        if self._spare is not None:
            spare, self._spare = self._spare, None
            await self._close(spare)
