"""Starlette and FastAPI integration: a pure ASGI middleware on the async store.

A drop-in for Starlette's ``SessionMiddleware``: the same constructor arguments,
and ``request.session`` is a ``dict`` in sync and async endpoints alike::

    from tablesessions.aio import SessionStore
    from tablesessions.starlette import TableSessionMiddleware

    store = SessionStore.from_env()
    app.add_middleware(TableSessionMiddleware, store=store, secret_key="...")

    async def login(request):
        await request.session.regenerate()      # new session id at login: defeats fixation
        request.session["user"] = "alice"

When a request carries a validly signed cookie, its session is read before the
endpoint runs (one read, ``autoload=True``); with no cookie, or a forged one,
there is nothing to read and no storage call. ``autoload=False`` reads only
when an endpoint asks for the session (``await load_session(request)``, or on
first use in a sync endpoint). Changes are saved before the response starts.
In websockets the session is read-only. Settings and defaults:
``docs/frameworks.md``.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from ._extras import require

require("starlette", "starlette")  # before any starlette import: a missing one names the extra

import anyio.from_thread
from starlette.datastructures import MutableHeaders, Secret
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import Session, SessionDecodeError
from ._sessions.cookies import CookieSigner, CookieSpec, end_action, end_cookie, normalize_samesite
from ._sessions.lazy_session import verify_cookie
from .aio import SessionStore
from .models import MAX_IDLE

__all__ = ["TableSession", "TableSessionMiddleware", "load_session"]

security_logger = logging.getLogger("tablesessions.security")

_NOT_LOADED = ("the session is not loaded: with TableSessionMiddleware(autoload=False), "
               "`await load_session(request)` (or `await request.session.load()`) before "
               "using it in an async endpoint")
#: Starlette's default ``max_age``: 14 days.
DEFAULT_MAX_AGE = 14 * 24 * 60 * 60
#: The longest per-session idle timeout the store keeps (``Session.set_expiry``).
MAX_IDLE_SECONDS = int(MAX_IDLE.total_seconds())
#: Held in an unloaded session's dict storage, so that json's C encoder (which
#: writes an empty dict subclass as ``{}`` without asking it) calls ``items()``
#: and gets the "not loaded" error instead of silently writing ``{}``.
_UNLOADED = object()
_T = TypeVar("_T")


class TableSession(dict[str, Any]):
    """``request.session``: a ``dict`` holding the session's data, plus
    :meth:`load`, :meth:`regenerate` and :attr:`current` (the underlying
    :class:`tablesessions.Session`).

    A ``dict`` like Starlette's own session, so ``JSONResponse({"session":
    request.session})`` works. The data is diffed against the stored session
    when the response starts: only keys that changed (or whose nested values
    changed in place) are written.
    """

    def __init__(self, store: SessionStore, session_id: str | None, cookie: str | None,
                 *, cookie_current: bool = False) -> None:
        super().__init__()
        self._store = store
        self._session_id = session_id
        #: the raw cookie value the request carried, when it verified (else None)
        self.cookie = cookie
        #: whether ``cookie`` is signed with the current secret
        self.cookie_current = cookie_current
        self._record: Session | None = None
        # A session with no id needs no I/O: it is loaded (empty) from the start.
        self._loaded = session_id is None
        self._discard: str | None = None
        self.accessed = False
        if not self._loaded:
            dict.__setitem__(self, _UNLOADED, None)  # type: ignore[misc]

    @classmethod
    def from_cookie(cls, store: SessionStore, cookie: str | None,
                    signer: CookieSigner) -> TableSession:
        """The request's session for its raw cookie value. No I/O."""
        session_id, verified, current = verify_cookie(signer, cookie)
        return cls(store, session_id, verified, cookie_current=current)

    def __repr__(self) -> str:
        # Never the id or the data: reprs end up in logs and tracebacks.
        return f"<TableSession loaded={self._loaded}>"

    def mark_accessed(self) -> None:
        """Called by Starlette's ``request.session``: the response varies on Cookie.

        In a worker thread (a sync endpoint) this also loads the session."""
        self.accessed = True
        if not self._loaded:
            self._load_in_thread()

    @property
    def loaded(self) -> bool:
        """Whether the session's data is here (read, or known to be new)."""
        return self._loaded

    async def load(self) -> TableSession:
        """Read the session (one read when the cookie names one; none otherwise).
        Idempotent; returns ``self``."""
        if not self._loaded:
            found = None
            assert self._session_id is not None
            try:
                found = await self._store.get(self._session_id)
            except SessionDecodeError as exc:
                security_logger.warning("stored session failed to decode: %s", exc)
            if not self._loaded:  # another task may have loaded it meanwhile
                self._fill(found)
        return self

    def _load_in_thread(self) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread: block on the event loop's load
            try:
                anyio.from_thread.run(self.load)
            except RuntimeError as exc:  # no event loop to borrow
                if not self._loaded:
                    raise RuntimeError(_NOT_LOADED) from exc
                raise
            return True
        return False

    def _fill(self, found: Session | None) -> None:
        dict.clear(self)
        self._record = found
        if found is not None:
            # found[key] decodes each value and lets the store notice in-place
            # changes to the containers handed out.
            dict.update(self, ((key, found[key]) for key in found))
        self._loaded = True

    def _ensure(self) -> None:
        if not self._loaded and not self._load_in_thread():
            raise RuntimeError(_NOT_LOADED)

    @property
    def current(self) -> Session:
        """The underlying :class:`tablesessions.Session`, with this dict's changes applied.

        :raises RuntimeError: when not loaded yet and called on the event loop.
        """
        self._ensure()
        return self._sync()

    def _sync(self) -> Session:
        """Apply the dict's contents to the underlying session (no I/O)."""
        record = self._record
        if record is None:
            record = self._record = self._store.new()
        for key in [k for k in record if not dict.__contains__(self, k)]:
            del record[key]
        for key, value in dict.items(self):
            if key not in record or record[key] is not value:
                record[key] = value
        return record

    async def regenerate(self) -> None:
        """Move the data to a new session id and delete the old one. Call it at login.

        An unsaved session is left alone: its id was minted here and never sent.
        """
        self.accessed = True
        await self.load()
        record = self._sync()
        if not record.is_new:
            fresh = await self._store.regenerate(record)
            self._record = fresh
            for key in fresh:
                fresh[key]  # registers containers for in-place change checks

    # -- the dict, loaded on demand -----------------------------------------------
    def clear(self) -> None:
        """Empty the session. At the end of the request the stored session is deleted
        and the cookie cleared. No read is needed, so this works unloaded too."""
        self.accessed = True
        if not self._loaded:
            self._discard = self._session_id
            self._fill(None)
        dict.clear(self)

    def __getitem__(self, key: str) -> Any:
        self._ensure()
        return dict.__getitem__(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._ensure()
        self.accessed = True
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._ensure()
        self.accessed = True
        dict.__delitem__(self, key)

    def __contains__(self, key: object) -> bool:
        self._ensure()
        return dict.__contains__(self, key)

    def __iter__(self) -> Iterator[str]:
        self._ensure()
        return dict.__iter__(self)

    def __reversed__(self) -> Iterator[str]:
        self._ensure()
        return dict.__reversed__(self)

    def __len__(self) -> int:
        self._ensure()
        return dict.__len__(self)

    def __eq__(self, other: object) -> bool:
        self._ensure()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._ensure()
        return dict.__ne__(self, other)

    __hash__ = None

    def __or__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        self._ensure()
        return dict(dict.items(self)) | other  # type: ignore[no-any-return]

    def __ror__(self, other: Any) -> dict[str, Any]:  # type: ignore[override]
        self._ensure()
        return other | dict(dict.items(self))  # type: ignore[no-any-return]

    def __ior__(self, other: Any) -> TableSession:  # type: ignore[override]
        self.update(other)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        self._ensure()
        return dict.get(self, key, default)

    def keys(self) -> Any:
        self._ensure()
        return dict.keys(self)

    def values(self) -> Any:
        self._ensure()
        return dict.values(self)

    def items(self) -> Any:
        self._ensure()
        return dict.items(self)

    def copy(self) -> dict[str, Any]:
        self._ensure()
        return dict(dict.items(self))

    def pop(self, key: str, *default: Any) -> Any:
        self._ensure()
        self.accessed = True
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, Any]:
        self._ensure()
        self.accessed = True
        return dict.popitem(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._ensure()
        self.accessed = True
        return dict.setdefault(self, key, default)

    # Copies and pickles are plain dicts: the store and the request stay behind.
    def __copy__(self) -> dict[str, Any]:
        return self.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(self.copy(), memo)

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return dict, (self.copy(),)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._ensure()
        self.accessed = True
        for key, value in dict(*args, **kwargs).items():
            if not isinstance(key, str):
                raise TypeError(f"session keys must be str, got {type(key).__name__}")
            dict.__setitem__(self, key, value)


async def load_session(connection: HTTPConnection) -> TableSession:
    """Return the request's session, loaded. Usable as a FastAPI dependency.

    :raises RuntimeError: when ``TableSessionMiddleware`` is not installed.
    """
    session = connection.scope.get("session")
    if not isinstance(session, TableSession):
        raise RuntimeError("TableSessionMiddleware is not installed")
    session.accessed = True
    return await session.load()


def _check(name: str, value: object, kinds: tuple[type, ...], what: str) -> None:
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise TypeError(f"TableSessionMiddleware {name}= must be {what}, "
                        f"not {type(value).__name__}")


class TableSessionMiddleware:
    """Pure ASGI middleware that gives each request ``request.session``.

    The arguments after ``store`` are those of Starlette's ``SessionMiddleware``
    (same names, same defaults unless noted), so swapping one for the other
    needs no other change.

    :param store: the shared :class:`tablesessions.aio.SessionStore`.
    :param secret_key: signs the cookie; the same secret as the other instances'.
    :param session_cookie: the cookie name (``"session"``).
    :param max_age: the session's lifetime in seconds (14 days, as Starlette):
        the cookie's ``Max-Age`` and, on the server, the session's idle and
        absolute timeouts (an explicitly configured store ``absolute_timeout``
        caps it). ``None``: a browser-session cookie (no ``Max-Age``), expired
        on the server by the store's ``idle_timeout`` and ``absolute_timeout``.
        ``0`` or less: sessions are never kept (a write answers with a
        clearing cookie).
    :param path: the cookie's ``Path``.
    :param same_site: ``"lax"`` (default), ``"strict"`` or ``"none"``.
    :param https_only: the ``Secure`` flag. ``None`` (default) sets it on every
        response to an https (or wss) request; Starlette's default ``False``
        never sets it. ``True`` always (use it behind a TLS-terminating proxy
        that does not forward the scheme).
    :param domain: the cookie's ``Domain``, written as given (``None``: host-only).
    :param partitioned: the ``Partitioned`` attribute (CHIPS).
    :param fallback_secret_keys: older secrets still accepted while rotating.
    :param autoload: read the session before the endpoint runs whenever the
        request carries a validly signed cookie (one read, even when the
        endpoint never uses it). ``False``: read only when asked
        (``await load_session(request)``, or first use in a sync endpoint).
    :raises TypeError: for an argument of the wrong type, naming it.
    :raises ValueError: for a bad value (an empty secret, a cookie name that is
        not a token, ``same_site="none"`` with ``https_only=False``).
    """

    def __init__(
        self,
        app: ASGIApp,
        store: SessionStore,
        secret_key: str | bytes | Secret,
        session_cookie: str = "session",
        max_age: int | None = DEFAULT_MAX_AGE,
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool | None = None,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        fallback_secret_keys: Sequence[str | bytes] = (),
        autoload: bool = True,
    ) -> None:
        if not isinstance(store, SessionStore):
            raise TypeError("TableSessionMiddleware store= must be a "
                            f"tablesessions.aio.SessionStore, not {type(store).__name__}"
                            + (" (the sync store would block the event loop)"
                               if type(store).__name__ == "SessionStore" else ""))
        _check("secret_key", secret_key, (str, bytes, Secret), "a str, bytes or Secret")
        _check("session_cookie", session_cookie, (str,), "a str")
        if max_age is not None:
            _check("max_age", max_age, (int,), "an int (seconds) or None")
            if max_age > MAX_IDLE_SECONDS:
                raise ValueError(f"TableSessionMiddleware max_age= must be at most "
                                 f"{MAX_IDLE_SECONDS} seconds (about 68 years)")
        _check("path", path, (str,), "a str")
        _check("same_site", same_site, (str,), 'one of "lax", "strict", "none"')
        if https_only is not None:
            _check("https_only", https_only, (bool,), "a bool or None")
        if domain is not None:
            _check("domain", domain, (str,), "a str or None")
        _check("partitioned", partitioned, (bool,), "a bool")
        _check("autoload", autoload, (bool,), "a bool")
        if isinstance(fallback_secret_keys, (str, bytes)) or not all(
                isinstance(k, (str, bytes)) for k in fallback_secret_keys):
            raise TypeError("TableSessionMiddleware fallback_secret_keys= must be a list "
                            "of str or bytes secrets")
        self.app = app
        self.store = store
        secret = str(secret_key) if isinstance(secret_key, Secret) else secret_key
        try:
            self.signer = CookieSigner(secret, fallback_secret_keys)
            samesite = normalize_samesite(same_site)
        except ValueError as exc:
            raise ValueError(f"TableSessionMiddleware: {exc}") from None
        # Encryption at rest keyed by the same secret (fallbacks still decrypt),
        # unless the store was given a key_ring.
        store.encrypt_with_secret(secret, fallback_secret_keys)
        self.cookie_name = session_cookie
        self.max_age = max_age
        self.https_only = https_only
        self.autoload = autoload
        # Both variants up front, so a bad combination fails at start-up.
        secures: Iterable[bool] = ((https_only,) if https_only is not None
                                   else (True, False) if samesite != "None" else (True,))
        try:
            self._specs = {secure: CookieSpec(name=session_cookie, path=path, domain=domain,
                                              secure=secure, samesite=samesite,
                                              partitioned=partitioned, lowercase=True)
                           for secure in secures}
        except ValueError as exc:
            raise ValueError(f"TableSessionMiddleware: {exc}") from None

    def _spec(self, scope: Scope) -> CookieSpec:
        if len(self._specs) == 1:
            return next(iter(self._specs.values()))
        return self._specs[scope.get("scheme") in ("https", "wss")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        cookie = HTTPConnection(scope).cookies.get(self.cookie_name) or None
        session = TableSession.from_cookie(self.store, cookie, self.signer)
        scope["session"] = session
        if self.autoload and not session.loaded:
            await session.load()
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)  # no response headers: read-only
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._finish(session, message, scope)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    def _lifetime(self, record: Session) -> None:
        """Give a new session this middleware's lifetime (stored with it)."""
        if self.max_age is None:
            record.set_expiry(browser_session=True)
        else:
            lifetime = dt.timedelta(seconds=self.max_age)
            record.set_expiry(idle=lifetime, absolute=lifetime)

    async def _finish(self, session: TableSession, message: Message, scope: Scope) -> None:
        """Save or delete what the request changed, and set the response's headers."""
        message.setdefault("headers", [])
        headers = MutableHeaders(scope=message)
        if session.accessed:
            headers.add_vary_header("Cookie")
        if not session.accessed or not session.loaded:
            return  # never used: no (further) storage call, no cookie
        record = session._sync()
        expiry_before = record.expires_at
        browser_before = record.browser_session
        # Starlette re-sends the cookie of a modified session; a failed request
        # (5xx) saved nothing, so it has nothing to re-send.
        modified = record.modified and message["status"] < 500
        header: str | None = None
        # A failed request (5xx) persists nothing, as in Django.
        if message["status"] < 500:
            if session._discard is not None:
                await self.store.delete(session._discard)
            action = end_action(record)
            if action == "save" and self.max_age is not None and self.max_age <= 0:
                # A lifetime of zero: nothing could ever read the session back.
                header = self._spec(scope).delete_header()
                action = "skip" if record.is_new else "delete"
            if action == "save":
                if record.is_new:
                    self._lifetime(record)
                await self.store.save(record)
            elif action == "delete":
                await self.store.delete(record)
        if header is None:
            header = end_cookie(lambda: self._spec(scope), self.signer, record,
                                incoming=session.cookie,
                                incoming_current=session.cookie_current,
                                expiry_before=expiry_before, browser_before=browser_before,
                                refresh=modified, now=self.store.config.clock())
        if header is not None:
            headers.append("Set-Cookie", header)
