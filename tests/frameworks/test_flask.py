"""tablesessions.flask against a real Azurite: lazy loading, cookies, fixation, logout."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask, session
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import tablesessions
from tablesessions._sessions.cookies import CookieSigner
from tablesessions.flask import TableSessions, regenerate
from tablesessions.testing import AzuriteServer, RequestCounter
from tests.conftest import FakeClock

from .helpers import (
    COOKIE_RE,
    HOSTILE_IDS,
    SECRET,
    cookie_header,
    hostile_cookies,
    parse_set_cookie,
)


def make_app(store: tablesessions.SessionStore | None, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update({"SECRET_KEY": SECRET, "PROPAGATE_EXCEPTIONS": False, **config})
    TableSessions(app, store=store)

    @app.get("/plain")
    def plain() -> str:
        return "never touches the session"

    @app.get("/peek")
    def peek() -> dict[str, Any]:
        return {"count": session.get("count", 0), "user": session.get("user")}

    @app.post("/count")
    def count() -> dict[str, Any]:
        session["count"] = session.get("count", 0) + 1
        return {"count": session["count"]}

    @app.post("/login/<user>")
    def login(user: str) -> dict[str, Any]:
        regenerate()
        session["user"] = user
        return {"user": user}

    @app.post("/logout")
    def logout() -> dict[str, Any]:
        session.clear()
        return {}

    @app.post("/boom")
    def boom() -> str:
        session["count"] = 1000
        raise RuntimeError("the view failed")

    return app


@pytest.fixture
def app(session_store: tablesessions.SessionStore) -> Flask:
    return make_app(session_store)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def set_cookies(response: TestResponse) -> list[str]:
    return response.headers.getlist("Set-Cookie")


def only_cookie(response: TestResponse) -> tuple[str, dict[str, str]]:
    """The single Set-Cookie of a response: (value, attributes)."""
    headers = set_cookies(response)
    assert len(headers) == 1, headers
    name, value, attrs = parse_set_cookie(headers[0])
    assert name == "session"
    return value, attrs


def vary(response: TestResponse) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("Vary", "").split(",") if v.strip()}


def test_a_view_that_never_touches_the_session_makes_no_storage_call(
        client: FlaskClient, request_counter: RequestCounter) -> None:
    client.post("/count")
    request_counter.reset()
    response = client.get("/plain")  # carries a valid cookie
    assert response.status_code == 200
    assert request_counter.count == 0
    assert set_cookies(response) == []
    assert "cookie" not in vary(response)


def test_first_write_sets_a_signed_cookie_with_secure_defaults(
        client: FlaskClient, request_counter: RequestCounter) -> None:
    response = client.post("/count", base_url="https://localhost")
    assert response.json == {"count": 1}
    assert request_counter.count == 1  # one insert
    value, attrs = only_cookie(response)
    assert COOKIE_RE.fullmatch(value)
    assert {"httponly", "secure", "path"} <= attrs.keys()  # Secure: an https request
    assert attrs["samesite"] == "Lax"
    assert attrs["path"] == "/"
    assert "domain" not in attrs
    # Not permanent (Flask's default): a browser-session cookie, as Flask sends.
    assert "max-age" not in attrs
    assert "expires" not in attrs
    assert "cookie" in vary(response)


def test_counter_survives_requests_and_reads_set_no_cookie(
        client: FlaskClient, request_counter: RequestCounter) -> None:
    for expected in (1, 2, 3):
        assert client.post("/count").json == {"count": expected}
    request_counter.reset()
    response = client.get("/peek")
    assert response.json == {"count": 3, "user": None}
    assert request_counter.count == 1  # one read, no write: the refresh is not due
    assert set_cookies(response) == []
    assert "cookie" in vary(response)


def test_an_empty_session_is_never_stored(client: FlaskClient,
                                          request_counter: RequestCounter) -> None:
    response = client.get("/peek")
    assert response.json == {"count": 0, "user": None}
    assert request_counter.count == 0
    assert set_cookies(response) == []
    assert "cookie" in vary(response)


@pytest.mark.parametrize("raw", hostile_cookies(), ids=HOSTILE_IDS)
def test_hostile_cookies_give_a_fresh_session_without_storage_calls(
        app: Flask, request_counter: RequestCounter, raw: bytes) -> None:
    client = app.test_client(use_cookies=False)
    environ = {"HTTP_COOKIE": cookie_header("session", raw).decode("latin-1")}
    response = client.get("/peek", environ_overrides=environ)
    assert response.status_code == 200
    assert response.json == {"count": 0, "user": None}
    assert request_counter.count == 0
    response = client.post("/count", environ_overrides=environ)
    assert response.status_code == 200
    assert response.json == {"count": 1}
    assert request_counter.count == 1  # the insert of the fresh session, nothing else
    value, _ = only_cookie(response)
    assert COOKIE_RE.fullmatch(value)


def test_login_regenerates_the_id_and_kills_the_old_one(
        app: Flask, client: FlaskClient, session_store: tablesessions.SessionStore) -> None:
    client.post("/count")
    before = client.get_cookie("session")
    assert before is not None
    response = client.post("/login/alice")
    after, _ = only_cookie(response)
    assert after != before.value
    assert client.get("/peek").json == {"count": 1, "user": "alice"}
    signer = CookieSigner(SECRET)
    old_id, new_id = signer.unsign(before.value), signer.unsign(after)
    assert old_id is not None
    assert new_id is not None
    assert session_store.get(old_id) is None
    assert session_store.get(new_id) is not None
    # The pre-login cookie now opens an empty session.
    replay = app.test_client(use_cookies=False)
    response = replay.get("/peek", headers={"Cookie": f"session={before.value}"})
    assert response.json == {"count": 0, "user": None}


def test_login_on_a_fresh_session_needs_no_regeneration_write(
        client: FlaskClient, request_counter: RequestCounter) -> None:
    response = client.post("/login/bob")
    assert response.status_code == 200
    assert request_counter.count == 1  # the id was minted in this request: just the insert
    assert client.get("/peek").json == {"count": 0, "user": "bob"}


def test_logout_deletes_the_record_and_clears_the_cookie(
        client: FlaskClient, session_store: tablesessions.SessionStore) -> None:
    client.post("/login/alice")
    cookie = client.get_cookie("session")
    assert cookie is not None
    response = client.post("/logout")
    value, attrs = only_cookie(response)
    assert value == ""
    assert attrs["max-age"] == "0"
    session_id = CookieSigner(SECRET).unsign(cookie.value)
    assert session_id is not None
    assert session_store.get(session_id) is None
    assert client.get("/peek").json == {"count": 0, "user": None}


def test_a_failed_request_persists_nothing(client: FlaskClient,
                                           request_counter: RequestCounter) -> None:
    client.post("/count")
    request_counter.reset()
    assert client.post("/boom").status_code == 500
    assert request_counter.count == 1  # the read; no write
    assert client.get("/peek").json == {"count": 1, "user": None}


@pytest.mark.parametrize(("config", "base", "expected"), [
    ({}, "http", {"httponly": "", "samesite": "Lax", "path": "/"}),
    ({}, "https", {"secure": "", "httponly": "", "samesite": "Lax", "path": "/"}),
    ({"TABLESESSIONS_COOKIE_SECURE": False}, "https", {"httponly": "", "samesite": "Lax",
                                                      "path": "/"}),
    ({"TABLESESSIONS_COOKIE_SECURE": True}, "http", {"secure": "", "httponly": "",
                                                    "samesite": "Lax", "path": "/"}),
    ({"SESSION_COOKIE_SECURE": True}, "http", {"secure": "", "httponly": "",
                                              "samesite": "Lax", "path": "/"}),
    ({"TABLESESSIONS_COOKIE_SAMESITE": None}, "http", {"httponly": "", "path": "/"}),
    ({"SESSION_COOKIE_SAMESITE": "Strict", "SESSION_COOKIE_DOMAIN": ".example.test",
      "SESSION_COOKIE_PATH": "/app", "SESSION_COOKIE_HTTPONLY": False,
      "SESSION_COOKIE_PARTITIONED": True, "SESSION_COOKIE_SECURE": True},
     "http", {"secure": "", "samesite": "Strict", "domain": "example.test", "path": "/app",
              "partitioned": ""}),
])
def test_cookie_flags_follow_the_config(session_store: tablesessions.SessionStore,
                                        config: dict[str, Any], base: str,
                                        expected: dict[str, str]) -> None:
    # SESSION_COOKIE_DOMAIN is written as Flask (Werkzeug) writes it: no leading dot.
    app = make_app(session_store, **config)
    response = app.test_client().post("/count", base_url=f"{base}://localhost")
    value, attrs = only_cookie(response)
    assert COOKIE_RE.fullmatch(value)
    assert {k: v for k, v in attrs.items() if k not in ("max-age", "expires")} == expected


def test_a_leading_dot_domain_cookie_is_sent_back_by_werkzeug(
        session_store: tablesessions.SessionStore) -> None:
    # Issue 15: "Domain=.example.test" made Werkzeug's client drop the cookie.
    app = make_app(session_store, SESSION_COOKIE_DOMAIN=".example.test")
    client = app.test_client()
    client.post("/count", base_url="http://www.example.test")
    assert client.post("/count", base_url="http://www.example.test").json == {"count": 2}


def test_rotated_secret_is_accepted_and_the_cookie_resigned(
        session_store: tablesessions.SessionStore) -> None:
    old_app = make_app(session_store, SECRET_KEY="old-secret")
    old_client = old_app.test_client()
    old_client.post("/count")
    old_cookie = old_client.get_cookie("session")
    assert old_cookie is not None
    app = make_app(session_store, SECRET_KEY=SECRET, SECRET_KEY_FALLBACKS=["old-secret"])
    client = app.test_client()
    client.set_cookie("session", old_cookie.value)
    response = client.get("/peek")
    assert response.json == {"count": 1, "user": None}
    value, _ = only_cookie(response)
    assert CookieSigner(SECRET).unsign(value) == CookieSigner("old-secret").unsign(
        old_cookie.value)


def test_a_browser_session_expires_on_the_server_by_the_store_idle_timeout(
        azurite: AzuriteServer, storage_names: tuple[str, str], clock: FakeClock) -> None:
    table, container = storage_names
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=table, container_name=container,
            idle_timeout=dt.timedelta(minutes=10), clock=clock) as store:
        store.create_storage()
        client = make_app(store).test_client()
        _, attrs = only_cookie(client.post("/count"))
        assert "max-age" not in attrs  # not permanent: a browser-session cookie
        clock.advance(dt.timedelta(minutes=6))
        response = client.get("/peek")  # 4 of 10 minutes left: the store refreshes
        assert response.json == {"count": 1, "user": None}
        assert set_cookies(response) == []  # no Max-Age to follow
        clock.advance(dt.timedelta(minutes=9))
        assert client.get("/peek").json == {"count": 1, "user": None}  # refreshed at 6
        clock.advance(dt.timedelta(minutes=11))
        assert client.get("/peek").json == {"count": 0, "user": None}  # idle expiry


def permanent_app(store: tablesessions.SessionStore, **config: Any) -> Flask:
    app = make_app(store, **config)

    @app.post("/remember")
    def remember() -> dict[str, Any]:
        session["count"] = session.get("count", 0) + 1
        session.permanent = True
        return {"permanent": session.permanent}

    @app.post("/forget")
    def forget() -> dict[str, Any]:
        session.permanent = False
        return {"permanent": session.permanent}

    @app.get("/is-permanent")
    def is_permanent() -> dict[str, Any]:
        return {"permanent": session.permanent}

    return app


def test_a_permanent_session_lives_permanent_session_lifetime_on_the_server(
        azurite: AzuriteServer, storage_names: tuple[str, str], clock: FakeClock,
        request_counter: RequestCounter) -> None:
    table, container = storage_names
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=table, container_name=container, clock=clock,
            client_options=request_counter.client_options()) as store:
        store.create_storage()
        app = permanent_app(store, PERMANENT_SESSION_LIFETIME=dt.timedelta(days=30))
        client = app.test_client()
        cookie, attrs = only_cookie(client.post("/remember"))
        assert attrs["max-age"] == str(30 * 24 * 3600)  # "remember me" beyond the 12 h default
        assert client.get("/is-permanent").json == {"permanent": True}
        clock.advance(dt.timedelta(days=20))  # far past the store's 20 min and 12 h
        request_counter.reset()
        response = client.get("/peek")
        assert response.json == {"count": 1, "user": None}
        # SESSION_REFRESH_EACH_REQUEST (Flask's default) re-sends the cookie with
        # the time left; the read-only request is still one storage call.
        assert only_cookie(response)[1]["max-age"] == str(10 * 24 * 3600)
        assert request_counter.count == 1
        clock.advance(dt.timedelta(days=10, seconds=1))
        replay = app.test_client()
        replay.set_cookie("session", cookie)
        assert replay.get("/peek").json == {"count": 0, "user": None}
        session_id = CookieSigner(SECRET).unsign(cookie)
        assert session_id is not None
        assert store.get(session_id) is None  # refused by the store itself
        clock.advance(dt.timedelta(minutes=3))  # past the sweeper's safety margin
        assert store.sweep().deleted == 1


def test_permanent_false_again_makes_a_browser_session(
        session_store: tablesessions.SessionStore, request_counter: RequestCounter) -> None:
    client = permanent_app(session_store).test_client()
    assert "max-age" in only_cookie(client.post("/remember"))[1]
    request_counter.reset()
    response = client.post("/forget")
    assert response.json == {"permanent": False}
    assert "max-age" not in only_cookie(response)[1]
    assert request_counter.count == 2  # read + the write of the new lifetime
    assert client.get("/is-permanent").json == {"permanent": False}
    request_counter.reset()
    assert client.post("/forget").json == {"permanent": False}
    assert request_counter.count == 1  # unchanged: read only


def test_session_refresh_each_request_false_sends_no_cookie_on_reads(
        session_store: tablesessions.SessionStore) -> None:
    client = permanent_app(session_store, SESSION_REFRESH_EACH_REQUEST=False).test_client()
    client.post("/remember")
    assert set_cookies(client.get("/peek")) == []


def test_a_read_under_a_wrong_secret_keeps_the_cookie(
        session_store: tablesessions.SessionStore, request_counter: RequestCounter) -> None:
    # Issue 15: a mis-rotated secret must not clear cookies; fixing it brings users back.
    good = make_app(session_store)
    client = good.test_client()
    client.post("/count")
    cookie = client.get_cookie("session")
    assert cookie is not None
    wrong = make_app(session_store, SECRET_KEY="a-mistyped-secret").test_client()
    wrong.set_cookie("session", cookie.value)
    request_counter.reset()
    response = wrong.get("/peek")
    assert response.json == {"count": 0, "user": None}
    assert set_cookies(response) == []
    assert request_counter.count == 0
    fixed = good.test_client()
    fixed.set_cookie("session", cookie.value)
    assert fixed.get("/peek").json == {"count": 1, "user": None}


def test_flashed_messages_and_markup_round_trip_through_storage(
        session_store: tablesessions.SessionStore) -> None:
    from flask import flash, get_flashed_messages
    from markupsafe import Markup

    app = make_app(session_store)

    @app.post("/flash")
    def do_flash() -> str:
        flash("saved", "info")
        flash(Markup("<em>careful</em>"), "warning")
        session["html"] = Markup("<b>bold</b>")
        return ""

    @app.get("/messages")
    def messages() -> dict[str, Any]:
        flashed = get_flashed_messages(with_categories=True)
        html = session["html"]
        return {"types": [type(m).__name__ for m in flashed],
                "inner": [type(m[1]).__name__ for m in flashed],
                "flashed": [list(m) for m in flashed], "html": type(html).__name__}

    client = app.test_client()
    client.post("/flash")
    assert client.get("/messages").json == {
        "types": ["tuple", "tuple"], "inner": ["str", "Markup"],
        "flashed": [["info", "saved"], ["warning", "<em>careful</em>"]], "html": "Markup"}


def test_an_unsupported_value_fails_the_request_and_stores_nothing(
        session_store: tablesessions.SessionStore, request_counter: RequestCounter) -> None:
    app = make_app(session_store)

    @app.post("/set")
    def set_a_set() -> str:
        session["tags"] = {"a", "b"}
        return ""

    request_counter.reset()
    assert app.test_client().post("/set").status_code == 500
    assert request_counter.count == 0


@pytest.mark.parametrize(("config", "error", "match"), [
    ({"TABLESESSIONS_TABEL_NAME": "x"}, ValueError, "TABLESESSIONS_TABEL_NAME"),
    ({"TABLESESSIONS_IDLE_TIMEOUT_SECONDS": "20m"}, ValueError,
     "TABLESESSIONS_IDLE_TIMEOUT_SECONDS"),
    ({"TABLESESSIONS_IDLE_TIMEOUT_SECONDS": [60]}, TypeError,
     "TABLESESSIONS_IDLE_TIMEOUT_SECONDS"),
    ({"TABLESESSIONS_OPTIONS": "strict"}, TypeError, "TABLESESSIONS_OPTIONS"),
    ({"TABLESESSIONS_COOKIE_SECURE": "yes"}, TypeError, "TABLESESSIONS_COOKIE_SECURE"),
    ({"TABLESESSIONS_COOKIE_SAMESITE": "sometimes"}, ValueError,
     "TABLESESSIONS_COOKIE_SAMESITE"),
    ({"SESSION_COOKIE_SAMESITE": "sometimes"}, ValueError, "SESSION_COOKIE_SAMESITE"),
    ({"SESSION_REFRESH_EACH_REQUEST": "false"}, TypeError, "SESSION_REFRESH_EACH_REQUEST"),
    ({"PERMANENT_SESSION_LIFETIME": "31 days"}, TypeError, "PERMANENT_SESSION_LIFETIME"),
    ({"PERMANENT_SESSION_LIFETIME": 0}, ValueError, "PERMANENT_SESSION_LIFETIME"),
    ({"SECRET_KEY_FALLBACKS": "old"}, TypeError, "SECRET_KEY_FALLBACKS"),
    ({"SESSION_COOKIE_NAME": "a b"}, ValueError, "SESSION_COOKIE"),
])
def test_init_app_checks_the_settings_naming_the_bad_one(
        session_store: tablesessions.SessionStore, request_counter: RequestCounter,
        config: dict[str, Any], error: type[Exception], match: str) -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, **config)
    with pytest.raises(error, match=match):
        TableSessions(app, store=session_store)
    assert request_counter.count == 0


def test_init_app_without_a_store_checks_before_connecting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TABLESESSIONS_CONNECTION_STRING", "TABLESESSIONS_TABLE_ENDPOINT",
                 "TABLESESSIONS_BLOB_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TABLESESSIONS_ABSOLUTE_TIMEOUT_SECONDS=True)
    with pytest.raises(TypeError, match="TABLESESSIONS_ABSOLUTE_TIMEOUT_SECONDS"):
        TableSessions(app)


def test_store_built_from_app_config(azurite: AzuriteServer,
                                     storage_names: tuple[str, str]) -> None:
    table, container = storage_names
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TABLESESSIONS_CONNECTION_STRING=azurite.connection_string,
                      TABLESESSIONS_TABLE_NAME=table, TABLESESSIONS_CONTAINER_NAME=container,
                      TABLESESSIONS_APP_NAME="flaskapp", TABLESESSIONS_IDLE_TIMEOUT_SECONDS=90,
                      TABLESESSIONS_OPTIONS={"on_storage_error": "raise"})
    ext = TableSessions(app)
    with app.app_context():
        store = ext.store
    assert store.config.app_name == "flaskapp"
    assert store.config.idle_timeout == dt.timedelta(seconds=90)
    store.create_storage()

    @app.post("/set")
    def set_value() -> str:
        session["k"] = "v"
        return "ok"

    @app.get("/get")
    def get_value() -> str:
        return str(session.get("k"))

    client = app.test_client()
    client.post("/set")
    assert client.get("/get").text == "v"
    store.close()


def test_unknown_setting_is_an_error() -> None:
    app = Flask(__name__)
    app.config.update(SECRET_KEY=SECRET, TABLESESSIONS_CONECTION_STRING="typo")
    with pytest.raises(ValueError, match="TABLESESSIONS_CONECTION_STRING"):
        TableSessions(app)


def test_without_secret_key_reads_are_empty_and_writes_fail(
        session_store: tablesessions.SessionStore) -> None:
    app = make_app(session_store, SECRET_KEY=None)
    client = app.test_client()
    assert client.get("/peek").json == {"count": 0, "user": None}
    assert client.post("/count").status_code == 500


def test_regenerate_outside_a_tablesessions_app_is_an_error() -> None:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    with app.test_request_context("/"), pytest.raises(RuntimeError, match="TableSessions"):
        regenerate()


@pytest.fixture
def big_app(session_store: tablesessions.SessionStore) -> Flask:
    app = make_app(session_store)

    @app.post("/upload")
    def upload() -> dict[str, int]:
        from flask import request

        session["upload"] = request.get_data()
        return {"size": len(session["upload"])}

    @app.get("/upload")
    def read_upload() -> dict[str, int]:
        return {"size": len(session.get("upload", b""))}

    return app


def test_a_large_session_overflows_to_a_blob_and_reads_back(
        big_app: Flask, request_counter: RequestCounter) -> None:
    import os

    client = big_app.test_client()
    payload = os.urandom(1_500_000)
    assert client.post("/upload", data=payload).json == {"size": len(payload)}
    assert request_counter.count_where(service="blob") >= 1
    request_counter.reset()
    assert client.get("/upload").json == {"size": len(payload)}
    assert request_counter.count_where(service="blob") == 1  # the blob read


def test_storage_calls_per_request_match_docs_cost(
        client: FlaskClient, request_counter: RequestCounter) -> None:
    # docs/cost.md: create 1, untouched 0, forged 0, read-only 1, modify 2, logout 2.
    forged = CookieSigner("another-secret").sign(tablesessions.new_session_id())
    counts = {}
    for name, method, path in [("create", "post", "/count"), ("untouched", "get", "/plain"),
                               ("read-only", "get", "/peek"), ("modify", "post", "/count"),
                               ("logout", "post", "/logout")]:
        request_counter.reset()
        getattr(client, method)(path)
        counts[name] = request_counter.count
    request_counter.reset()
    app = client.application
    app.test_client().get("/peek", headers={"Cookie": f"session={forged}"})
    counts["forged"] = request_counter.count
    assert counts == {"create": 1, "untouched": 0, "read-only": 1, "modify": 2, "logout": 2,
                      "forged": 0}
