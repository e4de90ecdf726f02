"""Flask integration: ``flask.session`` stored in Azure Table Storage.

::

    from flask import Flask, session
    from tablesessions.flask import TableSessions, regenerate

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "..."                        # signs the cookie
    app.config["TABLESESSIONS_CONNECTION_STRING"] = "..."   # or TABLE_/BLOB_ENDPOINT
    TableSessions(app)                                      # or TableSessions(app, store=...)

    @app.post("/login")
    def login():
        regenerate()                # new session id at login: defeats fixation
        session["user"] = "alice"

The session loads on first use, so a request that never touches it makes no
storage call. ``session.clear()`` deletes the stored session and the cookie.
Settings and defaults: ``docs/frameworks.md``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._extras import require

require("flask", "flask")  # before any flask import: a missing one names the extra

from flask import current_app
from flask import session as _current_session
from flask.sessions import SessionInterface, SessionMixin

from . import Session, SessionDecodeError, SessionStore
from ._cookies import (
    PREFIX,
    CookieSigner,
    CookieSpec,
    end_action,
    end_cookie,
    normalize_samesite,
    store_from_settings,
)
from ._lazy_session import LazySession

if TYPE_CHECKING:
    from flask import Flask
    from flask.wrappers import Request, Response

__all__ = ["TableSession", "TableSessionInterface", "TableSessions", "regenerate"]

security_logger = logging.getLogger("tablesessions.security")

#: ``TABLESESSIONS_*`` config keys that shape the cookie rather than the store.
COOKIE_SECURE_KEY = "TABLESESSIONS_COOKIE_SECURE"


class TableSession(LazySession[SessionStore], SessionMixin):
    """The object behind ``flask.session``: a ``MutableMapping`` that loads from the
    store on first use. ``permanent`` is always True: the cookie's ``Max-Age``
    follows the store's idle and absolute timeouts, not ``PERMANENT_SESSION_LIFETIME``.
    """

    # Spelled out so the public signature names the sync store, not a type variable.
    def __init__(self, store: SessionStore, session_id: str | None, cookie: str | None,
                 *, cookie_current: bool = False) -> None:
        super().__init__(store, session_id, cookie, cookie_current=cookie_current)

    @property
    def current(self) -> Session:
        """The underlying :class:`tablesessions.Session`, loaded on first use."""
        if self._session is None:
            found = None
            if self._session_id is not None:
                try:
                    found = self._store.get(self._session_id)
                except SessionDecodeError as exc:
                    # Corrupt or tampered stored data: log it and start afresh.
                    security_logger.warning("stored session failed to decode: %s", exc)
            self._session = found if found is not None else self._store.new()
        return self._session

    def regenerate(self) -> None:
        """Move the data to a new session id and delete the old one. Call it at login.

        An unsaved session is left alone: its id was minted here and never sent.
        """
        session = self.current
        if not session.is_new:
            self._session = self._store.regenerate(session)

    # -- SessionMixin ---------------------------------------------------------------
    @property
    def new(self) -> bool:
        return self.current.is_new

    @new.setter
    def new(self, value: bool) -> None:
        """Ignored: whether a session is new is the store's to say."""

    @property
    def modified(self) -> bool:
        return self._session is not None and self._session.modified

    @modified.setter
    def modified(self, value: bool) -> None:
        self.current.modified = value

    @property
    def permanent(self) -> bool:
        return True

    @permanent.setter
    def permanent(self, value: bool) -> None:
        """Ignored: the store's timeouts decide how long a session lives."""


class TableSessionInterface(SessionInterface):
    """The ``SessionInterface`` that :class:`TableSessions` installs on an app."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def signer(self, app: Flask) -> CookieSigner:
        """Sign with ``SECRET_KEY``; accept ``SECRET_KEY_FALLBACKS`` while rotating."""
        fallbacks = app.config.get("SECRET_KEY_FALLBACKS") or ()
        return CookieSigner(app.secret_key or b"", fallbacks)

    def cookie_spec(self, app: Flask) -> CookieSpec:
        secure = app.config.get(COOKIE_SECURE_KEY)
        if secure is None:  # on outside debug, or when SESSION_COOKIE_SECURE says so
            secure = self.get_cookie_secure(app) or not app.debug
        return CookieSpec(
            name=self.get_cookie_name(app),
            path=self.get_cookie_path(app) or "/",
            domain=self.get_cookie_domain(app),
            secure=bool(secure),
            httponly=self.get_cookie_httponly(app),
            samesite=normalize_samesite(self.get_cookie_samesite(app) or "Lax"),
            partitioned=bool(app.config.get("SESSION_COOKIE_PARTITIONED", False)),
        )

    def open_session(self, app: Flask, request: Request) -> TableSession | None:
        if not app.secret_key:
            return None  # Flask's NullSession then explains that SECRET_KEY is missing
        cookie = request.cookies.get(self.get_cookie_name(app)) or None
        return TableSession.from_cookie(self.store, cookie, self.signer(app))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, TableSession) or not session.loaded:
            if session.accessed:  # set by Flask >= 3.1.3 when the proxy is touched
                response.vary.add("Cookie")
            return  # never used: no storage call, no cookie
        response.vary.add("Cookie")
        record = session.current
        expiry_before = record.expires_at
        # A failed request (5xx) persists nothing, as in Django.
        if response.status_code < 500:
            action = end_action(record)
            if action == "save":
                self.store.save(record)
            elif action == "delete":
                self.store.delete(record)
        header = end_cookie(lambda: self.cookie_spec(app), self.signer(app), record,
                            incoming=session.cookie, incoming_current=session.cookie_current,
                            expiry_before=expiry_before, now=self.store.config.clock())
        if header is not None:
            response.headers.add("Set-Cookie", header)
            response.vary.add("Cookie")


class TableSessions:
    """The Flask extension: ``TableSessions(app)`` or ``TableSessions().init_app(app)``.

    :param store: a ready :class:`tablesessions.SessionStore`, used as is;
        otherwise one is built from ``app.config``'s ``TABLESESSIONS_*`` keys,
        with ``TABLESESSIONS_*`` environment variables filling the gaps.
    """

    def __init__(self, app: Flask | None = None, store: SessionStore | None = None) -> None:
        self._store = store
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install the session interface on ``app`` (no storage call is made).

        :raises ValueError: for an unknown ``TABLESESSIONS_*`` key or no connection.
        """
        store = self._store
        if store is None:
            settings = {k: v for k, v in app.config.items()
                        if k.startswith(PREFIX) and k != COOKIE_SECURE_KEY}
            store = store_from_settings(SessionStore, settings)
        app.session_interface = TableSessionInterface(store)
        app.extensions["tablesessions"] = store

    @property
    def store(self) -> SessionStore:
        """The store given to the constructor, or else the current app's."""
        if self._store is not None:
            return self._store
        store: SessionStore = current_app.extensions["tablesessions"]
        return store


def regenerate() -> None:
    """Give the current request's session a new id, keeping its data; call at login.

    :raises RuntimeError: outside a request, or when the app does not use TableSessions.
    """
    session = _current_session
    if not isinstance(session, TableSession):
        raise RuntimeError("flask.session is not a TableSession: call TableSessions(app) first")
    session.regenerate()
