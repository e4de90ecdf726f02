"""Demo instance A: Flask with ``tablesessions.flask`` on the sync store.

The store comes from the ``TABLESESSIONS_*`` environment variables that
:mod:`examples.demo.run` sets; ``DEMO_SECRET_KEY`` is shared with instance B.
Run alone with ``python -m examples.demo.flask_app --port 8001``.
"""

from __future__ import annotations

import argparse
import os

from flask import Flask, jsonify, redirect, request, session
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from examples.demo.meter import CallMeter
from examples.demo.page import login_name, render, state, upload_bytes, wants_json
from tablesessions import SessionStore
from tablesessions.flask import TableSessions, regenerate

FRAMEWORK = "Flask"


def create_app(instance: str | None = None, secret: str | None = None,
               other_url: str | None = None) -> Flask:
    """Build instance A; arguments default to the ``DEMO_*`` environment variables."""
    instance = instance or os.environ.get("DEMO_INSTANCE", "A")
    other_url = other_url or os.environ.get("DEMO_OTHER_URL")
    app = Flask("demo-flask")
    app.config["SECRET_KEY"] = secret or os.environ["DEMO_SECRET_KEY"]
    # The demo serves plain http on loopback; production keeps the default (Secure on).
    app.config["TABLESESSIONS_COOKIE_SECURE"] = False
    meter = CallMeter()  # counts this instance's storage calls, per request
    # The store from the TABLESESSIONS_* environment variables, its calls counted.
    TableSessions(app, store=SessionStore.from_env(client_options=meter.client_options()))
    app.wsgi_app = meter.wsgi(app.wsgi_app)  # type: ignore[method-assign]

    def reply() -> Response:
        if wants_json(request.headers.get("Accept")):
            return jsonify(state(instance, FRAMEWORK, session))
        return redirect("/", code=303)

    @app.get("/health")
    def health() -> str:
        return "ok"  # never touches the session: no storage call

    @app.get("/")
    def index() -> str:
        data = state(instance, FRAMEWORK, session)  # reads the session: the call is counted
        return render(data, other_url, calls=meter.so_far(), previous=meter.previous(),
                      pid=os.getpid())

    @app.get("/state")
    def show() -> Response:
        return jsonify(state(instance, FRAMEWORK, session))

    @app.post("/login")
    def login() -> Response:
        regenerate()  # a new session id at login: defeats session fixation
        session["user"] = login_name(request.get_data())
        return reply()

    @app.post("/count")
    def count() -> Response:
        session["count"] = session.get("count", 0) + 1
        return reply()

    @app.post("/upload")
    def upload() -> Response:
        session["upload"] = upload_bytes(request.content_type, request.get_data())
        return reply()

    @app.post("/logout")
    def logout() -> Response:
        session.clear()  # deletes the stored session and clears the cookie
        return reply()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = make_server(args.host, args.port, create_app(), threaded=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
