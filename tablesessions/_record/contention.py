"""Conflict rounds of one write: jittered backoff, bounded by the operation's deadline.

A save that meets a 412 re-reads, resolves (merge, overwrite, re-apply) and
writes again. Retrying at once makes contenders collide again in lock step
(issue 14: 195 ``SessionConflictError`` of 400 saves with 8 processes on one
session, each worker on its own key). So every round after a conflict first
sleeps a random time whose window doubles per round (full jitter), and the
loop ends when the operation's deadline (``RetryPolicy.deadline``, shared by
all the operation's calls) leaves no time for another round, not after a fixed
count. ``max_merge_attempts`` stays as a generous safety cap for operations
that run without a shared deadline.

Sans-I/O: the time left comes from the face (the ``TimeLeft`` effect), the
waiting is the ``Sleep`` effect.
"""

from __future__ import annotations

import random

from ..exceptions import SessionConflictError
from .effects import Op, Sleep, TimeLeft
from .rules import RecordRules

#: The n-th conflict round waits uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2**(n-1)))
#: seconds: 10, 20, 40 ... ms windows, capped at 250 ms, so 8 contenders spread
#: over a few hundred milliseconds instead of re-colliding.
BACKOFF_BASE = 0.01
BACKOFF_MAX = 0.25
#: Assumed cost of one re-read plus write, until a round has been measured.
MIN_ROUND = 0.02


class Rounds:
    """Counts the conflict rounds of one write and spaces them out."""

    __slots__ = ("_cap", "_first_left", "_last_left", "_last_pause", "_round", "_spent", "_what",
                 "n")

    def __init__(self, rules: RecordRules, what: str) -> None:
        self._cap = rules.config.max_merge_attempts
        self._what = what
        self.n = 0
        self._last_left: float | None = None
        self._first_left: float | None = None
        self._last_pause = 0.0
        self._round = MIN_ROUND  # the mean round (re-read + write) so far
        self._spent = 0.0

    def next(self) -> Op[None]:
        """Wait before the next round (a jittered sleep, never past the deadline).

        :raises SessionConflictError: when the deadline leaves less time than a
            round has taken on average, or after ``max_merge_attempts`` rounds.
        """
        self.n += 1
        if self.n >= self._cap:
            raise SessionConflictError(
                f"{self._what}: the session kept changing under other requests; gave up "
                f"after {self._cap} attempts (max_merge_attempts)")
        left = yield TimeLeft()
        pause = random.uniform(0, min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (self.n - 1)))  # noqa: S311 - jitter, not crypto
        if left is not None:
            if self._last_left is not None:
                self._spent += self._last_left - left - self._last_pause
                self._round = max(MIN_ROUND, self._spent / (self.n - 1))
            if left < self._round:
                raise SessionConflictError(
                    f"{self._what}: the session kept changing under other requests; the "
                    f"operation's deadline ran out after {self.n - 1} conflict rounds")
            if self._first_left is None:
                self._first_left = max(left, 1e-3)
            # The closer a writer is to its deadline, the sooner it retries: it
            # gets more attempts than writers that just started, which keeps the
            # slowest writers from starving (plain exponential backoff does the
            # opposite).
            pause *= max(0.0, min(1.0, left / self._first_left)) ** 2
            pause = min(pause, left - self._round)
        self._last_left, self._last_pause = left, pause
        if pause > 0:
            yield Sleep(pause)
