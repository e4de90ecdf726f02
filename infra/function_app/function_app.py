"""Azure Functions app (Python v2 programming model) that sweeps expired sessions.

Table Storage has no TTL, so expired session entities and their overflow blobs stay until
something deletes them. This timer-triggered function runs ``SessionStore.sweep`` on a
schedule taken from the ``SWEEP_SCHEDULE`` app setting (6-field NCronTab, UTC).

It stays deliberately thin: everything it does goes through the library's public API
(``SessionStore.from_env`` / ``sweep`` / ``close``), and the work is in :func:`run_sweep`, a
plain function that tests (and operators, from a shell) can call without the Functions host.

Settings read (app settings in Azure, ``Values`` in local.settings.json locally):

* ``TABLESESSIONS_CONNECTION_STRING`` (local/Azurite), or ``TABLESESSIONS_TABLE_ENDPOINT`` +
  ``TABLESESSIONS_BLOB_ENDPOINT`` (Azure: the managed identity via DefaultAzureCredential);
* ``TABLESESSIONS_TABLE_NAME``, ``TABLESESSIONS_CONTAINER_NAME``, ``TABLESESSIONS_APP_NAME``;
* ``TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS`` (default 240): stop and report ``complete=false``
  after this long, well inside ``functionTimeout`` in host.json; the next run resumes;
* ``SWEEP_SCHEDULE``: read by the host for the trigger, not by this code.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import timedelta

import azure.functions as func

import tablesessions

TIME_BUDGET_SETTING = "TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS"
DEFAULT_TIME_BUDGET_SECONDS = "240"

logger = logging.getLogger("tablesessions.azure_function")

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


def run_sweep(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Sweep expired sessions once and return the report as a JSON-ready dict.

    ``environ`` defaults to ``os.environ``. The report is logged as one JSON line at INFO
    (queryable in Application Insights with ``parse_json(message)``); a report with errors
    is also logged at WARNING. Exceptions (bad settings, storage unreachable) propagate so
    the invocation is recorded as failed; a failed timer run is not retried, the next
    scheduled run simply starts over.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    budget = _time_budget(env)
    store = tablesessions.SessionStore.from_env(env)
    try:
        report = store.sweep(time_budget=budget)
    finally:
        store.close()
    result = report.to_dict()
    logger.info(json.dumps(result, default=str, sort_keys=True))
    if report.errors:
        logger.warning(
            "tablesessions sweep finished with %s error(s): %s",
            report.errors,
            json.dumps(result.get("error_messages", []), default=str),
        )
    if report.skipped_locked:
        logger.info("tablesessions sweep skipped: another sweeper holds the lease")
    elif not report.complete:
        logger.info(
            "tablesessions sweep stopped at its %ss time budget; the next run continues",
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
    """Timer entry point: one sweep per schedule tick (one instance runs it at a time)."""
    if timer.past_due:
        logger.warning("tablesessions sweep timer is past due; running the late sweep now")
    run_sweep(os.environ)
