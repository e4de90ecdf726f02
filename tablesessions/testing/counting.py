"""Count the HTTP requests Azure SDK clients actually send.

Used to pin down request budgets ("a session read costs one GET") in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

__all__ = ["RecordedRequest", "RequestCounter", "Service"]

Service = Literal["table", "blob"]


class RecordedRequest(NamedTuple):
    method: str
    path: str  # without the query string
    service: Service
    url: str  # full URL, query included


class RequestCounter(SansIOHTTPPolicy[Any, Any]):
    """Records every HTTP attempt (retries included) that an SDK client sends.

    How it is attached, verified against azure-data-tables 12.7 and
    azure-storage-blob 12.31, sync and ``.aio`` clients alike::

        TableServiceClient.from_connection_string(cs, raw_request_hook=counter.on_request)
        BlobServiceClient.from_connection_string(cs, raw_request_hook=counter.on_request)

    i.e. ``**counter.client_options()``.  ``raw_request_hook`` is honoured by both
    SDKs' hook policies (``CustomHookPolicy`` in Tables, ``StorageRequestHook`` in
    Blob), which sit *after* the retry policy, so each attempt is counted once, and
    it survives ``get_table_client``/``get_container_client``/``get_blob_client``.
    Why not a pipeline kwarg: ``per_call_policies``/``per_retry_policies`` are
    ignored by the blob clients and lost by ``TableServiceClient.get_table_client``
    (and ``create_table``), while the blob-only ``_additional_pipeline_policies``
    is private.  A ``raw_request_hook=`` passed to a single operation replaces the
    client-level hook for that call, so such calls go uncounted.

    It is still a ``SansIOHTTPPolicy``, so ``policies=[..., counter]`` style
    wiring into a custom pipeline works too.

    ``service`` is guessed per request: an explicit ``ports`` mapping first, then
    ``.table.``/``.blob.`` in the host name, then the OData headers only the
    Table SDK sends; anything else counts as blob.
    """

    def __init__(self, ports: Mapping[int, Service] | None = None) -> None:
        super().__init__()
        self._ports = dict(ports or {})
        self._lock = threading.Lock()
        self._records: list[RecordedRequest] = []

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments that attach this counter to any Table or Blob client."""
        return {"raw_request_hook": self.on_request}

    def on_request(self, request: PipelineRequest[Any]) -> None:
        http_request = request.http_request
        url = str(http_request.url)
        parts = urlsplit(url)
        record = RecordedRequest(
            method=str(http_request.method).upper(),
            path=parts.path,
            service=self._guess_service(parts.hostname or "", parts.port, http_request.headers),
            url=url,
        )
        with self._lock:
            self._records.append(record)

    def _guess_service(self, host: str, port: int | None, headers: Mapping[str, str]) -> Service:
        if port is not None and port in self._ports:
            return self._ports[port]
        if ".table." in host:
            return "table"
        if ".blob." in host:
            return "blob"
        lowered = {name.lower(): value for name, value in headers.items()}
        if "dataserviceversion" in lowered or "odata" in lowered.get("accept", ""):
            return "table"
        return "blob"

    @property
    def records(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._records)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, path)`` of each request, in order."""
        return [(r.method, r.path) for r in self.records]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._records)

    def count_where(self, method: str | None = None, service: Service | None = None) -> int:
        return sum(
            1
            for r in self.records
            if (method is None or r.method == method.upper())
            and (service is None or r.service == service)
        )

    def reset(self) -> None:
        with self._lock:
            self._records.clear()

    def __repr__(self) -> str:
        return f"<RequestCounter count={self.count}>"
