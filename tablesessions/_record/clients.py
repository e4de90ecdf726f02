"""Building the Azure SDK clients: one place, so every client gets ``retry_total=0``."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

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
    """``transport=`` for one sync SDK client (one each: closing a client closes
    it), unless the caller brought their own through ``client_options``.

    The requests session runs with ``trust_env`` off: with it on, requests scans
    the whole environment for proxy settings and looks for a ~/.netrc on every
    request (~170 us of client CPU per call here, docs/performance.md). What the
    environment says is read once instead: the proxy for each endpoint (the
    clients' endpoints are fixed) and a CA bundle (``REQUESTS_CA_BUNDLE`` or
    ``CURL_CA_BUNDLE``); netrc credentials are dropped, as the SDK signs every
    request itself.
    """
    options = config.client_options
    if "transport" in options:
        return {}
    from azure.core.pipeline.transport import RequestsTransport

    class EnvOnceRequestsTransport(RequestsTransport):  # type: ignore[misc]
        def send(self, request: Any, *, proxies: Any = None, **kwargs: Any) -> Any:
            if proxies is None:
                proxies = _requests_env_proxies(request.url)
            return super().send(request, proxies=proxies, **kwargs)

        def open(self) -> None:
            # RequestsTransport.open with the session type swapped: the same
            # adapters (the SDK's, retries off) are mounted by _init_session.
            # (azure-core leaves the attribute untyped; mypy can't infer it.)
            if (not self.session  # type: ignore[has-type]
                    and self._session_owner and not self._has_been_opened):
                self.session = _storage_session_type()()
                self._init_session(self.session)
            super().open()

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return {"transport": EnvOnceRequestsTransport(
        connection_timeout=config.connection_timeout, read_timeout=config.read_timeout,
        connection_data_block_size=BLOB_READ_BLOCK, use_env_settings=False,
        connection_verify=options.get("connection_verify", bundle or True),
        connection_cert=options.get("connection_cert"))}


@functools.cache
def _storage_session_type() -> type[Any]:
    """A ``requests.Session`` whose ``request`` prepares and sends a storage call
    without the general-purpose session work the SDK's calls never use.

    ``Session.request`` merges the session's cookie jar, auth, params and hooks
    into every request, builds a cookie header through ``http.cookiejar``, and
    after the response extracts its cookies into the jar and runs the redirect
    machinery (even with redirects off). Azure Storage sets no cookies, the SDK
    signs every request itself and follows redirects in its own policy: that
    work was ~0.19 ms of client CPU per storage call here, about a third of what
    the adapter's socket I/O costs in Python (docs/performance.md). This one keeps what reaches the
    wire exactly as ``Session.request`` makes it, with requests' own
    ``PreparedRequest`` steps: the method, the URL (quoting), the headers merged
    over the session's defaults, the body (``Content-Length``, chunked for an
    iterator), credentials in the URL; then the adapter, and the body read
    unless streaming. It does not keep cookies a response sets (none are sent
    back), and ``Response.elapsed`` stays zero. A call that uses anything else
    (params, cookies, auth, hooks, json, following redirects, or a session given
    any of them) goes through ``Session.request`` unchanged.
    """
    import requests
    from requests.models import PreparedRequest
    from requests.sessions import merge_setting
    from requests.structures import CaseInsensitiveDict

    class StorageSession(requests.Session):
        def request(self, method: Any, url: Any, params: Any = None, data: Any = None,
                    headers: Any = None, cookies: Any = None, files: Any = None,
                    auth: Any = None, timeout: Any = None, allow_redirects: bool = True,
                    proxies: Any = None, hooks: Any = None, stream: Any = None,
                    verify: Any = None, cert: Any = None, json: Any = None) -> Any:
            if (params or cookies or auth or hooks or json is not None or allow_redirects
                    or self.params or self.cookies or self.auth or any(self.hooks.values())):
                return super().request(
                    method, url, params=params, data=data, headers=headers, cookies=cookies,
                    files=files, auth=auth, timeout=timeout, allow_redirects=allow_redirects,
                    proxies=proxies, hooks=hooks, stream=stream, verify=verify, cert=cert,
                    json=json)
            prepared = PreparedRequest()
            prepared.prepare_method(method)
            prepared.prepare_url(url, None)
            prepared.prepare_headers(merge_setting(headers, self.headers,
                                                   dict_class=CaseInsensitiveDict))
            prepared.prepare_body(data, files)
            prepared.prepare_auth(None, url)  # user:password@ in the URL, as requests does
            streaming = bool(merge_setting(stream, self.stream))
            response = self.get_adapter(url=str(prepared.url)).send(
                prepared, stream=streaming, timeout=timeout,
                verify=merge_setting(verify, self.verify), cert=merge_setting(cert, self.cert),
                proxies=merge_setting(proxies, self.proxies) or {})
            if not streaming:
                response.content  # noqa: B018 - read now, as Session.send does
            return response

    return StorageSession


def _requests_env_proxies(url: str) -> dict[str, str] | None:
    scheme, _, rest = url.partition("://")
    return _requests_endpoint_proxies(scheme, rest.split("/", 1)[0])


@functools.lru_cache(maxsize=64)
def _requests_endpoint_proxies(scheme: str, netloc: str) -> dict[str, str] | None:
    """The proxies the environment names for an endpoint, as requests' ``trust_env``
    would pick them (``NO_PROXY`` honoured), read once per scheme and host."""
    from requests.utils import get_environ_proxies

    found = get_environ_proxies(f"{scheme}://{netloc}/")
    return {k: v for k, v in found.items() if k != "no"} or None  # "no": NO_PROXY itself


def async_transport(config: RecordConfig) -> dict[str, Any]:
    """``transport=`` for one async SDK client (one each: closing a client closes it),
    unless the caller brought their own through ``client_options``."""
    if "transport" in config.client_options:
        return {}
    from azure.core.pipeline.transport import AioHttpTransport

    class NoResendAioHttpTransport(AioHttpTransport):  # type: ignore[misc]
        async def send(self, request: Any, **config: Any) -> Any:
            # The session runs with trust_env off: with it on, aiohttp makes two
            # thread-pool hops per request (a ~/.netrc lookup and the proxy
            # variables), and each hands the GIL to a worker thread while the
            # event loop waits for it back. The proxy variables are read here
            # instead, once per endpoint (the clients' endpoints are fixed); the
            # netrc lookup is dropped: the SDK signs every request itself, and
            # aiohttp refuses netrc credentials next to an Authorization header.
            if not config.get("proxies") and "proxy" not in config:
                proxy = _env_proxy(request.url)
                if proxy is not None:
                    config["proxy"], config["proxy_auth"] = proxy
            return await super().send(request, **config)

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
        connection_data_block_size=BLOB_READ_BLOCK, use_env_settings=False)}


@functools.lru_cache(maxsize=64)
def _endpoint_proxy(scheme: str, netloc: str) -> tuple[Any, Any] | None:
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(f"{scheme}://{netloc}/"))  # (proxy URL, its auth)
    except LookupError:  # no proxy for it, or NO_PROXY names it
        return None


def _env_proxy(url: str) -> tuple[Any, Any] | None:
    """The proxy the environment names for ``url`` (as aiohttp's ``trust_env``
    would pick it), read once per scheme and host."""
    scheme, _, rest = url.partition("://")
    return _endpoint_proxy(scheme, rest.split("/", 1)[0])


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
