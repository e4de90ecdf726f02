"""Shared fixtures: one behaviour suite runs against both the sync and async faces."""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import tablesessions
import tablesessions.aio
from tablesessions._sessions import ids as _ids
from tablesessions._sessions import ops as _ops
from tablesessions.testing import ACCOUNT_KEY, AzuriteServer, RequestCounter


class FakeClock:
    """An injectable clock (aware UTC) that tests move forward instead of sleeping."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


class Face:
    """The sync or the async store behind one awaitable interface, so a single
    test body covers both faces (sync calls simply block; it is a test)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.is_async = isinstance(store, tablesessions.aio.SessionStore)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.store, name)
        if not callable(method):
            return method  # type: ignore[no-any-return]

        async def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return call

    def new(self) -> tablesessions.Session:
        session: tablesessions.Session = self.store.new()
        return session


#: Data tests may store to prove it never reaches a log line.
CANARY = "canary-secret-value-7f3a"


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.name}: {record.getMessage()}")
        except Exception:
            self.lines.append(f"{record.name}: {record.msg!r}")


@pytest.fixture(autouse=True)
def no_secrets_in_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Across the whole suite: no session id issued during a test, no account key
    and no canary data may appear in any log record (ours at DEBUG, everyone
    else's at INFO, where azure-core logs request URLs and headers)."""
    issued: list[str] = []
    real = _ids.new_session_id

    def tracking() -> str:
        sid = real()
        issued.append(sid)
        return sid

    for module in (_ids, _ops):
        monkeypatch.setattr(module, "new_session_id", tracking)
    recorder = _Recorder()
    root, ours = logging.getLogger(), logging.getLogger("tablesessions")
    levels = root.level, ours.level
    root.addHandler(recorder)
    root.setLevel(logging.INFO)
    ours.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(recorder)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
    secrets = [*issued, ACCOUNT_KEY, CANARY]
    leaks = [line for line in recorder.lines for s in secrets if s in line]
    assert not leaks, f"secret material in log records: {leaks[:3]}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sync", "async"])
def face_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


MakeStore = Callable[..., Any]


@contextlib.asynccontextmanager
async def fresh_faces(classes: tuple[Any, Any], wrap: Callable[[Any], Any], face_kind: str,
                      azurite: AzuriteServer, storage_names: tuple[str, str],
                      request_counter: RequestCounter, clock: FakeClock
                      ) -> AsyncIterator[Callable[..., Any]]:
    """A builder of stores (or caches) of this test's face on a fresh table; the
    first has its storage created. All share the request counter (reset after
    set-up) and the clock; all are closed at the end. ``classes``: (sync, async);
    ``wrap`` puts either behind one awaitable interface."""
    made: list[Any] = []
    table, container = storage_names

    async def make(conn: str | None = None, **options: Any) -> Any:
        options.setdefault("table_name", table)
        options.setdefault("container_name", container)
        options.setdefault("clock", clock)
        options.setdefault("client_options", request_counter.client_options())
        cls = classes[1] if face_kind == "async" else classes[0]
        face = wrap(cls.from_connection_string(conn or azurite.connection_string, **options))
        if not made:
            await face.create_storage()
        made.append(face)
        request_counter.reset()
        return face

    try:
        yield make
    finally:
        for face in made:
            await face.close()


@pytest.fixture
async def make_store(face_kind: str, azurite: AzuriteServer, storage_names: tuple[str, str],
                     request_counter: RequestCounter, clock: FakeClock
                     ) -> AsyncIterator[MakeStore]:
    """Build stores of this test's face (see :func:`fresh_faces`)."""
    async with fresh_faces((tablesessions.SessionStore, tablesessions.aio.SessionStore), Face,
                           face_kind, azurite, storage_names, request_counter, clock) as make:
        yield make


def pytest_report_header(config: pytest.Config) -> str:
    from tests.budgets import EXHAUSTIVE, GATE_SHARE

    if EXHAUSTIVE:
        return "property-test budgets: exhaustive (CI=true or TABLESESSIONS_EXHAUSTIVE=1)"
    return (f"property-test budgets: 1/{GATE_SHARE} of the exhaustive ones "
            "(TABLESESSIONS_EXHAUSTIVE=1 runs them all, as CI does)")
