"""What the sync and async ``TableCache`` share besides the core: the config,
the rules, and the constructor arguments' meaning."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._record.face import RecordFace
from ..config import CacheConfig, TimeoutLike, cache_settings_from_env
from .rules import CacheRules

#: ``default_ttl`` of a cache built without one: 5 minutes.
DEFAULT_TTL_SECONDS = 300


def make_cache_config(table_name: str, container_name: str, app_name: str,
                      default_ttl: TimeoutLike | None, options: Mapping[str, Any]) -> CacheConfig:
    """Build a CacheConfig; an unknown option raises ``TypeError`` naming it."""
    known = set(CacheConfig.__dataclass_fields__) - {"key_ring_given", "accept_plaintext_given"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown TableCache option(s): {', '.join(unknown)}")
    return CacheConfig(table_name=table_name, container_name=container_name, app_name=app_name,
                       default_ttl=default_ttl, **options)  # type: ignore[arg-type]


class CacheBase(RecordFace):
    """Cache config and rules; the sync or async face adds the I/O."""

    config: CacheConfig
    record_kind = "cache"
    _env_settings = staticmethod(cache_settings_from_env)

    def __init__(self, config: CacheConfig) -> None:
        super().__init__(config)
        self._rules = CacheRules(config)

    @property
    def app_name(self) -> str:
        return self.config.app_name
