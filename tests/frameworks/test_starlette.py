"""tablesessions.starlette against a real Azurite, through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)  # httpx, not httpx2
    from starlette.testclient import TestClient

import tablesessions.aio
from tablesessions._sessions.cookies import CookieSigner
from tablesessions.starlette import (
    DEFAULT_MAX_AGE,
    TableSession,
    TableSessionMiddleware,
    load_session,
)
from tablesessions.testing import AzuriteServer, RequestCounter
from tests.conftest import FakeClock

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


async def async_set(request: Request) -> JSONResponse:
    request.session["seen"] = True
    assert isinstance(request.session, dict)
    return JSONResponse({"session": request.session})


async def as_json(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.session})


def sync_as_json(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.session})


async def boom(request: Request) -> JSONResponse:
    session = await load_session(request)
    session["count"] = 1000
    raise RuntimeError("the endpoint failed")


def make_app(store: tablesessions.aio.SessionStore, **options: Any) -> Starlette:
    routes = [Route("/plain", plain), Route("/peek", peek),
              Route("/count", count, methods=["POST"]),
              Route("/sync-count", sync_count, methods=["POST"]), Route("/unloaded", unloaded),
              Route("/login/{user}", login, methods=["POST"]),
              Route("/logout", logout, methods=["POST"]), Route("/boom", boom, methods=["POST"]),
              Route("/async-set", async_set, methods=["POST"]), Route("/as-json", as_json),
              Route("/sync-as-json", sync_as_json)]
    middleware = [Middleware(TableSessionMiddleware, store=store, secret_key=SECRET, **options)]
    return Starlette(routes=routes, middleware=middleware)


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


@pytest.mark.parametrize(("autoload", "reads"), [(False, 0), (True, 1)])
async def test_an_endpoint_that_never_touches_the_session(
        async_session_store: tablesessions.aio.SessionStore, request_counter: RequestCounter,
        autoload: bool, reads: int) -> None:
    # Lazy (autoload=False): no storage call. The default reads up front, so that
    # request.session is a plain dict in async endpoints: one read, nothing else.
    app = make_app(async_session_store, autoload=autoload)
    async with client_for(app) as client:
        await client.post("/count")
        request_counter.reset()
        response = await client.get("/plain")  # carries a valid cookie
    assert response.status_code == 200
    assert request_counter.count == reads
    assert "set-cookie" not in response.headers
    assert "cookie" not in vary(response)


async def test_no_cookie_or_a_forged_one_costs_nothing_with_autoload(
        app: Starlette, request_counter: RequestCounter) -> None:
    forged = CookieSigner("another-secret").sign(tablesessions.new_session_id())
    async with client_for(app) as client:
        assert (await client.get("/plain")).status_code == 200
        assert (await client.get("/unloaded")).json() == {"count": 0}
        response = await client.get("/unloaded", headers={"cookie": f"session={forged}"})
    assert response.json() == {"count": 0}
    assert request_counter.count == 0


async def test_first_write_sets_a_signed_cookie_with_secure_defaults(
        app: Starlette, request_counter: RequestCounter,
        async_session_store: tablesessions.aio.SessionStore) -> None:
    async with client_for(app) as client:
        response = await client.post("/count")
    assert response.json() == {"count": 1}
    assert request_counter.count == 1
    value, attrs = only_cookie(response)
    assert COOKIE_RE.fullmatch(value)
    assert {"httponly", "secure"} <= attrs.keys()  # Secure: the request was https
    assert attrs["samesite"] == "lax"
    assert attrs["path"] == "/"
    assert int(attrs["max-age"]) == DEFAULT_MAX_AGE  # Starlette's 14 days
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
        async_session_store: tablesessions.aio.SessionStore) -> None:
    app = make_app(async_session_store, autoload=False)
    async with client_for(app) as client:
        await client.post("/count")
        response = await client.get("/unloaded")
    assert response.status_code == 500
    session = TableSession(async_session_store, tablesessions.new_session_id(), None)
    with pytest.raises(RuntimeError, match="load_session"):
        session.get("count")
    with pytest.raises(RuntimeError, match="load_session"):
        json.dumps(session)  # not a silent "{}"
    assert (await session.load()).get("count", 0) == 0


@pytest.mark.parametrize("autoload", [False, True])
async def test_a_first_visit_can_use_request_session_in_an_async_endpoint(
        async_session_store: tablesessions.aio.SessionStore, request_counter: RequestCounter,
        autoload: bool) -> None:
    # Issue 15: a session with no id needs no I/O, so no "not loaded" error.
    app = make_app(async_session_store, autoload=autoload)
    async with client_for(app) as client:
        response = await client.get("/unloaded")
        assert response.status_code == 200
        assert response.json() == {"count": 0}
        assert request_counter.count == 0
        assert (await client.post("/async-set")).json() == {"session": {"seen": True}}
        assert request_counter.count == 1  # the insert
        response = await client.get("/unloaded")
    assert response.status_code == 200 if autoload else 500


@pytest.mark.parametrize("path", ["/as-json", "/sync-as-json"])
async def test_request_session_is_a_json_serialisable_dict(
        app: Starlette, request_counter: RequestCounter, path: str) -> None:
    async with client_for(app) as client:
        assert (await client.get(path)).json() == {"session": {}}  # a new visitor
        await client.post("/count")
        await client.post("/count")
        request_counter.reset()
        response = await client.get(path)  # a returning one
    assert response.json() == {"session": {"count": 2}}
    assert request_counter.count == 1
    assert "set-cookie" not in response.headers


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


@pytest.mark.parametrize(("base", "options", "expected"), [
    ("http", {}, {"httponly": "", "samesite": "lax", "path": "/"}),
    ("https", {}, {"secure": "", "httponly": "", "samesite": "lax", "path": "/"}),
    ("https", {"https_only": False}, {"httponly": "", "samesite": "lax", "path": "/"}),
    ("http", {"https_only": True}, {"secure": "", "httponly": "", "samesite": "lax",
                                    "path": "/"}),
    ("https", {"same_site": "strict", "domain": "example.test", "path": "/app",
               "session_cookie": "sid", "partitioned": True},
     {"secure": "", "httponly": "", "samesite": "strict", "domain": "example.test",
      "path": "/app", "partitioned": ""}),
])
async def test_cookie_flags_follow_the_options(
        async_session_store: tablesessions.aio.SessionStore, base: str,
        options: dict[str, Any], expected: dict[str, str]) -> None:
    app = make_app(async_session_store, **options)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=f"{base}://testserver") as client:
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


# -- lifetimes on the server (issue 15): max_age drives the session's own expiry ----------

@pytest.fixture
async def clocked_store(azurite: AzuriteServer, storage_names: tuple[str, str],
                        clock: FakeClock) -> AsyncIterator[tablesessions.aio.SessionStore]:
    table, container = storage_names
    store = tablesessions.aio.SessionStore.from_connection_string(
        azurite.connection_string, table_name=table, container_name=container, clock=clock)
    await store.create_storage()
    yield store
    await store.close()


async def test_max_age_is_enforced_on_the_server_and_swept(
        clocked_store: tablesessions.aio.SessionStore, clock: FakeClock) -> None:
    app = make_app(clocked_store, max_age=60)
    async with client_for(app) as client:
        cookie, attrs = only_cookie(await client.post("/count"))
        assert attrs["max-age"] == "60"
        clock.advance(dt.timedelta(seconds=30))
        assert (await client.post("/count")).json() == {"count": 2}  # used: still alive
        clock.advance(dt.timedelta(seconds=31))
        # 61 s after creation: gone for anyone replaying the cookie, on any instance.
        replay = await client.get("/peek", headers={"cookie": f"session={cookie}"})
    assert replay.json() == {"count": 0, "user": None}
    session_id = CookieSigner(SECRET).unsign(cookie)
    assert session_id is not None
    assert await clocked_store.get(session_id) is None
    clock.advance(dt.timedelta(minutes=3))  # past the sweeper's safety margin
    report = await clocked_store.sweep()
    assert report.deleted == 1


async def test_max_age_none_is_a_browser_session_cookie_the_server_still_expires(
        clocked_store: tablesessions.aio.SessionStore, clock: FakeClock) -> None:
    app = make_app(clocked_store, max_age=None)
    async with client_for(app) as client:
        _, attrs = only_cookie(await client.post("/count"))
        assert "max-age" not in attrs
        assert "expires" not in attrs
        clock.advance(clocked_store.config.idle_timeout - dt.timedelta(seconds=5))
        response = await client.get("/peek")  # the idle refresh is due: the expiry moves
        assert response.json()["count"] == 1
        assert "set-cookie" not in response.headers  # but there is no Max-Age to re-send
        clock.advance(clocked_store.config.idle_timeout - dt.timedelta(seconds=5))
        assert (await client.get("/peek")).json()["count"] == 1  # it was refreshed
        clock.advance(clocked_store.config.idle_timeout + dt.timedelta(seconds=1))
        assert (await client.get("/peek")).json()["count"] == 0


async def test_a_zero_max_age_never_stores_anything(
        async_session_store: tablesessions.aio.SessionStore,
        request_counter: RequestCounter) -> None:
    app = make_app(async_session_store, max_age=0)
    async with client_for(app) as client:
        response = await client.post("/count")
    value, attrs = only_cookie(response)
    assert (value, attrs["max-age"]) == ("", "0")
    assert request_counter.count == 0


def test_the_testclient_outside_with_runs_each_request_on_a_new_loop(
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    # AZURE-FACTS: a store bound to the first loop used to fail with "Event loop is
    # closed" on the second request. Here the store even ran on a loop of its own first.
    table, container = storage_names
    store = tablesessions.aio.SessionStore.from_connection_string(
        azurite.connection_string, table_name=table, container_name=container)
    asyncio.run(store.create_storage())
    client = TestClient(make_app(store), base_url="https://testserver")
    assert [client.post("/count").json()["count"] for _ in range(3)] == [1, 2, 3]
    assert client.get("/as-json").json() == {"session": {"count": 3}}
    asyncio.run(store.close())


def test_bad_arguments_fail_at_construction_naming_the_argument(
        async_session_store: tablesessions.aio.SessionStore) -> None:
    def build(**options: Any) -> TableSessionMiddleware:
        options.setdefault("secret_key", SECRET)
        return TableSessionMiddleware(Starlette(), store=async_session_store, **options)

    with pytest.raises(TypeError, match="max_age"):
        build(max_age="3600")
    with pytest.raises(ValueError, match="max_age"):
        build(max_age=2**31)
    with pytest.raises(TypeError, match="https_only"):
        build(https_only="yes")
    with pytest.raises(TypeError, match="fallback_secret_keys"):
        build(fallback_secret_keys="old-secret")
    with pytest.raises(ValueError, match="SameSite"):
        build(same_site="sometimes")
    with pytest.raises(ValueError, match="empty"):
        build(secret_key="")
    with pytest.raises(ValueError, match="cookie name"):
        build(session_cookie="a b")
    with pytest.raises(TypeError, match=r"tablesessions\.aio\.SessionStore"):
        TableSessionMiddleware(Starlette(), store=object(),  # type: ignore[arg-type]
                               secret_key=SECRET)


@pytest.mark.parametrize(("autoload", "untouched"), [(True, 1), (False, 0)])
async def test_storage_calls_per_request_match_docs_cost(
        async_session_store: tablesessions.aio.SessionStore, request_counter: RequestCounter,
        autoload: bool, untouched: int) -> None:
    # docs/cost.md: create 1, read-only 1, modify 2, logout 2, forged 0; an endpoint
    # that never touches the session costs 0 with autoload=False, 1 read with the default.
    app = make_app(async_session_store, autoload=autoload)
    forged = CookieSigner("another-secret").sign(tablesessions.new_session_id())
    counts = {}
    async with client_for(app) as client:
        for name, method, path in [("create", "POST", "/count"), ("untouched", "GET", "/plain"),
                                   ("read-only", "GET", "/peek"), ("modify", "POST", "/count"),
                                   ("sync modify", "POST", "/sync-count"),
                                   ("logout", "POST", "/logout")]:
            request_counter.reset()
            await client.request(method, path)
            counts[name] = request_counter.count
    async with client_for(app) as client:
        request_counter.reset()
        await client.get("/peek", headers={"cookie": f"session={forged}"})
        counts["forged"] = request_counter.count
    # logout without loading (autoload=False): deleting by id reads the row first
    # (its overflow blob, if any, goes too), so it is 2 calls either way
    assert counts == {"create": 1, "untouched": untouched, "read-only": 1, "modify": 2,
                      "sync modify": 2, "logout": 2, "forged": 0}


async def test_copies_and_pickles_of_the_session_are_plain_dicts(
        async_session_store: tablesessions.aio.SessionStore) -> None:
    import copy
    import pickle

    session = TableSession(async_session_store, None, None)
    session["cart"] = ["apple"]
    for snapshot in (copy.copy(session), copy.deepcopy(session), session.copy(),
                     pickle.loads(pickle.dumps(session)), dict(session), {**session}):
        assert type(snapshot) is dict
        assert snapshot == {"cart": ["apple"]}
    assert copy.deepcopy(session)["cart"] is not session["cart"]
    assert session | {"b": 1} == {"cart": ["apple"], "b": 1}
    session |= {"c": 2}
    assert sorted(session) == ["c", "cart"]
    with pytest.raises(TypeError, match="str"):
        session.update({1: "x"})
