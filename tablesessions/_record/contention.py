"""Conflict rounds of one write: jittered backoff, bounded by the operation's deadline.

A save that meets a 412 re-reads, resolves (merge, overwrite, re-apply) and
writes again. Retrying at once makes contenders collide again in lock step
(issue 14: 195 ``SessionConflictError`` of 400 saves with 8 processes on one
session, each worker on its own key). So every round after a conflict first
sleeps, and the loop ends when the operation's deadline (``RetryPolicy.deadline``,
shared by all the operation's calls) leaves no time for another round, not
after a fixed count. ``max_merge_attempts`` stays as a generous safety cap for
operations that run without a shared deadline.

How long to sleep (measured with ``benchmarks/contention.py``, docs/concurrency.md):

* **In units of the round's own cost.** The window is counted in rounds (a
  re-read plus a write) as this operation has measured them, not in fixed
  milliseconds: a fixed 10 ms window is a long wait next to a 3 ms round on an
  idle machine and no wait at all next to a 60 ms round on a loaded one, where
  the writers then retried in step and wasted most of their calls.
* **Growing, capped at a few rounds' worth.** Round n waits about
  ``min(2 ** (n - 1), WINDOW_ROUNDS)`` rounds: enough to spread a handful of
  writers of one session over distinct slots, not so much that the row idles.
* **Equal jitter**: the pause is drawn from the upper half of the window, never
  near zero, since a writer that sleeps ~0 re-reads while the winner's
  successor is already in flight and loses again.
* **Oldest first.** The window shrinks with the share of the deadline already
  spent (to the power ``AGE_EXPONENT``): a writer close to its deadline retries
  almost at once, one that just started waits its turn. Plain exponential
  backoff does the opposite (the longest waiters sleep longest) and starved a
  few writers until their deadline ran out.
* Never past the deadline: a round starts only if the time left covers a
  round as long as the shortest so far. The shortest, not the mean: a round
  that a fault slowed (a hung call, retried) says nothing about the next one.

Sans-I/O: the time left comes from the face (the ``TimeLeft`` effect), the
waiting is the ``Sleep`` effect.
"""

from __future__ import annotations

import random

from ..exceptions import SessionConflictError
from .effects import Op, Sleep, TimeLeft
from .rules import RecordRules

#: The widest pause window, in measured rounds (re-read + write).
WINDOW_ROUNDS = 8
#: How strongly the window shrinks as the deadline nears: times (left / left at
#: the first conflict) ** AGE_EXPONENT.
AGE_EXPONENT = 4
#: The floor of a round's estimate (seconds): a loopback re-read plus write.
MIN_ROUND = 0.005
#: The round's estimate when the operation has no shared deadline to measure by
#: (per-call deadlines: the lock's release).
UNMEASURED_ROUND = 0.02
#: The most the time spent before the first conflict may count as one round.
FIRST_ROUND_CAP = 0.05


class Rounds:
    """Counts the conflict rounds of one write and spaces them out."""

    __slots__ = ("_cap", "_deadline", "_first_left", "_last_left", "_last_pause", "_round",
                 "_what", "n")

    def __init__(self, rules: RecordRules, what: str) -> None:
        self._cap = rules.config.max_merge_attempts
        self._deadline = rules.config.retry.deadline
        self._what = what
        self.n = 0
        self._last_left: float | None = None
        self._first_left: float | None = None
        self._last_pause = 0.0
        self._round = UNMEASURED_ROUND  # the shortest round (re-read + write) so far

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
        window = min(WINDOW_ROUNDS, 2 ** (self.n - 1))
        if left is None:
            pause = self._round * window * random.uniform(0.5, 1.0)  # noqa: S311 - jitter
        else:
            if self._last_left is None:
                # Before the first re-read, what the operation has spent so far
                # (its first write, a read before it) stands for one round, but
                # at most FIRST_ROUND_CAP: a first write that a fault delayed (a
                # hung attempt, retried) says nothing about the next round.
                spent = self._deadline - left  # < 0 when a blob transfer extended it
                self._round = (max(MIN_ROUND, min(spent, FIRST_ROUND_CAP)) if spent > 0
                               else UNMEASURED_ROUND)
            else:
                # The shortest round so far, not the mean: one round slowed by a
                # fault must not stretch every later pause, nor end the loop early.
                took = self._last_left - left - self._last_pause
                self._round = max(MIN_ROUND, took if self.n == 2 else min(self._round, took))
            if left < self._round:
                raise SessionConflictError(
                    f"{self._what}: the session kept changing under other requests; the "
                    f"operation's deadline ran out after {self.n - 1} conflict rounds")
            if self._first_left is None:
                self._first_left = max(left, 1e-3)
            age = max(0.0, min(1.0, left / self._first_left)) ** AGE_EXPONENT
            pause = self._round * window * age * random.uniform(0.5, 1.0)  # noqa: S311
            pause = min(pause, left - self._round)
        self._last_left, self._last_pause = left, pause
        if pause > 0:
            yield Sleep(pause)
