"""One session, three frameworks: the cookie format and the store are shared."""

from __future__ import annotations

from typing import Any

import httpx
from django.test import Client, override_settings
from flask import Flask, session
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import tablesessions
import tablesessions.aio
from tablesessions.flask import TableSessions, regenerate
from tablesessions.starlette import TableSessionMiddleware, load_session
from tablesessions.testing import AzuriteServer, RequestCounter

from . import test_django  # noqa: F401 - configures Django and its URLconf
from .helpers import SECRET


def flask_app(store: tablesessions.SessionStore) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    TableSessions(app, store=store)

    @app.post("/login/<user>")
    def login(user: str) -> dict[str, Any]:
        regenerate()
        session["user"] = user
        session["count"] = 1
        session["cart"] = {"items": ["tea"], "seen": b"\x00\x01"}
        return {"user": user}

    @app.post("/count")
    def count() -> dict[str, Any]:
        session["count"] += 1
        return {"user": session["user"], "count": session["count"]}

    return app


async def whoami(request: Request) -> JSONResponse:
    data = await load_session(request)
    return JSONResponse({"user": data.get("user"), "count": data.get("count"),
                         "cart": data.get("cart", {}).get("items")})


async def increment(request: Request) -> JSONResponse:
    data = await load_session(request)
    data["count"] += 1
    data["cart"]["items"].append("scones")  # an in-place change is saved too
    return JSONResponse({"count": data["count"]})


def starlette_app(store: tablesessions.aio.SessionStore) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami), Route("/count", increment, methods=["POST"])],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key=SECRET)])


async def test_flask_to_starlette_and_back(
        session_store: tablesessions.SessionStore,
        async_session_store: tablesessions.aio.SessionStore,
        request_counter: RequestCounter) -> None:
    flask_client = flask_app(session_store).test_client()
    assert flask_client.post("/login/alice").json == {"user": "alice"}
    cookie = flask_client.get_cookie("session")
    assert cookie is not None

    transport = httpx.ASGITransport(app=starlette_app(async_session_store))
    async with httpx.AsyncClient(transport=transport, base_url="https://b.test") as client:
        client.cookies.set("session", cookie.value, domain="b.test")
        request_counter.reset()
        response = await client.get("/whoami")
        assert response.json() == {"user": "alice", "count": 1, "cart": ["tea"]}
        assert request_counter.count == 1
        assert "set-cookie" not in response.headers  # same id, nothing to refresh
        assert (await client.post("/count")).json() == {"count": 2}

    assert flask_client.post("/count").json == {"user": "alice", "count": 3}
    with flask_client.session_transaction() as flask_session:
        assert flask_session["cart"] == {"items": ["tea", "scones"], "seen": b"\x00\x01"}


def test_django_reads_a_flask_session_with_the_same_secret_and_cookie_name(
        azurite: AzuriteServer, storage_names: tuple[str, str],
        session_store: tablesessions.SessionStore) -> None:
    flask_client = flask_app(session_store).test_client()
    flask_client.post("/login/carol")
    cookie = flask_client.get_cookie("session")
    assert cookie is not None
    table, container = storage_names
    shared = {"CONNECTION_STRING": azurite.connection_string, "TABLE_NAME": table,
              "CONTAINER_NAME": container, "APP_NAME": session_store.config.app_name}
    with override_settings(TABLESESSIONS=shared, SESSION_COOKIE_NAME="session",
                           SECRET_KEY=SECRET):
        client = Client()
        client.cookies["session"] = cookie.value
        assert client.get("/peek").json() == {"count": 1, "user": "carol"}
        assert client.get("/count").json() == {"count": 2}
    assert flask_client.post("/count").json == {"user": "carol", "count": 3}
