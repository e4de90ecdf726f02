"""docs/testing.md's Starlette TestClient rule, as written there: inside ``with client:``
every request shares one event loop, so one async store serves them all."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import tablesessions.aio
from tablesessions.starlette import TableSessionMiddleware, load_session
from tablesessions.testing import AzuriteServer

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its test client; httpx works and is what is installed.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


def test_requests_inside_with_client_share_one_store(
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    table, container = storage_names
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=table, container_name=container) as setup:
        setup.create_storage()
    store = tablesessions.aio.SessionStore.from_connection_string(
        azurite.connection_string, table_name=table, container_name=container)

    async def count(request: Request) -> PlainTextResponse:
        session = await load_session(request)
        session["n"] = session.get("n", 0) + 1
        return PlainTextResponse(str(session["n"]))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await store.close()

    app = Starlette(routes=[Route("/count", count, methods=["POST"])], lifespan=lifespan)
    app.add_middleware(TableSessionMiddleware, store=store, secret_key="test-secret")
    with TestClient(app, base_url="https://testserver") as client:  # https: Secure cookies
        assert client.post("/count").text == "1"
        assert client.post("/count").text == "2"  # the same loop, the same store
        assert client.post("/count").text == "3"
