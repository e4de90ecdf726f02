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
        session.permanent = True    # "remember me": PERMANENT_SESSION_LIFETIME

The session loads on first use, so a request that never touches it makes no
storage call. ``session.clear()`` deletes the stored session and the cookie.
Flask's own settings apply (``PERMANENT_SESSION_LIFETIME``,
``SESSION_REFRESH_EACH_REQUEST``, ``SESSION_COOKIE_*``, ``SECRET_KEY_FALLBACKS``);
settings and defaults: ``docs/frameworks.md``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._extras import require

require("flask", "flask")  # before any flask import: a missing one names the extra

from flask import current_app, request
from flask import session as _current_session
from flask.sessions import SessionInterface, SessionMixin

from . import Session, SessionDecodeError, SessionStore
from ._sessions.cookies import (
    PREFIX,
    CookieSigner,
    CookieSpec,
    check_store_settings,
    end_action,
    end_cookie,
    normalize_samesite,
    store_from_settings,
)
from ._sessions.lazy_session import LazySession
from .models import MAX_IDLE

if TYPE_CHECKING:
    from flask import Flask
    from flask.wrappers import Request, Response

__all__ = ["TableSession", "TableSessionInterface", "TableSessions", "regenerate"]

security_logger = logging.getLogger("tablesessions.security")

#: ``TABLESESSIONS_*`` config keys that shape the cookie or the lifetime rather
#: than the store.
COOKIE_SECURE_KEY = "TABLESESSIONS_COOKIE_SECURE"
COOKIE_SAMESITE_KEY = "TABLESESSIONS_COOKIE_SAMESITE"
PERMANENT_ABSOLUTE_KEY = "TABLESESSIONS_PERMANENT_ABSOLUTE_TIMEOUT_SECONDS"
FLASK_KEYS = (COOKIE_SECURE_KEY, COOKIE_SAMESITE_KEY, PERMANENT_ABSOLUTE_KEY)
_UNSET: Any = object()
_ONE_SECOND = dt.timedelta(seconds=1)


class TableSession(LazySession[SessionStore], SessionMixin):
    """The object behind ``flask.session``: a ``MutableMapping`` that loads from the
    store on first use.

    ``permanent`` is Flask's: False (a browser-session cookie) until set. A
    permanent session lives ``PERMANENT_SESSION_LIFETIME`` on the server too;
    see ``docs/frameworks.md`` for the exact rules.
    """

    # Spelled out so the public signature names the sync store, not a type variable.
    def __init__(self, store: SessionStore, session_id: str | None, cookie: str | None,
                 *, cookie_current: bool = False) -> None:
        super().__init__(store, session_id, cookie, cookie_current=cookie_current)
        self._permanent: bool | None = None
        self._modified_here = False

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
        """Whether this request changed the session (stays True after the save)."""
        record = self._session
        return self._modified_here or (
            record is not None and record.modified and not (record.is_new and not record))

    @modified.setter
    def modified(self, value: bool) -> None:
        self.current.modified = value

    @property
    def permanent(self) -> bool:
        """Flask's ``session.permanent``: False for a new session until set; a
        stored session keeps what it was saved with."""
        if self._permanent is not None:
            return self._permanent
        record = self.current
        return not record.is_new and not record.browser_session

    @permanent.setter
    def permanent(self, value: bool) -> None:
        self.current  # noqa: B018 - loads: the lifetime is saved with the session
        self._permanent = bool(value)

    def _apply_lifetime(self, app: Flask) -> None:
        """Store the lifetime ``permanent`` asks for, when it is new or changed."""
        record = self.current
        want = self._permanent
        if record.is_new:
            want = bool(want)
        elif want is None or want == (not record.browser_session):
            return  # unchanged: a read-only request stays one read
        if want:
            lifetime: dt.timedelta = app.permanent_session_lifetime
            absolute = _seconds(app.config.get(PERMANENT_ABSOLUTE_KEY), lifetime)
            record.set_expiry(idle=max(lifetime, _ONE_SECOND), absolute=absolute,
                              browser_session=False)
        elif record.is_new:
            record.set_expiry(browser_session=True)
        else:
            record.set_expiry(idle=None, absolute=self._store.config.absolute_timeout,
                              browser_session=True)


def _seconds(value: Any, default: dt.timedelta) -> dt.timedelta:
    if value is None:
        return default
    return value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=float(value))


def _check_type(config: Mapping[str, Any], key: str, kinds: tuple[type, ...],
                what: str) -> None:
    value = config.get(key)
    if value is None:
        return
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise TypeError(f"Flask setting {key} must be {what}, not {type(value).__name__}")


def check_settings(config: Mapping[str, Any]) -> None:
    """Check the Flask settings the integration reads, without any I/O.

    :raises TypeError: for a setting of the wrong type, naming it.
    :raises ValueError: for a bad value, naming the setting.
    """
    for key in ("SESSION_REFRESH_EACH_REQUEST", "SESSION_COOKIE_SECURE",
                "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_PARTITIONED", COOKIE_SECURE_KEY):
        _check_type(config, key, (bool,), "True or False")
    for key in ("SESSION_COOKIE_NAME", "SESSION_COOKIE_DOMAIN", "SESSION_COOKIE_PATH",
                "SESSION_COOKIE_SAMESITE", COOKIE_SAMESITE_KEY):
        _check_type(config, key, (str,), "a str or None")
    _check_type(config, "SECRET_KEY", (str, bytes), "a str or bytes")
    _check_type(config, "PERMANENT_SESSION_LIFETIME", (int, float, dt.timedelta),
                "a timedelta or a number of seconds")
    _check_type(config, PERMANENT_ABSOLUTE_KEY, (int, float, dt.timedelta),
                "a timedelta or a number of seconds")
    fallbacks = config.get("SECRET_KEY_FALLBACKS")
    if fallbacks is not None and (isinstance(fallbacks, (str, bytes)) or not all(
            isinstance(k, (str, bytes)) for k in fallbacks)):
        raise TypeError("Flask setting SECRET_KEY_FALLBACKS must be a list of str or bytes")
    for key in ("SESSION_COOKIE_SAMESITE", COOKIE_SAMESITE_KEY):
        try:
            normalize_samesite(config.get(key))
        except ValueError as exc:
            raise ValueError(f"Flask setting {key}: {exc}") from None
    for key in ("PERMANENT_SESSION_LIFETIME", PERMANENT_ABSOLUTE_KEY):
        if config.get(key) is not None and not \
                _ONE_SECOND <= _seconds(config[key], _ONE_SECOND) <= MAX_IDLE:
            raise ValueError(f"Flask setting {key} must be between 1 second and "
                             f"{int(MAX_IDLE.total_seconds())} seconds (about 68 years)")
    try:
        CookieSpec(name=config.get("SESSION_COOKIE_NAME") or "session",
                   path=config.get("SESSION_COOKIE_PATH") or "/",
                   domain=config.get("SESSION_COOKIE_DOMAIN"))
    except ValueError as exc:
        raise ValueError(f"Flask SESSION_COOKIE_* setting: {exc}") from None


class TableSessionInterface(SessionInterface):
    """The ``SessionInterface`` that :class:`TableSessions` installs on an app."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def signer(self, app: Flask) -> CookieSigner:
        """Sign with ``SECRET_KEY``; accept ``SECRET_KEY_FALLBACKS`` while rotating."""
        fallbacks = app.config.get("SECRET_KEY_FALLBACKS") or ()
        return CookieSigner(app.secret_key or b"", fallbacks)

    def cookie_spec(self, app: Flask) -> CookieSpec:
        """The cookie's attributes, from Flask's ``SESSION_COOKIE_*`` settings."""
        secure = app.config.get(COOKIE_SECURE_KEY)
        if secure is None:  # SESSION_COOKIE_SECURE, or on for every https request
            secure = self.get_cookie_secure(app) or request.is_secure
        samesite = self.get_cookie_samesite(app)
        if samesite is None:  # Flask's unset value: ours is Lax unless told otherwise
            samesite = app.config.get(COOKIE_SAMESITE_KEY, "Lax")
        domain = self.get_cookie_domain(app)
        return CookieSpec(
            name=self.get_cookie_name(app),
            path=self.get_cookie_path(app) or "/",
            # Written as Werkzeug writes it: without a leading dot (RFC 6265 ignores
            # it, and Werkzeug's test client drops a cookie whose domain has one).
            domain=domain.lstrip(".") or None if domain else None,
            secure=bool(secure),
            httponly=self.get_cookie_httponly(app),
            samesite=normalize_samesite(samesite),
            partitioned=bool(self.get_cookie_partitioned(app)),
        )

    def open_session(self, app: Flask, request: Request) -> TableSession | None:
        if not app.secret_key:
            return None  # Flask's NullSession then explains that SECRET_KEY is missing
        _encrypt_with_app_secret(self.store, app)
        cookie = request.cookies.get(self.get_cookie_name(app)) or None
        return TableSession.from_cookie(self.store, cookie, self.signer(app))

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        # Vary: Cookie whenever Flask's own interface sends it: the session was
        # accessed, or a cookie is set or cleared.
        if session.accessed:  # set by Flask (>= 3.1.3) when the proxy is touched
            response.vary.add("Cookie")
        if not isinstance(session, TableSession) or not session.loaded:
            return  # never used: no storage call, no cookie
        record = session.current
        session._modified_here = session.modified
        expiry_before = record.expires_at
        browser_before = record.browser_session
        # A failed request (5xx) persists nothing, as in Django.
        if response.status_code < 500:
            if record:
                session._apply_lifetime(app)
            action = end_action(record)
            if action == "save":
                self.store.save(record)
            elif action == "delete":
                self.store.delete(record)
        # As Flask's should_set_cookie: modified, or permanent with refresh-each-request.
        # A failed request (5xx) saved nothing, so it has nothing to re-send.
        refresh = response.status_code < 500 and (session._modified_here or (
            not record.browser_session and bool(app.config["SESSION_REFRESH_EACH_REQUEST"])))
        header = end_cookie(lambda: self.cookie_spec(app), self.signer(app), record,
                            incoming=session.cookie, incoming_current=session.cookie_current,
                            expiry_before=expiry_before, browser_before=browser_before,
                            refresh=refresh, now=self.store.config.clock())
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
        """Check the settings and install the session interface on ``app`` (no
        storage call is made).

        :raises ValueError: for an unknown ``TABLESESSIONS_*`` key, a bad value
            or no connection, naming the setting.
        :raises TypeError: for a setting of the wrong type, naming it.
        """
        check_settings(app.config)
        store = self._store
        settings = {k: v for k, v in app.config.items()
                    if k.startswith(PREFIX) and k not in FLASK_KEYS}
        if store is None:
            store = store_from_settings(SessionStore, settings)
        else:
            if not isinstance(store, SessionStore):
                raise TypeError("TableSessions(store=...) must be a tablesessions.SessionStore "
                                f"(the sync store), not {type(store).__name__}")
            check_store_settings(settings)  # typos are errors even when unused
        _encrypt_with_app_secret(store, app)
        app.session_interface = TableSessionInterface(store)
        app.extensions["tablesessions"] = store

    @property
    def store(self) -> SessionStore:
        """The store given to the constructor, or else the current app's."""
        if self._store is not None:
            return self._store
        store: SessionStore = current_app.extensions["tablesessions"]
        return store


def _encrypt_with_app_secret(store: SessionStore, app: Flask) -> None:
    """Encryption at rest keyed by ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` still
    decrypt), unless the store was given a ``key_ring``. Cheap when unchanged."""
    if app.secret_key:
        store.encrypt_with_secret(app.secret_key, app.config.get("SECRET_KEY_FALLBACKS") or ())


def regenerate() -> None:
    """Give the current request's session a new id, keeping its data; call at login.

    :raises RuntimeError: outside a request, or when the app does not use TableSessions.
    """
    session = _current_session
    if not isinstance(session, TableSession):
        raise RuntimeError("flask.session is not a TableSession: call TableSessions(app) first")
    session.regenerate()
