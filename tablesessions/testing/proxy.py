"""A fault-injecting loopback HTTP/1.1 proxy to put between an SDK client and Azurite.

Azurite never throttles, times out or drops connections, so the retry and
idempotency paths of the store can only be exercised by something in the middle.
:class:`FaultProxy` forwards every request to one upstream port and, per request,
may instead answer an Azure-style error, stall, reset the TCP connection, or
forward the request and then reset the connection instead of relaying the answer
(the "ambiguous write": the server did it, the client cannot know).

Faults are chosen by a seeded :class:`random.Random`, so a failing run can be
replayed with the same seed (given the same request order).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import http.client
import json
import random
import socket
import struct
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tablesessions.testing.azurite import AzuriteServer

__all__ = [
    "DEFAULT_KINDS",
    "HUNG_KINDS",
    "STATUS_FAULTS",
    "WRITE_METHODS",
    "Fault",
    "FaultPlan",
    "FaultProxy",
    "FaultProxyPair",
    "ProxyStats",
]

HOST = "127.0.0.1"
WRITE_METHODS: frozenset[str] = frozenset({"PUT", "POST", "PATCH", "MERGE", "DELETE"})
# Headers that describe one hop, not the message; never forwarded as-is.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
    }
)


class Fault(str, enum.Enum):
    """What the proxy does to a request instead of (or besides) forwarding it."""

    BUSY_503 = "503"  # ServerBusy, as the real service throttles
    ERROR_500 = "500"  # OperationTimedOut / InternalError
    THROTTLE_429 = "429"  # TooManyRequests
    TIMEOUT_408 = "408"  # RequestTimeout
    DELAY = "delay"  # sleep FaultPlan.delay seconds, then forward
    RESET = "reset"  # RST the client connection; nothing reaches upstream
    DROP_RESPONSE = "drop_response"  # forward, then RST instead of answering
    HOLD = "hold"  # forward, then hold the answer FaultPlan.hold seconds (the write landed)
    HALF_OPEN = "half_open"  # read the request, then silence: nothing forwarded, no FIN/RST


STATUS_FAULTS: Mapping[Fault, tuple[int, str, str]] = {
    Fault.BUSY_503: (503, "ServerBusy", "The server is busy."),
    Fault.ERROR_500: (500, "OperationTimedOut", "Operation could not be completed in time."),
    Fault.THROTTLE_429: (429, "TooManyRequests", "Too many requests."),
    Fault.TIMEOUT_408: (408, "RequestTimeout", "The request timed out."),
}
#: Hung connections (hold, half-open) cost a client a whole read timeout each, so
#: they are opt-in: name them in ``FaultPlan.kinds``.
HUNG_KINDS: frozenset[Fault] = frozenset({Fault.HOLD, Fault.HALF_OPEN})
DEFAULT_KINDS: Mapping[Fault, float] = {kind: 1.0 for kind in Fault if kind not in HUNG_KINDS}


def _all_kinds() -> dict[Fault | str, float]:
    return {kind: weight for kind, weight in DEFAULT_KINDS.items()}


@dataclass(frozen=True)
class FaultPlan:
    """How a :class:`FaultProxy` picks faults.

    Each request that passes the filter (``methods``, ``path_contains``) gets a
    fault with probability ``rate``; its kind is drawn from ``kinds`` by weight.
    ``seed`` fixes the random sequence (``None`` for a random seed).
    A ``delay`` fault waits ``delay`` seconds, or a uniform draw from
    ``delay``..``delay_max`` when that is set; ``hold`` and ``half_open`` faults
    keep the connection silent for ``hold`` seconds.
    """

    rate: float = 0.0
    kinds: Mapping[Fault | str, float] = field(default_factory=_all_kinds)
    seed: int | None = 0
    methods: Collection[str] | None = None
    path_contains: str | None = None
    delay: float = 0.5
    delay_max: float | None = None
    hold: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, got {self.rate}")
        if self.delay < 0 or self.hold < 0:
            raise ValueError("delay and hold must be >= 0")
        if self.delay_max is not None and self.delay_max < self.delay:
            raise ValueError("delay_max must be >= delay")
        kinds = {Fault(kind): float(weight) for kind, weight in self.kinds.items()}
        if any(weight < 0 for weight in kinds.values()) or (
            self.rate > 0 and not any(kinds.values())
        ):
            raise ValueError("kinds needs non-negative weights, at least one positive")
        object.__setattr__(self, "kinds", kinds)
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))

    def matches(self, method: str, path: str) -> bool:
        return (self.methods is None or method in self.methods) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass(frozen=True)
class ProxyStats:
    """A snapshot of a proxy's counters."""

    seen: int = 0
    forwarded: int = 0
    faults: Mapping[Fault, int] = field(default_factory=dict)
    upstream_errors: int = 0

    @property
    def injected(self) -> int:
        """Total faults injected (all kinds, delays included)."""
        return sum(self.faults.values())

    def __add__(self, other: ProxyStats) -> ProxyStats:
        faults = dict(self.faults)
        for kind, n in other.faults.items():
            faults[kind] = faults.get(kind, 0) + n
        return ProxyStats(
            self.seen + other.seen,
            self.forwarded + other.forwarded,
            faults,
            self.upstream_errors + other.upstream_errors,
        )


@dataclass
class _Forced:
    kind: Fault
    remaining: int
    methods: frozenset[str] | None
    path_contains: str | None

    def matches(self, method: str, path: str) -> bool:
        return (self.methods is None or method in self.methods) and (
            self.path_contains is None or self.path_contains in path
        )


class FaultProxy:
    """A threaded HTTP/1.1 reverse proxy to ``upstream_host:upstream_port``.

    Decision order per request: an :meth:`outage`, then faults queued by
    :meth:`fail_next`, then the random :class:`FaultPlan`.
    """

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = HOST,
        plan: FaultPlan | None = None,
        upstream_timeout: float = 60.0,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.upstream_timeout = upstream_timeout
        self._lock = threading.Lock()
        self._plan = plan or FaultPlan()
        self._rng = random.Random(self._plan.seed)  # noqa: S311 - test chaos, not crypto
        self._forced: list[_Forced] = []
        self._outage: Fault | None = None
        self._stats = ProxyStats()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- configuration -----------------------------------------------------

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    def configure(self, plan: FaultPlan | None = None, **changes: Any) -> FaultPlan:
        """Replace the plan (or change fields of the current one); reseeds the RNG.

        ``proxy.configure(rate=0.3, kinds={"503": 1, "reset": 1}, seed=7)``
        """
        new_plan = dataclasses.replace(plan or self._plan, **changes)
        with self._lock:
            self._plan = new_plan
            self._rng = random.Random(new_plan.seed)  # noqa: S311
        return new_plan

    def fail_next(
        self,
        kind: Fault | str,
        n: int = 1,
        *,
        methods: Collection[str] | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Force ``kind`` onto the next ``n`` requests matching the filter."""
        if n < 1:
            raise ValueError("n must be >= 1")
        forced = _Forced(
            Fault(kind),
            n,
            frozenset(m.upper() for m in methods) if methods is not None else None,
            path_contains,
        )
        with self._lock:
            self._forced.append(forced)

    def outage(self, enabled: bool = True, *, kind: Fault | str = Fault.BUSY_503) -> None:
        """While enabled, every request gets ``kind`` (503 or a reset, typically)."""
        with self._lock:
            self._outage = Fault(kind) if enabled else None

    def clear(self) -> None:
        """Drop queued and random faults and end any outage (counters are kept)."""
        with self._lock:
            self._forced.clear()
            self._outage = None
        self.configure(rate=0.0)

    @property
    def stats(self) -> ProxyStats:
        with self._lock:
            return dataclasses.replace(self._stats, faults=dict(self._stats.faults))

    def reset_stats(self) -> None:
        with self._lock:
            self._stats = ProxyStats()

    def _decide(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self._stats = dataclasses.replace(self._stats, seen=self._stats.seen + 1)
            kind = self._outage
            if kind is None:
                kind = self._take_forced(method, path)
            if kind is None:
                kind = self._random_fault(method, path)
            if kind is not None:
                faults = dict(self._stats.faults)
                faults[kind] = faults.get(kind, 0) + 1
                self._stats = dataclasses.replace(self._stats, faults=faults)
            return kind

    def _random_fault(self, method: str, path: str) -> Fault | None:
        plan = self._plan
        if plan.rate <= 0 or not plan.matches(method, path):
            return None  # no RNG draw, so filtered-out requests don't shift the sequence
        if self._rng.random() >= plan.rate:
            return None
        kinds = list(plan.kinds)
        return Fault(self._rng.choices(kinds, [plan.kinds[k] for k in kinds])[0])

    def _delay(self) -> float:
        with self._lock:
            plan = self._plan
            if plan.delay_max is None:
                return plan.delay
            return self._rng.uniform(plan.delay, plan.delay_max)

    def _take_forced(self, method: str, path: str) -> Fault | None:
        for forced in self._forced:
            if forced.matches(method, path):
                forced.remaining -= 1
                if forced.remaining == 0:
                    self._forced.remove(forced)
                return forced.kind
        return None

    def _count(self, *, forwarded: int = 0, upstream_errors: int = 0) -> None:
        with self._lock:
            self._stats = dataclasses.replace(
                self._stats,
                forwarded=self._stats.forwarded + forwarded,
                upstream_errors=self._stats.upstream_errors + upstream_errors,
            )

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((HOST, 0), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FaultProxy:{self.port}->{self.upstream[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a DELAY fault
        server.shutdown()
        server.close_all_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FaultProxy is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def url_for(self, path_prefix: str = "") -> str:
        """The proxy's URL with ``path_prefix``, e.g. ``url_for("/devstoreaccount1")``."""
        if path_prefix and not path_prefix.startswith("/"):
            path_prefix = "/" + path_prefix
        return self.url + path_prefix

    def __repr__(self) -> str:
        where = f":{self.port}" if self._server is not None else " (stopped)"
        return f"<FaultProxy{where} -> {self.upstream[0]}:{self.upstream[1]} {self.stats}>"


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client connection must not block interpreter exit
    proxy: FaultProxy

    def __init__(
        self, address: tuple[str, int], handler: Callable[..., BaseHTTPRequestHandler]
    ) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that vanish mid-request are normal under fault injection.
        pass


class _Reset(Exception):
    """Raised inside the handler to RST the client connection."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real service
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr would drown test output

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: with Nagle's algorithm and the
        # client's delayed ACK that stalled every response by ~44 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            self._close_upstream()

    def _dispatch(self) -> None:
        proxy = self.server.proxy
        method = self.command
        try:
            body = self._read_body()
            kind = proxy._decide(method, self.path)
            if kind in STATUS_FAULTS:
                assert kind is not None
                self._send_error_status(kind)
                return
            if kind is Fault.RESET:
                raise _Reset
            if kind is Fault.DELAY and proxy._stopping.wait(proxy._delay()):
                raise _Reset  # the proxy is stopping
            if kind is Fault.HALF_OPEN:
                # The peer is gone without a FIN: the client hears nothing until
                # its read timeout. Closed quietly afterwards (or at stop).
                proxy._stopping.wait(proxy.plan.hold)
                self.close_connection = True
                return
            status, reason, headers, payload = self._forward(method, body)
            if kind is Fault.DROP_RESPONSE:
                raise _Reset  # upstream has done the work; the client never hears
            if kind is Fault.HOLD and proxy._stopping.wait(proxy.plan.hold):
                raise _Reset  # done upstream, answer held until the proxy stops
            self._relay(method, status, reason, headers, payload)
        except _Reset:
            self._reset_connection()

    # BaseHTTPRequestHandler dispatches on do_<METHOD>; the SDKs use all of these.
    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _dispatch
    do_PATCH = do_MERGE = do_OPTIONS = _dispatch

    # -- request side ------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline(65537).split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            parts.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailers are dropped
        return b"".join(parts)

    def _forward(self, method: str, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        for attempt in (1, 2):
            reused = self._upstream is not None
            upstream = self._connect()
            try:
                upstream.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP:
                        upstream.putheader(name, value)
                if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
                    upstream.putheader("Content-Length", str(len(body)))
                upstream.endheaders(body or None)
                response = upstream.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                self._close_upstream()
                # An idle keep-alive connection the upstream closed is retried once on
                # a fresh one (nothing was processed); anything else is a network failure.
                if reused and attempt == 1:
                    continue
                proxy._count(upstream_errors=1)
                raise _Reset from None
            proxy._count(forwarded=1)
            if response.will_close:
                self._close_upstream()
            return response.status, response.reason, response.getheaders(), payload
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            host, port = self.server.proxy.upstream
            self._upstream = http.client.HTTPConnection(
                host, port, timeout=self.server.proxy.upstream_timeout
            )
        return self._upstream

    def _close_upstream(self) -> None:
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    # -- response side -----------------------------------------------------

    def _relay(
        self, method: str, status: int, reason: str, headers: list[tuple[str, str]], payload: bytes
    ) -> None:
        self.send_response_only(status, reason)
        bodiless = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        for name, value in headers:
            lower = name.lower()
            # HEAD keeps the upstream Content-Length: it describes the blob's size.
            if lower in _HOP_BY_HOP and not (bodiless and lower == "content-length"):
                continue
            self.send_header(name, value)
        if not bodiless:
            self.send_header("Content-Length", str(len(payload)))
        self._end_headers()
        if not bodiless:
            self.wfile.write(payload)

    def _send_error_status(self, kind: Fault) -> None:
        status, code, message = STATUS_FAULTS[kind]
        request_id = str(uuid.uuid4())
        text = f"{message}\nRequestId:{request_id}\nTime:{formatdate(usegmt=True)}"
        if "json" in self.headers.get("Accept", ""):  # Table service speaks JSON
            content_type = "application/json;odata=minimalmetadata;charset=utf-8"
            body = json.dumps(
                {"odata.error": {"code": code, "message": {"lang": "en-US", "value": text}}}
            ).encode()
        else:  # Blob service speaks XML
            content_type = "application/xml"
            body = (
                '<?xml version="1.0" encoding="utf-8"?>'
                f"<Error><Code>{code}</Code><Message>{text}</Message></Error>"
            ).encode()
        self.send_response_only(status)
        for name, value in (
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("x-ms-error-code", code),
            ("x-ms-request-id", request_id),
            ("Date", formatdate(usegmt=True)),
        ):
            self.send_header(name, value)
        self._end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _end_headers(self) -> None:
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _reset_connection(self) -> None:
        """Abort with RST (SO_LINGER 0) rather than a polite FIN."""
        self.close_connection = True
        sock = self.connection
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # rfile holds a reference to the socket; the fd closes only when both go.
        self.rfile.close()
        sock.close()


class FaultProxyPair:
    """One :class:`FaultProxy` in front of each of Azurite's table and blob ports.

    ``connection_string`` routes both services through the proxies; ``configure``,
    ``fail_next``, ``outage`` and ``clear`` apply to both.  Use ``.table`` or
    ``.blob`` to aim at one service.
    """

    def __init__(self, azurite: AzuriteServer, plan: FaultPlan | None = None) -> None:
        self.azurite = azurite
        self.table = FaultProxy(azurite.table_port, plan=plan)
        self.blob = FaultProxy(azurite.blob_port, plan=plan)

    @property
    def proxies(self) -> tuple[FaultProxy, FaultProxy]:
        return (self.table, self.blob)

    def start(self) -> FaultProxyPair:
        for proxy in self.proxies:
            proxy.start()
        return self

    def stop(self) -> None:
        for proxy in self.proxies:
            proxy.stop()

    def __enter__(self) -> FaultProxyPair:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def connection_string(self) -> str:
        account = f"/{self.azurite.account_name}"
        return self.azurite.connection_string_for(
            table_endpoint=self.table.url_for(account), blob_endpoint=self.blob.url_for(account)
        )

    def configure(self, plan: FaultPlan | None = None, **changes: Any) -> None:
        """Same as :meth:`FaultProxy.configure`, on both proxies."""
        for proxy in self.proxies:
            proxy.configure(plan, **changes)

    def fail_next(
        self,
        kind: Fault | str,
        n: int = 1,
        *,
        methods: Collection[str] | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Force ``kind`` on the next ``n`` matching requests *of each* proxy."""
        for proxy in self.proxies:
            proxy.fail_next(kind, n, methods=methods, path_contains=path_contains)

    def outage(self, enabled: bool = True, *, kind: Fault | str = Fault.BUSY_503) -> None:
        for proxy in self.proxies:
            proxy.outage(enabled, kind=kind)

    def clear(self) -> None:
        for proxy in self.proxies:
            proxy.clear()

    def reset_stats(self) -> None:
        for proxy in self.proxies:
            proxy.reset_stats()

    @property
    def stats(self) -> ProxyStats:
        """Both proxies' counters added together."""
        return self.table.stats + self.blob.stats
