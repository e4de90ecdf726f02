"""tablesessions.starlette under FastAPI, against a real Azurite: the session as a
``Depends(load_session)`` dependency, sync path operations, and what each request
costs in storage calls (counted at the transport)."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

import tablesessions.aio
from tablesessions._sessions.cookies import CookieSigner
from tablesessions.starlette import TableSession, TableSessionMiddleware, load_session
from tablesessions.testing import RequestCounter

from .helpers import COOKIE_RE, SECRET, parse_set_cookie

Session = Annotated[TableSession, Depends(load_session)]


def make_app(store: tablesessions.aio.SessionStore, *, autoload: bool = True) -> FastAPI:
    app = FastAPI()
    app.add_middleware(TableSessionMiddleware, store=store, secret_key=SECRET, autoload=autoload)

    @app.get("/plain")
    async def plain() -> dict[str, str]:
        return {"session": "never touched"}

    @app.get("/peek")
    async def peek(session: Session) -> dict[str, Any]:
        return {"count": session.get("count", 0), "user": session.get("user")}

    @app.post("/count")
    async def count(session: Session) -> dict[str, int]:
        session["count"] = session.get("count", 0) + 1
        return {"count": session["count"]}

    @app.post("/sync-count")
    def sync_count(request: Request) -> dict[str, int]:
        # A plain `def` runs in a worker thread: the session loads on first use.
        request.session["count"] = request.session.get("count", 0) + 1
        return {"count": request.session["count"]}

    @app.post("/login/{user}")
    async def login(user: str, session: Session) -> dict[str, str]:
        await session.regenerate()
        session["user"] = user
        return {"user": user}

    @app.post("/fail")
    async def fail(session: Session) -> dict[str, str]:
        session["count"] = 1000
        raise HTTPException(status_code=503, detail="downstream unavailable")

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                             base_url="https://testserver")


def session_cookie(response: httpx.Response) -> str | None:
    for header in response.headers.get_list("set-cookie"):
        name, value, _ = parse_set_cookie(header)
        if name == "session":
            return value
    return None


async def test_a_dependency_session_round_trips_with_one_call_per_step(
        async_session_store: tablesessions.aio.SessionStore,
        request_counter: RequestCounter) -> None:
    async with client_for(make_app(async_session_store)) as client:
        first = await client.post("/count")
        assert first.json() == {"count": 1}
        cookie = session_cookie(first)
        assert cookie is not None and COOKIE_RE.fullmatch(cookie)
        assert request_counter.count == 1  # the insert: nothing to read yet

        request_counter.reset()
        assert (await client.post("/count")).json() == {"count": 2}
        assert request_counter.count == 2  # one read, one conditional replace

        request_counter.reset()
        peek = await client.get("/peek")
    assert peek.json() == {"count": 2, "user": None}
    assert request_counter.count == 1
    assert session_cookie(peek) is None  # nothing changed: the browser's cookie stands


async def test_sync_path_operations_share_the_session(
        async_session_store: tablesessions.aio.SessionStore) -> None:
    async with client_for(make_app(async_session_store)) as client:
        assert (await client.post("/count")).json() == {"count": 1}
        assert (await client.post("/sync-count")).json() == {"count": 2}
        assert (await client.get("/peek")).json()["count"] == 2


@pytest.mark.parametrize(("autoload", "reads"), [(False, 0), (True, 1)])
async def test_a_route_without_the_dependency_costs_nothing(
        async_session_store: tablesessions.aio.SessionStore,
        request_counter: RequestCounter, autoload: bool, reads: int) -> None:
    # With autoload=False only routes that declare Depends(load_session) read;
    # the default reads whenever the cookie is signed (request.session is a dict).
    async with client_for(make_app(async_session_store, autoload=autoload)) as client:
        await client.post("/count")
        request_counter.reset()
        response = await client.get("/plain")
        assert response.status_code == 200
        assert request_counter.count == reads
        assert "set-cookie" not in response.headers
        assert (await client.get("/peek")).json()["count"] == 1  # the dependency still works


async def test_login_regenerates_the_id_and_the_old_one_is_dead(
        async_session_store: tablesessions.aio.SessionStore) -> None:
    async with client_for(make_app(async_session_store)) as client:
        before = session_cookie(await client.post("/count"))
        after = session_cookie(await client.post("/login/alice"))
        assert before and after and before != after
        assert (await client.get("/peek")).json() == {"count": 1, "user": "alice"}
    signer = CookieSigner(SECRET)
    old_id = signer.unsign(before)
    assert old_id is not None
    assert await async_session_store.get(old_id) is None
    new_id = signer.unsign(after)
    assert new_id is not None
    new_session = await async_session_store.get(new_id)
    assert new_session is not None and new_session["user"] == "alice"


async def test_a_forged_cookie_never_reaches_storage(
        async_session_store: tablesessions.aio.SessionStore,
        request_counter: RequestCounter) -> None:
    forged = CookieSigner("not-our-secret").sign(tablesessions.new_session_id())
    async with client_for(make_app(async_session_store)) as client:
        response = await client.get("/peek", headers={"Cookie": f"session={forged}"})
    assert response.json() == {"count": 0, "user": None}
    assert request_counter.count == 0
    # Left alone, as Starlette's own middleware does: a cookie signed with a
    # secret not configured yet works again once it is.
    assert "set-cookie" not in response.headers


async def test_a_5xx_response_persists_nothing(
        async_session_store: tablesessions.aio.SessionStore,
        request_counter: RequestCounter) -> None:
    async with client_for(make_app(async_session_store)) as client:
        await client.post("/count")
        request_counter.reset()
        failed = await client.post("/fail")
        assert failed.status_code == 503
        assert request_counter.count == 1  # the dependency's read; no write
        assert (await client.get("/peek")).json()["count"] == 1
