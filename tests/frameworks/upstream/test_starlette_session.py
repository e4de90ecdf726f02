"""Starlette's own session middleware tests, run against TableSessionMiddleware.

Ported from encode/starlette 1.10.0, ``tests/middleware/test_session.py``. Each
test keeps its upstream name and assertions; only the middleware changed
(``SessionMiddleware`` -> ``TableSessionMiddleware``, with ``store=``, a real
Azurite-backed ``tablesessions.aio.SessionStore``). The clients are Starlette's
``TestClient`` used as upstream uses it: outside ``with client:``, so every
request runs on a new event loop. Not run, and why: docs/frameworks.md
("Upstream test suites").
"""

# ruff: noqa: E501 - upstream's 120 columns kept, so the port diffs cleanly against it
import re

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient  # imported first by conftest, warnings filtered

import tablesessions.aio
from tablesessions.starlette import TableSessionMiddleware

from .conftest import TestClientFactory


def view_session(request: Request) -> JSONResponse:
    return JSONResponse({"session": request.session})


async def update_session(request: Request) -> JSONResponse:
    data = await request.json()
    request.session.update(data)
    return JSONResponse({"session": request.session})


async def inplace_update_session(request: Request) -> JSONResponse:
    data = await request.json()
    session = request.session
    session |= data
    return JSONResponse({"session": request.session})


async def popitem_session(request: Request) -> JSONResponse:
    request.session.popitem()
    return JSONResponse({"session": request.session})


async def clear_session(request: Request) -> JSONResponse:
    request.session.clear()
    return JSONResponse({"session": request.session})


def no_session_access(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def test_session(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    app = Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
            Route("/clear_session", endpoint=clear_session, methods=["POST"]),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example")],
    )
    client = test_client_factory(app)

    response = client.get("/view_session")
    assert response.json() == {"session": {}}

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # check cookie max-age
    set_cookie = response.headers["set-cookie"]
    max_age_matches = re.search(r"; Max-Age=([0-9]+);", set_cookie)
    assert max_age_matches is not None
    assert int(max_age_matches[1]) == 14 * 24 * 3600

    response = client.get("/view_session")
    assert response.json() == {"session": {"some": "data"}}

    response = client.post("/clear_session")
    assert response.json() == {"session": {}}

    response = client.get("/view_session")
    assert response.json() == {"session": {}}


@pytest.mark.parametrize("partitioned", [False, True])
def test_partitioned_session(
    test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore, partitioned: bool
) -> None:
    app = Starlette(
        routes=[
            Route("/update_session", endpoint=update_session, methods=["POST"]),
            Route("/clear_session", endpoint=clear_session, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                TableSessionMiddleware,
                store=store,
                secret_key="example",
                https_only=True,
                same_site="none",
                partitioned=partitioned,
            )
        ],
    )
    client = test_client_factory(app, base_url="https://testserver")
    response = client.post("/update_session", json={"some": "data"})
    attributes = response.headers["set-cookie"].split("; ")
    assert ("partitioned" in attributes) is partitioned

    response = client.post("/clear_session")
    attributes = response.headers["set-cookie"].split("; ")
    assert ("partitioned" in attributes) is partitioned


def test_session_expires(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    app = Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example", max_age=-1)],
    )
    client = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # requests removes expired cookies from response.cookies, we need to
    # fetch session id from the headers and pass it explicitly
    expired_cookie_header = response.headers["set-cookie"]
    expired_session_match = re.search(r"session=([^;]*);", expired_cookie_header)
    assert expired_session_match is not None
    expired_session_value = expired_session_match[1]
    client = test_client_factory(app, cookies={"session": expired_session_value})
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_secure_session(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    app = Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
            Route("/clear_session", endpoint=clear_session, methods=["POST"]),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example", https_only=True)],
    )
    secure_client = test_client_factory(app, base_url="https://testserver")
    unsecure_client = test_client_factory(app, base_url="http://testserver")

    response = unsecure_client.get("/view_session")
    assert response.json() == {"session": {}}

    response = unsecure_client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    response = unsecure_client.get("/view_session")
    assert response.json() == {"session": {}}

    response = secure_client.get("/view_session")
    assert response.json() == {"session": {}}

    response = secure_client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    response = secure_client.get("/view_session")
    assert response.json() == {"session": {"some": "data"}}

    response = secure_client.post("/clear_session")
    assert response.json() == {"session": {}}

    response = secure_client.get("/view_session")
    assert response.json() == {"session": {}}


def test_session_cookie_subpath(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    second_app = Starlette(
        routes=[
            Route("/update_session", endpoint=update_session, methods=["POST"]),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example", path="/second_app")],
    )
    app = Starlette(routes=[Mount("/second_app", app=second_app)])
    client = test_client_factory(app, base_url="http://testserver/second_app")
    response = client.post("/update_session", json={"some": "data"})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    cookie_path_match = re.search(r"; path=(\S+);", cookie)
    assert cookie_path_match is not None
    cookie_path = cookie_path_match.groups()[0]
    assert cookie_path == "/second_app"


def test_invalid_session_cookie(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    app = Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example")],
    )
    client = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # we expect it to not raise an exception if we provide a bogus session cookie
    client = test_client_factory(app, cookies={"session": "invalid"})
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_session_cookie(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    app = Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example", max_age=None)],
    )
    client: TestClient = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # check cookie max-age
    set_cookie = response.headers["set-cookie"]
    assert "Max-Age" not in set_cookie

    client.cookies.delete("session")
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_session_zero_max_age(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    app = Starlette(
        routes=[Route("/update_session", endpoint=update_session, methods=["POST"])],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example", max_age=0)],
    )
    client = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert "; Max-Age=0; " in response.headers["set-cookie"]


def test_domain_cookie(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    app = Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example", domain=".example.com")],
    )
    client: TestClient = test_client_factory(app)

    response = client.post("/update_session", json={"some": "data"})
    assert response.json() == {"session": {"some": "data"}}

    # check cookie max-age
    set_cookie = response.headers["set-cookie"]
    assert "domain=.example.com" in set_cookie

    client.cookies.delete("session")
    response = client.get("/view_session")
    assert response.json() == {"session": {}}


def test_set_cookie_only_on_modification(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    app = Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example")],
    )
    client = test_client_factory(app)

    # Write to session - should send Set-Cookie
    response = client.post("/update_session", json={"some": "data"})
    assert "set-cookie" in response.headers

    # Read-only access - should NOT send Set-Cookie
    response = client.get("/view_session")
    assert response.json() == {"session": {"some": "data"}}
    assert "set-cookie" not in response.headers


def test_vary_cookie_on_access(test_client_factory: TestClientFactory, store: tablesessions.aio.SessionStore) -> None:
    app = Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
            Route("/no_session", endpoint=no_session_access),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example")],
    )
    client = test_client_factory(app)

    # Modifying session should add Vary: Cookie
    response = client.post("/update_session", json={"some": "data"})
    assert "cookie" in response.headers.get("vary", "").lower()

    # Reading a non-empty session should add Vary: Cookie
    response = client.get("/view_session")
    assert "cookie" in response.headers.get("vary", "").lower()

    # Not accessing session at all should NOT add Vary: Cookie
    response = client.get("/no_session")
    assert "cookie" not in response.headers.get("vary", "").lower()


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        ("/inplace_update_session", {"c": "3"}, {"a": "1", "b": "2", "c": "3"}),
        ("/popitem_session", None, {"a": "1"}),
    ],
)
def test_session_persists_mutations(
    test_client_factory: TestClientFactory,
    store: tablesessions.aio.SessionStore,
    path: str,
    data: dict[str, str] | None,
    expected: dict[str, str],
) -> None:
    app = Starlette(
        routes=[
            Route("/view_session", endpoint=view_session),
            Route("/update_session", endpoint=update_session, methods=["POST"]),
            Route("/inplace_update_session", endpoint=inplace_update_session, methods=["POST"]),
            Route("/popitem_session", endpoint=popitem_session, methods=["POST"]),
        ],
        middleware=[Middleware(TableSessionMiddleware, store=store, secret_key="example")],
    )
    client = test_client_factory(app)

    response = client.post("/update_session", json={"a": "1", "b": "2"})
    assert response.json() == {"session": {"a": "1", "b": "2"}}

    response = client.post(path, json=data)
    assert response.json() == {"session": expected}

    response = client.get("/view_session")
    assert response.json() == {"session": expected}
