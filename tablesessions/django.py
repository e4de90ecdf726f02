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

The store is synchronous. The ``a*`` methods run it in a thread through
``sync_to_async``, which is how Django's own database backend works.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from typing import Any

from ._extras import require

require("django", "django")  # before any django import: a missing one names the extra

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.signals import setting_changed
from django.utils import timezone

from . import Session, SessionConflictError, SessionDecodeError
from . import SessionStore as TableSessionStore
from ._cookies import PREFIX, CookieSigner, store_from_settings

__all__ = ["SessionStore", "get_store"]

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("django.security.SuspiciousSession")

_lock = threading.Lock()
_store: TableSessionStore | None = None
_signers: dict[tuple[Any, ...], CookieSigner] = {}


def get_store() -> TableSessionStore:
    """Return the process-wide store built from ``settings.TABLESESSIONS``.

    ``TABLESESSIONS_*`` environment variables fill in missing keys. No storage
    call is made; create the table once with ``store.create_storage()``.

    :raises ValueError: for an unknown key or when no connection is configured.
    """
    global _store
    with _lock:
        if _store is None:
            configured: Mapping[str, Any] = getattr(settings, "TABLESESSIONS", None) or {}
            _store = store_from_settings(
                TableSessionStore, {PREFIX + key: value for key, value in configured.items()})
        return _store


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
        record.update(self._data(no_load=True))
        self._adopt(record)
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
        """The store's idle timeout: the cookie lives as long as a write keeps the
        session alive (``SESSION_COOKIE_AGE`` does not apply)."""
        return int(get_store().config.idle_timeout.total_seconds())

    def _cap(self, age: int) -> int:
        if self._record is None:
            return age
        left = self._record.absolute_expires_at - get_store().config.clock()
        return max(0, min(age, int(left.total_seconds())))

    def get_expiry_age(self, **kwargs: Any) -> int:
        return self._cap(super().get_expiry_age(**kwargs))

    async def aget_expiry_age(self, **kwargs: Any) -> int:
        return self._cap(await super().aget_expiry_age(**kwargs))

    def get_expiry_date(self, **kwargs: Any) -> dt.datetime:
        modification = kwargs.pop("modification", None) or timezone.now()
        age = self.get_expiry_age(modification=modification, **kwargs)
        return modification + dt.timedelta(seconds=age)

    async def aget_expiry_date(self, **kwargs: Any) -> dt.datetime:
        modification = kwargs.pop("modification", None) or timezone.now()
        age = await self.aget_expiry_age(modification=modification, **kwargs)
        return modification + dt.timedelta(seconds=age)

    # -- maintenance ----------------------------------------------------------------
    @classmethod
    def clear_expired(cls) -> None:
        """Delete expired sessions and their blobs: ``manage.py clearsessions``."""
        report = get_store().sweep()
        logger.info("clearsessions: deleted %d expired sessions (%d blobs) in %.1f s",
                    report.deleted, report.blobs_deleted, report.duration.total_seconds())
