"""Django session engine: ``SESSION_ENGINE = "tablesessions.django"``.

::

    SECRET_KEY = "..."                      # signs the cookie
    SESSION_ENGINE = "tablesessions.django"
    TABLESESSIONS = {
        "CONNECTION_STRING": "...",         # or TABLE_ENDPOINT + BLOB_ENDPOINT
        "TABLE_NAME": "sessions",
        "CONTAINER_NAME": "sessions-overflow",
        "APP_NAME": "default",
        "IDLE_TIMEOUT_SECONDS": 1200,
        "ABSOLUTE_TIMEOUT_SECONDS": 43200,
        "OPTIONS": {},                      # any other StoreConfig option
    }

Django's own ``SessionMiddleware`` sets the cookie from ``SESSION_COOKIE_*``.
Its value, ``session_key``, is the signed cookie value shared with the Flask and
Starlette integrations. ``django.contrib.auth.login`` calls ``cycle_key()``,
which moves the session to a new id. ``manage.py clearsessions`` runs the sweeper.

Expiry follows Django's API (``set_expiry`` in all its forms,
``SESSION_COOKIE_AGE``, ``SESSION_EXPIRE_AT_BROWSER_CLOSE``,
``SESSION_SAVE_EVERY_REQUEST``), and every save carries it into the stored row
(``Session.set_expiry``), so the server refuses a replayed cookie after the
lifetime the app gave it. Add ``"tablesessions.django.TableSessionsConfig"`` to
``INSTALLED_APPS`` and ``manage.py check`` validates ``TABLESESSIONS``.

The store is synchronous. The ``a*`` methods run it in a thread through
``sync_to_async``, which is how Django's own database backend works.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Mapping
from typing import Any

from ._extras import require

require("django", "django")  # before any django import: a missing one names the extra

from asgiref.sync import sync_to_async
from django.apps import AppConfig
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core import checks
from django.core.signals import setting_changed

from . import Session, SessionConflictError, SessionDecodeError
from . import SessionStore as TableSessionStore
from ._sessions.cookies import PREFIX, CookieSigner, store_from_settings
from ._sessions.django_settings import problems
from .models import MAX_IDLE

__all__ = ["SessionStore", "TableSessionsConfig", "check_caches", "check_settings", "get_store"]

logger = logging.getLogger(__name__)
#: Stored datetimes may lose sub-second precision: closer than this is "the same".
_SLACK = dt.timedelta(seconds=1)
security_logger = logging.getLogger("django.security.SuspiciousSession")

_lock = threading.Lock()
_store: TableSessionStore | None = None
_signers: dict[tuple[Any, ...], CookieSigner] = {}


def get_store() -> TableSessionStore:
    """Return the process-wide store built from ``settings.TABLESESSIONS``.

    ``TABLESESSIONS_*`` environment variables fill in missing keys. No storage
    call is made; create the table once with ``store.create_storage()``.

    :raises ValueError: for a malformed ``TABLESESSIONS`` (named as written
        there), or when no connection is configured: what ``manage.py check``
        reports without building anything.
    """
    global _store
    with _lock:
        if _store is None:
            configured: Any = getattr(settings, "TABLESESSIONS", None)
            found = problems(configured)
            if found:
                raise ValueError(found[0].message)
            given: Mapping[str, Any] = configured or {}
            _store = store_from_settings(
                TableSessionStore, {PREFIX + key: value for key, value in given.items()})
        store = _store
    # Encryption at rest keyed by SECRET_KEY (SECRET_KEY_FALLBACKS still decrypt),
    # unless TABLESESSIONS gave a key_ring; re-derived when the secret changes.
    store.encrypt_with_secret(settings.SECRET_KEY,
                              tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ()))
    return store


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The ``manage.py check`` of ``settings.TABLESESSIONS``: its type, unknown
    keys (as written), value types and values, and that a connection is
    configured (there or in the environment). Makes no storage call."""
    return [checks.Error(p.message, hint=p.hint, obj="settings.TABLESESSIONS", id=p.id)
            for p in problems(getattr(settings, "TABLESESSIONS", None))]


checks.register(check_settings, "tablesessions")


def check_caches(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The ``manage.py check`` of every ``CACHES`` entry whose ``BACKEND`` is
    ``tablesessions.django.TableCache`` (ids ``tablesessions.E006``-``E009``, see
    docs/cache.md). Builds no client and makes no storage call; the cache backend is
    imported only when an entry names it."""
    caches: Any = getattr(settings, "CACHES", None)
    if not isinstance(caches, Mapping) or not any(
            isinstance(e, Mapping) and str(e.get("BACKEND", "")).startswith("tablesessions.")
            for e in caches.values()):
        return []
    from .django_cache import cache_problems

    return [checks.Error(message, obj=f"settings.CACHES[{alias!r}]", id=check_id)
            for alias, check_id, message in cache_problems(caches)]


checks.register(check_caches, checks.Tags.caches, "tablesessions")


class TableSessionsConfig(AppConfig):
    """Optional: in ``INSTALLED_APPS`` it makes ``manage.py check`` (which does
    not import ``SESSION_ENGINE``) run :func:`check_settings` and :func:`check_caches`."""

    name = "tablesessions"
    label = "tablesessions"
    verbose_name = "tablesessions"
    default_auto_field = "django.db.models.AutoField"


def _signer() -> CookieSigner:
    fallbacks = tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ())
    key = (settings.SECRET_KEY, fallbacks)
    signer = _signers.get(key)
    if signer is None:
        signer = _signers[key] = CookieSigner(settings.SECRET_KEY, fallbacks)
    return signer


def _reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    """Rebuild the store and signer when tests use ``override_settings``."""
    global _store
    if setting == "TABLESESSIONS":
        with _lock:
            old, _store = _store, None
        if old is not None:
            old.close()
    elif setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        _signers.clear()


setting_changed.connect(_reset_on_setting_change, dispatch_uid="tablesessions.django")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(value: dt.datetime) -> dt.datetime:
    """Django passes naive local datetimes when ``USE_TZ = False``."""
    return value if value.tzinfo is not None else value.astimezone()


def _copy_into(record: Session, data: Mapping[str, Any]) -> None:
    """Make the store's session hold ``data`` (Django keeps its own dict)."""
    for key in [k for k in record if k not in data]:
        del record[key]
    for key, value in data.items():
        if key not in record or record[key] is not value:
            record[key] = value


class SessionStore(SessionBase):
    """A Django session backed by :class:`tablesessions.SessionStore`.

    ``session_key`` is the signed cookie value. A forged or garbage cookie fails
    the signature check and becomes no key, so it costs no storage call.

    Errors: a session deleted or changed by a concurrent request while this one
    saves raises ``UpdateError``, which the middleware turns into
    ``SessionInterrupted`` (400). Storage failures propagate as
    ``azure.core.exceptions.*`` (500) unless ``on_storage_error="empty"``.
    """

    def __init__(self, session_key: str | None = None) -> None:
        self._record: Session | None = None
        super().__init__(session_key)

    # -- keys ----------------------------------------------------------------
    def _validate_session_key(self, key: str | None) -> bool:
        return _signer().unsign(key) is not None

    def _session_id(self) -> str | None:
        return _signer().unsign(self.session_key)

    def _adopt(self, record: Session) -> None:
        self._record = record
        self._session_key = _signer().sign(record.id)

    # -- reading ---------------------------------------------------------------
    def _data(self, *, no_load: bool = False) -> dict[str, Any]:
        # SessionBase._get_session, the lazy loader all Django backends share,
        # is missing from django-stubs.
        data: dict[str, Any] = self._get_session(no_load=no_load)  # type: ignore[attr-defined]
        return data

    @staticmethod
    def _fetch(session_id: str | None) -> Session | None:
        if session_id is None:
            return None
        try:
            return get_store().get(session_id)
        except SessionDecodeError as exc:
            security_logger.warning("Session data corrupted: %s", exc)
            return None

    def _stored_record(self) -> Session | None:
        if self._record is None:
            self._record = self._fetch(self._session_id())
        return self._record

    def load(self) -> dict[str, Any]:
        record = self._fetch(self._session_id())
        if record is None:
            # Unknown or expired: never reuse the key (no fixation through it).
            self._session_key = None
            self._record = None
            return {}
        self._record = record
        current = _signer().sign(record.id)
        if self.session_key != current:
            # Signed with a SECRET_KEY_FALLBACKS secret: have the middleware re-send
            # the cookie (its save writes nothing, as nothing changed).
            self._session_key = current
            self.modified = True
        return dict(record)

    def exists(self, session_key: str) -> bool:
        return self._fetch(_signer().unsign(session_key)) is not None

    # -- writing ---------------------------------------------------------------
    def create(self) -> None:
        record = get_store().new()
        data = self._data(no_load=True)
        record.update(data)
        self._adopt(record)
        self._carry_expiry(record, data)
        self._write(record, creating=True)
        self.modified = True

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = self._data(no_load=must_create)
        record = self._stored_record()
        if must_create and (record is None or not record.is_new):
            raise CreateError  # ids are minted by the store; create() makes one
        if record is None:
            raise UpdateError  # expired or deleted since this request began
        _copy_into(record, data)
        self._carry_expiry(record, data)
        if settings.SESSION_SAVE_EVERY_REQUEST:
            record.renew()  # the cookie's lifetime restarts now: so does the server's
        self._write(record, creating=must_create)

    @staticmethod
    def _write(record: Session, *, creating: bool) -> None:
        try:
            get_store().save(record)
        except SessionConflictError as exc:
            raise (CreateError if creating else UpdateError) from exc
        if record.is_deleted:
            raise UpdateError  # a concurrent request deleted it (e.g. logout)

    def delete(self, session_key: str | None = None) -> None:
        session_id = _signer().unsign(self.session_key if session_key is None else session_key)
        if session_id is None:
            return
        if self._record is not None and self._record.id == session_id:
            get_store().delete(self._record)
            self._record = None
        else:
            get_store().delete(session_id)

    def cycle_key(self) -> None:
        """Move the data to a new session id and delete the old record (login calls it)."""
        data = self._data()
        record = self._stored_record()
        if record is None or record.is_new:
            fresh = get_store().new()  # nothing stored yet: a new id is enough
            fresh.update(data)
        else:
            _copy_into(record, data)
            fresh = get_store().regenerate(record)
        self._adopt(fresh)
        self.modified = True

    async def acycle_key(self) -> None:
        await sync_to_async(self.cycle_key)()

    # -- expiry ------------------------------------------------------------------
    def get_session_cookie_age(self) -> int:
        """``SESSION_COOKIE_AGE`` when the settings set it, else the store's idle
        timeout (20 min by default, not Django's two weeks: see docs/frameworks.md)."""
        if settings.is_overridden("SESSION_COOKIE_AGE"):
            return int(settings.SESSION_COOKIE_AGE)
        return int(get_store().config.idle_timeout.total_seconds())

    def _default_idle(self) -> dt.timedelta | None:
        """The idle timeout of a session without ``set_expiry``: None is the store's."""
        if not settings.is_overridden("SESSION_COOKIE_AGE"):
            return None
        return dt.timedelta(seconds=int(settings.SESSION_COOKIE_AGE))

    def _wanted_expiry(self, data: Mapping[str, Any]) -> tuple[dt.timedelta | None, Any, bool]:
        """(idle, absolute, browser session) for the record, from Django's state.

        An int is an idle timeout (Django: "seconds of inactivity"), bounded by
        the store's absolute deadline; a datetime (``set_expiry(datetime)`` or
        ``timedelta``) is a deadline of its own, which replaces the default one
        (an explicitly configured absolute timeout still caps it); 0 and None use
        the default lifetime. A negative age or a past date expires the session.
        """
        expiry = data.get("_session_expiry")
        browser = (bool(settings.SESSION_EXPIRE_AT_BROWSER_CLOSE) if expiry is None
                   else expiry == 0)
        idle = self._default_idle()
        absolute: dt.datetime | dt.timedelta | None = None
        if isinstance(expiry, str):
            deadline = dt.datetime.fromisoformat(expiry)
            if deadline.tzinfo is None:  # USE_TZ = False: Django's local time
                deadline = deadline.astimezone()
            # The deadline alone decides: the idle timeout never ends it earlier.
            idle, absolute = MAX_IDLE, deadline
        elif isinstance(expiry, (int, float)) and not isinstance(expiry, bool) and expiry:
            if expiry >= 1:
                idle = min(dt.timedelta(seconds=math.ceil(expiry)), MAX_IDLE)
            else:
                absolute = dt.timedelta(seconds=expiry)  # in the past: expired at once
        if idle is not None and idle < dt.timedelta(seconds=1):
            idle, absolute = None, dt.timedelta(seconds=-1)  # SESSION_COOKIE_AGE <= 0
        return idle, absolute, browser

    def _carry_expiry(self, record: Session, data: Mapping[str, Any]) -> None:
        """Make the stored row enforce what the cookie says (``Session.set_expiry``),
        touching the record only when that changes something."""
        idle, absolute, browser = self._wanted_expiry(data)
        changes: dict[str, Any] = {}
        if record.idle_timeout != idle:
            changes["idle"] = idle
        if record.browser_session != browser:
            changes["browser_session"] = browser
        if isinstance(absolute, dt.timedelta) or abs(
                record.absolute_expires_at - self._deadline(record, absolute)) > _SLACK:
            changes["absolute"] = absolute
        if changes:
            record.set_expiry(**changes)

    @staticmethod
    def _deadline(record: Session | None, absolute: Any) -> dt.datetime:
        """The absolute deadline a save gives ``record`` (None: a new one)."""
        config = get_store().config
        created = record.created_at if record is not None else config.clock()
        deadline = created + config.absolute_timeout if absolute is None else absolute
        if config.max_absolute_timeout is not None:
            deadline = min(deadline, created + config.max_absolute_timeout)
        return deadline

    def _server_left(self, data: Mapping[str, Any], modification: dt.datetime) -> int | None:
        """Whole seconds from ``modification`` to the server's absolute deadline."""
        _, absolute, _ = self._wanted_expiry(data)
        if isinstance(absolute, dt.timedelta):
            return None  # already expired: Django's own negative age says so
        deadline = self._deadline(self._record, absolute)
        left = deadline - _aware(modification)
        return left.days * 86400 + left.seconds

    def get_expiry_age(self, **kwargs: Any) -> int:
        """Django's expiry age, never past the server's absolute deadline (unless
        ``expiry=`` is given: then it is Django's arithmetic only)."""
        age: int = super().get_expiry_age(**kwargs)
        if "expiry" in kwargs:
            return age
        left = self._server_left(self._data(), kwargs.get("modification") or _now())
        return age if left is None else min(age, left)

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        age: int = await super().aget_expiry_age(**kwargs)
        if "expiry" in kwargs:
            return age
        data = await self._adata()
        left = await sync_to_async(self._server_left)(data, kwargs.get("modification") or _now())
        return age if left is None else min(age, left)

    def get_expiry_date(self, **kwargs: Any) -> dt.datetime:
        """Django's expiry date, never past the server's absolute deadline."""
        date: dt.datetime = super().get_expiry_date(**kwargs)
        if "expiry" in kwargs:
            return date
        modification = kwargs.get("modification") or _now()
        left = self._server_left(self._data(), modification)
        return date if left is None else min(date, modification + dt.timedelta(seconds=left))

    async def aget_expiry_date(self, **kwargs: Any) -> dt.datetime:
        date: dt.datetime = await super().aget_expiry_date(**kwargs)
        if "expiry" in kwargs:
            return date
        modification = kwargs.get("modification") or _now()
        data = await self._adata()
        left = await sync_to_async(self._server_left)(data, modification)
        return date if left is None else min(date, modification + dt.timedelta(seconds=left))

    async def _adata(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._aget_session()  # type: ignore[attr-defined]
        return data

    # -- maintenance ----------------------------------------------------------------
    @classmethod
    def clear_expired(cls) -> None:
        """Delete expired sessions and their blobs: ``manage.py clearsessions``."""
        report = get_store().sweep()
        logger.info("clearsessions: deleted %d expired sessions (%d blobs) in %.1f s",
                    report.deleted, report.blobs_deleted, report.duration.total_seconds())


def __getattr__(name: str) -> Any:
    """``tablesessions.django.TableCache``: the ``CACHES`` backend of
    ``tablesessions.django_cache``, imported on first use only (the session engine
    does not need it)."""
    if name == "TableCache":
        from .django_cache import TableCache

        return TableCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
