"""The retry layer: what counts as transient, how RetryPolicy bounds attempts and
time, and that the SDK clients the stores build never retry on their own.

Nothing here sleeps or touches the network: tenacity gets a fake ``sleep`` and
the deadline a fake monotonic clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)

import tablesessions
import tablesessions.aio
from tablesessions import RetryPolicy, is_transient
from tablesessions import retry as retry_module
from tablesessions.retry import TRANSIENT_STATUSES, Deadline
from tablesessions.testing import ACCOUNT_KEY, ACCOUNT_NAME

# ---------------------------------------------------------------------------
# is_transient


class _Response:
    """The two attributes HttpResponseError reads from a response."""

    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = f"status {status}"


def _http_error(status: int, cls: type[HttpResponseError] = HttpResponseError) -> HttpResponseError:
    return cls(message=f"HTTP {status}", response=cast(Any, _Response(status)))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert is_transient(_http_error(status))


def test_transient_status_set_is_exactly_the_documented_one() -> None:
    assert frozenset({408, 429, 500, 502, 503, 504}) == TRANSIENT_STATUSES


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, HttpResponseError),  # InvalidInput, PropertyValueTooLarge, EntityTooLarge
        (403, ClientAuthenticationError),
        (404, ResourceNotFoundError),
        (409, ResourceExistsError),
        (412, ResourceModifiedError),
        (413, HttpResponseError),
        (501, HttpResponseError),  # NotImplemented: retrying cannot help
    ],
)
def test_permanent_statuses_are_not_retried(status: int, cls: type[HttpResponseError]) -> None:
    assert not is_transient(_http_error(status, cls))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_transient_status_wins_whatever_the_sdk_class(status: int) -> None:
    # The SDKs map some statuses onto subclasses; the status decides, not the class.
    assert is_transient(_http_error(status, ResourceNotFoundError))


@pytest.mark.parametrize(
    "exc",
    [
        ServiceRequestError("connection refused"),
        ServiceResponseError("connection reset while reading the response"),
        ServiceRequestTimeoutError("connect timeout"),
        ServiceResponseTimeoutError("read timeout"),
        TimeoutError("timed out"),
        asyncio.TimeoutError(),  # a distinct class before Python 3.11
        ConnectionResetError(104, "reset by peer"),
        ConnectionRefusedError(111, "refused"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_connection_failures_and_timeouts_are_retried(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        HttpResponseError(message="no response at all"),  # status_code None
        DecodeError(message="malformed body"),
        AzureError("generic"),
        ValueError("a bug"),
        TypeError("a bug"),
        KeyboardInterrupt(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_everything_else_is_not_retried(exc: BaseException) -> None:
    assert not is_transient(exc)


# ---------------------------------------------------------------------------
# RetryPolicy: shape and validation


def test_policy_is_frozen() -> None:
    policy = RetryPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 10  # type: ignore[misc]


def test_documented_defaults() -> None:
    assert RetryPolicy() == RetryPolicy.request_path()
    request = RetryPolicy.request_path()
    assert (request.max_attempts, request.deadline) == (4, 2.0)
    background = RetryPolicy.background()
    assert (background.max_attempts, background.deadline) == (8, 60.0)
    assert tablesessions.StoreConfig().retry == request
    assert tablesessions.StoreConfig().background_retry == background


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": -1},
        {"initial_backoff": -0.1},
        {"max_backoff": -1.0},
        {"deadline": 0.0},
        {"deadline": -2.0},
        # NaN slips past every ``x < 0`` check: a NaN deadline never stops an
        # operation, a NaN initial_backoff turns backoff off (every sleep is 0)
        # and a NaN max_backoff removes the cap (sleep 20 would be ~3.5 hours).
        {"deadline": math.nan},
        {"initial_backoff": math.nan},
        {"max_backoff": math.nan},
        {"attempt_share": 0.0},
        {"attempt_share": 1.5},
        {"attempt_share": math.nan},
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_invalid_values_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


# ---------------------------------------------------------------------------
# RetryPolicy: behaviour under a fake clock


class FakeTime:
    """Stands in for the ``time`` module of ``tablesessions.retry``: a monotonic
    clock that only moves when the fake sleep (or a simulated call) moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(retry_module, "time", fake)
    return fake


@pytest.fixture
def seeded() -> Iterator[Callable[[int], None]]:
    """Seed the global ``random`` (tenacity's jitter source), restored afterwards."""
    state = random.getstate()
    yield random.seed
    random.setstate(state)


def _failing(fake: FakeTime, exc: BaseException, cost: float = 0.0) -> tuple[list[float],
                                                                             Callable[[], None]]:
    """A call that always fails after ``cost`` seconds; records when it was made."""
    calls: list[float] = []

    def call() -> None:
        calls.append(fake.now)
        fake.now += cost
        raise exc

    return calls, call


def test_attempt_timeouts_are_a_share_of_the_time_left(fake_time: FakeTime) -> None:
    """Issue 14: a hung attempt must leave time for another (0.5 of 2 s = 1 s)."""
    policy = RetryPolicy()
    assert policy.attempt_share == 0.5
    deadline = Deadline(policy.deadline)
    assert policy.attempt_timeout(deadline, 5.0) == pytest.approx(1.0)  # the share acts
    assert policy.attempt_timeout(deadline, 0.3) == pytest.approx(0.3)  # the cap acts
    fake_time.now += 1.0  # a hung first attempt used its second
    assert policy.attempt_timeout(deadline, 5.0) == pytest.approx(0.5)
    fake_time.now += 5.0  # spent: still one real try, never zero or negative
    assert policy.attempt_timeout(deadline, 5.0) == retry_module.MIN_ATTEMPT_TIMEOUT
    background = RetryPolicy.background()
    assert background.attempt_timeout(Deadline(background.deadline), 5.0) == 5.0


def test_attempts_are_bounded(fake_time: FakeTime) -> None:
    policy = RetryPolicy(max_attempts=4, deadline=1e6)
    calls, call = _failing(fake_time, _http_error(503))
    retrying = policy.retrying(Deadline(policy.deadline)).copy(sleep=fake_time.sleep)
    with pytest.raises(HttpResponseError) as info:
        retrying(call)
    assert len(calls) == 4
    assert len(fake_time.sleeps) == 3
    assert info.value.status_code == 503  # reraise=True: the real error, not RetryError


def test_a_single_attempt_policy_never_sleeps(fake_time: FakeTime) -> None:
    policy = RetryPolicy(max_attempts=1)
    calls, call = _failing(fake_time, _http_error(503))
    with pytest.raises(HttpResponseError):
        policy.retrying(Deadline(policy.deadline)).copy(sleep=fake_time.sleep)(call)
    assert (len(calls), fake_time.sleeps) == (1, [])


@pytest.mark.parametrize("cost", [0.0, 0.05, 0.3])
def test_deadline_bounds_the_time_spent(fake_time: FakeTime, seeded: Callable[[int], None],
                                        cost: float) -> None:
    seeded(7)
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.1, max_backoff=0.4, deadline=2.0)
    start = fake_time.now
    deadline = Deadline(policy.deadline)
    calls, call = _failing(fake_time, ServiceResponseError("reset"), cost)
    with pytest.raises(ServiceResponseError):
        policy.retrying(deadline).copy(sleep=fake_time.sleep)(call)
    assert 1 < len(calls) < 1000, "the deadline, not the attempt cap, must stop it"
    # Every attempt started before the deadline, and no sleep ran past it.
    assert all(t < start + policy.deadline for t in calls)
    assert start + sum(fake_time.sleeps) + cost * (len(calls) - 1) <= start + policy.deadline
    # It stopped only because the next sleep would have crossed the deadline.
    assert deadline.remaining() < policy.max_backoff


def test_permanent_errors_are_raised_at_once(fake_time: FakeTime) -> None:
    policy = RetryPolicy(max_attempts=8)
    calls, call = _failing(fake_time, _http_error(412, ResourceModifiedError))
    with pytest.raises(ResourceModifiedError):
        policy.retrying(Deadline(policy.deadline)).copy(sleep=fake_time.sleep)(call)
    assert (len(calls), fake_time.sleeps) == (1, [])


def test_a_transient_blip_is_absorbed(fake_time: FakeTime) -> None:
    policy = RetryPolicy()
    outcomes: list[BaseException | None] = [_http_error(503), ServiceRequestError("x"), None]

    def call() -> str:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "ok"

    assert policy.retrying(Deadline(policy.deadline)).copy(sleep=fake_time.sleep)(call) == "ok"
    assert len(fake_time.sleeps) == 2


async def test_async_retrying_obeys_the_same_bounds(fake_time: FakeTime) -> None:
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.1, max_backoff=0.4, deadline=2.0)
    start = fake_time.now
    calls: list[float] = []

    async def call() -> None:
        calls.append(fake_time.now)
        raise _http_error(500)

    retrying = policy.async_retrying(Deadline(policy.deadline)).copy(sleep=fake_time.async_sleep)
    with pytest.raises(HttpResponseError):
        await retrying(call)
    assert 1 < len(calls) < 1000
    assert sum(fake_time.sleeps) <= policy.deadline
    assert all(t < start + policy.deadline for t in calls)

    calls.clear()
    bounded = RetryPolicy(max_attempts=3, deadline=1e6)
    retrying = bounded.async_retrying(Deadline(bounded.deadline)).copy(sleep=fake_time.async_sleep)
    with pytest.raises(HttpResponseError):
        await retrying(call)
    assert len(calls) == 3


def _sleeps_for(seed: int, fake: FakeTime, policy: RetryPolicy) -> list[float]:
    random.seed(seed)
    fake.sleeps.clear()
    _, call = _failing(fake, _http_error(503))
    with pytest.raises(HttpResponseError):
        policy.retrying(Deadline(policy.deadline)).copy(sleep=fake.sleep)(call)
    return list(fake.sleeps)


def test_backoff_is_exponential_with_full_jitter(fake_time: FakeTime,
                                                 seeded: Callable[[int], None]) -> None:
    policy = RetryPolicy(max_attempts=8, initial_backoff=0.05, max_backoff=0.5, deadline=1e6)
    runs = [_sleeps_for(seed, fake_time, policy) for seed in range(5)]
    assert all(len(run) == 7 for run in runs)
    # Full jitter: each sleep is uniform in [0, min(max, initial * 2**n)].
    for run in runs:
        for n, slept in enumerate(run):
            assert 0.0 <= slept <= min(policy.max_backoff, policy.initial_backoff * 2**n)
    # Different seeds, different sleeps: clients that failed together spread out.
    assert len({tuple(run) for run in runs}) == len(runs)
    assert _sleeps_for(3, fake_time, policy) == runs[3], "same seed, same sleeps"


# ---------------------------------------------------------------------------
# RetryPolicy.run / arun: the first attempt before tenacity, the rest through it


def _scripted(fake: FakeTime, outcomes: list[BaseException | None]) -> tuple[list[float],
                                                                           Callable[[], str]]:
    """A call that raises the next scripted error, or returns "ok" on None."""
    calls: list[float] = []

    def call() -> str:
        calls.append(fake.now)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "ok"

    return calls, call


def test_run_makes_one_call_when_it_succeeds(fake_time: FakeTime) -> None:
    calls, call = _scripted(fake_time, [None])
    assert RetryPolicy().run(call, Deadline(2.0), sleep=fake_time.sleep) == "ok"
    assert (len(calls), fake_time.sleeps) == (1, [])


def test_run_retries_a_blip_and_logs_each_retry(fake_time: FakeTime,
                                                caplog: pytest.LogCaptureFixture) -> None:
    blips: list[BaseException | None] = [_http_error(503), ServiceRequestError("x"), None]
    calls, call = _scripted(fake_time, blips)
    with caplog.at_level("DEBUG", logger="tablesessions.retry"):
        assert RetryPolicy().run(call, Deadline(2.0), sleep=fake_time.sleep) == "ok"
    assert len(calls) == 3 and len(fake_time.sleeps) == 2
    # The first failure, made before tenacity existed, is tenacity's attempt 1.
    assert [r.args for r in caplog.records] == [(1, "HttpResponseError"),
                                                (2, "ServiceRequestError")]


def test_run_raises_a_permanent_error_at_once_unchanged(fake_time: FakeTime) -> None:
    error = _http_error(412, ResourceModifiedError)
    calls, call = _scripted(fake_time, [error, None])
    with pytest.raises(ResourceModifiedError) as info:
        RetryPolicy().run(call, Deadline(2.0), sleep=fake_time.sleep)
    assert info.value is error
    assert (len(calls), fake_time.sleeps) == (1, [])


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_run_counts_the_first_attempt_in_max_attempts(fake_time: FakeTime,
                                                      attempts: int) -> None:
    calls, call = _failing(fake_time, _http_error(503))
    with pytest.raises(HttpResponseError) as info:
        RetryPolicy(max_attempts=attempts, deadline=1e6).run(call, Deadline(1e6),
                                                             sleep=fake_time.sleep)
    assert info.value.status_code == 503
    assert (len(calls), len(fake_time.sleeps)) == (attempts, attempts - 1)


def test_run_makes_no_call_once_the_deadline_is_spent(fake_time: FakeTime) -> None:
    calls, call = _scripted(fake_time, [None])
    deadline = Deadline(1.0)
    fake_time.now += 1.5
    with pytest.raises(ServiceResponseTimeoutError):
        RetryPolicy().run(call, deadline, sleep=fake_time.sleep)
    assert (calls, fake_time.sleeps) == ([], [])


def test_run_stops_retrying_at_the_deadline(fake_time: FakeTime,
                                            seeded: Callable[[int], None]) -> None:
    seeded(11)
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.1, max_backoff=0.4, deadline=2.0)
    start = fake_time.now
    calls, call = _failing(fake_time, ServiceResponseError("reset"), 0.05)
    with pytest.raises(ServiceResponseError):
        policy.run(call, Deadline(policy.deadline), sleep=fake_time.sleep)
    assert 1 < len(calls) < 1000
    assert all(t < start + policy.deadline for t in calls)
    assert fake_time.now <= start + policy.deadline + 0.05


async def test_arun_mirrors_run(fake_time: FakeTime) -> None:
    policy = RetryPolicy(max_attempts=3, deadline=1e6)
    outcomes: list[BaseException | None] = [_http_error(429), None]
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "ok"

    assert await policy.arun(call, Deadline(1e6), sleep=fake_time.async_sleep) == "ok"
    assert (calls, len(fake_time.sleeps)) == (2, 1)

    async def broken() -> str:
        nonlocal calls
        calls += 1
        raise _http_error(500)

    calls, fake_time.sleeps = 0, []
    with pytest.raises(HttpResponseError):
        await policy.arun(broken, Deadline(1e6), sleep=fake_time.async_sleep)
    assert (calls, len(fake_time.sleeps)) == (3, 2)

    async def missing() -> str:
        nonlocal calls
        calls += 1
        raise _http_error(404, ResourceNotFoundError)

    calls = 0
    with pytest.raises(ResourceNotFoundError):
        await policy.arun(missing, Deadline(1e6), sleep=fake_time.async_sleep)
    assert calls == 1


# ---------------------------------------------------------------------------
# No stacked retries: every SDK client the stores build has retry_total=0

_CONN = (
    f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
    f"BlobEndpoint=http://127.0.0.1:9/{ACCOUNT_NAME};TableEndpoint=http://127.0.0.1:9/{ACCOUNT_NAME};"
)
_CREDENTIAL = AzureNamedKeyCredential(ACCOUNT_NAME, ACCOUNT_KEY)


def _retry_policies(pipeline_owner: Any) -> list[Any]:
    """The retry policies in an SDK client's pipeline (private attributes, on purpose:
    this is the only way to see what the SDK will do)."""
    policies = pipeline_owner._pipeline._impl_policies
    return [p for p in policies if "retry" in type(p).__name__.lower()]


def _sdk_clients(store: Any) -> dict[str, Any]:
    """Every client a store holds, plus the per-blob client the container hands out
    (uploads, downloads and leases run on those)."""
    return {
        "table": store._table._client._client,
        "container": store._container,
        "blob": store._container.get_blob_client("x"),
    }


def _sync_stores() -> list[Any]:
    return [
        tablesessions.SessionStore.from_connection_string(_CONN),
        tablesessions.SessionStore(f"http://127.0.0.1:9/{ACCOUNT_NAME}",
                                   f"http://127.0.0.1:9/{ACCOUNT_NAME}", credential=_CREDENTIAL),
    ]


def _async_stores() -> list[Any]:
    return [
        tablesessions.aio.SessionStore.from_connection_string(_CONN),
        tablesessions.aio.SessionStore(f"http://127.0.0.1:9/{ACCOUNT_NAME}",
                                       f"http://127.0.0.1:9/{ACCOUNT_NAME}",
                                       credential=_CREDENTIAL),
    ]


def _assert_no_sdk_retries(store: Any) -> None:
    for name, client in _sdk_clients(store).items():
        policies = _retry_policies(client)
        assert len(policies) == 1, f"{name}: expected one SDK retry policy, got {policies}"
        (policy,) = policies
        # azure-core's RetryPolicy (Tables) and Storage's StorageRetryPolicy (Blob)
        # both stop once total_retries is exhausted, whatever the per-kind counts.
        assert policy.total_retries == 0, f"{name}: {type(policy).__name__} would retry"


def test_sync_clients_have_sdk_retries_off() -> None:
    for store in _sync_stores():
        try:
            _assert_no_sdk_retries(store)
        finally:
            store.close()


async def test_async_clients_have_sdk_retries_off() -> None:
    for store in _async_stores():
        try:
            _assert_no_sdk_retries(store)
        finally:
            await store.close()


def test_timeouts_reach_the_sdk_transport() -> None:
    store = tablesessions.SessionStore.from_connection_string(
        _CONN, connection_timeout=0.7, read_timeout=1.3)
    try:
        for name, client in _sdk_clients(store).items():
            config = client._pipeline._transport
            config = getattr(config, "_transport", config)  # blob clients wrap it
            connection = config.connection_config
            assert (connection.timeout, connection.read_timeout) == (0.7, 1.3), name
    finally:
        store.close()
