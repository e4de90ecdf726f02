"""Run the demo: Azurite, two instances on one store, and a scripted client.

``python -m examples.demo`` prints a transcript and exits 0 when every step
behaved as expected (1 otherwise). ``--serve`` keeps the instances running and
prints their URLs. Everything it starts (Azurite and both instances, each in
its own process group) is stopped on exit, on failure and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from azure.storage.blob import ContainerClient

from examples.demo.meter import HEADER, Calls
from tablesessions import SessionStore
from tablesessions.testing import AzuriteNotFoundError, AzuriteServer, unique_name
from tablesessions.testing.azurite import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
UPLOAD_BYTES = 2_000_000
#: The sweeper deletes only sessions expired for a while (a margin for clock
#: skew between web servers). The demo's sweeper clock runs ahead so nobody waits.
SWEEPER_CLOCK_AHEAD = dt.timedelta(minutes=10)


class DemoError(RuntimeError):
    """A step did not behave as the transcript says it should."""


@dataclass(frozen=True)
class StoreSettings:
    """Where the instances keep their sessions: one table, one container, one app."""

    connection_string: str
    table_name: str
    container_name: str
    app_name: str = "demo"
    idle_timeout: float = 6.0

    def environ(self) -> dict[str, str]:
        return {"TABLESESSIONS_CONNECTION_STRING": self.connection_string,
                "TABLESESSIONS_TABLE_NAME": self.table_name,
                "TABLESESSIONS_CONTAINER_NAME": self.container_name,
                "TABLESESSIONS_APP_NAME": self.app_name,
                "TABLESESSIONS_IDLE_TIMEOUT_SECONDS": str(self.idle_timeout)}

    def store(self, **options: Any) -> SessionStore:
        return SessionStore.from_connection_string(
            self.connection_string, table_name=self.table_name,
            container_name=self.container_name, app_name=self.app_name,
            idle_timeout=dt.timedelta(seconds=self.idle_timeout), **options)


@dataclass
class Instance:
    """One running web app: a subprocess in its own process group."""

    label: str
    framework: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text("utf-8", "replace")[-limit:] or "<no output>"
        except OSError:
            return "<no log>"


# -- the instances -----------------------------------------------------------------------
def _start(label: str, framework: str, port: int, argv: Sequence[str], env: dict[str, str],
           log_dir: Path) -> Instance:
    log_path = log_dir / f"{label}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv), cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)  # own group: stop kills all
    return Instance(label, framework, f"http://{HOST}:{port}", process, log_path)


def _wait_ready(instance: Instance, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if instance.process.poll() is not None:
            raise DemoError(f"instance {instance.label} ({instance.framework}) exited with "
                            f"{instance.process.returncode}:\n{instance.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(instance.url + "/health", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise DemoError(f"instance {instance.label} was not ready in {timeout:g} s:\n"
                            f"{instance.log_tail()}")
        time.sleep(0.1)


def _stop(instance: Instance, grace: float = 5.0) -> None:
    process = instance.process
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)  # the group: uvicorn or werkzeug and any children
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # Whatever is left of the group (the leader is reaped above).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def run_instances(settings: StoreSettings, secret: str, *,
                  startup_timeout: float = 60.0) -> Iterator[tuple[Instance, Instance]]:
    """Run instance A (Flask) and B (Starlette) on free loopback ports; stop both after."""
    port_a, port_b = free_ports(2)
    url_a, url_b = f"http://{HOST}:{port_a}", f"http://{HOST}:{port_b}"
    base = {**os.environ, **settings.environ(), "DEMO_SECRET_KEY": secret,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                        os.environ.get("PYTHONPATH")]))}
    started: list[Instance] = []
    with tempfile.TemporaryDirectory(prefix="tablesessions-demo-") as logs:
        try:
            started.append(_start(
                "A", "Flask", port_a,
                [sys.executable, "-m", "examples.demo.flask_app", "--port", str(port_a)],
                {**base, "DEMO_INSTANCE": "A", "DEMO_OTHER_URL": url_b + "/"}, Path(logs)))
            started.append(_start(
                "B", "Starlette", port_b,
                [sys.executable, "-m", "uvicorn", "--factory",
                 "examples.demo.starlette_app:create_app", "--host", HOST,
                 "--port", str(port_b), "--log-level", "warning", "--no-access-log"],
                {**base, "DEMO_INSTANCE": "B", "DEMO_OTHER_URL": url_a + "/"}, Path(logs)))
            for instance in started:
                _wait_ready(instance, startup_timeout)
            yield started[0], started[1]
        finally:
            for instance in reversed(started):
                _stop(instance)


# -- the transcript ------------------------------------------------------------------------------
def say(text: str = "") -> None:
    print(text, flush=True)


def fingerprint(cookie_value: str) -> str:
    """A short, non-secret tag for a cookie's session id (the id itself is a secret)."""
    session_id = cookie_value.partition(".")[0]
    return "sid#" + hashlib.sha256(session_id.encode()).hexdigest()[:8]


def describe(data: dict[str, Any]) -> str:
    who = data["user"] or "anonymous"
    text = f"{who}, count {data['count']}"
    if data["upload_bytes"]:
        text += f", upload {data['upload_bytes']:,} bytes"
    return text


def storage_calls(response: httpx.Response) -> str:
    """What the instance's ``X-Storage-Calls`` header says this request cost."""
    fields = dict(part.split("=", 1) for part in
                  response.headers.get(HEADER, "").split() if "=" in part)
    try:
        return Calls(int(fields["reads"]), int(fields["writes"])).text()
    except (KeyError, ValueError):
        return "storage calls unknown"


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise DemoError(message)


class Script:
    """The scripted browser: one cookie jar, hopping between the two instances."""

    def __init__(self, a: Instance, b: Instance, settings: StoreSettings) -> None:
        self.a, self.b, self.settings = a, b, settings
        self.http = httpx.Client(headers={"Accept": "application/json"}, timeout=60)
        self.cookie: str | None = None

    def call(self, instance: Instance, method: str, path: str, *, show: str = "",
             content: bytes | None = None, data: dict[str, str] | None = None,
             client: httpx.Client | None = None) -> dict[str, Any]:
        response = (client or self.http).request(method, instance.url + path,
                                                 content=content, data=data)
        if response.status_code != 200:
            raise DemoError(f"{method} {path} on {instance.label} answered "
                            f"{response.status_code}:\n{instance.log_tail()}")
        state: dict[str, Any] = response.json()
        note = self._cookie_note(response) if client is None else ""
        request = f"{method:<4} {path}{(' ' + show) if show else ''}"
        say(f"  {instance.label} {instance.framework:<9} {request:<30} -> {describe(state)}"
            f"  [{storage_calls(response)}]" + (f"\n{'':16}{note}" if note else ""))
        return state

    def _cookie_note(self, response: httpx.Response) -> str:
        header = response.headers.get("set-cookie")
        if header is None:
            return ""
        first, *attrs = [part.strip() for part in header.split(";")]
        value = first.partition("=")[2]
        if not value or "Max-Age=0" in attrs:
            self.cookie = None
            return "Set-Cookie clears the cookie (Max-Age=0)"
        before, self.cookie = self.cookie, value
        max_age = next((a for a in attrs if a.startswith("Max-Age=")),
                       "no Max-Age (a browser-session cookie)")
        if before == value:
            return f"Set-Cookie again: {max_age} (the session was written)"
        flags = "; ".join(a for a in attrs if not a.startswith("Expires"))
        change = f" (was {fingerprint(before)})" if before else ""
        return f"Set-Cookie: session={fingerprint(value)}{change}; {flags}"

    def blobs(self) -> list[tuple[str, int]]:
        with ContainerClient.from_connection_string(
                self.settings.connection_string, self.settings.container_name) as container:
            # Overflow blobs are named <app>/<hash of the session id>/<random>.
            return [(b.name, b.size or 0) for b in
                    container.list_blobs(name_starts_with=self.settings.app_name + "/")]

    def run(self, store: SessionStore) -> None:
        a, b = self.a, self.b
        say("\n1. An anonymous visitor")
        state = self.call(a, "GET", "/state")
        expect(state["user"] is None and self.cookie is None, "a first visit stores nothing")
        say(f"{'':16}no cookie: an empty session is never stored")
        state = self.call(b, "POST", "/count")
        expect(state["count"] == 1 and self.cookie is not None, "the first write sets a cookie")
        anonymous_cookie = self.cookie

        say("\n2. Login regenerates the session id (no session fixation)")
        state = self.call(a, "POST", "/login", show="user=alice", data={"user": "alice"})
        expect(state == {**state, "user": "alice", "count": 1}, "login keeps the data")
        expect(self.cookie not in (None, anonymous_cookie), "login changes the session id")
        with httpx.Client(headers={"Accept": "application/json",
                                   "Cookie": f"session={anonymous_cookie}"}) as old:
            state = self.call(b, "GET", "/state", show="(pre-login cookie)", client=old)
        expect(state["user"] is None and state["count"] == 0, "the pre-login id is dead")
        say(f"{'':16}the pre-login cookie now opens nothing")

        say("\n3. A counter that survives every hop")
        for hop, instance in enumerate((b, a, b, a), start=2):
            state = self.call(instance, "POST", "/count")
            expect(state == {**state, "user": "alice", "count": hop},
                   f"count {hop} as alice on {instance.label}")

        say(f"\n4. A large upload ({UPLOAD_BYTES / 1e6:.0f} MB) overflows into a blob")
        payload = os.urandom(UPLOAD_BYTES)  # incompressible, so it cannot stay inline
        state = self.call(b, "POST", "/upload", show=f"{UPLOAD_BYTES:,} bytes", content=payload)
        expect(state["upload_bytes"] == UPLOAD_BYTES, "the upload is in the session")
        blobs = self.blobs()
        expect(len(blobs) == 1 and blobs[0][1] >= UPLOAD_BYTES, f"one overflow blob: {blobs}")
        say(f"{'':16}blob container: {blobs[0][0][:40]}... ({blobs[0][1]:,} bytes)")
        state = self.call(a, "GET", "/state")
        expect(state["upload_bytes"] == UPLOAD_BYTES, "instance A reads the blob back")
        say(f"{'':16}instance A read the session back through the blob")

        say("\n5. Logout")
        state = self.call(a, "POST", "/logout")
        expect(state["user"] is None and self.cookie is None, "logout clears the cookie")
        expect(self.blobs() == [], "the blob went with the session")
        say(f"{'':16}blob container: empty (the blob was deleted with the session)")
        state = self.call(b, "GET", "/state")
        expect(state["user"] is None, "logged out on B too")

        idle = self.settings.idle_timeout
        say(f"\n6. Idle expiry ({idle:g} s in this demo) and the sweeper")
        self.call(b, "POST", "/login", show="user=bob", data={"user": "bob"})
        state = self.call(a, "POST", "/count")
        expect(state == {**state, "user": "bob", "count": 1}, "bob counts on A")
        bob_cookie = self.cookie
        wait = idle + 1.5
        say(f"{'':16}... {wait:g} s without a request ...")
        time.sleep(wait)
        state = self.call(a, "GET", "/state")
        expect(state["user"] is None, "the idle session expired")
        say(f"{'':16}the server expired the idle session (the browser-session cookie "
            "was still sent)")
        with httpx.Client(headers={"Accept": "application/json",
                                   "Cookie": f"session={bob_cookie}"}) as kept:
            state = self.call(b, "GET", "/state", show="(bob's cookie kept)", client=kept)
        expect(state["user"] is None, "an expired session stays expired")
        say(f"{'':16}expired anyway: every read checks the deadlines, sweeper or not")
        stats = store.storage_stats()
        say(f"{'':16}table: {stats.sessions} session row(s), {stats.expired} expired "
            "(Table Storage has no TTL: rows stay until a sweep)")
        ahead = SWEEPER_CLOCK_AHEAD
        say(f"{'':16}the sweeper spares freshly expired rows for a margin (clock skew "
            f"between servers);\n{'':16}this demo runs its sweeper's clock "
            f"{ahead.total_seconds() / 60:g} minutes ahead "
            "instead of waiting")

        def clock() -> dt.datetime:
            return dt.datetime.now(dt.timezone.utc) + ahead

        with self.settings.store(clock=clock) as sweeper:
            report = sweeper.sweep()
        say(f"{'':16}store.sweep(): scanned={report.scanned} deleted={report.deleted} "
            f"blobs_deleted={report.blobs_deleted} orphans_deleted={report.orphans_deleted} "
            f"errors={report.errors} complete={report.complete}")
        expect(report.deleted >= 1 and report.errors == 0, "the sweep deletes bob's session")
        stats = store.storage_stats()
        expect(stats.sessions == 0, "nothing left after the sweep")
        say(f"{'':16}table: {stats.sessions} session rows")

    def close(self) -> None:
        self.http.close()


# -- entry point -----------------------------------------------------------------------------------
def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through every `finally`: all processes stop


def serve(a: Instance, b: Instance) -> None:
    say("\nOpen in a browser (same host, different ports: the cookie is shared):")
    for instance in (a, b):
        say(f"  instance {instance.label} ({instance.framework}): {instance.url}/")
    say("Log in on one, count on the other: it is one session. Ctrl-C stops everything.")
    while all(i.process.poll() is None for i in (a, b)):
        time.sleep(0.5)
    dead = next(i for i in (a, b) if i.process.poll() is not None)
    raise DemoError(f"instance {dead.label} exited:\n{dead.log_tail()}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.demo", description=__doc__)
    parser.add_argument("--serve", action="store_true",
                        help="keep the instances running for a browser instead of the script")
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                        help="session idle timeout (default: 6 for the script, 1200 with --serve)")
    args = parser.parse_args(argv)
    idle = args.idle_timeout or (1200.0 if args.serve else 6.0)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    started: list[str] = []
    try:
        with AzuriteServer() as azurite:
            started.append("Azurite")
            settings = StoreSettings(azurite.connection_string, unique_name("demo"),
                                     unique_name("demo"), idle_timeout=idle)
            with settings.store() as store:
                store.create_storage()
                with run_instances(settings, secrets.token_urlsafe(32)) as (a, b):
                    started[:0] = ["instance A", "instance B"]
                    say("tablesessions demo: one session, two instances, two frameworks")
                    say(f"  Azurite     tables {azurite.table_endpoint}  "
                        f"blobs {azurite.blob_endpoint}")
                    say(f"  store       table {settings.table_name}, container "
                        f"{settings.container_name}, app {settings.app_name!r}, "
                        f"idle timeout {idle:g} s")
                    say(f"  instance A  Flask      {a.url}  (sync store)")
                    say(f"  instance B  Starlette  {b.url}  (async store; same table, same secret)")
                    if args.serve:
                        serve(a, b)
                    else:
                        script = Script(a, b, settings)
                        try:
                            script.run(store)
                        finally:
                            script.close()
    except AzuriteNotFoundError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    except DemoError as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
        say(f"stopped: {', '.join(started) or 'nothing was running'}")
        return 1
    except KeyboardInterrupt:
        say(f"\ninterrupted; stopped: {', '.join(started) or 'nothing was running'}")
        return 130
    say(f"\nAll steps behaved as expected. Stopped: {', '.join(started)}.")
    return 0
