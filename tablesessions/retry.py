"""The one retry layer: tenacity strategies with a per-operation deadline.

The SDK clients this library builds get ``retry_total=0``; retrying there too
would multiply attempts (Tables' own policy alone takes ~4.8 s to fail a call).
The same :class:`RetryPolicy` drives tenacity's ``Retrying`` in the sync store
and ``AsyncRetrying`` in the async one.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: The floor of a per-attempt timeout (seconds): a loopback round trip fits, a hang does not.
MIN_ATTEMPT_TIMEOUT = 0.05

#: Statuses worth another attempt: timeouts, throttling and server-side faults.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Return whether ``exc`` is a storage fault worth retrying.

    True for HTTP 408, 429, 500, 502, 503 and 504, connection failures and
    timeouts. False for everything else, including 400, 403, 404, 409 and 412,
    which mean the request itself was wrong or lost a race.
    """
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, ServiceRequestTimeoutError,
                        ServiceResponseTimeoutError, TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, HttpResponseError):
        return exc.status_code in TRANSIENT_STATUSES
    return False


class Deadline:
    """An absolute point on the monotonic clock that one store operation must end by."""

    __slots__ = ("at",)

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def extend(self, seconds: float) -> None:
        self.at += seconds


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    # DEBUG, not WARNING: a retried blip is normal and must not flood logs.
    logger.debug("retrying storage call (attempt %d): %s", state.attempt_number,
                 type(exc).__name__)


_RETRY_TRANSIENT = retry_if_exception(is_transient)


@functools.lru_cache(maxsize=64)
def _strategies(policy: RetryPolicy) -> tuple[stop_after_attempt, wait_random_exponential]:
    # Built once per policy: constructing them on every storage call cost ~20 us.
    return (stop_after_attempt(policy.max_attempts),
            wait_random_exponential(multiplier=policy.initial_backoff, max=policy.max_backoff))


class _StopAtDeadline(stop_base):
    """Stop when the next sleep would end past the operation's deadline."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.deadline.remaining() <= retry_state.upcoming_sleep


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and a deadline.

    :param max_attempts: attempts per storage call, the first included.
    :param initial_backoff: seconds; the jitter window doubles per attempt from here.
    :param max_backoff: cap on one sleep, in seconds.
    :param deadline: seconds one store operation (``get``, ``save``...) may take
        across all its calls and retries. A retry whose sleep would cross it is
        not made: the last error is raised instead of hanging the request.
    :param attempt_share: the share of the time left in the deadline that one
        attempt may wait to connect, and to read (each). Below 1, a hung or
        half-open connection is abandoned while there is still time for another
        attempt on a fresh connection; the store's ``connection_timeout`` and
        ``read_timeout`` cap it further.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.05
    max_backoff: float = 0.5
    deadline: float = 2.0
    attempt_share: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        numbers = (self.initial_backoff, self.max_backoff, self.deadline, self.attempt_share)
        # NaN compares false with everything, so it would slip past the range checks.
        if not all(math.isfinite(n) for n in numbers):
            raise ValueError("backoffs and deadline must be finite numbers")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.deadline <= 0:
            raise ValueError("backoffs must be >= 0 and deadline > 0")
        if not 0 < self.attempt_share <= 1:
            raise ValueError("attempt_share must be within (0, 1]")

    def attempt_timeout(self, deadline: Deadline, configured: float) -> float:
        """Seconds the next attempt may wait (to connect, or to read): the
        ``configured`` timeout, capped by ``attempt_share`` of what is left of
        ``deadline``. At least :data:`MIN_ATTEMPT_TIMEOUT`, so a nearly spent
        deadline still gets one real try."""
        return max(min(configured, self.attempt_share * deadline.remaining()),
                   MIN_ATTEMPT_TIMEOUT)

    @classmethod
    def request_path(cls) -> RetryPolicy:
        """The default for web requests: 4 attempts within 2 s."""
        return cls()

    @classmethod
    def background(cls) -> RetryPolicy:
        """The default for the sweeper and CLI: 8 attempts within 60 s per call."""
        return cls(max_attempts=8, initial_backoff=0.2, max_backoff=8.0, deadline=60.0)

    def _kwargs(self, deadline: Deadline) -> dict[str, Any]:
        attempts, wait = _strategies(self)
        return {
            "stop": attempts | _StopAtDeadline(deadline),
            "wait": wait,
            "retry": _RETRY_TRANSIENT,
            "reraise": True,
            "before_sleep": _log_retry,
        }

    def retrying(self, deadline: Deadline) -> Retrying:
        """Return a tenacity ``Retrying`` for one call under ``deadline``."""
        return Retrying(**self._kwargs(deadline))

    def async_retrying(self, deadline: Deadline) -> AsyncRetrying:
        """Return a tenacity ``AsyncRetrying`` for one call under ``deadline``."""
        return AsyncRetrying(**self._kwargs(deadline))

    def run(self, attempt: Callable[[], T], deadline: Deadline, *,
            sleep: Callable[[float], None] | None = None) -> T:
        """Call ``attempt()`` until it succeeds, retrying transient errors per this policy.

        The first attempt runs before any tenacity object exists. On the request
        path nearly every call succeeds at once, and setting tenacity up for it
        cost ~25 us per storage call, more once an I/O wait has cooled the CPU
        caches. A transient failure hands over to tenacity with that failure
        replayed as attempt 1, so the attempt count, the waits, the deadline and
        the retry log are exactly tenacity's.

        :param sleep: replaces ``time.sleep`` between attempts (tests).
        """
        try:
            return _checked(attempt, deadline)
        except Exception as exc:
            if not is_transient(exc):
                raise
            replay = [exc]

        def again() -> T:
            if replay:
                raise replay.pop()
            return _checked(attempt, deadline)

        retrying = self.retrying(deadline)
        if sleep is not None:
            retrying = retrying.copy(sleep=sleep)
        return retrying(again)

    async def arun(self, attempt: Callable[[], Awaitable[T]], deadline: Deadline, *,
                   sleep: Callable[[float], Awaitable[None]] | None = None) -> T:
        """The async twin of :meth:`run`: ``attempt()`` returns an awaitable."""
        try:
            return await _achecked(attempt, deadline)
        except Exception as exc:
            if not is_transient(exc):
                raise
            replay = [exc]

        async def again() -> T:
            if replay:
                raise replay.pop()
            return await _achecked(attempt, deadline)

        retrying = self.async_retrying(deadline)
        if sleep is not None:
            retrying = retrying.copy(sleep=sleep)
        return await retrying(again)


def _spent(deadline: Deadline) -> ServiceResponseTimeoutError | None:
    # Transient, so tenacity consults its stop rule, and the deadline rule then
    # stops at once: a spent deadline ends the operation with this error.
    if deadline.remaining() <= 0:
        return ServiceResponseTimeoutError("the operation's retry deadline passed")
    return None


def _checked(attempt: Callable[[], T], deadline: Deadline) -> T:
    error = _spent(deadline)
    if error is not None:
        raise error
    return attempt()


async def _achecked(attempt: Callable[[], Awaitable[T]], deadline: Deadline) -> T:
    error = _spent(deadline)
    if error is not None:
        raise error
    return await attempt()
