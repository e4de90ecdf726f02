"""tablesessions.starlette against a real Azurite, through httpx's ASGI transport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import tablesessions.aio
from tablesessions._cookies import CookieSigner
from tablesessions.starlette import TableSession, TableSessionMiddleware, load_session
from tablesessions.testing import RequestCounter

from .helpers import COOKIE_RE, HOSTILE_IDS, SECRET, hostile_cookies, parse_set_cookie


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("never touches the session")


async def peek(request: Request) -> JSONResponse:
    session = await load_session(request)
    return JSONResponse({"count": session.get("count", 0), "user": session.get("user")})


async def count(request: Request) -> JSONResponse:
    session = await load_session(request)
    session["count"] = session.get("count", 0) + 1
    return JSONResponse({"count": session["count"]})


def sync_count(request: Request) -> JSONResponse:
    # A sync endpoint runs in a worker thread: the session loads on first use.
    request.session["count"] = request.session.get("count", 0) + 1
    return JSONResponse({"count": request.session["count"]})


async def unloaded(request: Request) -> JSONResponse:
    return JSONResponse({"count": request.session.get("count", 0)})


async def login(request: Request) -> JSONResponse:
    session = await load_session(request)
    await session.regenerate()
    session["user"] = request.path_params["user"]
    return JSONResponse({"user": session["user"]})


async def logout(request: Request) -> JSONResponse:
    request.session.clear()  # no load needed
    return JSONResponse({})


async def boom(request: Request) -> JSONResponse:
    session = await load_session(request)
    session["count"] = 1000
    raise RuntimeError("the endpoint failed")


def make_app(store: tablesessions.aio.SessionStore, *, debug: bool = False,
             **options: Any) -> Starlette:
    routes = [Route("/plain", plain), Route("/peek", peek),
              Route("/count", count, methods=["POST"]),
              Route("/sync-count", sync_count, methods=["POST"]), Route("/unloaded", unloaded),
              Route("/login/{user}", login, methods=["POST"]),
              Route("/logout", logout, methods=["POST"]), Route("/boom", boom, methods=["POST"])]
    middleware = [Middleware(TableSessionMiddleware, store=store, secret_key=SECRET, **options)]
    return Starlette(debug=debug, routes=routes, middleware=middleware)


def client_for(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="https://testserver")


@pytest.fixture
def app(async_session_store: tablesessions.aio.SessionStore) -> Starlette:
    return make_app(async_session_store)


def only_cookie(response: httpx.Response) -> tuple[str, dict[str, str]]:
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    name, value, attrs = parse_set_cookie(headers[0])
    assert name == "session"
    return value, attrs


def vary(response: httpx.Response) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("vary", "").split(",") if v.strip()}


async def test_an_endpoint_that_never_touches_the_session_makes_no_storage_call(
        app: Starlette, request_counter: RequestCounter) -> None:
    async with client_for(app) as client:
        await client.post("/count")
        request_counter.reset()
        response = await client.get("/plain")  # carries a valid cookie
    assert response.status_code == 200
    assert request_counter.count == 0
    assert "set-cookie" not in response.headers
    assert "cookie" not in vary(response)


async def test_first_write_sets_a_signed_cookie_with_secure_defaults(
        app: Starlette, request_counter: RequestCounter,
        async_session_store: tablesessions.aio.SessionStore) -> None:
    async with client_for(app) as client:
        response = await client.post("/count")
    assert response.json() == {"count": 1}
    assert request_counter.count == 1
    value, attrs = only_cookie(response)
    assert COOKIE_RE.fullmatch(value)
    assert {"httponly", "secure"} <= attrs.keys()
    assert attrs["samesite"] == "Lax"
    assert attrs["path"] == "/"
    idle = async_session_store.config.idle_timeout.total_seconds()
    assert idle - 5 <= int(attrs["max-age"]) <= idle
    assert "cookie" in vary(response)


async def test_counter_survives_and_reads_set_no_cookie(
        app: Starlette, request_counter: RequestCounter) -> None:
    async with client_for(app) as client:
        for expected in (1, 2):
            assert (await client.post("/count")).json() == {"count": expected}
        assert (await client.post("/sync-count")).json() == {"count": 3}
        request_counter.reset()
        response = await client.get("/peek")
    assert response.json() == {"count": 3, "user": None}
    assert request_counter.count == 1
    assert "set-cookie" not in response.headers
    assert "cookie" in vary(response)


@pytest.mark.parametrize("raw", hostile_cookies(), ids=HOSTILE_IDS)
async def test_hostile_cookies_give_a_fresh_session_without_storage_calls(
        app: Starlette, request_counter: RequestCounter, raw: bytes) -> None:
    headers = [(b"cookie", b"session=" + raw)]
    async with client_for(app) as client:
        response = await client.get("/peek", headers=headers)
        assert response.status_code == 200
        assert response.json() == {"count": 0, "user": None}
        assert request_counter.count == 0
        response = await client.get("/plain", headers=headers)
        assert response.status_code == 200
    assert request_counter.count == 0


async def test_login_regenerates_the_id_and_kills_the_old_one(
        app: Starlette, async_session_store: tablesessions.aio.SessionStore) -> None:
    async with client_for(app) as client:
        before, _ = only_cookie(await client.post("/count"))
        after, _ = only_cookie(await client.post("/login/alice"))
        assert after != before
        assert (await client.get("/peek")).json() == {"count": 1, "user": "alice"}
    signer = CookieSigner(SECRET)
    old_id, new_id = signer.unsign(before), signer.unsign(after)
    assert old_id is not None
    assert new_id is not None
    assert await async_session_store.get(old_id) is None
    assert await async_session_store.get(new_id) is not None
    async with client_for(app) as replay:
        response = await replay.get("/peek", headers={"cookie": f"session={before}"})
    assert response.json() == {"count": 0, "user": None}


async def test_logout_without_loading_deletes_the_record_and_clears_the_cookie(
        app: Starlette, async_session_store: tablesessions.aio.SessionStore) -> None:
    async with client_for(app) as client:
        cookie, _ = only_cookie(await client.post("/login/alice"))
        response = await client.post("/logout")
        value, attrs = only_cookie(response)
        assert value == ""
        assert attrs["max-age"] == "0"
        assert (await client.get("/peek")).json() == {"count": 0, "user": None}
    session_id = CookieSigner(SECRET).unsign(cookie)
    assert session_id is not None
    assert await async_session_store.get(session_id) is None


async def test_touching_an_unloaded_session_in_an_async_endpoint_explains_itself(
        app: Starlette, async_session_store: tablesessions.aio.SessionStore) -> None:
    async with client_for(app) as client:
        await client.post("/count")
        response = await client.get("/unloaded")
    assert response.status_code == 500
    session = TableSession(async_session_store, None, None)
    with pytest.raises(RuntimeError, match="load_session"):
        session.get("count")
    assert (await session.load()).get("count", 0) == 0


async def test_autoload_loads_up_front(async_session_store: tablesessions.aio.SessionStore,
                                      request_counter: RequestCounter) -> None:
    app = make_app(async_session_store, autoload=True)
    async with client_for(app) as client:
        await client.post("/count")
        request_counter.reset()
        assert (await client.get("/unloaded")).json() == {"count": 1}
        assert request_counter.count == 1
        assert (await client.get("/plain")).status_code == 200
        assert request_counter.count == 2  # the price of autoload: a read per request


async def test_a_failed_request_persists_nothing(app: Starlette,
                                                 request_counter: RequestCounter) -> None:
    async with client_for(app) as client:
        await client.post("/count")
        request_counter.reset()
        assert (await client.post("/boom")).status_code == 500
        assert request_counter.count == 1
        assert (await client.get("/peek")).json()["count"] == 1


@pytest.mark.parametrize(("debug", "options", "expected"), [
    (True, {}, {"httponly": "", "samesite": "Lax", "path": "/"}),
    (False, {"https_only": False}, {"httponly": "", "samesite": "Lax", "path": "/"}),
    (True, {"https_only": True}, {"secure": "", "httponly": "", "samesite": "Lax", "path": "/"}),
    (False, {"same_site": "strict", "domain": "example.test", "path": "/app",
             "session_cookie": "sid"},
     {"secure": "", "httponly": "", "samesite": "Strict", "domain": "example.test",
      "path": "/app"}),
])
async def test_cookie_flags_follow_the_options(
        async_session_store: tablesessions.aio.SessionStore, debug: bool,
        options: dict[str, Any], expected: dict[str, str]) -> None:
    app = make_app(async_session_store, debug=debug, **options)
    async with client_for(app) as client:
        response = await client.post("/count")
    [header] = response.headers.get_list("set-cookie")
    name, value, attrs = parse_set_cookie(header)
    assert name == options.get("session_cookie", "session")
    assert COOKIE_RE.fullmatch(value)
    assert {k: v for k, v in attrs.items() if k not in ("max-age", "expires")} == expected


def test_same_site_none_without_secure_is_refused(
        async_session_store: tablesessions.aio.SessionStore) -> None:
    with pytest.raises(ValueError, match="Secure"):
        TableSessionMiddleware(Starlette(), store=async_session_store, secret_key=SECRET,
                               same_site="none", https_only=False)


async def test_load_session_without_the_middleware_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not installed"):
        await load_session(Request({"type": "http"}))


async def test_a_cookie_signed_with_a_fallback_secret_is_accepted_and_resigned(
        async_session_store: tablesessions.aio.SessionStore) -> None:
    old_app = make_app(async_session_store)  # signs with SECRET
    async with client_for(old_app) as client:
        old, _ = only_cookie(await client.post("/count"))
    rotated = Starlette(routes=[Route("/peek", peek)], middleware=[Middleware(
        TableSessionMiddleware, store=async_session_store, secret_key="new-secret",
        fallback_secret_keys=[SECRET])])
    async with client_for(rotated) as client:
        response = await client.get("/peek", headers={"cookie": f"session={old}"})
    assert response.json() == {"count": 1, "user": None}
    new, _ = only_cookie(response)
    assert CookieSigner("new-secret").unsign(new) == CookieSigner(SECRET).unsign(old)
