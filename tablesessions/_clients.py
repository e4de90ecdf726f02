"""Building the Azure SDK clients: one place, so every client gets ``retry_total=0``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import StoreConfig


def sdk_kwargs(config: StoreConfig) -> dict[str, Any]:
    """Keyword arguments for every SDK client the store builds.

    ``retry_total=0``: tenacity is the only retry layer (the SDKs' own policies
    would multiply attempts and blow the deadline).
    """
    return {
        "retry_total": 0,
        "connection_timeout": config.connection_timeout,
        "read_timeout": config.read_timeout,
        **dict(config.client_options),
    }


def parse_connection_string(conn_str: str) -> Mapping[str, str]:
    """Return the connection string's settings; :raises ValueError: when malformed."""
    out: dict[str, str] = {}
    for part in conn_str.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError("connection string segment without '=' (value not shown)")
        out[key.strip()] = value.strip()
    return out


def default_endpoints(account_name: str) -> tuple[str, str]:
    """Public-cloud endpoints of a storage account."""
    return (f"https://{account_name}.table.core.windows.net",
            f"https://{account_name}.blob.core.windows.net")
