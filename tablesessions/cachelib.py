"""cachelib backend: :class:`TableCache`, a ``cachelib.BaseCache`` on Azure Table Storage.

::

    from tablesessions.cachelib import TableCache

    cache = TableCache(conn_str, secret=SECRET_KEY, default_timeout=300, key_prefix="app:")
    cache.set("answer", {"n": 42})      # pickled, HMAC-signed, one upsert
    cache.inc("hits")                   # an int is stored natively: atomic, two calls

Everything cachelib's ``BaseCache`` defines, on top of the public
:class:`tablesessions.TableCache` (one storage call per get/set/add/delete, ``*_many``
batched per partition, overflow to Blob Storage for large values, the expiry sweeper).
For Flask-Caching use :mod:`tablesessions.flask_caching`; Flask-Session's cachelib backend
takes an instance of this class (``SESSION_CACHELIB``). Settings and the list of
differences from cachelib's own backends: ``docs/cache.md``.

cachelib's contract caches arbitrary objects, so values are pickled, and only through
:class:`tablesessions.signed_pickle.PickleSigner`: a stored value whose tag does not verify
under ``secret`` (or a fallback) is a miss, logged to ``tablesessions.security``, and is
never unpickled. Values are also encrypted at rest by default (AES-256-GCM under
``KeyRing.from_secrets(secret, secret_fallbacks, context="cachelib")``, plaintext rows
refused), unless ``key_ring`` says otherwise. ``int`` values (not ``bool``) are passed to
:class:`tablesessions.TableCache` as ints, unsigned, so that ``inc``/``dec`` stay atomic
(native columns without encryption, sealed payloads with it: 2 calls either way).
Timeouts follow cachelib: ``None`` is ``default_timeout``, ``0`` never expires, a number
of seconds or a ``timedelta`` (rounded up to whole seconds) expires after that long, and a
negative one is already expired.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import pickle
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ._extras import require

require("cachelib", "cachelib")  # before the cachelib import: a missing one names the extra

from azure.core.exceptions import AzureError
from cachelib.base import BaseCache
from cachelib.serializers import BaseRedisSerializer, BaseSerializer

from . import StorageNotFoundError
from . import TableCache as _TableCache
from .config import UNSET
from .encryption import KeyRing
from .signed_pickle import PickleSigner, Secret, Unverified

__all__ = ["SignedPickleSerializer", "TableCache"]

logger = logging.getLogger(__name__)

#: The ``context`` of this backend's :class:`PickleSigner`: its values verify only here.
SIGNING_CONTEXT = "cachelib"
#: The ``context`` of the :class:`KeyRing` derived from ``secret`` (another HKDF salt
#: than the signer's, so the encryption and signing keys are unrelated).
ENCRYPTION_CONTEXT = "cachelib"

_EXPIRED = object()  # a negative timeout: the entry is expired as soon as it is written
_MAX_INC_ATTEMPTS = 5
_PROBE_KEY = "tablesessions.cachelib:check_connection"


class Serializer(Protocol):
    """What this backend needs of ``serializer``: cachelib's ``dumps``/``loads`` pair."""

    def dumps(self, value: Any) -> bytes | str | None: ...

    def loads(self, data: bytes) -> Any: ...


class SignedPickleSerializer:
    """The default ``serializer``: a pickle signed with :class:`PickleSigner`.

    ``loads`` raises :class:`~tablesessions.signed_pickle.Unverified` for bytes it did not
    sign; the backend turns that into a miss.
    """

    def __init__(self, signer: PickleSigner) -> None:
        self.signer = signer

    def dumps(self, value: Any) -> bytes:
        return self.signer.dumps(value)

    def loads(self, data: bytes) -> Any:
        return self.signer.loads(data)


def _is_plain_pickle(serializer: object) -> bool:
    # cachelib's default serializers unpickle whatever is stored: the one thing this
    # backend exists to refuse. JSONSerializer (and any custom class) overrides loads.
    loads = getattr(type(serializer), "loads", None)
    return loads in (BaseSerializer.loads, BaseRedisSerializer.loads)


class TableCache(BaseCache):
    """A ``cachelib`` cache in an Azure Table (values over the entity budget overflow to a blob).

    Connect with exactly one of: ``connection_string``; ``table_endpoint`` and
    ``blob_endpoint`` (with ``credential``); ``account_name`` (with ``credential``);
    ``cache``, an existing :class:`tablesessions.TableCache`; or none of them, for
    :meth:`tablesessions.TableCache.from_env` (the ``TABLESESSIONS_*`` variables).

    :param secret: signs and verifies the pickled values (required; e.g. Flask's
        ``SECRET_KEY``). Anyone holding it can make this process unpickle, so it guards
        code execution: ``docs/security.md``.
    :param secret_fallbacks: older secrets, accepted for reading only (rotation).
    :param default_timeout: seconds or a ``timedelta``; ``0`` never expires.
    :param key_prefix: prepended to every key; a ``str`` or a callable returning one.
        It does not scope :meth:`clear`, which clears the whole ``app_name`` namespace.
    :param ignore_delete_many_errors: cachelib's flag; a storage error raises either way.
    :param table_name, container_name, app_name: where the entries live (the
        :class:`tablesessions.TableCache` defaults when omitted); ``app_name`` is the
        namespace :meth:`clear` empties.
    :param create_storage: create the table and container now if missing (one or two
        storage calls in the constructor; off by default).
    :param check_connection: make one storage call now (cachelib's flag): a storage
        account that cannot be reached raises ``RuntimeError`` here rather than on first
        use. Off by default: the constructor makes no call.
    :param key_ring: encryption at rest. Not given: a ring derived from ``secret`` and
        ``secret_fallbacks`` (context ``"cachelib"``), plaintext rows refused. A
        :class:`~tablesessions.encryption.KeyRing`: that ring. None: values are stored in
        the clear (still signed). With ``cache=``, that cache's own ``key_ring`` applies.
    :param options: other :class:`tablesessions.TableCache` options (``client_options``,
        ``retry``, ``accept_plaintext``...), passed to its factory.
    :raises ValueError: for an empty secret or conflicting connection arguments.
    :raises RuntimeError: with ``check_connection``, when storage cannot be reached.
    :raises tablesessions.StorageNotFoundError: with ``check_connection``, when the table
        is missing (``create_storage=True`` or :meth:`create_storage` creates it).
    """

    def __init__(
        self,
        connection_string: str | None = None,
        *,
        secret: Secret,
        secret_fallbacks: Iterable[Secret] = (),
        default_timeout: int | dt.timedelta = 300,
        key_prefix: str | Callable[[], str] | None = None,
        ignore_delete_many_errors: bool = True,
        table_endpoint: str | None = None,
        blob_endpoint: str | None = None,
        account_name: str | None = None,
        credential: Any = None,
        table_name: str | None = None,
        container_name: str | None = None,
        app_name: str | None = None,
        cache: _TableCache | None = None,
        create_storage: bool = False,
        check_connection: bool = False,
        key_ring: KeyRing | None = UNSET,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        BaseCache.__init__(self, default_timeout=default_timeout,
                           ignore_delete_many_errors=ignore_delete_many_errors)
        if isinstance(self.default_timeout, dt.timedelta):  # cachelib < 0.17 keeps it as given
            self.default_timeout = math.ceil(self.default_timeout.total_seconds())
        secret_fallbacks = tuple(secret_fallbacks)  # read twice: the signer and the ring
        self._serializer: Serializer = SignedPickleSerializer(
            PickleSigner(secret, secret_fallbacks, context=SIGNING_CONTEXT))
        self.key_prefix = key_prefix or ""
        names = {k: v for k, v in (("table_name", table_name),
                                   ("container_name", container_name),
                                   ("app_name", app_name)) if v is not None}
        self._owns_cache = cache is None
        if cache is not None and (names or options or connection_string or table_endpoint
                                  or blob_endpoint or account_name or credential
                                  or key_ring is not UNSET):
            raise ValueError("pass either cache= or the options to build one, not both")
        self._cache = cache if cache is not None else _connect(
            connection_string, table_endpoint, blob_endpoint, account_name, credential,
            {**names, **_encryption(secret, secret_fallbacks, key_ring, options or {})})
        self.check_connection = check_connection
        if create_storage:
            self._cache.create_storage()
        if check_connection:
            self._check_connection()

    # -- plumbing ----------------------------------------------------------------------
    @property
    def table_cache(self) -> _TableCache:
        """The :class:`tablesessions.TableCache` underneath (``sweep()``, ``touch()``...)."""
        return self._cache

    @property
    def serializer(self) -> Serializer:
        """How non-int values are stored: a signed pickle unless replaced.

        cachelib's ``JSONSerializer`` (or your own ``dumps``/``loads``) may replace it, as
        Flask-Caching's ``CACHE_SERIALIZER`` does; cachelib's pickle serializers are
        refused, since they would unpickle unauthenticated bytes.
        """
        return self._serializer

    @serializer.setter
    def serializer(self, value: Serializer) -> None:
        if _is_plain_pickle(value):
            raise TypeError(f"{type(value).__name__} unpickles unauthenticated data; "
                            "tablesessions.cachelib signs its pickles itself (keep the default "
                            "serializer) or use a non-pickle one such as JSONSerializer")
        if not all(callable(getattr(value, m, None)) for m in ("dumps", "loads")):
            raise TypeError("a serializer needs dumps() and loads()")
        self._serializer = value

    def _check_connection(self) -> None:
        try:
            self._cache.has_key(_PROBE_KEY)  # a point read: one call, no row needed
        except StorageNotFoundError:
            raise  # reachable, but not created: its own error has the one fix
        except AzureError as exc:
            raise RuntimeError(f"could not connect to Azure Table Storage: "
                               f"{type(exc).__name__}") from exc

    def create_storage(self) -> None:
        """Create the table and the overflow container if they are missing."""
        self._cache.create_storage()

    def close(self) -> None:
        """Close the storage clients, unless the :class:`tablesessions.TableCache` was passed in."""
        if self._owns_cache:
            self._cache.close()

    def __enter__(self) -> TableCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get_prefix(self) -> str:
        return self.key_prefix if isinstance(self.key_prefix, str) else self.key_prefix()

    def _keys(self, keys: Iterable[str]) -> list[str]:
        prefix = self._get_prefix()
        out = []
        for key in keys:
            if not isinstance(key, str):
                raise TypeError(f"a cache key is a str, not {type(key).__name__}")
            out.append(prefix + key)
        return out

    def _ttl(self, timeout: int | dt.timedelta | None) -> Any:
        """cachelib's timeout as a TableCache ttl: 0 never expires, < 0 already expired."""
        seconds: Any = self._normalize_timeout(timeout)
        if isinstance(seconds, dt.timedelta):  # cachelib < 0.17 passes it through
            seconds = math.ceil(seconds.total_seconds())
        if seconds == 0:
            return None
        return _EXPIRED if seconds < 0 else seconds

    def _encode(self, value: Any) -> Any:
        if type(value) is int:  # not bool: a native int keeps inc/dec atomic
            return value
        data = self._serializer.dumps(value)
        if isinstance(data, str):
            data = data.encode()
        return data  # None: the serializer failed (cachelib's convention); nothing is written

    def _decode(self, stored: Any) -> Any:
        if stored is None or type(stored) is int:
            return stored
        if not isinstance(stored, bytes):
            # Written by something other than this backend (a TableCache JSON value in a
            # shared namespace): not ours to interpret, so a miss.
            logger.debug("cache entry is not a cachelib value (%s); treated as a miss",
                         type(stored).__name__)
            return None
        try:
            return self._serializer.loads(stored)
        except Unverified:  # logged by the signer, without data
            return None
        except (pickle.PickleError, AttributeError, ImportError) as exc:
            # Verified, so ours, but written by code that had a class this code lacks (a
            # deploy renamed or removed it): a miss, as cachelib's serializers make it.
            logger.warning("a cached value could not be unpickled (%s); treated as a miss",
                           type(exc).__name__)
            return None

    # -- cachelib's API ----------------------------------------------------------------
    def get(self, key: str) -> Any:
        (full,) = self._keys([key])
        return self._decode(self._cache.get(full))

    def get_many(self, *keys: str) -> list[Any]:
        if not keys:
            return []
        full = self._keys(keys)
        found = self._cache.get_many(list(dict.fromkeys(full)))
        return [self._decode(found.get(k)) for k in full]

    def set(self, key: str, value: Any, timeout: int | dt.timedelta | None = None) -> bool:
        (full,) = self._keys([key])
        data, ttl = self._encode(value), self._ttl(timeout)
        if data is None:
            return False
        if ttl is _EXPIRED:
            self._cache.delete(full)
        else:
            self._cache.set(full, data, ttl=ttl)
        return True

    def add(self, key: str, value: Any, timeout: int | dt.timedelta | None = None) -> bool:
        (full,) = self._keys([key])
        data, ttl = self._encode(value), self._ttl(timeout)
        if data is None:
            return False
        if ttl is _EXPIRED:
            return not self._cache.has_key(full)  # stored and expired at once: nothing to write
        return self._cache.add(full, data, ttl=ttl)

    def set_many(self, mapping: dict[str, Any],
                 timeout: int | dt.timedelta | None = None) -> list[Any]:
        if not mapping:
            return []
        ttl = self._ttl(timeout)
        full = dict(zip(self._keys(mapping), mapping, strict=True))
        # Every value is encoded before anything is written: a pickling error raises.
        encoded = {k: self._encode(mapping[orig]) for k, orig in full.items()}
        writable = {k: v for k, v in encoded.items() if v is not None}
        if ttl is _EXPIRED:
            if writable:
                self._cache.delete_many(list(writable))
            failed: set[str] = set()
        else:
            failed = set(self._cache.set_many(writable, ttl=ttl)) if writable else set()
        return [orig for k, orig in full.items() if k in writable and k not in failed]

    def delete(self, key: str) -> bool:
        (full,) = self._keys([key])
        return self._cache.delete(full)

    def delete_many(self, *keys: str) -> list[Any]:
        """Delete ``keys`` in batches; absent keys count as deleted, as in cachelib.

        A storage error raises (it is not one of cachelib's "key still there" failures,
        which a successful batch cannot leave behind).
        """
        if not keys:
            return []
        self._cache.delete_many(list(dict.fromkeys(self._keys(keys))))
        return list(keys)

    def has(self, key: str) -> bool:
        """Whether a live entry exists, without reading its value (it may still fail
        verification on :meth:`get`)."""
        (full,) = self._keys([key])
        return self._cache.has_key(full)

    def clear(self) -> bool:
        """Delete every entry of this ``app_name`` namespace, whatever its key prefix."""
        self._cache.clear()
        return True

    def inc(self, key: str, delta: int = 1) -> int:
        """Add ``delta`` atomically; a missing key starts at ``delta`` (``default_timeout``).

        :raises TypeError: the stored value is not an int.
        """
        return self._add_to(key, delta)

    def dec(self, key: str, delta: int = 1) -> int:
        """Subtract ``delta`` atomically; a missing key starts at ``-delta``.

        :raises TypeError: the stored value is not an int.
        """
        return self._add_to(key, -delta)

    def _add_to(self, key: str, delta: int) -> int:
        (full,) = self._keys([key])
        missing: ValueError | None = None
        for _ in range(_MAX_INC_ATTEMPTS):
            try:
                if delta >= 0:
                    return self._cache.incr(full, delta)
                return self._cache.decr(full, -delta)
            except ValueError as exc:  # no live entry (or a bad key: add raises it again)
                missing = exc
            ttl = self._ttl(None)
            if ttl is _EXPIRED:
                return delta
            if self._cache.add(full, delta, ttl=ttl):
                return delta
            # Another process created it between the two calls: increment that one.
        assert missing is not None
        raise missing


def _encryption(secret: Secret, fallbacks: Iterable[Secret], key_ring: KeyRing | None,
                options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the encryption settings: a ring derived from the secret unless
    ``key_ring`` (argument or option) chooses one, or None."""
    out = dict(options)
    if key_ring is not UNSET:
        if "key_ring" in out:
            raise ValueError("pass key_ring once: as an argument or in options")
        out["key_ring"] = key_ring
    if "key_ring" not in out:
        out["key_ring"] = KeyRing.from_secrets(secret, tuple(fallbacks),
                                               context=ENCRYPTION_CONTEXT)
        out.setdefault("accept_plaintext", False)
    return out


def _connect(connection_string: str | None, table_endpoint: str | None,
             blob_endpoint: str | None, account_name: str | None, credential: Any,
             options: dict[str, Any]) -> _TableCache:
    endpoints = table_endpoint is not None or blob_endpoint is not None
    given = sum((connection_string is not None, endpoints, account_name is not None))
    if given > 1:
        raise ValueError("pass one of connection_string, table_endpoint/blob_endpoint "
                         "or account_name")
    if connection_string is not None:
        if credential is not None:
            raise ValueError("a connection string carries its own credential")
        return _TableCache.from_connection_string(connection_string, **options)
    if endpoints:
        if table_endpoint is None or blob_endpoint is None:
            raise ValueError("pass both table_endpoint and blob_endpoint")
        return _TableCache(table_endpoint, blob_endpoint, credential=credential, **options)
    if account_name is not None:
        return _TableCache.from_account(account_name, credential=credential, **options)
    return _TableCache.from_env(credential=credential, **options)
