"""Flask request flows through the test client: ``tablesessions.flask`` against a
floor app that makes the same storage calls by hand.

Both apps run under Flask's test client with ``use_cookies=False``; every request
carries its ``Cookie`` header explicitly, so the clients do no cookie-jar work.
The session holds ~1 KiB of JSON (:func:`benchmarks.payloads.session_data`).

The floor app (``floor_app``), precisely:

* **No Flask session machinery**: its session interface opens a null session.
* **Cookie**: ``<43-char id>.<43-char HMAC-SHA256>``, the same format and crypto
  as tablesessions' cookie (the HMAC key derived once at start-up, not per
  request); verified with ``hmac.compare_digest``. A new or changed session gets
  ``Set-Cookie`` with the same attributes (``Max-Age``, ``Expires``, ``Path``,
  ``Secure``, ``HttpOnly``, ``SameSite=Lax``) and ``Vary: Cookie``.
* **Keys**: RowKey = SHA-256 of the id, PartitionKey from its first hex digit.
* **create**: one ``create_entity`` of a copy of the entity the library wrote
  for the same data (payload already encoded and compressed: nothing encoded).
* **read**: one ``get_entity`` and an expiry check; nothing decoded, the body is
  a constant of the same length as the library app's.
* **modify**: ``get_entity``, then ``update_entity`` (replace, If-Match its ETag)
  of the entity as read with a new expiry and write token; nothing re-encoded.
* **No encryption**: the library app seals every payload with AES-256-GCM under
  keys derived from ``SECRET_KEY`` (the integration's default, docs/security.md)
  and opens it on a read; the floor writes and reads the plaintext row. So the
  library side carries work the floor skips (a profile of the create flow:
  ~50 us of client CPU per request, the AEAD call and its bookkeeping), which
  makes these ratios conservative.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import format_datetime
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableEntity, UpdateMode
from flask import Flask, Response, request, session
from flask.sessions import SessionInterface, SessionMixin
from flask.testing import FlaskClient

import tablesessions

from .harness import Comparison, Samples, Step, Stopwatch, compare
from .payloads import KIB, session_data
from .scenarios import IDLE, NO_ECHO, Rig, plain, utcnow

SECRET = "benchmark-secret-key"
COOKIE = "session"
#: Issue 18: every Flask flow within 5 % of the plain app making the same SDK calls.
FLASK_TARGET = 0.95
_PURPOSE = b"tablesessions/session-cookie/v1"
_USER = "Alice Example"


def library_app(store: tablesessions.SessionStore, data: dict[str, Any]) -> Flask:
    """The app under test: ``flask.session`` backed by ``store``."""
    from tablesessions.flask import TableSessions

    app = Flask("bench_library")
    app.config.update(SECRET_KEY=SECRET)
    TableSessions(app, store=store)

    @app.post("/create")
    def create() -> str:
        session.update(data)
        return "created"

    @app.get("/read")
    def read() -> str:
        user = session.get("user")
        return str(user["name"]) if user else ""

    @app.post("/modify")
    def modify() -> str:
        session["visits"] = session["visits"] + 1
        return "modified"

    @app.get("/plain")
    def plain_view() -> str:
        return "never touches the session"

    return app


def cookie_app(data: dict[str, Any]) -> Flask:
    """Flask's own signed-cookie session, the same views: the framework's cost
    with no storage at all (the data travels in the cookie)."""
    app = Flask("bench_cookie")
    app.config.update(SECRET_KEY=SECRET)

    @app.post("/create")
    def create() -> str:
        session.update(data)
        return "created"

    @app.get("/read")
    def read() -> str:
        user = session.get("user")
        return str(user["name"]) if user else ""

    @app.post("/modify")
    def modify() -> str:
        session["visits"] = session["visits"] + 1
        return "modified"

    return app


class _NoSessions(SessionInterface):
    """The floor app does its own session work in the views."""

    def open_session(self, app: Flask, request: Any) -> SessionMixin | None:
        return None

    def save_session(self, app: Flask, session: SessionMixin, response: Any) -> None:
        return None


@dataclass
class FloorCookies:
    """HMAC-SHA256 cookie signing, as tablesessions does it, key derived once."""

    key: bytes

    @classmethod
    def for_secret(cls, secret: str) -> FloorCookies:
        return cls(hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest())

    def _mac(self, sid: str) -> str:
        digest = hmac.new(self.key, sid.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def sign(self, sid: str) -> str:
        return f"{sid}.{self._mac(sid)}"

    def unsign(self, value: str | None) -> str | None:
        if not value or len(value) != 87:
            return None
        sid, _, sig = value.partition(".")
        return sid if hmac.compare_digest(self._mac(sid), sig) else None

    @staticmethod
    def header(value: str, expires: dt.datetime, now: dt.datetime) -> str:
        max_age = int((expires - now).total_seconds())
        return (f"{COOKIE}={value}; Max-Age={max_age}; "
                f"Expires={format_datetime(expires, usegmt=True)}; Path=/; Secure; HttpOnly; "
                "SameSite=Lax")


def _keys(sid: str) -> tuple[str, str]:
    rk = hashlib.sha256(sid.encode("ascii")).hexdigest()
    return f"floor-{rk[0]}", rk


def floor_app(table: TableClient, template: dict[str, Any], *, no_echo: bool = False) -> Flask:
    """The floor: the same storage calls and cookie work, written by hand; with
    ``no_echo``, its insert asks the service not to echo the row back, as the
    library's does (``Prefer: return-no-content``)."""
    app = Flask("bench_floor")
    app.session_interface = _NoSessions()
    cookies = FloorCookies.for_secret(SECRET)
    create_options = NO_ECHO if no_echo else {}

    def with_cookie(body: str, sid: str, expires: dt.datetime, now: dt.datetime) -> Response:
        response = Response(body)
        response.headers.add("Set-Cookie", cookies.header(cookies.sign(sid), expires, now))
        response.vary.add("Cookie")
        return response

    def load() -> tuple[str, TableEntity] | None:
        sid = cookies.unsign(request.cookies.get(COOKIE))
        if sid is None:
            return None
        entity = table.get_entity(*_keys(sid))
        if entity["ExpiresAt"] <= utcnow():
            return None
        return sid, entity

    @app.post("/create")
    def create() -> Response:
        sid = secrets.token_urlsafe(32)
        pk, rk = _keys(sid)
        now = utcnow()
        expires = now + IDLE
        table.create_entity({**template, "PartitionKey": pk, "RowKey": rk, "ExpiresAt": expires,
                             "CreatedAt": now, "WriteToken": secrets.token_hex(8)},
                            **create_options)
        return with_cookie("created", sid, expires, now)

    @app.get("/read")
    def read() -> Response:
        loaded = load()
        response = Response(_USER if loaded else "")
        response.vary.add("Cookie")
        return response

    @app.post("/modify")
    def modify() -> Response:
        loaded = load()
        if loaded is None:
            return Response("", status=401)
        sid, entity = loaded
        now = utcnow()
        expires = now + IDLE
        etag = entity.metadata["etag"]
        table.update_entity({**plain(entity), "ExpiresAt": expires,
                             "WriteToken": secrets.token_hex(8)},
                            mode=UpdateMode.REPLACE, etag=etag,
                            match_condition=MatchConditions.IfNotModified)
        return with_cookie("modified", sid, expires, now)

    return app


def _cookie_of(response: Any) -> str:
    for header in response.headers.getlist("Set-Cookie"):
        name, _, rest = header.partition("=")
        if name == COOKIE:
            return str(rest.split(";", 1)[0])
    raise AssertionError("the create flow set no session cookie")


def _step(client: FlaskClient, method: str, path: str, cookie: str | None,
          expect: int = 200) -> Callable[[Stopwatch], None]:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    call = client.post if method == "POST" else client.get

    def step(watch: Stopwatch) -> None:
        with watch:
            response = call(path, headers=headers)
        assert response.status_code == expect, response.status_code

    return step


def _three_way(steps: tuple[Step, Step, Step], iterations: int,
               warmup: int) -> tuple[Samples, Samples, Samples]:
    """Interleave three steps, rotating which goes first each iteration."""
    out = (Samples(), Samples(), Samples())
    gc.collect()
    for i in range(warmup + iterations):
        shift = i % 3
        for index in (*range(shift, 3), *range(shift)):
            watch = Stopwatch()
            steps[index](watch)
            if i >= warmup and watch.elapsed_ns is not None:
                out[index].wall_ns.append(watch.elapsed_ns)
                out[index].cpu_ns.append(watch.cpu_ns)
    return out


def flask_scenarios(rig: Rig, iterations: int, warmup: int, *,
                    no_echo_floor: bool = False) -> list[Comparison]:
    """create, read-only and modify flows: the library app against the floor app
    (a plain Flask app making the same SDK calls), with Flask's own cookie session
    (no storage) interleaved in the same loop; its figures are in ``extra``. With
    ``no_echo_floor``, the create flow again against a floor app whose insert asks
    for no echo, as the library's does (informative, no target)."""
    data = session_data(KIB)
    lib = library_app(rig.store, data).test_client(use_cookies=False)
    seed = rig.store.new()
    seed.update(data)
    rig.store.save(seed)
    template = rig.stored_entity(rig.store, seed)
    flo = floor_app(rig.table, template).test_client(use_cookies=False)
    cookie = cookie_app(data).test_client(use_cookies=False)

    lib_cookie = _cookie_of(lib.post("/create"))
    flo_cookie = _cookie_of(flo.post("/create"))
    flask_cookie = _cookie_of(cookie.post("/create"))
    assert lib.get("/read", headers={"Cookie": f"{COOKIE}={lib_cookie}"}).text == _USER
    assert flo.get("/read", headers={"Cookie": f"{COOKIE}={flo_cookie}"}).text == _USER
    assert cookie.get("/read", headers={"Cookie": f"{COOKIE}={flask_cookie}"}).text == _USER

    flows = [
        ("flask create", "POST", "/create", False, FLASK_TARGET),
        ("flask read-only", "GET", "/read", True, FLASK_TARGET),
        ("flask modify", "POST", "/modify", True, FLASK_TARGET),
    ]
    results = []
    for name, method, path, existing, target in flows:
        lib_s, flo_s, cookie_s = _three_way(
            (_step(lib, method, path, lib_cookie if existing else None),
             _step(flo, method, path, flo_cookie if existing else None),
             _step(cookie, method, path, flask_cookie if existing else None)),
            iterations, warmup)
        comparison = Comparison(name, lib_s.stats(), flo_s.stats(), target,
                                "Flask test client; see benchmarks/flask_flows.py for the "
                                "floor app")
        comparison.extra["flask_cookie_session"] = cookie_s.stats().to_dict()
        results.append(comparison)
    if no_echo_floor:
        quiet = floor_app(rig.table, template, no_echo=True).test_client(use_cookies=False)
        results.append(compare("flask create, floor asks for no echo",
                               _step(lib, "POST", "/create", None),
                               _step(quiet, "POST", "/create", None), iterations=iterations,
                               warmup=warmup, target=None,
                               notes="informative, no target: the floor app's create_entity "
                                     "with Prefer: return-no-content"))
        # The floor app making the store's very requests: no echo, and the store's
        # transport (a leaner requests session than the SDK default's, which the
        # floor above keeps). What is left is the integration's and the store's own work.
        like_store = floor_app(rig.table_on_store_transport, template,
                               no_echo=True).test_client(use_cookies=False)
        like_cookie = _cookie_of(like_store.post("/create"))
        for name, method, path, existing, _ in flows:
            results.append(compare(
                f"{name}, floor on the store's transport and no echo",
                _step(lib, method, path, lib_cookie if existing else None),
                _step(like_store, method, path, like_cookie if existing else None),
                iterations=iterations, warmup=warmup, target=None,
                notes="informative, no target: the floor app on the store's sync transport, "
                      "its insert with Prefer: return-no-content"))
    return results
