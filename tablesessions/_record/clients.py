"""Building the Azure SDK clients: one place, so every client gets ``retry_total=0``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..config import RecordConfig


def sdk_kwargs(config: RecordConfig) -> dict[str, Any]:
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


#: An overflow read is one GET: the first read covers any session the store can
#: write (``max_payload_bytes`` plus room for the header and the encryption
#: overhead), as the floor's ``download_blob()`` does up to 32 MiB. The SDK joins
#: the response into one buffer, which the store keeps (``_calls.BlobSink``): a
#: 64 MiB get peaks at ~2x the payload. Ranged reads in parallel (4 x 4 MiB) were
#: measured on Azurite and were slower at 16 MiB, no faster at 4 and 64 MiB
#: (docs/performance.md), so they are not used.
BLOB_FIRST_GET_SLACK = 1024 * 1024
BLOB_CHUNK_GET = 4 * 1024 * 1024
#: Bytes per read from the socket: the SDK's default, 4 KiB, costs one Python
#: iteration per 4 KiB (4,096 for a 16 MiB blob).
BLOB_READ_BLOCK = 256 * 1024


def blob_kwargs(config: RecordConfig) -> dict[str, Any]:
    """:func:`sdk_kwargs` plus the blob client's download sizes."""
    return {"max_single_get_size": config.max_payload_bytes + BLOB_FIRST_GET_SLACK,
            "max_chunk_get_size": BLOB_CHUNK_GET,
            "connection_data_block_size": BLOB_READ_BLOCK, **sdk_kwargs(config)}


def sync_transport(config: RecordConfig) -> dict[str, Any]:
    """``transport=`` for one sync SDK client (one each: closing a client closes it),
    unless the caller brought their own through ``client_options``.

    ``requests`` reads the proxy variables (``HTTPS_PROXY``, ``NO_PROXY``...) and
    the CA-bundle ones from the environment again on every request: about 0.2 ms
    of client CPU per storage call here, some 10 % of a call, and in a contended
    save it sits between the re-read and the write. This transport resolves them
    once per endpoint and reuses the answer; what a request sends is unchanged.
    Environment changes after the client's first request are not seen.
    """
    if "transport" in config.client_options:
        return {}
    import requests
    from azure.core.pipeline.transport import RequestsTransport

    class EnvOnceSession(requests.Session):
        def __init__(self) -> None:
            super().__init__()
            self._env: dict[tuple[Any, ...], dict[str, Any]] = {}

        def merge_environment_settings(self, url: Any, proxies: Any, stream: Any,
                                       verify: Any, cert: Any) -> dict[str, Any]:
            if proxies or not self.trust_env:  # explicit proxies: requests' own rule
                return super().merge_environment_settings(url, proxies, stream, verify, cert)
            parts = urlsplit(str(url))
            key = (parts.scheme, parts.netloc, stream, verify, cert)
            settings = self._env.get(key)
            if settings is None:
                settings = super().merge_environment_settings(url, proxies, stream, verify,
                                                              cert)
                self._env[key] = settings
            return {**settings, "proxies": dict(settings["proxies"])}

    class EnvOnceRequestsTransport(RequestsTransport):  # type: ignore[misc]
        def open(self) -> None:
            # The base class makes a plain requests.Session here and sets it up
            # (no urllib3 retries, bigger read blocks); do the same set-up on
            # ours. Private method, hence the guard: without it, the default.
            if getattr(self, "session", None) is None and hasattr(self, "_init_session"):
                session = EnvOnceSession()
                self._init_session(session)
                self.session = session
            super().open()

    return {"transport": EnvOnceRequestsTransport(
        connection_timeout=config.connection_timeout, read_timeout=config.read_timeout,
        connection_data_block_size=BLOB_READ_BLOCK)}


def async_transport(config: RecordConfig) -> dict[str, Any]:
    """``transport=`` for one async SDK client (one each: closing a client closes it),
    unless the caller brought their own through ``client_options``."""
    if "transport" in config.client_options:
        return {}
    from azure.core.pipeline.transport import AioHttpTransport

    class NoResendAioHttpTransport(AioHttpTransport):  # type: ignore[misc]
        async def open(self) -> None:
            await super().open()
            # aiohttp re-sends an idempotent request once when a kept-alive
            # connection drops: a hidden second retry layer (4 attempts became
            # up to 8 requests). tenacity is the only layer. Private attribute,
            # hence the guard.
            if self.session is not None and hasattr(self.session, "_retry_connection"):
                self.session._retry_connection = False

    return {"transport": NoResendAioHttpTransport(
        connection_timeout=config.connection_timeout, read_timeout=config.read_timeout,
        connection_data_block_size=BLOB_READ_BLOCK)}


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
