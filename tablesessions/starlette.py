"""Starlette and FastAPI integration: a pure ASGI middleware on the async store.

::

    from tablesessions.aio import SessionStore
    from tablesessions.starlette import TableSessionMiddleware, load_session

    store = SessionStore.from_env()
    app.add_middleware(TableSessionMiddleware, store=store, secret_key="...")

    async def login(request):
        session = await load_session(request)   # one read, only where needed
        await session.regenerate()              # new session id at login: defeats fixation
        session["user"] = "alice"

``request.session`` is lazy. A request that never touches it makes no storage
call. In ``async`` endpoints, load it first with ``await load_session(request)``
(also a FastAPI dependency: ``Depends(load_session)``) or
``await request.session.load()``, or pass ``autoload=True``. Sync endpoints,
which run in a worker thread, load on first use. Changes are saved before the
response starts. In websockets the session is read-only. Settings and defaults:
``docs/frameworks.md``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Literal

from ._extras import require

require("starlette", "starlette")  # before any starlette import: a missing one names the extra

import anyio.from_thread
from starlette.datastructures import MutableHeaders, Secret
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import Session, SessionDecodeError
from ._cookies import CookieSigner, CookieSpec, end_action, end_cookie, normalize_samesite
from ._lazy_session import LazySession
from .aio import SessionStore

__all__ = ["TableSession", "TableSessionMiddleware", "load_session"]

security_logger = logging.getLogger("tablesessions.security")

_NOT_LOADED = ("the session is not loaded: `await load_session(request)` (or "
               "`await request.session.load()`) before using it in an async endpoint, "
               "or add TableSessionMiddleware with autoload=True")


class TableSession(LazySession[SessionStore]):
    """``request.session``: a ``MutableMapping`` over a :class:`tablesessions.Session`
    that the middleware loads only when asked to."""

    def __init__(self, store: SessionStore, session_id: str | None, cookie: str | None,
                 *, cookie_current: bool = False) -> None:
        super().__init__(store, session_id, cookie, cookie_current=cookie_current)
        self._discard: str | None = None
        self.accessed = False

    def mark_accessed(self) -> None:
        """Called by Starlette's ``request.session``: the response varies on Cookie."""
        self.accessed = True

    async def load(self) -> TableSession:
        """Load the session (one read when the cookie names one; none otherwise).
        Idempotent; returns ``self``."""
        if self._session is None:
            found = None
            if self._session_id is not None:
                try:
                    found = await self._store.get(self._session_id)
                except SessionDecodeError as exc:
                    security_logger.warning("stored session failed to decode: %s", exc)
            if self._session is None:  # another task may have loaded it meanwhile
                self._session = found if found is not None else self._store.new()
        return self

    @property
    def current(self) -> Session:
        """The underlying :class:`tablesessions.Session`.

        :raises RuntimeError: when not loaded yet and called on the event loop.
        """
        if self._session is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # a worker thread (a sync endpoint): block on the loop
                try:
                    anyio.from_thread.run(self.load)
                except RuntimeError as exc:
                    if self._session is None:
                        raise RuntimeError(_NOT_LOADED) from exc
                    raise
            else:
                raise RuntimeError(_NOT_LOADED)
        assert self._session is not None
        return self._session

    async def regenerate(self) -> None:
        """Move the data to a new session id and delete the old one. Call it at login.

        An unsaved session is left alone: its id was minted here and never sent.
        """
        await self.load()
        assert self._session is not None
        if not self._session.is_new:
            self._session = await self._store.regenerate(self._session)

    def clear(self) -> None:
        """Empty the session. At the end of the request the stored session is deleted
        and the cookie cleared. No load is needed, so this works unloaded too."""
        if self._session is None:
            self._discard = self._session_id
            self._session = self._store.new()
        else:
            self._session.clear()


async def load_session(connection: HTTPConnection) -> TableSession:
    """Return the request's session, loaded. Usable as a FastAPI dependency.

    :raises RuntimeError: when ``TableSessionMiddleware`` is not installed.
    """
    session = connection.scope.get("session")
    if not isinstance(session, TableSession):
        raise RuntimeError("TableSessionMiddleware is not installed")
    session.mark_accessed()
    return await session.load()


class TableSessionMiddleware:
    """Pure ASGI middleware that gives each request a lazy ``request.session``.

    :param store: the shared :class:`tablesessions.aio.SessionStore`.
    :param secret_key: signs the cookie; the same secret as the other instances'.
    :param fallback_secret_keys: older secrets still accepted while rotating.
    :param session_cookie: the cookie name (``"session"``, as Flask's default).
    :param https_only: the ``Secure`` flag; ``None`` sets it unless ``app.debug``.
    :param same_site: ``"lax"`` (default), ``"strict"`` or ``"none"``.
    :param autoload: load the session before the endpoint runs whenever the
        cookie names one (one read even when the endpoint never uses it).
    """

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore,
        secret_key: str | bytes | Secret,
        *,
        fallback_secret_keys: Sequence[str | bytes] = (),
        session_cookie: str = "session",
        path: str = "/",
        domain: str | None = None,
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool | None = None,
        partitioned: bool = False,
        autoload: bool = False,
    ) -> None:
        self.app = app
        self.store = store
        secret = str(secret_key) if isinstance(secret_key, Secret) else secret_key
        self.signer = CookieSigner(secret, fallback_secret_keys)
        self.cookie_name = session_cookie
        self.https_only = https_only
        self.autoload = autoload
        samesite = normalize_samesite(same_site)
        # Both variants up front, so a bad combination fails at start-up.
        self._specs = {secure: CookieSpec(name=session_cookie, path=path, domain=domain,
                                          secure=secure, samesite=samesite,
                                          partitioned=partitioned)
                       for secure in ((https_only,) if https_only is not None
                                      else (True, False) if samesite != "None" else (True,))}

    def _spec(self, scope: Scope) -> CookieSpec:
        if self.https_only is not None or len(self._specs) == 1:
            return next(iter(self._specs.values()))
        debug = bool(getattr(scope.get("app"), "debug", False))
        return self._specs[not debug]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        cookie = HTTPConnection(scope).cookies.get(self.cookie_name) or None
        session = TableSession.from_cookie(self.store, cookie, self.signer)
        scope["session"] = session
        if self.autoload and session._session_id is not None:
            await session.load()
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)  # no response headers: read-only
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._finish(session, message, scope)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _finish(self, session: TableSession, message: Message, scope: Scope) -> None:
        """Save or delete what the request changed, and set the response's headers."""
        message.setdefault("headers", [])
        headers = MutableHeaders(scope=message)
        if session.accessed or session.loaded:
            headers.add_vary_header("Cookie")
        if not session.loaded:
            return  # never used: no storage call, no cookie
        record = session.current
        expiry_before = record.expires_at
        # A failed request (5xx) persists nothing, as in Django.
        if message["status"] < 500:
            if session._discard is not None:
                await self.store.delete(session._discard)
            action = end_action(record)
            if action == "save":
                await self.store.save(record)
            elif action == "delete":
                await self.store.delete(record)
        header = end_cookie(lambda: self._spec(scope), self.signer, record,
                            incoming=session.cookie, incoming_current=session.cookie_current,
                            expiry_before=expiry_before, now=self.store.config.clock())
        if header is not None:
            headers.append("Set-Cookie", header)
