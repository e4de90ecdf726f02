"""What every I/O face shares, sync or async, store or cache: its config, the
failure policy and its counters, the per-attempt timeouts, and where its
connection settings come from. No I/O here; ``sync_face`` and ``async_face``
perform the effects."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from ..config import ENV_BLOB_ENDPOINT, ENV_CONNECTION_STRING, ENV_TABLE_ENDPOINT, RecordConfig
from ..retry import Deadline, RetryPolicy
from .clients import default_endpoints
from .effects import CreateStorage, Op
from .failure import StoreStats, absorb

F = TypeVar("F", bound="RecordFace")


def env_source(environ: Mapping[str, str] | None,
               settings: Callable[[Mapping[str, str]], dict[str, Any]]
               ) -> tuple[str | None, tuple[str, str] | None, dict[str, Any]]:
    """Read (connection string, (table, blob) endpoints, options) from the environment;
    ``settings`` picks the options of the record type (sessions or cache).

    :raises ValueError: when neither a connection string nor both endpoints are set.
    """
    env = os.environ if environ is None else environ
    options = settings(env)
    conn = env.get(ENV_CONNECTION_STRING)
    if conn:
        return conn, None, options
    table, blob = env.get(ENV_TABLE_ENDPOINT), env.get(ENV_BLOB_ENDPOINT)
    if table and blob:
        return None, (table, blob), options
    raise ValueError(f"set {ENV_CONNECTION_STRING}, or both {ENV_TABLE_ENDPOINT} and "
                     f"{ENV_BLOB_ENDPOINT} (with a token credential)")


def create_storage_op() -> Op[None]:
    """The table and the overflow container, created if missing (``create_storage``)."""
    yield CreateStorage()


class RecordFace:
    """Config, counters and the failure policy of one face."""

    config: RecordConfig
    #: What the failure log lines call a record.
    record_kind = "session"

    @staticmethod
    def _env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
        """This record type's options from the environment (``StoreConfig``'s
        ``TABLESESSIONS_*`` or ``CacheConfig``'s ``TABLESESSIONS_CACHE_*`` names)."""
        raise NotImplementedError

    def __init__(self, config: RecordConfig) -> None:
        self.config = config
        self.stats = StoreStats()

    # Both constructors below build through the concrete face's own
    # ``__init__(table_endpoint, blob_endpoint, *, credential=..., **options)``
    # and ``from_connection_string``, which every store and cache defines.
    @classmethod
    def from_account(cls: type[F], account_name: str, *, credential: Any = None,
                     **options: Any) -> F:
        """Connect to a public-cloud account by name with a token credential."""
        table, blob = default_endpoints(account_name)
        build: Any = cls
        return build(table, blob, credential=credential, **options)  # type: ignore[no-any-return]

    @classmethod
    def from_env(cls: type[F], environ: Mapping[str, str] | None = None, *,
                 credential: Any = None, **options: Any) -> F:
        """Connect using ``TABLESESSIONS_CONNECTION_STRING`` (or the two endpoint
        variables) and this record type's settings variables (docs/configuration.md).

        Explicit ``options`` win over the environment.
        """
        conn, endpoints, env_options = env_source(environ, cls._env_settings)
        merged = {**env_options, **options}
        build: Any = cls
        if conn is not None:
            return build.from_connection_string(conn, **merged)  # type: ignore[no-any-return]
        assert endpoints is not None
        return build(*endpoints, credential=credential, **merged)  # type: ignore[no-any-return]

    @property
    def table_name(self) -> str:
        return self.config.table_name

    @property
    def container_name(self) -> str:
        return self.config.container_name

    def _deadline(self) -> Deadline:
        return Deadline(self.config.retry.deadline)

    def _absorb(self, kind: Literal["read", "write"], exc: Exception) -> bool:
        return absorb(self.config.on_storage_error, self.stats, kind, exc, self.record_kind)

    def _timeouts(self, deadline: Deadline, policy: RetryPolicy) -> dict[str, float]:
        # Computed per attempt, from the time left then: a hung or half-open
        # connection is abandoned after a share of it, leaving room to retry on
        # a fresh connection (issue 14: a 5 s read timeout under a 2 s deadline
        # turned every held answer into an error).
        config = self.config
        return {"connection_timeout": policy.attempt_timeout(deadline, config.connection_timeout),
                "read_timeout": policy.attempt_timeout(deadline, config.read_timeout)}
