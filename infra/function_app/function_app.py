"""Azure Functions app (Python v2 programming model) that sweeps expired sessions, and the
key-value cache's expired entries when a cache is configured.

Table Storage has no TTL, so expired session entities and their overflow blobs stay until
something deletes them. This timer-triggered function runs ``SessionStore.sweep`` (and then
``TableCache.sweep``) on a schedule taken from the ``SWEEP_SCHEDULE`` app setting (6-field
NCronTab, UTC).

It stays deliberately thin: everything it does goes through the library's public API
(``SessionStore.from_env`` / ``TableCache.from_env`` / ``sweep`` / ``close``), and the work
is in :func:`run_sweep`, a plain function that tests (and operators, from a shell) can call
without the Functions host.

Settings read (app settings in Azure, ``Values`` in local.settings.json locally):

* ``TABLESESSIONS_CONNECTION_STRING`` (local/Azurite), or ``TABLESESSIONS_TABLE_ENDPOINT`` +
  ``TABLESESSIONS_BLOB_ENDPOINT`` (Azure: the managed identity via DefaultAzureCredential);
* ``TABLESESSIONS_TABLE_NAME``, ``TABLESESSIONS_CONTAINER_NAME``, ``TABLESESSIONS_APP_NAME``;
* ``TABLESESSIONS_CACHE_TABLE_NAME``: when set (not empty), the cache in that table is swept
  too, with ``TABLESESSIONS_CACHE_CONTAINER_NAME`` and ``TABLESESSIONS_CACHE_APP_NAME``
  (``TableCache.from_env``); unset or empty: sessions only;
* ``TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS`` (default 240): the whole run stops and reports
  ``complete=false`` after this long, well inside ``functionTimeout`` in host.json; the next
  run resumes. With a cache, the session sweep gets at most half of it and the cache sweep
  the rest, so neither starves the other;
* ``SWEEP_SCHEDULE``: read by the host for the trigger, not by this code.

A failure of one sweep (bad settings, a missing table, storage unreachable) does not skip
the other: both run, each report is logged, and then the first failure is raised so the
invocation is recorded as failed.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Protocol

import azure.functions as func

import tablesessions

TIME_BUDGET_SETTING = "TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS"
DEFAULT_TIME_BUDGET_SECONDS = "240"
#: Set (not empty): the cache in this table is swept after the sessions.
CACHE_TABLE_SETTING = "TABLESESSIONS_CACHE_TABLE_NAME"

logger = logging.getLogger("tablesessions.azure_function")


class _Sweepable(Protocol):
    """A session store or a cache: both sweep the same way."""

    def sweep(self, *, time_budget: timedelta | None = ...) -> tablesessions.SweepReport: ...

    def close(self) -> None: ...


app = func.FunctionApp()


def _time_budget(environ: Mapping[str, str]) -> timedelta:
    raw = environ.get(TIME_BUDGET_SETTING, DEFAULT_TIME_BUDGET_SECONDS)
    try:
        seconds = int(raw)
    except ValueError:
        raise ValueError(
            f"{TIME_BUDGET_SETTING} must be a whole number of seconds, got {raw!r}"
        ) from None
    if seconds <= 0:
        raise ValueError(f"{TIME_BUDGET_SETTING} must be positive, got {seconds}")
    return timedelta(seconds=seconds)


def sweeps_cache(environ: Mapping[str, str]) -> bool:
    """Whether a cache is configured, so the run sweeps it too."""
    return bool(environ.get(CACHE_TABLE_SETTING, "").strip())


def run_sweep(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Sweep expired sessions once (and the cache's expired entries, when
    ``TABLESESSIONS_CACHE_TABLE_NAME`` is set); return the session report as a
    JSON-ready dict, with the cache's under ``"cache"`` when it was swept.

    ``environ`` defaults to ``os.environ``. Each report is logged as one JSON line at INFO,
    with ``"kind": "sessions"`` or ``"cache"`` (queryable in Application Insights with
    ``parse_json(message)``); a report with errors is also logged at WARNING. A sweep that
    raises (bad settings, storage unreachable) does not stop the other; the first
    exception is re-raised after both, so the invocation is recorded as failed. A failed
    timer run is not retried: the next scheduled run simply starts over.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    budget = _time_budget(env)
    with_cache = sweeps_cache(env)
    started = time.monotonic()
    failures: list[Exception] = []
    result: dict[str, object] = {}
    # Sessions first, with at most half the budget when a cache follows; the cache gets
    # whatever is left (at least half).
    session_budget = budget / 2 if with_cache else budget
    try:
        result = _sweep_one("sessions", tablesessions.SessionStore.from_env, env,
                            session_budget)
    except Exception as exc:
        logger.exception("tablesessions session sweep failed: %s", type(exc).__name__)
        failures.append(exc)
    if with_cache:
        left = budget - timedelta(seconds=time.monotonic() - started)
        try:
            result["cache"] = _sweep_one("cache", tablesessions.TableCache.from_env, env,
                                         max(left, budget / 2))
        except Exception as exc:
            logger.exception("tablesessions cache sweep failed: %s", type(exc).__name__)
            failures.append(exc)
    if failures:
        raise failures[0]
    return result


def _sweep_one(kind: str, factory: Callable[[Mapping[str, str]], _Sweepable],
               env: Mapping[str, str], budget: timedelta) -> dict[str, object]:
    face = factory(env)
    try:
        report = face.sweep(time_budget=budget)
    finally:
        face.close()
    result = report.to_dict()
    logger.info(json.dumps({"kind": kind, **result}, default=str, sort_keys=True))
    if report.errors:
        logger.warning(
            "tablesessions %s sweep finished with %s error(s): %s",
            kind,
            report.errors,
            json.dumps(result.get("error_messages", []), default=str),
        )
    if report.skipped_locked:
        logger.info("tablesessions %s sweep skipped: another sweeper holds the lease", kind)
    elif not report.complete:
        logger.info(
            "tablesessions %s sweep stopped at its %ss time budget; the next run continues",
            kind,
            int(budget.total_seconds()),
        )
    return result


@app.timer_trigger(
    schedule="%SWEEP_SCHEDULE%",
    arg_name="timer",
    run_on_startup=False,
    use_monitor=True,
)
def sweep_expired_sessions(timer: func.TimerRequest) -> None:
    """Timer entry point: one sweep per schedule tick (one instance runs it at a time);
    the cache too when ``TABLESESSIONS_CACHE_TABLE_NAME`` is set."""
    if timer.past_due:
        logger.warning("tablesessions sweep timer is past due; running the late sweep now")
    run_sweep(os.environ)
