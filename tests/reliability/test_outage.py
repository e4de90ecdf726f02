"""Outages longer than the deadline: every request fails (503), hangs, or has its
connection reset. Operations must fail within the deadline plus a small margin,
never hang; ``on_storage_error="empty"`` turns the failures into "no session" and
dropped writes, counted; and the connection and read timeouts are honoured.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from azure.core.exceptions import AzureError, ServiceRequestError

from tablesessions import RetryPolicy, Session, SessionTooLargeError
from tablesessions.testing import ACCOUNT_NAME, AzuriteServer, Fault, FaultProxyPair
from tests.conftest import Face, MakeStore

DEADLINE = RetryPolicy().deadline  # the request-path default: 2 s
MARGIN = 1.0
HANG = 30.0  # how long a "hanging" request is held: far beyond any deadline

OUTAGES = [Fault.BUSY_503, Fault.DELAY, Fault.RESET]


def _start_outage(fault_proxy: FaultProxyPair, kind: Fault) -> None:
    if kind is Fault.DELAY:
        fault_proxy.configure(delay=HANG)
    fault_proxy.outage(kind=kind)


async def _setup(make_store: MakeStore, fault_proxy: FaultProxyPair,
                 **options: Any) -> tuple[Face, Face, Session]:
    """(clean, proxied, a stored session loaded through the proxy)."""
    clean = await make_store()
    created = clean.new()
    created["user"] = "ada"
    await clean.save(created)
    proxied = await make_store(fault_proxy.connection_string, **options)
    loaded = await proxied.get(created.id)
    assert loaded is not None
    fault_proxy.reset_stats()
    return clean, proxied, loaded


Operation = Callable[[Face, Session], Awaitable[Any]]


async def _get(store: Face, session: Session) -> Any:
    return await store.get(session.id)


async def _save_new(store: Face, session: Session) -> Any:
    fresh = store.new()
    fresh["n"] = 1
    return await store.save(fresh)


async def _save_update(store: Face, session: Session) -> Any:
    session["n"] = 2
    return await store.save(session)


async def _delete(store: Face, session: Session) -> Any:
    return await store.delete(session.id)


OPERATIONS: dict[str, Operation] = {
    "get": _get, "save_new": _save_new, "save_update": _save_update, "delete": _delete,
}


async def _timed(operation: Awaitable[Any]) -> tuple[float, Any]:
    started = time.monotonic()
    try:
        result = await operation
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, result


@pytest.mark.parametrize("op", list(OPERATIONS))
@pytest.mark.parametrize("kind", OUTAGES, ids=lambda k: k.value)
async def test_an_outage_surfaces_within_the_deadline(
    make_store: MakeStore, fault_proxy: FaultProxyPair, kind: Fault, op: str
) -> None:
    _, proxied, session = await _setup(make_store, fault_proxy)
    _start_outage(fault_proxy, kind)

    elapsed, outcome = await _timed(OPERATIONS[op](proxied, session))

    face = "async" if proxied.is_async else "sync"
    print(f"\noutage {kind.value:>5} {face:>5} {op:<11}: {type(outcome).__name__} after "
          f"{elapsed:.2f} s, {fault_proxy.stats.seen} requests")  # figures for the docs
    assert isinstance(outcome, AzureError), f"expected an Azure error, got {outcome!r}"
    assert elapsed <= DEADLINE + MARGIN, f"{op} took {elapsed:.2f} s under a {kind.value} outage"
    # A hang too: each attempt waits a share of the time left, not all of it.
    assert fault_proxy.stats.seen > 1, "a failure must be retried within the deadline"
    # The outage ends: the same store works again at once (no poisoned connection pool).
    fault_proxy.clear()
    stored = await proxied.get(session.id)
    assert stored is not None and stored["user"] == "ada"


@pytest.mark.parametrize("kind", OUTAGES, ids=lambda k: k.value)
async def test_empty_policy_turns_an_outage_into_no_session(
    make_store: MakeStore, fault_proxy: FaultProxyPair, kind: Fault
) -> None:
    deadline = 0.5  # shorter than the default only to keep the test quick
    clean, proxied, session = await _setup(make_store, fault_proxy, on_storage_error="empty",
                                           retry=RetryPolicy(deadline=deadline))
    _start_outage(fault_proxy, kind)

    elapsed, result = await _timed(proxied.get(session.id))
    assert result is None
    assert elapsed <= deadline + MARGIN
    for op in ("save_new", "save_update", "delete"):
        elapsed, result = await _timed(OPERATIONS[op](proxied, session))
        assert result is None, f"{op}: {result!r}"
        assert elapsed <= deadline + MARGIN, f"{op} took {elapsed:.2f} s"

    stats = proxied.store.stats
    assert (stats.read_errors_absorbed, stats.write_errors_absorbed) == (1, 3)
    # The dropped writes really were dropped: storage still has the old session.
    fault_proxy.clear()
    stored = await clean.get(session.id)
    assert stored is not None and dict(stored) == {"user": "ada"}


async def test_empty_policy_never_hides_caller_bugs(make_store: MakeStore,
                                                     fault_proxy: FaultProxyPair) -> None:
    """Under "empty", only storage errors are absorbed: an unsupported value, an
    oversized session and a failed regenerate still raise, even mid-outage."""
    _, proxied, session = await _setup(make_store, fault_proxy, on_storage_error="empty",
                                       max_session_bytes=100)
    fault_proxy.outage()

    session["bad"] = object()
    with pytest.raises(TypeError):
        await proxied.save(session)
    del session["bad"]
    session["big"] = "x" * 1000
    with pytest.raises(SessionTooLargeError):
        await proxied.save(session)
    del session["big"]
    with pytest.raises(AzureError):
        await proxied.regenerate(session)  # a failed login must not pass silently
    stats = proxied.store.stats
    assert (stats.read_errors_absorbed, stats.write_errors_absorbed) == (0, 0)


async def test_a_failed_logout_can_be_retried(make_store: MakeStore,
                                              fault_proxy: FaultProxyPair) -> None:
    """delete(session) fails during an outage; the caller retries it afterwards.
    The retry must delete the row.

    Today ``_ops.delete`` marks the Session deleted (``_forget``) before the
    DeleteEntity is attempted, so the retry sees ``_stored is None`` and does
    nothing: the user stays logged in. (Under "empty" the first call already
    returns quietly with the same result.)
    """
    clean, proxied, session = await _setup(make_store, fault_proxy)
    fault_proxy.outage()
    with pytest.raises(AzureError):
        await proxied.delete(session)
    fault_proxy.clear()

    await proxied.delete(session)

    assert await clean.get(session.id) is None, "the session outlived a retried logout"


# -- timeouts ---------------------------------------------------------------------


async def test_read_timeout_fails_a_slow_attempt(make_store: MakeStore,
                                                 fault_proxy: FaultProxyPair) -> None:
    read_timeout, delay = 0.3, 1.5
    _, proxied, session = await _setup(
        make_store, fault_proxy, read_timeout=read_timeout,
        retry=RetryPolicy(max_attempts=1, deadline=10.0))
    fault_proxy.table.configure(delay=delay)
    fault_proxy.table.fail_next(Fault.DELAY, methods={"GET"})

    elapsed, outcome = await _timed(proxied.get(session.id))

    assert isinstance(outcome, AzureError)
    assert read_timeout <= elapsed < delay, f"{elapsed:.2f} s: read_timeout not applied"


async def test_read_timeout_then_retry_succeeds(make_store: MakeStore,
                                                fault_proxy: FaultProxyPair) -> None:
    read_timeout, delay = 0.3, 1.5
    _, proxied, session = await _setup(
        make_store, fault_proxy, read_timeout=read_timeout,
        retry=RetryPolicy(max_attempts=2, deadline=10.0))
    fault_proxy.table.configure(delay=delay)
    fault_proxy.table.fail_next(Fault.DELAY, methods={"GET"})

    elapsed, result = await _timed(proxied.get(session.id))

    assert isinstance(result, Session) and result["user"] == "ada"
    assert elapsed < delay
    assert fault_proxy.table.stats.seen == 2


async def test_deadline_caps_the_read_timeout(make_store: MakeStore,
                                              fault_proxy: FaultProxyPair) -> None:
    """A read timeout longer than the deadline never holds a request past it."""
    _, proxied, session = await _setup(
        make_store, fault_proxy, read_timeout=60.0, retry=RetryPolicy(deadline=1.0))
    fault_proxy.configure(delay=HANG)
    fault_proxy.outage(kind=Fault.DELAY)

    elapsed, outcome = await _timed(proxied.get(session.id))

    assert isinstance(outcome, AzureError)
    assert elapsed <= 1.0 + MARGIN


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A port where TCP connects stall: a listener whose accept queue is full and
    never drained, so the kernel drops further SYNs."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(4):
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # completes in the background
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.1)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@pytest.mark.parametrize(("connection_timeout", "deadline"), [(0.3, 10.0), (30.0, 1.0)])
async def test_connection_timeout_fails_a_stalled_connect(
    make_store: MakeStore, azurite: AzuriteServer, stalled_port: int,
    connection_timeout: float, deadline: float
) -> None:
    """``connection_timeout`` bounds one connect; the deadline bounds it too."""
    await make_store()  # the test's storage, created directly
    endpoint = f"http://127.0.0.1:{stalled_port}/{ACCOUNT_NAME}"
    stalled = await make_store(
        azurite.connection_string_for(table_endpoint=endpoint, blob_endpoint=endpoint),
        connection_timeout=connection_timeout, read_timeout=30.0,
        retry=RetryPolicy(max_attempts=1, deadline=deadline))
    session = stalled.new()
    session["n"] = 1

    elapsed, outcome = await _timed(stalled.save(session))

    assert isinstance(outcome, ServiceRequestError), repr(outcome)
    assert elapsed < min(connection_timeout, deadline) + MARGIN
