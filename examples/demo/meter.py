"""Count the storage calls each request makes, for the page and the transcript.

Every Azure SDK client of an instance's store reports each HTTP attempt (retries
included) through ``raw_request_hook``; a WSGI or ASGI wrapper opens a count per
request and, when the response starts (after the session was saved), puts it in
an ``X-Storage-Calls`` header and remembers it as the instance's last request.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

HEADER = "X-Storage-Calls"


@dataclass
class Calls:
    reads: int = 0
    writes: int = 0

    @property
    def total(self) -> int:
        return self.reads + self.writes

    def header(self) -> str:
        return f"reads={self.reads} writes={self.writes}"

    def text(self) -> str:
        if not self.total:
            return "no storage call"
        parts = [f"{n} {word}{'s' if n != 1 else ''}"
                 for n, word in ((self.reads, "read"), (self.writes, "write")) if n]
        return " + ".join(parts)


_current: contextvars.ContextVar[Calls | None] = contextvars.ContextVar("demo_calls",
                                                                         default=None)


class CallMeter:
    """One per instance: the store's client options and the per-request counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: tuple[str, Calls] | None = None

    def client_options(self) -> dict[str, Any]:
        return {"raw_request_hook": self._on_request}

    def _on_request(self, request: Any) -> None:
        calls = _current.get()
        if calls is None:
            return  # outside a request (start-up)
        if str(request.http_request.method).upper() in ("GET", "HEAD"):
            calls.reads += 1
        else:
            calls.writes += 1

    @staticmethod
    def so_far() -> Calls:
        """This request's calls until now (a save after the response is not in it)."""
        return _current.get() or Calls()

    def previous(self) -> tuple[str, Calls] | None:
        with self._lock:
            return self.last

    def _finish(self, label: str, calls: Calls) -> None:
        if label.endswith((" /health", " /favicon.ico")):
            return  # the scripted client's readiness probe, a browser's icon request
        with self._lock:
            self.last = (label, calls)

    # -- the wrappers ------------------------------------------------------------------
    def wsgi(self, app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            calls = Calls()
            token = _current.set(calls)
            label = f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"

            def start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
                # Flask saves the session before it starts the response.
                self._finish(label, Calls(calls.reads, calls.writes))
                return start_response(status, [*headers, (HEADER, calls.header())], *exc)

            try:
                return app(environ, start)
            finally:
                _current.reset(token)

        return wrapped

    def asgi(self, app: Any) -> Any:
        async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            calls = Calls()
            token = _current.set(calls)
            label = f"{scope.get('method')} {scope.get('path')}"

            async def counted_send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    # TableSessionMiddleware (inside this one) has saved by now.
                    self._finish(label, Calls(calls.reads, calls.writes))
                    headers = [*message.get("headers", []),
                               (HEADER.lower().encode(), calls.header().encode())]
                    message = {**message, "headers": headers}
                await send(message)

            try:
                await app(scope, receive, counted_send)
            finally:
                _current.reset(token)

        return wrapped
