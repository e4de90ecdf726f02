"""Django cache backend on Azure Table Storage: ``tablesessions.django_cache.TableCache``.

::

    CACHES = {
        "default": {
            "BACKEND": "tablesessions.django.TableCache",  # = tablesessions.django_cache's
            "LOCATION": "cache",            # the table; "cache/myapp" also sets app_name
            "TIMEOUT": 300,                 # seconds; None: never expires; 0: not stored
            "KEY_PREFIX": "",
            "VERSION": 1,
            "OPTIONS": {
                "connection_string": "...",  # or table_endpoint + blob_endpoint (+ credential),
                                             # or account_name; none: TABLESESSIONS_* env vars
                "container_name": "cache-overflow",  # default: "<table>-overflow"
            },
        }
    }

The whole ``BaseCache`` contract: versioning, ``KEY_FUNCTION``, ``get_many`` /
``set_many`` (batched per partition by ``tablesessions.TableCache``, failed keys
returned), ``delete`` returning whether a row was there, ``touch``, and native
``a*`` methods on ``tablesessions.aio.TableCache`` (no thread hop).

Values are pickled, as Django's cache framework expects, and every pickle is
authenticated: ``tablesessions.signed_pickle.PickleSigner`` under a key derived
from ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` verify only), or from
``OPTIONS["SIGNING_KEY"]``. A row whose tag does not verify is a miss, logged to
``tablesessions.security`` without its data, and is never unpickled.

Encrypted at rest by default: unless ``OPTIONS["key_ring"]`` gives a ring (or
None, to store in the clear), every value is sealed with AES-256-GCM under a
``KeyRing.from_secrets`` of the same secret and its fallbacks (context
``"django-cache"``: keys unrelated to the signing key and to the session
engine's), and a plaintext row is refused (``accept_plaintext=False`` unless
OPTIONS says otherwise). Ints are then sealed too; ``incr``/``decr`` stay
atomic and cost 2 storage calls. Without encryption an ``int`` (not ``bool``,
not a subclass) within 64 bits is stored as a native int.

Keys are hashed into the table's keys, so any key works; Django's
``CacheKeyWarning`` for memcached-unsafe keys is kept, as Django's own database,
file and local-memory backends keep it (portable code); a key longer than
``tablesessions.TableCache``'s limit raises ``InvalidCacheKey`` before any call.

Settings are checked when Django builds the backend (on first use, and by
``manage.py check``, which builds every cache): a wrong type, an unknown or
unsupported option raises ``ImproperlyConfigured`` naming the setting. No
storage call is made until an operation runs; create the table once with
``caches["default"].create_storage()``. See docs/cache.md ("Django").
"""

from __future__ import annotations

import asyncio
import difflib
import os
import threading
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._extras import require

require("django", "django")  # before any django import: a missing one names the extra

from django.conf import settings  # noqa: E402
from django.core.cache.backends.base import (  # noqa: E402
    DEFAULT_TIMEOUT,
    BaseCache,
    InvalidCacheKey,
)
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.signals import setting_changed  # noqa: E402

import tablesessions  # noqa: E402
import tablesessions.aio  # noqa: E402

from .cache import MAX_KEY_LENGTH  # noqa: E402
from .config import (  # noqa: E402
    ENV_BLOB_ENDPOINT,
    ENV_CONNECTION_STRING,
    ENV_TABLE_ENDPOINT,
    CacheConfig,
)
from .encryption import KeyRing  # noqa: E402
from .exceptions import CacheError  # noqa: E402
from .signed_pickle import PickleSigner, Unverified  # noqa: E402

__all__ = ["TableCache"]

#: ``PickleSigner`` context: a Django cache key is never the key of anything else.
SIGNING_CONTEXT = "django-cache"
#: ``KeyRing.from_secrets`` context of the encryption at rest derived from the secret
#: (another HKDF salt than the signer's: the two keys are unrelated).
ENCRYPTION_CONTEXT = "django-cache"
_INT64 = (-(2**63), 2**63 - 1)
_MISSING = object()
_EXPIRED = object()  # a timeout <= 0: Django stores nothing (and drops what was there)
_UNVERIFIED = object()  # a stored value whose tag does not verify: a miss

#: OPTIONS handled by the backend itself (the rest go to ``tablesessions.TableCache``).
_CONNECTION = ("connection_string", "table_endpoint", "blob_endpoint", "account_name",
               "credential", "async_credential")
_OWN = ("SIGNING_KEY", "SIGNING_KEY_FALLBACKS")
#: OPTIONS that name another setting, or that this backend cannot honour, with why.
_REFUSED = {
    "table_name": "the table is LOCATION",
    "default_ttl": "the default timeout is TIMEOUT",
    "MAX_ENTRIES": "a table cannot count its rows cheaply, so entries are not culled; "
                   "expired ones are deleted by the sweeper (see docs/cache.md)",
    "CULL_FREQUENCY": "entries are not culled (see MAX_ENTRIES)",
}


# -- settings ------------------------------------------------------------------------
class _Problem(ImproperlyConfigured):
    """A settings error, with the ``manage.py check`` id that reports it
    (``tablesessions.E006``...: the E00x series of ``settings.TABLESESSIONS``
    continues here)."""

    def __init__(self, check_id: str, message: str) -> None:
        super().__init__(message)
        self.check_id = f"tablesessions.{check_id}"


#: The check ids of a ``CACHES`` entry (see docs/cache.md, "Settings errors").
CHECK_IDS = {
    "tablesessions.E006": "a setting has the wrong type or form",
    "tablesessions.E007": "an unknown or unsupported OPTIONS key",
    "tablesessions.E008": "no storage connection, or conflicting connection settings",
    "tablesessions.E009": "a tablesessions.TableCache option has a bad value",
}
#: The BACKEND paths of this backend.
BACKENDS = frozenset({"tablesessions.django.TableCache", "tablesessions.django_cache.TableCache"})
@dataclass(frozen=True)
class _Settings:
    """What one ``CACHES`` entry configures, validated."""

    table_name: str
    app_name: str | None
    container_name: str
    connection: dict[str, Any]
    store_options: dict[str, Any]
    signing_key: str | bytes | None = None
    signing_fallbacks: tuple[str | bytes, ...] = field(default=())

    @property
    def derives_ring(self) -> bool:
        """Whether values are encrypted under a ring derived from the secret (the
        default): OPTIONS gave no ``key_ring`` (a ring, or None for plaintext)."""
        return "key_ring" not in self.store_options

    def clients_key(self) -> Hashable:
        """Backends with the same storage settings share their clients."""
        return (self.table_name, self.app_name, self.container_name,
                _freeze(self.connection), _freeze(self.store_options))


def _freeze(value: Any) -> Hashable:
    """A hashable stand-in: containers by content, other values by equality when
    hashable, else by identity (Django hands every rebuild the same OPTIONS objects)."""
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(_freeze(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    frozen: Hashable = value
    return frozen


def _where(location: str) -> str:
    return f"CACHES entry with BACKEND tablesessions TableCache and LOCATION {location!r}"


def _store_option_names() -> frozenset[str]:
    """The ``tablesessions.TableCache`` options (``CacheConfig`` fields) an
    ``OPTIONS`` key may pass through: all but the ones this backend sets."""
    fields = {name for name, f in CacheConfig.__dataclass_fields__.items() if f.init}
    return frozenset(fields - {"table_name", "default_ttl", "app_name", "container_name"})


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def _timeout_problem(params: Mapping[str, Any]) -> str | None:
    timeout = params.get("TIMEOUT", 300)
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float, str)):
        return f"TIMEOUT must be a number of seconds or None, not {type(timeout).__name__}"
    try:
        float(timeout)
    except ValueError:
        return f"TIMEOUT must be a number of seconds or None, not {timeout!r}"
    return None


def parse_settings(location: str, params: Mapping[str, Any]) -> _Settings:
    """Validate one ``CACHES`` entry (without ``BACKEND``/``LOCATION``) and return
    what it configures. No I/O.

    :raises ImproperlyConfigured: naming the setting, for a wrong type, an
        unknown option (with the closest known one) or an unsupported one.
    """
    where = _where(location)
    if not isinstance(location, str):
        raise _Problem("E006", f"{where}: LOCATION must be a string, "
                                   f"not {type(location).__name__}")
    problem = _timeout_problem(params)
    if problem:
        raise _Problem("E006", f"{where}: {problem}")
    for name, kind in (("KEY_PREFIX", str), ("VERSION", int)):
        value = params.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise _Problem("E006", f"{where}: {name} must be {kind.__name__}, "
                                       f"not {type(value).__name__}")
    key_func = params.get("KEY_FUNCTION")
    if key_func is not None and not (callable(key_func) or isinstance(key_func, str)):
        raise _Problem("E006", f"{where}: KEY_FUNCTION must be a callable or a dotted "
                                   f"path, not {type(key_func).__name__}")
    options = params.get("OPTIONS") or {}
    if not isinstance(options, Mapping):
        raise _Problem("E006", f"{where}: OPTIONS must be a dict, "
                                   f"not {type(options).__name__}")
    table, _, app = location.partition("/")
    if "/" in app:
        raise _Problem("E006", f"{where}: LOCATION is 'table' or 'table/app_name', "
                                   f"with one '/' at most")
    table = table or "cache"
    store_names = _store_option_names()
    known = {*_CONNECTION, *_OWN, "container_name", "app_name", *store_names}
    connection: dict[str, Any] = {}
    store: dict[str, Any] = {}
    for name, value in options.items():
        if not isinstance(name, str):
            raise _Problem("E006", f"{where}: OPTIONS keys must be strings, not {name!r}")
        if name in _REFUSED:
            raise _Problem("E007", f"{where}: OPTIONS[{name!r}] is not supported: "
                                       f"{_REFUSED[name]}")
        if name not in known:
            raise _Problem("E007", f"{where}: OPTIONS has the unknown option {name!r}."
                                       f"{_did_you_mean(name, known)} Known: "
                                       f"{', '.join(sorted(known))}")
        if name in _CONNECTION:
            if name not in ("credential", "async_credential") and not isinstance(value, str):
                raise _Problem("E006", f"{where}: OPTIONS[{name!r}] must be a string, "
                                           f"not {type(value).__name__}")
            connection[name] = value
        elif name in store_names:
            store[name] = value
    endpoints = [n for n in ("table_endpoint", "blob_endpoint") if n in connection]
    if "connection_string" in connection and (endpoints or "account_name" in connection):
        raise _Problem("E008", f"{where}: OPTIONS sets connection_string and "
                                   "endpoints/account_name: choose one")
    if len(endpoints) == 1:
        raise _Problem("E008", f"{where}: OPTIONS sets only {endpoints[0]!r}: set both "
                                   "table_endpoint and blob_endpoint")
    if not connection.keys() - {"credential", "async_credential"} and not (
            os.environ.get(ENV_CONNECTION_STRING) or (
                os.environ.get(ENV_TABLE_ENDPOINT) and os.environ.get(ENV_BLOB_ENDPOINT))):
        raise _Problem(
            "E008",
            f"{where}: no storage connection is configured: set OPTIONS['connection_string'] "
            "(or table_endpoint and blob_endpoint, or account_name), or the "
            f"{ENV_CONNECTION_STRING} environment variable")
    app_option = options.get("app_name")
    if app and app_option is not None and app_option != app:
        raise _Problem("E006", f"{where}: the app name is set twice (LOCATION "
                                   f"{location!r} and OPTIONS['app_name'] {app_option!r})")
    app_name = app or app_option
    for name in ("app_name", "container_name"):
        value = options.get(name)
        if value is not None and not isinstance(value, str):
            raise _Problem("E006", f"{where}: OPTIONS[{name!r}] must be a string, "
                                       f"not {type(value).__name__}")
    container = options.get("container_name") or f"{table.lower()}-overflow"
    signing_key = options.get("SIGNING_KEY")
    if signing_key is not None and (not isinstance(signing_key, (str, bytes)) or not signing_key):
        raise _Problem("E006", f"{where}: OPTIONS['SIGNING_KEY'] must be a non-empty "
                                   "str or bytes")
    fallbacks = options.get("SIGNING_KEY_FALLBACKS") or ()
    if isinstance(fallbacks, (str, bytes)) or not all(
            isinstance(f, (str, bytes)) for f in fallbacks):
        raise _Problem("E006", f"{where}: OPTIONS['SIGNING_KEY_FALLBACKS'] must be a "
                                   "list of str or bytes")
    if fallbacks and signing_key is None:
        raise _Problem("E006", f"{where}: OPTIONS['SIGNING_KEY_FALLBACKS'] needs "
                                   "OPTIONS['SIGNING_KEY'] (SECRET_KEY_FALLBACKS go with "
                                   "SECRET_KEY)")
    return _Settings(table, app_name, container, connection, store, signing_key,
                     tuple(fallbacks))


def _validated(location: str, params: Mapping[str, Any]) -> _Settings:
    """:func:`parse_settings`, then the ``TableCache`` option values (a dry
    ``CacheConfig``: no clients, no I/O).

    :raises _Problem: with its check id.
    """
    conf = parse_settings(location, params)
    try:
        CacheConfig(table_name=conf.table_name, container_name=conf.container_name,
                    app_name=conf.app_name or "default", **conf.store_options)
    except (TypeError, ValueError) as exc:
        raise _Problem("E009", f"{_where(location)}: OPTIONS: {exc}") from exc
    return conf


def cache_problems(caches: object) -> list[tuple[str, str, str]]:
    """``(alias, check id, message)`` for every ``CACHES`` entry whose ``BACKEND`` is
    this backend and whose settings are wrong. No storage call, no client built:
    what ``manage.py check`` reports (``tablesessions.django.check_caches``)."""
    if not isinstance(caches, Mapping):
        return []
    out: list[tuple[str, str, str]] = []
    for alias, entry in caches.items():
        if not isinstance(entry, Mapping) or entry.get("BACKEND") not in BACKENDS:
            continue
        params = {k: v for k, v in entry.items() if k not in ("BACKEND", "LOCATION")}
        try:
            _validated(entry.get("LOCATION", ""), params)
        except _Problem as exc:
            out.append((str(alias), exc.check_id, str(exc)))
    return out


# -- clients, shared by every backend instance of one configuration --------------------
#: A secret and its fallbacks: what keys the signer and the derived ring.
_Secrets = tuple[str | bytes, tuple[str | bytes, ...]]


def _build(cls: Any, conf: _Settings, ring: KeyRing | None, *, is_async: bool) -> Any:
    """A ``TableCache`` of ``cls`` (sync or aio) for ``conf``; ``ring``: the one
    derived from the secret, when ``conf`` encrypts by default. No I/O."""
    kwargs: dict[str, Any] = {"table_name": conf.table_name,
                              "container_name": conf.container_name, **conf.store_options}
    if ring is not None:
        kwargs["key_ring"] = ring
        kwargs.setdefault("accept_plaintext", False)
    if conf.app_name is not None:
        kwargs["app_name"] = conf.app_name
    conn = conf.connection
    credential = conn.get("async_credential" if is_async else "credential",
                          conn.get("credential"))
    if "connection_string" in conn:
        return cls.from_connection_string(conn["connection_string"], **kwargs)
    if "table_endpoint" in conn:
        return cls(conn["table_endpoint"], conn["blob_endpoint"], credential=credential,
                   **kwargs)
    if "account_name" in conn:
        return cls.from_account(conn["account_name"], credential=credential, **kwargs)
    return cls.from_env(credential=credential, **kwargs)


class _Clients:
    """The sync and the aio ``TableCache`` of one configuration, built on first use.

    Django builds a backend per thread (and again after ``override_settings``);
    they all share these, so a process keeps one connection pool per
    configuration (the aio face keeps one per event loop, as its own clients do).
    """

    def __init__(self, conf: _Settings, secrets: _Secrets | None) -> None:
        self.conf = conf
        self.ring = None if secrets is None else KeyRing.from_secrets(
            secrets[0], secrets[1], context=ENCRYPTION_CONTEXT)
        self._lock = threading.Lock()
        self._sync: tablesessions.TableCache | None = None
        self._aio: tablesessions.aio.TableCache | None = None

    def sync(self) -> tablesessions.TableCache:
        with self._lock:
            if self._sync is None:
                self._sync = _build(tablesessions.TableCache, self.conf, self.ring,
                                    is_async=False)
            return self._sync

    def aio(self) -> tablesessions.aio.TableCache:
        with self._lock:
            if self._aio is None:
                self._aio = _build(tablesessions.aio.TableCache, self.conf, self.ring,
                                   is_async=True)
            return self._aio

    def release(self) -> tuple[Any, Any]:
        with self._lock:
            out, self._sync, self._aio = (self._sync, self._aio), None, None
            return out


_clients_lock = threading.Lock()
_clients: dict[Hashable, _Clients] = {}


def _clients_for(conf: _Settings, secrets: _Secrets | None) -> _Clients:
    """The clients of ``conf``, encrypting under the ring of ``secrets`` (None:
    ``conf``'s own ``key_ring`` option decides)."""
    key = (conf.clients_key(), secrets)
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = _Clients(conf, secrets)
        return found


# -- signing -------------------------------------------------------------------------
_signers_lock = threading.Lock()
_signers: dict[tuple[Any, ...], PickleSigner] = {}


def _signer_for(secret: str | bytes, fallbacks: tuple[str | bytes, ...]) -> PickleSigner:
    key = (secret, fallbacks)
    with _signers_lock:
        signer = _signers.get(key)
        if signer is None:
            signer = _signers[key] = PickleSigner(secret, fallbacks, context=SIGNING_CONTEXT)
        return signer


def _forget_signers(*, setting: str, **kwargs: Any) -> None:
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        with _signers_lock:
            _signers.clear()


setting_changed.connect(_forget_signers)


# -- the backend -----------------------------------------------------------------------
Timeout = Any  # DEFAULT_TIMEOUT | float | None: django-stubs types it as float | None


class TableCache(BaseCache):
    """Django's ``BaseCache`` on ``tablesessions.TableCache`` (sync methods) and
    ``tablesessions.aio.TableCache`` (the ``a*`` methods). See the module docstring."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        """Validate the settings (no I/O). A bad one does not raise here, so that
        ``manage.py check`` (whose own cache checks build every cache) reports it with
        its id (:func:`cache_problems`); every operation then raises it as
        ``ImproperlyConfigured``."""
        self._location = location
        self._bound: tuple[_Secrets | None, _Clients] | None = None
        self._fixed_signer: PickleSigner | None = None
        try:
            self._settings = _validated(location, params)
        except _Problem as exc:
            self._problem: _Problem | None = exc
            super().__init__({})  # Django's defaults: the backend only raises from here on
            return
        self._problem = None
        super().__init__(params)
        if self._settings.signing_key is not None:
            self._fixed_signer = PickleSigner(self._settings.signing_key,
                                              self._settings.signing_fallbacks,
                                              context=SIGNING_CONTEXT)

    @property
    def _clients(self) -> _Clients:
        """The clients for the secret in force now: a changed ``SECRET_KEY`` (or
        its fallbacks) re-derives the ring, as it re-derives the signer.

        :raises ImproperlyConfigured: for a bad setting (see ``__init__``).
        """
        if self._problem is not None:
            raise self._problem
        secrets = self._secrets() if self._settings.derives_ring else None
        bound = self._bound
        if bound is None or bound[0] != secrets:
            bound = self._bound = (secrets, _clients_for(self._settings, secrets))
        return bound[1]

    def _secrets(self) -> _Secrets:
        conf = self._settings
        if conf.signing_key is not None:
            return conf.signing_key, conf.signing_fallbacks
        secret = settings.SECRET_KEY
        if not secret:
            raise ImproperlyConfigured(
                f"{_where(self._location)}: SECRET_KEY is empty: it keys the "
                "signing and the encryption of cached values (or set OPTIONS['SIGNING_KEY'])")
        return secret, tuple(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ())

    # -- the pure part, shared by both faces --------------------------------------
    def validate_key(self, key: Any) -> None:
        """Django's memcached-portability warnings (kept, as Django's database and
        local-memory backends keep them), then this backend's length limit."""
        if len(key) > MAX_KEY_LENGTH:
            raise InvalidCacheKey(f"Cache key is longer than {MAX_KEY_LENGTH} characters "
                                  f"({len(key)}), the limit of tablesessions.TableCache")
        super().validate_key(key)

    def _ttl(self, timeout: Timeout) -> Any:
        """Django's timeout as TableCache's ttl: seconds, None (forever) or _EXPIRED."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return None
        return _EXPIRED if timeout <= 0 else timeout

    def _signer(self) -> PickleSigner:
        if self._fixed_signer is not None:
            return self._fixed_signer
        return _signer_for(*self._secrets())

    def _encode(self, value: Any) -> Any:
        """An int as itself (so incr is native); anything else as a signed pickle."""
        if type(value) is int and _INT64[0] <= value <= _INT64[1]:
            return value
        return self._signer().dumps(value)

    def _decode(self, stored: Any, default: Any) -> Any:
        """The value of a stored one; ``default`` for a row that fails verification."""
        value = self._verified(stored)
        return default if value is _UNVERIFIED else value

    def _verified(self, stored: Any) -> Any:
        if isinstance(stored, bytes):
            try:
                return self._signer().loads(stored)
            except Unverified:  # logged by the signer (no data): a miss, never unpickled
                return _UNVERIFIED
        return stored  # an int, or a JSON value a plain TableCache wrote

    def _keys(self, keys: Iterable[Any], version: int | None) -> dict[str, Any]:
        return {self.make_and_validate_key(key, version=version): key for key in keys}

    @staticmethod
    def _not_found(key: Any) -> ValueError:
        return ValueError(f"Key '{key}' not found")  # Django's message

    # -- sync face ------------------------------------------------------------------
    def _sync(self) -> tablesessions.TableCache:
        return self._clients.sync()

    def add(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
            version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        stored, ttl = self._encode(value), self._ttl(timeout)
        if ttl is _EXPIRED:  # stored and expired at once: True when nothing live is there
            return not self._sync().has_key(made)
        return bool(self._sync().add(made, stored, ttl=ttl))

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        made = self.make_and_validate_key(key, version=version)
        stored = self._sync().get(made, _MISSING)
        return default if stored is _MISSING else self._decode(stored, default)

    def set(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
            version: int | None = None) -> None:
        made = self.make_and_validate_key(key, version=version)
        stored, ttl = self._encode(value), self._ttl(timeout)
        if ttl is _EXPIRED:
            self._sync().delete(made)
        else:
            self._sync().set(made, stored, ttl=ttl)

    def touch(self, key: Any, timeout: Timeout = DEFAULT_TIMEOUT,
              version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is _EXPIRED:
            return bool(self._sync().delete(made))
        return bool(self._sync().touch(made, ttl=ttl))

    def delete(self, key: Any, version: int | None = None) -> bool:
        return bool(self._sync().delete(self.make_and_validate_key(key, version=version)))

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        made = self._keys(keys, version)
        if not made:
            return {}
        found = self._sync().get_many(list(made))
        return self._decode_many(made, found)

    def _decode_many(self, made: Mapping[str, Any], found: Mapping[str, Any]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for made_key, stored in found.items():
            value = self._decode(stored, _MISSING)
            if value is not _MISSING:
                out[made[made_key]] = value
        return out

    def get_or_set(self, key: Any, default: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                   version: int | None = None) -> Any:
        """Django's get_or_set, one call shorter on a miss: when ``add`` stores
        the default, the default is the value (no read back). A row that fails
        verification is replaced (``set``): ``add`` would keep it forever."""
        made = self.make_and_validate_key(key, version=version)
        value = self._verified(self._sync().get(made, _MISSING))
        if value is not _MISSING and value is not _UNVERIFIED:
            return value
        if callable(default):
            default = default()
        if value is _UNVERIFIED:
            self.set(key, default, timeout=timeout, version=version)
            return default
        if self.add(key, default, timeout=timeout, version=version):
            return default
        return self.get(key, default, version=version)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return bool(self._sync().has_key(self.make_and_validate_key(key, version=version)))

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        made = self.make_and_validate_key(key, version=version)
        try:
            return int(self._sync().incr(made, delta))
        except CacheError:
            raise
        except ValueError as exc:  # no live entry
            raise self._not_found(key) from exc

    def set_many(self, data: dict[Any, Any], timeout: Timeout = DEFAULT_TIMEOUT,
                 version: int | None = None) -> list[Any]:
        made = self._keys(data, version)
        if not made:
            return []
        stored = {made_key: self._encode(data[key]) for made_key, key in made.items()}
        ttl = self._ttl(timeout)
        if ttl is _EXPIRED:
            self._sync().delete_many(list(made))
            return []
        return [made[k] for k in self._sync().set_many(stored, ttl=ttl)]

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = self._keys(keys, version)
        if made:
            self._sync().delete_many(list(made))

    def clear(self) -> None:
        """Delete every entry of this cache's namespace (its table and app_name),
        whatever its KEY_PREFIX or version, as Django's database cache does."""
        self._sync().clear()

    def close(self, **kwargs: Any) -> None:
        """Django calls this after every request. The HTTP connection pool is kept
        (as Django's Redis backend keeps its pool): reconnecting per request
        would cost a TLS handshake each. :meth:`disconnect` releases it."""

    def disconnect(self) -> None:
        """Close the clients of this configuration (shared by every backend
        instance built with it); the next operation builds new ones."""
        if self._problem is not None:
            return
        sync, _ = self._clients.release()
        if sync is not None:
            sync.close()

    def create_storage(self) -> None:
        """Create the table and the overflow container if missing (idempotent):
        what ``createcachetable`` does for Django's database cache."""
        self._sync().create_storage()

    def sweep(self, **kwargs: Any) -> Any:
        """Delete expired entries (and their blobs): ``tablesessions.TableCache.sweep``."""
        return self._sync().sweep(**kwargs)

    # -- async face: tablesessions.aio.TableCache, native ------------------------------
    def _aio(self) -> tablesessions.aio.TableCache:
        return self._clients.aio()

    async def aadd(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                   version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        stored, ttl = self._encode(value), self._ttl(timeout)
        if ttl is _EXPIRED:
            return not await self._aio().has_key(made)
        return bool(await self._aio().add(made, stored, ttl=ttl))

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        made = self.make_and_validate_key(key, version=version)
        stored = await self._aio().get(made, _MISSING)
        return default if stored is _MISSING else self._decode(stored, default)

    async def aset(self, key: Any, value: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                   version: int | None = None) -> None:
        made = self.make_and_validate_key(key, version=version)
        stored, ttl = self._encode(value), self._ttl(timeout)
        if ttl is _EXPIRED:
            await self._aio().delete(made)
        else:
            await self._aio().set(made, stored, ttl=ttl)

    async def atouch(self, key: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                     version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        ttl = self._ttl(timeout)
        if ttl is _EXPIRED:
            return bool(await self._aio().delete(made))
        return bool(await self._aio().touch(made, ttl=ttl))

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        return bool(await self._aio().delete(made))

    async def aget_many(self, keys: Iterable[Any],
                        version: int | None = None) -> dict[Any, Any]:
        made = self._keys(keys, version)
        if not made:
            return {}
        return self._decode_many(made, await self._aio().get_many(list(made)))

    async def aget_or_set(self, key: Any, default: Any, timeout: Timeout = DEFAULT_TIMEOUT,
                          version: int | None = None) -> Any:
        made = self.make_and_validate_key(key, version=version)
        value = self._verified(await self._aio().get(made, _MISSING))
        if value is not _MISSING and value is not _UNVERIFIED:
            return value
        if callable(default):
            default = default()
        if value is _UNVERIFIED:
            await self.aset(key, default, timeout=timeout, version=version)
            return default
        if await self.aadd(key, default, timeout=timeout, version=version):
            return default
        return await self.aget(key, default, version=version)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        made = self.make_and_validate_key(key, version=version)
        return bool(await self._aio().has_key(made))

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        made = self.make_and_validate_key(key, version=version)
        try:
            return int(await self._aio().incr(made, delta))
        except CacheError:
            raise
        except ValueError as exc:  # no live entry
            raise self._not_found(key) from exc

    async def aset_many(self, data: dict[Any, Any], timeout: Timeout = DEFAULT_TIMEOUT,
                        version: int | None = None) -> list[Any]:
        made = self._keys(data, version)
        if not made:
            return []
        stored = {made_key: self._encode(data[key]) for made_key, key in made.items()}
        ttl = self._ttl(timeout)
        if ttl is _EXPIRED:
            await self._aio().delete_many(list(made))
            return []
        return [made[k] for k in await self._aio().set_many(stored, ttl=ttl)]

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        made = self._keys(keys, version)
        if made:
            await self._aio().delete_many(list(made))

    async def aclear(self) -> None:
        await self._aio().clear()

    async def aclose(self, **kwargs: Any) -> None:
        """Like :meth:`close`: the pool is kept; :meth:`adisconnect` releases it."""

    async def adisconnect(self) -> None:
        """Close the clients of this configuration (sync and this loop's async ones)."""
        if self._problem is not None:
            return
        sync, aio = self._clients.release()
        if aio is not None:
            await aio.close()
        if sync is not None:
            await asyncio.to_thread(sync.close)

    async def acreate_storage(self) -> None:
        await self._aio().create_storage()

