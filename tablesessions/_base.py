"""What the sync and async stores share besides the core: config, rules, stats,
and the constructor arguments' meaning."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ._record.face import RecordFace
from ._sessions.ids import is_valid_session_id
from ._sessions.rules import Rules
from .config import (
    StoreConfig,
    TimeoutLike,
    settings_from_env,
    timeout_setting,
)
from .encryption import KeyRing
from .models import Session

logger = logging.getLogger("tablesessions.store")
#: The absolute timeout of a store that configures none (not a cap).
DEFAULT_ABSOLUTE = dt.timedelta(hours=12)


def make_config(
    table_name: str,
    container_name: str,
    app_name: str,
    idle_timeout: TimeoutLike,
    absolute_timeout: TimeoutLike | None,
    options: Mapping[str, Any],
) -> StoreConfig:
    """Build a StoreConfig; an unknown option raises ``TypeError`` naming it.

    ``absolute_timeout=None`` means the 12 h default, which is no cap; an
    explicit value is also ``max_absolute_timeout`` unless that is given.
    """
    known = set(StoreConfig.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown SessionStore option(s): {', '.join(unknown)}")
    extra = dict(options)
    # StoreConfig parses the idle timeout (numbers, numeric strings) in __post_init__;
    # the absolute one is parsed here, where None means "the default, not a cap".
    absolute = timeout_setting(absolute_timeout, "absolute_timeout")
    if absolute is None:
        absolute = DEFAULT_ABSOLUTE
        cap = extra.get("max_absolute_timeout")
        if isinstance(cap, dt.timedelta):
            absolute = min(absolute, cap)
    else:
        extra.setdefault("max_absolute_timeout", absolute)
    timeouts: dict[str, Any] = {"idle_timeout": idle_timeout, "absolute_timeout": absolute}
    return StoreConfig(table_name=table_name, container_name=container_name, app_name=app_name,
                       **timeouts, **extra)


class StoreBase(RecordFace):
    """Session config and rules; ``RecordFace`` adds the failure policy and the
    sync or async face (``_record.sync_face``, ``_record.async_face``) the I/O."""

    config: StoreConfig
    _env_settings = staticmethod(settings_from_env)

    def __init__(self, config: StoreConfig) -> None:
        super().__init__(config)
        self._rules = Rules(config)
        self._derived_for: tuple[Any, ...] | None = None
        self._derive_lock = threading.Lock()

    def new(self) -> Session:
        """Return an unsaved session with a fresh 256-bit id (no storage call)."""
        from ._sessions.ops import new

        return new(self._rules)

    @staticmethod
    def is_valid_id(session_id: object) -> bool:
        """Return whether ``session_id`` has the exact shape of an id this library makes."""
        return is_valid_session_id(session_id)

    def encrypt_with_secret(self, secret: str | bytes, fallbacks: Iterable[str | bytes] = (),
                            *, context: str = "sessions") -> bool:
        """Encrypt at rest under keys derived from a framework secret, unless the
        store was given a ``key_ring`` (a ring, or None for plaintext).

        The Flask, Django and Starlette integrations call this with the app's
        secret and fallback secrets: the ring is
        :meth:`KeyRing.from_secrets(secret, fallbacks, context=context)
        <tablesessions.encryption.KeyRing.from_secrets>`, so rows written under
        a fallback secret still decrypt while the secret rotates. Plaintext rows
        stay readable (and are encrypted on their next write) unless
        ``accept_plaintext`` was given. Cheap when called again with the same
        secrets; changed secrets re-derive. No storage call.

        :returns: whether the store now encrypts under the derived ring.
        """
        if self.config.key_ring_given or not secret:
            return False
        wanted = (secret, tuple(fallbacks), context)
        if wanted == self._derived_for:
            return True
        with self._derive_lock:
            if wanted != self._derived_for:
                ring = KeyRing.from_secrets(secret, wanted[1], context=context)
                config = self.config
                accept = config.accept_plaintext if config.accept_plaintext_given else True
                derived = dataclasses.replace(config, key_ring=ring, accept_plaintext=accept)
                # The replaced config counts its ring as given; the store still
                # knows it was derived, so a new secret re-derives it.
                object.__setattr__(derived, "key_ring_given", False)
                object.__setattr__(derived, "accept_plaintext_given",
                                   config.accept_plaintext_given)
                self._rules = Rules(derived)
                self.config = derived
                self._derived_for = wanted
        return True
