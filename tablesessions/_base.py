"""What the sync and async stores share besides the core: config, rules, stats,
and the constructor arguments' meaning."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Literal

from ._core import Rules
from ._failure import StoreStats, absorb
from ._ids import is_valid_session_id
from .config import (
    ENV_BLOB_ENDPOINT,
    ENV_CONNECTION_STRING,
    ENV_TABLE_ENDPOINT,
    StoreConfig,
    TimeoutLike,
    settings_from_env,
)
from .models import Session
from .retry import Deadline

logger = logging.getLogger("tablesessions.store")


def make_config(
    table_name: str,
    container_name: str,
    app_name: str,
    idle_timeout: TimeoutLike,
    absolute_timeout: TimeoutLike,
    options: Mapping[str, Any],
) -> StoreConfig:
    """Build a StoreConfig; an unknown option raises ``TypeError`` naming it."""
    known = set(StoreConfig.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown SessionStore option(s): {', '.join(unknown)}")
    # StoreConfig parses the timeouts (numbers, numeric strings) in __post_init__.
    timeouts: dict[str, Any] = {"idle_timeout": idle_timeout, "absolute_timeout": absolute_timeout}
    return StoreConfig(table_name=table_name, container_name=container_name, app_name=app_name,
                       **timeouts, **options)


def env_source(environ: Mapping[str, str] | None) -> tuple[str | None, tuple[str, str] | None,
                                                            dict[str, Any]]:
    """Read (connection string, (table, blob) endpoints, options) from the environment.

    :raises ValueError: when neither a connection string nor both endpoints are set.
    """
    env = os.environ if environ is None else environ
    options = settings_from_env(env)
    conn = env.get(ENV_CONNECTION_STRING)
    if conn:
        return conn, None, options
    table, blob = env.get(ENV_TABLE_ENDPOINT), env.get(ENV_BLOB_ENDPOINT)
    if table and blob:
        return None, (table, blob), options
    raise ValueError(f"set {ENV_CONNECTION_STRING}, or both {ENV_TABLE_ENDPOINT} and "
                     f"{ENV_BLOB_ENDPOINT} (with a token credential)")


class StoreBase:
    """Config, rules and the failure policy; the faces add the I/O."""

    config: StoreConfig

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self._rules = Rules(config)
        self.stats = StoreStats()

    @property
    def table_name(self) -> str:
        return self.config.table_name

    @property
    def container_name(self) -> str:
        return self.config.container_name

    def new(self) -> Session:
        """Return an unsaved session with a fresh 256-bit id (no storage call)."""
        from ._ops import new

        return new(self._rules)

    @staticmethod
    def is_valid_id(session_id: object) -> bool:
        """Return whether ``session_id`` has the exact shape of an id this library makes."""
        return is_valid_session_id(session_id)

    def _deadline(self) -> Deadline:
        return Deadline(self.config.retry.deadline)

    def _absorb(self, kind: Literal["read", "write"], exc: Exception) -> bool:
        return absorb(self.config.on_storage_error, self.stats, kind, exc)

    def _timeouts(self, deadline: Deadline) -> dict[str, float]:
        # Never wait on one attempt past the operation's deadline (floor: 50 ms,
        # so a nearly spent deadline still gets one real try).
        left = max(deadline.remaining(), 0.05)
        return {"connection_timeout": min(self.config.connection_timeout, left),
                "read_timeout": min(self.config.read_timeout, left)}
