"""Every store option, its default, and every environment variable name.

The CLI, the Azure Function and the framework integrations all read settings
through this module, so one name means one thing everywhere.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ._record.limits import MAX_INLINE_BYTES, check_key
from ._record.payload import DEFAULT_COMPRESS_THRESHOLD
from .encryption import KeyRing
from .retry import RetryPolicy

# Environment variables (and, without the prefix, framework setting keys).
ENV_CONNECTION_STRING = "TABLESESSIONS_CONNECTION_STRING"
ENV_TABLE_ENDPOINT = "TABLESESSIONS_TABLE_ENDPOINT"
ENV_BLOB_ENDPOINT = "TABLESESSIONS_BLOB_ENDPOINT"
ENV_TABLE_NAME = "TABLESESSIONS_TABLE_NAME"
ENV_CONTAINER_NAME = "TABLESESSIONS_CONTAINER_NAME"
ENV_APP_NAME = "TABLESESSIONS_APP_NAME"
ENV_IDLE_TIMEOUT = "TABLESESSIONS_IDLE_TIMEOUT_SECONDS"
ENV_ABSOLUTE_TIMEOUT = "TABLESESSIONS_ABSOLUTE_TIMEOUT_SECONDS"
ENV_ENCRYPTION_KEYS = "TABLESESSIONS_ENCRYPTION_KEYS"
#: The key-value cache's own names (``TableCache.from_env``): a cache and a
#: session store configured from one environment never share a table by accident.
ENV_CACHE_TABLE_NAME = "TABLESESSIONS_CACHE_TABLE_NAME"
ENV_CACHE_CONTAINER_NAME = "TABLESESSIONS_CACHE_CONTAINER_NAME"
ENV_CACHE_APP_NAME = "TABLESESSIONS_CACHE_APP_NAME"
#: Seconds, or ``none`` for entries that never expire.
ENV_CACHE_DEFAULT_TTL = "TABLESESSIONS_CACHE_DEFAULT_TTL_SECONDS"
#: Read by the CLI's ``sweep`` and the Azure Function, not by the store.
ENV_SWEEP_TIME_BUDGET = "TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS"

Concurrency = Literal["merge", "strict", "overwrite"]
KeyConflict = Literal["last_writer_wins", "raise"]
OnStorageError = Literal["raise", "empty"]

_TABLE_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")
_CONTAINER_RE = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_APP_RE = re.compile(r"[A-Za-z0-9_.]{1,64}")


class _Unset:
    """The default of an option whose "not given" differs from every value."""

    def __repr__(self) -> str:
        return "UNSET"


#: ``key_ring`` and ``accept_plaintext`` when not given. The store reads an unset
#: ``key_ring`` as None (plaintext) and ``accept_plaintext`` as False; a framework
#: integration may then derive a ring from the framework's secret
#: (``store.encrypt_with_secret``). An explicit ``key_ring=None`` opts out.
UNSET: Final[Any] = _Unset()
#: What a timeout setting accepts: a timedelta, seconds as a number, or a numeric string.
TimeoutLike = dt.timedelta | int | float | str


def timeout_setting(value: object, setting: str) -> dt.timedelta | None:
    """Return ``value`` as a ``timedelta``, or None for None (the caller's default).

    Accepts a ``datetime.timedelta``, seconds as an ``int`` or ``float``, and a
    string holding a number of seconds (``"1200"``, ``"1.5"``), as environment
    variables and settings files give them. The single parser of every timeout
    setting: constructors, ``StoreConfig``, the environment and the integrations.

    :param setting: the name the user wrote (``"idle_timeout"``, an environment
        variable, a framework setting key), used in the error.
    :raises TypeError: for any other type (``bool`` included), naming ``setting``.
    :raises ValueError: for a string that is not a number, NaN, infinity, or a
        value that is not positive, naming ``setting``.
    """
    if value is None or isinstance(value, dt.timedelta):
        seconds = None if value is None else value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"{setting}: expected a datetime.timedelta or a number of seconds, "
                        f"got {type(value).__name__} {value!r}")
    elif isinstance(value, str):
        try:
            seconds = float(value.strip())
        except ValueError:
            raise ValueError(f"{setting}: expected a number of seconds (such as 1200), "
                             f"got {value!r}") from None
    else:
        seconds = float(value)
    if seconds is None:
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{setting}: must be a positive, finite duration, got {value!r}")
    return value if isinstance(value, dt.timedelta) else dt.timedelta(seconds=seconds)


def utc_now() -> dt.datetime:
    """The default clock: timezone-aware UTC (the SDK reads naive times as local)."""
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class RecordConfig:
    """The options of the shared record layer: where records live, how their
    payloads are encoded, encrypted and overflowed, and how storage is called.
    :class:`StoreConfig` (sessions) and :class:`CacheConfig` (the key-value
    cache) add their own; see those for every field's meaning.
    """

    table_name: str = "sessions"
    container_name: str = "sessions-overflow"
    app_name: str = "default"
    inline_budget: int = MAX_INLINE_BYTES
    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD
    compression_level: int = 1
    max_merge_attempts: int = 100
    retry: RetryPolicy = field(default_factory=RetryPolicy.request_path)
    background_retry: RetryPolicy = field(default_factory=RetryPolicy.background)
    on_storage_error: OnStorageError = "raise"
    connection_timeout: float = 2.0
    read_timeout: float = 5.0
    transfer_rate: float = 8_000_000.0
    key_ring: KeyRing | None = UNSET
    accept_plaintext: bool = UNSET
    clock: Callable[[], dt.datetime] = utc_now
    client_options: Mapping[str, Any] = field(default_factory=dict)
    #: Whether ``key_ring`` / ``accept_plaintext`` were given (set by ``__post_init__``).
    key_ring_given: bool = field(init=False, default=False, repr=False, compare=False)
    accept_plaintext_given: bool = field(init=False, default=False, repr=False, compare=False)

    @property
    def max_payload_bytes(self) -> int:
        """The largest encoded payload one record may hold (inline or blob)."""
        raise NotImplementedError

    def __post_init__(self) -> None:
        for name, unset_value in (("key_ring", None), ("accept_plaintext", False)):
            given = getattr(self, name) is not UNSET
            object.__setattr__(self, f"{name}_given", given)
            if not given:
                object.__setattr__(self, name, unset_value)
        if not _TABLE_RE.fullmatch(self.table_name):
            raise ValueError(f"table_name {self.table_name!r}: 3-63 letters/digits, "
                             "starting with a letter")
        if not _CONTAINER_RE.fullmatch(self.container_name):
            raise ValueError(f"container_name {self.container_name!r}: 3-63 lowercase "
                             "letters, digits and single hyphens")
        if not _APP_RE.fullmatch(self.app_name):
            raise ValueError(f"app_name {self.app_name!r}: 1-64 of A-Z a-z 0-9 _ .")
        check_key(self.app_name, "app_name")
        if not 0 <= self.inline_budget <= MAX_INLINE_BYTES:
            raise ValueError(f"inline_budget must be 0..{MAX_INLINE_BYTES}")
        if not 0 <= self.compression_level <= 9:
            raise ValueError("compression_level must be 0..9")
        if self.on_storage_error not in ("raise", "empty"):
            raise ValueError("on_storage_error must be raise or empty")
        if self.max_merge_attempts < 1:
            raise ValueError("max_merge_attempts must be >= 1")
        if self.connection_timeout <= 0 or self.read_timeout <= 0 or self.transfer_rate <= 0:
            raise ValueError("timeouts and transfer_rate must be positive")


@dataclass(frozen=True)
class StoreConfig(RecordConfig):
    """Options shared by the sync and async stores. All are keyword arguments of
    ``SessionStore.from_connection_string`` and the other constructors.

    :param table_name: the Table holding one entity per session.
    :param container_name: the Blob container for payloads over ``inline_budget``.
    :param app_name: isolates apps sharing one table; part of every key and blob name.
    :param idle_timeout: sliding expiry: a session unused this long is gone. Like
        every timeout: a ``timedelta``, seconds as a number, or a numeric string
        (see :func:`timeout_setting`); never longer than ``absolute_timeout``.
    :param absolute_timeout: hard expiry from creation, whatever the activity: the
        deadline of sessions that set none of their own (``Session.set_expiry``).
    :param max_absolute_timeout: the most any session may live from its
        creation, its own deadline included (checked on every read too); None:
        no cap. The constructors set it to ``absolute_timeout`` when that is
        passed explicitly (argument or environment variable), so a configured
        absolute timeout is a server-side cap no session exceeds; the 12 h
        default is not.
    :param refresh_threshold: a read-only request refreshes the idle expiry only
        when less than this fraction of ``idle_timeout`` remains (0.5: at most one
        refresh write per half idle period).
    :param inline_budget: stored payloads up to this many bytes stay in the entity
        (at most 704,000: see ``docs/overflow.md`` for the arithmetic).
    :param max_session_bytes: the largest encoded session accepted, inline or blob.
    :param compress_threshold: a key's JSON from this size is zlib-compressed when it pays.
    :param compression_level: zlib level; 1 favours latency over ratio.
    :param concurrency: what a save does when another request changed the session
        since it was read (every save is conditional on the ETag, in every mode):
        ``"merge"`` re-applies this request's changed keys onto the fresh copy;
        ``"strict"`` raises ``SessionConflictError``; ``"overwrite"`` replaces
        the whole session with this request's copy (last writer wins, no merge).
        Merge and overwrite rounds back off with jitter within the operation's
        deadline; no mode recreates a deleted or expired session.
    :param key_conflict: with ``"merge"``, what to do when both writers changed one key.
    :param max_merge_attempts: a safety cap on the write attempts of one save
        under contention; the operation's deadline (``retry.deadline``) normally
        ends the loop first.
    :param retry: the retry policy of request-path operations.
    :param background_retry: the retry policy of the sweeper and maintenance calls.
    :param on_storage_error: ``"raise"`` (default) or ``"empty"``: a failed read
        yields no session and a failed write is logged and dropped (counted in
        ``store.stats``).
    :param connection_timeout: seconds to establish a connection (per attempt).
    :param read_timeout: seconds to wait for a response (per attempt). Both are
        caps: each attempt also waits at most the retry policy's
        ``attempt_share`` (0.5) of the time left in the operation's deadline, so
        on the request path a first attempt waits at most 1 s of the 2 s, and a
        hung or half-open connection leaves time for a retry on a fresh one.
    :param transfer_rate: bytes/s assumed for blob transfers; the deadline of an
        operation moving N blob bytes grows by N / transfer_rate.
    :param key_ring: encrypt payloads at rest (AES-256-GCM) with this
        :class:`~tablesessions.encryption.KeyRing`; None stores them in the clear.
        Not given: the store itself writes plaintext, and the Flask, Django and
        Starlette integrations encrypt under a ring derived from the framework's
        secret (``store.encrypt_with_secret``). Give a ring, or None, to choose.
    :param accept_plaintext: with a key ring, still read unencrypted payloads
        (they are encrypted on their next write). Not given: False with an
        explicit ring, True with a ring derived from a framework secret, so
        that turning encryption on logs nobody out. Set it False once every
        row is encrypted (``tablesessions rotate-keys``): otherwise someone who
        can write the table could plant a plaintext session.
    :param clock: returns the current time as aware UTC; injectable for tests.
    :param client_options: extra keyword arguments for every Azure SDK client the
        store builds (e.g. ``transport=`` or ``raw_request_hook=``).
    """

    table_name: str = "sessions"
    container_name: str = "sessions-overflow"
    idle_timeout: dt.timedelta = dt.timedelta(minutes=20)
    absolute_timeout: dt.timedelta = dt.timedelta(hours=12)
    max_absolute_timeout: dt.timedelta | None = None
    refresh_threshold: float = 0.5
    max_session_bytes: int = 128 * 1024 * 1024
    concurrency: Concurrency = "merge"
    key_conflict: KeyConflict = "last_writer_wins"

    @property
    def max_payload_bytes(self) -> int:
        return self.max_session_bytes

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("idle_timeout", "absolute_timeout"):
            parsed = timeout_setting(getattr(self, name), name)
            if parsed is None:
                raise TypeError(f"{name}: expected a datetime.timedelta or a number of "
                                "seconds, got None")
            object.__setattr__(self, name, parsed)  # frozen: normalise once, here
        idle, absolute = self.idle_timeout, self.absolute_timeout
        if idle > absolute:
            raise ValueError(f"idle_timeout ({idle}) is longer than absolute_timeout "
                             f"({absolute}): no session could ever use it; shorten it, or "
                             "raise absolute_timeout")
        if self.max_absolute_timeout is not None and not (
                dt.timedelta(0) < self.absolute_timeout <= self.max_absolute_timeout):
            raise ValueError("max_absolute_timeout must be positive and at least "
                             "absolute_timeout")
        if not 0.0 <= self.refresh_threshold <= 1.0:
            raise ValueError("refresh_threshold must be between 0 and 1")
        if self.max_session_bytes < 1:
            raise ValueError("max_session_bytes must be positive")
        if self.concurrency not in ("merge", "strict", "overwrite"):
            raise ValueError(f"concurrency must be merge, strict or overwrite, "
                             f"not {self.concurrency!r}")
        if self.key_conflict not in ("last_writer_wins", "raise"):
            raise ValueError("key_conflict must be last_writer_wins or raise")


@dataclass(frozen=True)
class CacheConfig(RecordConfig):
    """Options of :class:`~tablesessions.TableCache` (sync and async): the
    :class:`RecordConfig` fields (see :class:`StoreConfig` for their meaning:
    ``inline_budget``, ``retry``, ``key_ring``, ``client_options``, ...) plus:

    :param table_name: the Table holding one entity per cache entry.
    :param container_name: the Blob container for values over ``inline_budget``.
    :param app_name: the cache's namespace: part of every key and blob name, and
        what :meth:`~tablesessions.TableCache.clear` empties.
    :param default_ttl: the TTL of entries written without one: a ``timedelta``,
        seconds as a number or a numeric string, or None for entries that never
        expire. 300 s by default.
    :param sliding: a read extends a live entry by its own TTL (sliding
        expiration), at most once per half TTL: one conditional merge of the
        expiry column, only once less than half of the TTL is left. A failed
        extension never fails the read.
    :param max_value_bytes: the largest encoded value accepted (inline or blob).
    :param max_parallel: how many partitions (or point reads) the ``*_many``
        operations and ``clear`` run at once. 8: measured on a 2-core machine
        against Azurite, ``set_many`` of 100 keys took 251 ms at 8, 293 ms at 4
        and 360 ms at 16 (docs/cache.md); a bigger machine may prefer 16.
    """

    table_name: str = "cache"
    container_name: str = "cache-overflow"
    default_ttl: dt.timedelta | None = dt.timedelta(seconds=300)
    sliding: bool = False
    max_value_bytes: int = 32 * 1024 * 1024
    max_parallel: int = 8

    @property
    def max_payload_bytes(self) -> int:
        return self.max_value_bytes

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "default_ttl", timeout_setting(self.default_ttl, "default_ttl"))
        if not isinstance(self.sliding, bool):
            raise TypeError(f"sliding must be a bool, got {type(self.sliding).__name__}")
        if isinstance(self.max_value_bytes, bool) or not isinstance(self.max_value_bytes, int) \
                or self.max_value_bytes < 1:
            raise ValueError("max_value_bytes must be a positive int")
        if isinstance(self.max_parallel, bool) or not isinstance(self.max_parallel, int) \
                or self.max_parallel < 1:
            raise ValueError("max_parallel must be a positive int")


def cache_settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Return the ``CacheConfig`` keyword arguments found in ``environ``: the
    ``TABLESESSIONS_CACHE_*`` names and the shared encryption keys."""
    out: dict[str, Any] = {}
    for env, name in ((ENV_CACHE_TABLE_NAME, "table_name"),
                      (ENV_CACHE_CONTAINER_NAME, "container_name"),
                      (ENV_CACHE_APP_NAME, "app_name")):
        if environ.get(env):
            out[name] = environ[env]
    ttl = environ.get(ENV_CACHE_DEFAULT_TTL)
    if ttl:
        out["default_ttl"] = (None if ttl.strip().lower() == "none"
                              else timeout_setting(ttl, ENV_CACHE_DEFAULT_TTL))
    if environ.get(ENV_ENCRYPTION_KEYS):
        out["key_ring"] = KeyRing.from_string(environ[ENV_ENCRYPTION_KEYS])
    return out


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Return the ``StoreConfig`` keyword arguments found in ``environ``."""
    out: dict[str, Any] = {}
    for env, name in ((ENV_TABLE_NAME, "table_name"), (ENV_CONTAINER_NAME, "container_name"),
                      (ENV_APP_NAME, "app_name")):
        if environ.get(env):
            out[name] = environ[env]
    for env, name in ((ENV_IDLE_TIMEOUT, "idle_timeout"),
                      (ENV_ABSOLUTE_TIMEOUT, "absolute_timeout")):
        if environ.get(env):
            out[name] = timeout_setting(environ[env], env)
    if environ.get(ENV_ENCRYPTION_KEYS):
        out["key_ring"] = KeyRing.from_string(environ[ENV_ENCRYPTION_KEYS])
    return out
