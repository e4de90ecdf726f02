"""Demo instance B: Starlette with ``tablesessions.starlette`` on the async store.

Served by uvicorn: ``uvicorn --factory examples.demo.starlette_app:create_app``.
The store comes from the ``TABLESESSIONS_*`` environment variables that
:mod:`examples.demo.run` sets; ``DEMO_SECRET_KEY`` is shared with instance A.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

from examples.demo.meter import CallMeter
from examples.demo.page import login_name, render, state, upload_bytes, wants_json
from tablesessions.aio import SessionStore
from tablesessions.starlette import TableSession, TableSessionMiddleware, load_session

FRAMEWORK = "Starlette"


def create_app() -> Starlette:
    """Build instance B from the ``DEMO_*`` and ``TABLESESSIONS_*`` environment variables."""
    instance = os.environ.get("DEMO_INSTANCE", "B")
    other_url = os.environ.get("DEMO_OTHER_URL")
    meter = CallMeter()  # counts this instance's storage calls, per request
    # No I/O until the first request; its calls counted.
    store = SessionStore.from_env(client_options=meter.client_options())

    def reply(request: Request, session: TableSession) -> StarletteResponse:
        if wants_json(request.headers.get("accept")):
            return JSONResponse(state(instance, FRAMEWORK, session))
        return RedirectResponse("/", status_code=303)

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")  # never touches the session: no storage call

    async def index(request: Request) -> HTMLResponse:
        session = await load_session(request)
        return HTMLResponse(render(state(instance, FRAMEWORK, session), other_url,
                                   calls=meter.so_far(), previous=meter.previous(),
                                   pid=os.getpid()))

    async def show(request: Request) -> JSONResponse:
        return JSONResponse(state(instance, FRAMEWORK, await load_session(request)))

    async def login(request: Request) -> StarletteResponse:
        session = await load_session(request)
        await session.regenerate()  # a new session id at login: defeats session fixation
        session["user"] = login_name(await request.body())
        return reply(request, session)

    async def count(request: Request) -> StarletteResponse:
        session = await load_session(request)
        session["count"] = session.get("count", 0) + 1
        return reply(request, session)

    async def upload(request: Request) -> StarletteResponse:
        session = await load_session(request)
        session["upload"] = upload_bytes(request.headers.get("content-type"),
                                         await request.body())
        return reply(request, session)

    async def logout(request: Request) -> StarletteResponse:
        session = await load_session(request)
        session.clear()  # deletes the stored session and clears the cookie
        return reply(request, session)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    return Starlette(
        routes=[Route("/health", health), Route("/", index), Route("/state", show),
                Route("/login", login, methods=["POST"]), Route("/count", count, methods=["POST"]),
                Route("/upload", upload, methods=["POST"]),
                Route("/logout", logout, methods=["POST"])],
        middleware=[Middleware(meter.asgi),  # outermost: sees the response after the save
                    Middleware(TableSessionMiddleware, store=store,
                               secret_key=os.environ["DEMO_SECRET_KEY"],
                               # The demo serves plain http on loopback; production
                               # keeps the default (Secure on every https request).
                               https_only=False,
                               # A browser-session cookie; the store's idle timeout
                               # (6 s here) expires it on the server, as on Flask's side.
                               max_age=None)],
        lifespan=lifespan,
    )
