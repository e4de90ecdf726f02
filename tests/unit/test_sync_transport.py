"""The store's sync transport (``_record.clients.sync_transport``): a caller's own
transport wins, and its lean requests session puts on the wire exactly what
``requests.Session`` would, checked against a real loopback HTTP server.

How the transport reads the environment is tested in test_clients.py.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

import pytest
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest

from tablesessions import StoreConfig
from tablesessions._record.clients import _storage_session_type, sync_transport


def test_a_callers_own_transport_is_left_alone() -> None:
    assert sync_transport(StoreConfig(client_options={"transport": object()})) == {}


class Seen(NamedTuple):
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the storage services speak

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    return out
                out += chunk
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def _answer(self) -> None:
        seen = Seen(self.command, self.path, list(self.headers.items()), self._body())
        self.server.seen.append(seen)  # type: ignore[attr-defined]
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/final")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        payload = b"answer:" + seen.body
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Set-Cookie", "affinity=abc; Path=/")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _url(server: ThreadingHTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _chunks() -> Iterator[bytes]:
    yield b"first,"
    yield b"second"


BODIES: list[tuple[str, str, Any]] = [
    ("GET", "/devstoreaccount1/t(PartitionKey='p',RowKey='r')", None),
    ("PUT", "/devstoreaccount1/t(PartitionKey='p',RowKey='r')", '{"D0": "x", "n": 1}'),
    ("PUT", "/devstoreaccount1/c/blob?comp=block&blockid=QUE%3D", b"\x00\x01binary"),
    ("PUT", "/devstoreaccount1/c/stream", "file"),
    ("PUT", "/devstoreaccount1/c/chunked", "iterator"),
    ("DELETE", "/devstoreaccount1/t(PartitionKey='p',RowKey='r')", None),
]


def _request(server: ThreadingHTTPServer, method: str, path: str, body: Any) -> HttpRequest:
    content = (io.BytesIO(b"from a file") if body == "file" else _chunks() if body == "iterator"
               else body)
    return HttpRequest(method, _url(server, path), content=content,
                       headers={"x-ms-version": "2019-02-02", "If-Match": 'W/"etag"'})


def _send_all(server: ThreadingHTTPServer, transport: RequestsTransport) -> list[Seen]:
    server.seen.clear()  # type: ignore[attr-defined]
    answers = []
    with transport:
        for method, path, body in BODIES:
            response = transport.send(_request(server, method, path, body))
            answers.append((response.status_code, response.content))
    assert [code for code, _ in answers] == [200] * len(BODIES)
    seen: list[Seen] = list(server.seen)  # type: ignore[attr-defined]
    return seen


def test_the_lean_session_sends_what_requests_session_sends(
        server: ThreadingHTTPServer) -> None:
    transport = sync_transport(StoreConfig())["transport"]
    lean = _send_all(server, transport)
    # The cookie the first answer set would come back on the SDK default's later
    # requests: that one difference is documented; compare the rest header by header.
    standard = _send_all(server, RequestsTransport(use_env_settings=False))
    assert [s.body for s in lean] == [b"", b'{"D0": "x", "n": 1}', b"\x00\x01binary",
                                      b"from a file", b"first,second", b""]
    for ours, theirs in zip(lean, standard, strict=True):
        assert (ours.method, ours.path, ours.body) == (theirs.method, theirs.path, theirs.body)
        assert ours.headers == [h for h in theirs.headers if h[0] != "Cookie"]
    assert not any(name == "Cookie" for s in lean for name, _ in s.headers)
    assert any(name == "Cookie" for s in standard[1:] for name, _ in s.headers)


def test_a_streamed_answer_is_left_unread_for_the_sdk(server: ThreadingHTTPServer) -> None:
    transport = sync_transport(StoreConfig())["transport"]
    with transport:
        response = transport.send(_request(server, "PUT", "/c/b", b"payload"), stream=True)
        assert response.internal_response._content_consumed is False
        assert b"".join(response.iter_bytes()) == b"answer:payload"


def test_anything_else_goes_through_requests_own_path(server: ThreadingHTTPServer) -> None:
    session = _storage_session_type()()
    session.trust_env = False
    with session:
        answer = session.request("GET", _url(server, "/q"), params={"comp": "list"},
                                 allow_redirects=False)
        assert answer.status_code == 200
        followed = session.request("GET", _url(server, "/redirect"))  # redirects on
        assert followed.status_code == 200 and followed.history[0].status_code == 302
    paths = [s.path for s in server.seen]  # type: ignore[attr-defined]
    assert paths == ["/q?comp=list", "/redirect", "/final"]
    # requests' own path keeps cookies; the lean one never sends them.
    assert dict(server.seen[2].headers).get("Cookie") == "affinity=abc"  # type: ignore[attr-defined]


def test_url_credentials_still_become_basic_auth(server: ThreadingHTTPServer) -> None:
    session = _storage_session_type()()
    session.trust_env = False
    port = server.server_address[1]
    with session:
        session.request("GET", f"http://user:pw@127.0.0.1:{port}/x", allow_redirects=False)
    assert dict(server.seen[0].headers)["Authorization"] == "Basic dXNlcjpwdw=="  # type: ignore[attr-defined]


def test_a_closed_transport_stays_closed() -> None:
    transport = sync_transport(StoreConfig())["transport"]
    transport.open()
    assert type(transport.session) is _storage_session_type()
    transport.close()
    with pytest.raises(ValueError, match="already been closed"):
        transport.open()
