"""The session cookie shared by the Flask, Django and Starlette integrations.

One format everywhere, so a cookie written through one framework is accepted by
another configured with the same secret (and cookie name, table and app name):

    <session id>.<signature>

The signature is HMAC-SHA256 over the id, keyed with ``HMAC-SHA256(secret,
PURPOSE)`` so the framework's secret is never used directly, as unpadded
URL-safe base64: 43 + 1 + 43 = 87 characters, all cookie-safe. Anything else
unsigns to ``None`` without raising and without a storage call.

Besides the signer: the cookie attributes (``CookieSpec``), what a request does
with its session at the end (``end_action``/``end_cookie``), and how framework
settings become a store (``store_from_settings``). Stdlib only, no I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any, Literal

from .. import Session, is_valid_session_id
from ..config import (
    ENV_ABSOLUTE_TIMEOUT,
    ENV_APP_NAME,
    ENV_BLOB_ENDPOINT,
    ENV_CONNECTION_STRING,
    ENV_CONTAINER_NAME,
    ENV_IDLE_TIMEOUT,
    ENV_TABLE_ENDPOINT,
    ENV_TABLE_NAME,
)

#: Fixed and versioned: a different purpose string yields unrelated keys, so
#: nothing else signed with the framework's secret can pass as a session cookie.
PURPOSE = b"tablesessions/session-cookie/v1"
_ID_LENGTH = 43  # tablesessions ids: 256 bits as unpadded URL-safe base64
_SIG_LENGTH = 43  # HMAC-SHA256 as unpadded URL-safe base64
COOKIE_LENGTH = _ID_LENGTH + 1 + _SIG_LENGTH


@functools.lru_cache(maxsize=32)
def _derive_key(secret: str | bytes) -> bytes:
    # Cached: the integrations build a signer per request from the app's secret.
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not raw:
        raise ValueError("the secret key is empty")
    return hmac.new(raw, PURPOSE, hashlib.sha256).digest()


def _mac(key: bytes, session_id: str) -> bytes:
    digest = hmac.new(key, session_id.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


class CookieSigner:
    """Sign session ids for cookies and verify them in constant time.

    :param secret: the framework's secret (``SECRET_KEY``).
    :param fallbacks: older secrets still accepted while rotating; cookies they
        signed are re-signed with ``secret`` the next time the session is used.
    :raises ValueError: for an empty secret.
    """

    def __init__(self, secret: str | bytes, fallbacks: Iterable[str | bytes] = ()) -> None:
        self._keys = [_derive_key(secret), *(_derive_key(old) for old in fallbacks)]

    def sign(self, session_id: str) -> str:
        """Return the cookie value for ``session_id``.

        :raises ValueError: when ``session_id`` is not a tablesessions id.
        """
        if not is_valid_session_id(session_id):
            raise ValueError("not a tablesessions session id")
        return f"{session_id}.{_mac(self._keys[0], session_id).decode('ascii')}"

    def unsign(self, value: object) -> str | None:
        """Return the session id in a cookie value, or None for anything not signed
        by one of our secrets (never raises)."""
        verified = self.verify(value)
        return verified[0] if verified is not None else None

    def verify(self, value: object) -> tuple[str, bool] | None:
        """Return (session id, signed with the current secret?) for a cookie value
        signed by one of our secrets, else None (never raises).

        When the second item is True, ``value == sign(session id)``: the response
        can keep the browser's cookie without signing again.
        """
        if not isinstance(value, str) or len(value) != COOKIE_LENGTH:
            return None
        session_id, dot, signature = value.partition(".")
        if not dot or not is_valid_session_id(session_id):
            return None
        given = signature.encode("utf-8", "replace")
        # Check every key, so timing tells nothing about which one matched.
        matches = [hmac.compare_digest(_mac(key, session_id), given) for key in self._keys]
        return (session_id, matches[0]) if any(matches) else None


# -- cookie attributes ----------------------------------------------------------------

SameSite = Literal["Lax", "Strict", "None"]
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 6265 cookie-name (RFC 2616 token)
_ATTR_UNSAFE = re.compile(r"[;\x00-\x1f\x7f]")
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


def normalize_samesite(value: str | None) -> SameSite | None:
    """Return ``"Lax"``, ``"Strict"``, ``"None"`` or None (no attribute) for any casing.

    :raises ValueError: for any other value.
    """
    if value is None:
        return None
    for known in ("Lax", "Strict", "None"):
        if value.lower() == known.lower():
            return known
    raise ValueError(f"SameSite must be Lax, Strict or None, not {value!r}")


@dataclass(frozen=True)
class CookieSpec:
    """The session cookie's name and attributes, and the headers that set or clear it.

    :raises ValueError: for a name that is not a cookie token, a path or domain
        with ``;`` or control characters, or ``SameSite=None`` without ``Secure``
        (browsers reject that combination).
    """

    name: str = "session"
    path: str = "/"
    domain: str | None = None
    secure: bool = True
    httponly: bool = True
    samesite: SameSite | None = "Lax"
    partitioned: bool = False
    #: write attribute names in lower case (``path=/; httponly``), as Starlette's
    #: ``SessionMiddleware`` does; names are case-insensitive (RFC 6265 5.2), but
    #: code written against Starlette's headers may match them literally
    lowercase: bool = False

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.name):
            raise ValueError(f"cookie name {self.name!r} is not a valid token")
        for what, text in (("path", self.path), ("domain", self.domain or "")):
            if _ATTR_UNSAFE.search(text):
                raise ValueError(f"cookie {what} {text!r} contains ';' or control characters")
        if self.samesite == "None" and not self.secure:
            raise ValueError("SameSite=None needs Secure (browsers drop such cookies)")

    def _attributes(self) -> str:
        parts = [f"Path={self.path}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if self.secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        if self.samesite:
            parts.append(f"SameSite={self.samesite}")
        if self.partitioned:
            parts.append("Partitioned")
        if self.lowercase:  # names and the SameSite token only: path and domain as given
            parts = [_lower_name(part) for part in parts]
        return "; ".join(parts)

    def set_header(self, value: str, max_age: int | None, now: dt.datetime) -> str:
        """A ``Set-Cookie`` value carrying ``value`` for ``max_age`` seconds from ``now``;
        with ``max_age=None`` a browser-session cookie (no ``Max-Age``/``Expires``)."""
        if max_age is None:
            return f"{self.name}={value}; {self._attributes()}"
        expires = format_datetime(now.astimezone(dt.timezone.utc)
                                  + dt.timedelta(seconds=max_age), usegmt=True)
        # Max-Age keeps its canonical spelling in both styles, as Starlette writes it.
        exp = "expires" if self.lowercase else "Expires"
        return f"{self.name}={value}; Max-Age={max_age}; {exp}={expires}; {self._attributes()}"

    def delete_header(self) -> str:
        """A ``Set-Cookie`` value that makes the browser drop the cookie."""
        exp = "expires" if self.lowercase else "Expires"
        return f"{self.name}=; Max-Age=0; {exp}={_EPOCH}; {self._attributes()}"


def _lower_name(part: str) -> str:
    name, eq, value = part.partition("=")
    if name == "SameSite":
        value = value.lower()
    return f"{name.lower()}{eq}{value}"


# -- the end of a request ---------------------------------------------------------------

EndAction = Literal["save", "delete", "skip"]


def end_action(session: Session) -> EndAction:
    """What to do with a session the request loaded, before the response goes out.

    An empty session is never stored: a new one is skipped, a stored one that was
    emptied (``session.clear()`` at logout) is deleted.
    """
    if session.is_deleted:
        return "skip"
    if len(session) == 0:
        return "skip" if session.is_new else "delete"
    return "save"


def end_cookie(spec: Callable[[], CookieSpec], signer: CookieSigner, session: Session, *,
               incoming: str | None, expiry_before: dt.datetime, now: dt.datetime,
               incoming_current: bool = False, browser_before: bool | None = None,
               refresh: bool = False) -> str | None:
    """Return the ``Set-Cookie`` value the response needs after the end action, or None.

    Set when needed: a new or regenerated id, an expiry the save moved
    (``Max-Age`` follows the session's expiry), a switch between a persistent
    and a browser-session cookie, a cookie signed with an old secret, or
    ``refresh``. Cleared when the request carried a verified cookie but no live
    session remains. A browser-session cookie (``session.browser_session``)
    has no ``Max-Age``: a moved expiry does not re-send it.

    :param spec: returns the cookie's attributes; called only when a header is
        due (most requests need none, and reading the framework's settings for
        it costs more than the rest of this function).
    :param incoming: the request's cookie value when it verified, else None. A
        cookie that did not verify (forged, or signed with a secret not
        configured yet) is left alone, as Flask and Starlette do: fixing a
        mis-rotated secret brings its sessions back.
    :param expiry_before: ``session.expires_at`` before the end action ran.
    :param incoming_current: ``incoming`` verified with the current secret
        (:meth:`CookieSigner.verify`), so it is exactly what ``sign`` would make
        for the id it carries.
    :param browser_before: ``session.browser_session`` before the request changed it.
    :param refresh: send the cookie even when nothing about it changed: Flask
        and Starlette re-send it whenever the session was modified, and Flask
        on every request with ``SESSION_REFRESH_EACH_REQUEST`` (permanent
        sessions only).
    """
    if session.is_deleted or session.is_new or len(session) == 0:
        return spec().delete_header() if incoming is not None else None
    browser = bool(getattr(session, "browser_session", False))
    unchanged = (browser or session.expires_at == expiry_before) and not refresh
    if browser_before is not None and browser_before != browser:
        unchanged = False
    if unchanged and incoming_current and incoming is not None \
            and incoming.partition(".")[0] == session.id:
        return None  # the browser holds this very cookie: no need to sign again
    value = signer.sign(session.id)
    if value == incoming and unchanged:
        return None
    return spec().set_header(value, None if browser else max_age_for(session, now), now)


def max_age_for(session: Session, now: dt.datetime) -> int:
    """Seconds until the session's expiry (idle or absolute, whichever is first)."""
    return max(0, round((session.expires_at - now).total_seconds()))


# -- framework settings -> a store ---------------------------------------------------------

#: The store settings every integration accepts, by their environment-variable
#: names; Django's ``TABLESESSIONS`` dict uses them without the prefix.
SETTING_NAMES = (ENV_CONNECTION_STRING, ENV_TABLE_ENDPOINT, ENV_BLOB_ENDPOINT, ENV_TABLE_NAME,
                 ENV_CONTAINER_NAME, ENV_APP_NAME, ENV_IDLE_TIMEOUT, ENV_ABSOLUTE_TIMEOUT)
OPTIONS_SETTING = "TABLESESSIONS_OPTIONS"
PREFIX = "TABLESESSIONS_"
_CONNECTION = (ENV_CONNECTION_STRING, ENV_TABLE_ENDPOINT, ENV_BLOB_ENDPOINT)


_TIMEOUTS = (ENV_IDLE_TIMEOUT, ENV_ABSOLUTE_TIMEOUT)


def check_store_settings(settings: Mapping[str, Any]) -> None:
    """Check prefixed store settings without any I/O: known names, right types.

    :raises ValueError: for an unknown ``TABLESESSIONS_*`` setting (a typo would
        otherwise be ignored silently) or a bad timeout, naming the setting.
    :raises TypeError: for a setting of the wrong type, naming it.
    """
    for key, value in settings.items():
        if key == OPTIONS_SETTING:
            if value is not None and not isinstance(value, Mapping):
                raise TypeError(f"setting {key} must be a dict of StoreConfig options, "
                                f"not {type(value).__name__}")
        elif key in _TIMEOUTS:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, str, dt.timedelta)):
                raise TypeError(f"setting {key} must be a number of seconds or a timedelta, "
                                f"not {type(value).__name__}")
            seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
            try:
                seconds = float(seconds)
            except ValueError:
                raise ValueError(f"setting {key} must be a number of seconds, "
                                 f"not {value!r}") from None
            if not seconds > 0:
                raise ValueError(f"setting {key} must be positive, not {value!r}")
        elif key in SETTING_NAMES:
            if value is not None and not isinstance(value, str):
                raise TypeError(f"setting {key} must be a str, not {type(value).__name__}")
        else:
            raise ValueError(f"unknown tablesessions setting {key!r}; known: "
                             f"{', '.join((*SETTING_NAMES, OPTIONS_SETTING))}")


def store_from_settings(factory: Any, settings: Mapping[str, Any],
                        environ: Mapping[str, str] | None = None) -> Any:
    """Build a store with ``factory.from_env`` from prefixed framework settings.

    Settings win over ``TABLESESSIONS_*`` environment variables, which fill the
    gaps; ``TABLESESSIONS_OPTIONS`` is a dict of any other ``StoreConfig`` option.
    Timeouts may be numbers of seconds or ``timedelta``.

    :raises ValueError: for an unknown ``TABLESESSIONS_*`` setting (a typo would
        otherwise be ignored silently), a bad value, or when no connection is
        configured. :raises TypeError: for a setting of the wrong type.
    """
    check_store_settings(settings)
    env = os.environ if environ is None else environ
    # How to connect comes wholly from the settings when they say anything about
    # it: endpoints there must not lose to a connection string in the environment.
    own_connection = any(settings.get(k) is not None for k in _CONNECTION)
    merged = {k: v for k, v in env.items()
              if k in SETTING_NAMES and not (own_connection and k in _CONNECTION)}
    options: dict[str, Any] = {}
    for key, value in settings.items():
        if key == OPTIONS_SETTING:
            options = dict(value or {})
        elif key in SETTING_NAMES:
            if value is None:
                continue
            if isinstance(value, dt.timedelta):
                value = value.total_seconds()
            merged[key] = str(value)
        else:
            raise ValueError(f"unknown tablesessions setting {key!r}; known: "
                             f"{', '.join((*SETTING_NAMES, OPTIONS_SETTING))}")
    return factory.from_env(merged, **options)
