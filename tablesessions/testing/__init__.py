"""Test helpers for tablesessions: a private Azurite, a fault-injecting proxy and a
request counter.  The pytest fixtures live in :mod:`tablesessions.testing.pytest_plugin`
(registered through the ``pytest11`` entry point); this module never imports pytest.
"""

from __future__ import annotations

import re
import uuid

from tablesessions.testing.azurite import (
    ACCOUNT_KEY,
    ACCOUNT_NAME,
    AzuriteNotFoundError,
    AzuriteServer,
    AzuriteStartError,
    find_azurite,
)
from tablesessions.testing.counting import RecordedRequest, RequestCounter
from tablesessions.testing.proxy import (
    WRITE_METHODS,
    Fault,
    FaultPlan,
    FaultProxy,
    FaultProxyPair,
    ProxyStats,
)

__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "WRITE_METHODS",
    "AzuriteNotFoundError",
    "AzuriteServer",
    "AzuriteStartError",
    "Fault",
    "FaultPlan",
    "FaultProxy",
    "FaultProxyPair",
    "ProxyStats",
    "RecordedRequest",
    "RequestCounter",
    "find_azurite",
    "unique_name",
]

_PREFIX = re.compile(r"[a-z][a-z0-9]{0,30}")


def unique_name(prefix: str = "ts") -> str:
    """A fresh name valid both as a table name and as a blob container name.

    ``prefix`` must be a lowercase letter followed by lowercase letters/digits
    (at most 31 chars); 16 random hex digits follow it, so the result is 17-47
    characters of ``[a-z0-9]`` starting with a letter.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"prefix must match {_PREFIX.pattern!r}, got {prefix!r}")
    return f"{prefix}{uuid.uuid4().hex[:16]}"
