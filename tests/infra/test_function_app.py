"""The sweeper Function App (infra/function_app/function_app.py), without the Functions host.

Azure Functions Core Tools cannot be installed on the project's machines, so the app is
tested by importing the module by path, inspecting the bindings the host would read, and
calling the decorated timer function directly (it stays callable) against a real Azurite.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from azure.data.tables import TableClient
from azure.functions.timer import TimerRequest
from azure.storage.blob import ContainerClient

import tablesessions
from tablesessions.testing import AzuriteServer

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTION_DIR = REPO_ROOT / "infra" / "function_app"
FUNCTION_APP = FUNCTION_DIR / "function_app.py"
SWEEPER_LOGGER = "tablesessions.azure_function"
APP_NAME = "sweepertest"

Key = tuple[str, str]


@pytest.fixture(scope="module")
def function_app() -> ModuleType:
    """function_app.py imported by path, as the Functions Python worker loads it."""
    spec = importlib.util.spec_from_file_location(
        "tablesessions_sweeper_function_app", FUNCTION_APP
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timer_bindings(module: ModuleType) -> list[dict[str, Any]]:
    functions = module.app.get_functions()
    names = [f.get_function_name() for f in functions]
    assert names == ["sweep_expired_sessions"], names
    raw: list[str] = functions[0].get_raw_bindings()
    return [json.loads(binding) for binding in raw]


def test_timer_trigger_is_registered(function_app: ModuleType) -> None:
    bindings = _timer_bindings(function_app)
    assert bindings == [
        {
            "direction": "IN",
            "type": "timerTrigger",
            "name": "timer",
            "schedule": "%SWEEP_SCHEDULE%",
            "runOnStartup": False,
            "useMonitor": True,
        }
    ]


def test_sweep_function_stays_callable(function_app: ModuleType) -> None:
    assert callable(function_app.sweep_expired_sessions)
    assert callable(function_app.run_sweep)


@pytest.mark.parametrize("budget", ["", "abc", "1.5", "0", "-3"])
def test_bad_time_budget_is_rejected_before_touching_storage(
    function_app: ModuleType, budget: str
) -> None:
    # No connection settings at all: the budget is validated first.
    with pytest.raises(ValueError, match="TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS"):
        function_app.run_sweep({"TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS": budget})


def test_host_json() -> None:
    host = json.loads((FUNCTION_DIR / "host.json").read_text(encoding="utf-8"))
    assert host["version"] == "2.0"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert host["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", host["functionTimeout"])


def test_local_settings_example_targets_azurite() -> None:
    values = json.loads(
        (FUNCTION_DIR / "local.settings.json.example").read_text(encoding="utf-8")
    )["Values"]
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert "AccountName=devstoreaccount1" in values["TABLESESSIONS_CONNECTION_STRING"]
    assert len(values["SWEEP_SCHEDULE"].split()) == 6  # NCronTab with seconds


def _project_dependencies() -> list[str]:
    if sys.version_info >= (3, 11):
        import tomllib

        pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        return [str(d) for d in pyproject["project"]["dependencies"]]
    pytest.skip("reading pyproject.toml needs tomllib (Python 3.11+)")


def test_requirements_mirror_library_dependencies() -> None:
    lines = (FUNCTION_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = {
        line.split("#", 1)[0].replace(" ", "") for line in lines if line.split("#", 1)[0].strip()
    }
    for dependency in _project_dependencies():
        assert dependency.replace(" ", "") in requirements, (
            f"{dependency} (pyproject.toml) is missing from infra/function_app/requirements.txt"
        )
    assert "azure-functions>=1.18,<2" in requirements
    assert not any(r.lower().startswith("tablesessions") for r in requirements), (
        "tablesessions is packaged from this repository, never resolved from an index"
    )


# --------------------------------------------------------------------------------------------
# Against Azurite
# --------------------------------------------------------------------------------------------


@pytest.fixture
def sweeper_env(
    azurite: AzuriteServer, storage_names: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The app settings the function reads, pointed at Azurite and fresh storage."""
    table_name, container_name = storage_names
    for name in (
        "TABLESESSIONS_TABLE_ENDPOINT",
        "TABLESESSIONS_BLOB_ENDPOINT",
        "TABLESESSIONS_IDLE_TIMEOUT_SECONDS",
        "TABLESESSIONS_ABSOLUTE_TIMEOUT_SECONDS",
        "TABLESESSIONS_CACHE_TABLE_NAME",
        "TABLESESSIONS_CACHE_CONTAINER_NAME",
        "TABLESESSIONS_CACHE_APP_NAME",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "TABLESESSIONS_CONNECTION_STRING": azurite.connection_string,
        "TABLESESSIONS_TABLE_NAME": table_name,
        "TABLESESSIONS_CONTAINER_NAME": container_name,
        "TABLESESSIONS_APP_NAME": APP_NAME,
        "TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS": "60",
        "SWEEP_SCHEDULE": "0 */5 * * * *",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _entity_keys(connection_string: str, table_name: str) -> set[Key]:
    with TableClient.from_connection_string(connection_string, table_name) as table:
        return {
            (str(e["PartitionKey"]), str(e["RowKey"]))
            for e in table.list_entities(select=["PartitionKey", "RowKey"])
        }


def _blob_names(connection_string: str, container_name: str) -> set[str]:
    with ContainerClient.from_connection_string(connection_string, container_name) as container:
        return {blob.name for blob in container.list_blobs()}


def _sweep_reports(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    reports = []
    for record in caplog.records:
        if record.name != SWEEPER_LOGGER or record.levelno != logging.INFO:
            continue
        try:
            payload = json.loads(record.getMessage())
        except json.JSONDecodeError:
            continue
        if isinstance(payload, dict) and "deleted" in payload:
            reports.append(payload)
    return reports


def _store_with_clock(
    env: dict[str, str], clock: Callable[[], dt.datetime]
) -> tablesessions.SessionStore:
    return tablesessions.SessionStore.from_connection_string(
        env["TABLESESSIONS_CONNECTION_STRING"],
        table_name=env["TABLESESSIONS_TABLE_NAME"],
        container_name=env["TABLESESSIONS_CONTAINER_NAME"],
        app_name=APP_NAME,
        idle_timeout=dt.timedelta(seconds=1),
        clock=clock,
    )


def test_timer_function_sweeps_expired_sessions(
    function_app: ModuleType,
    sweeper_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = sweeper_env["TABLESESSIONS_CONNECTION_STRING"]
    table_name = sweeper_env["TABLESESSIONS_TABLE_NAME"]
    container_name = sweeper_env["TABLESESSIONS_CONTAINER_NAME"]

    # Three sessions written by a store whose clock runs an hour behind: with a 1 s idle
    # timeout they expired an hour ago by the sweeper's (real) clock, so the test needs no
    # sleep and tolerates any clock-skew margin the sweeper keeps.
    def an_hour_ago() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)

    with _store_with_clock(sweeper_env, an_hour_ago) as old_store:
        old_store.create_storage()
        for i in range(3):
            session = old_store.new()
            session["user"] = f"expired-{i}"
            if i == 0:
                # Incompressible and over the inline budget: stored in an overflow blob.
                session["blob"] = secrets.token_hex(1_000_000)
            old_store.save(session)
    expired_keys = _entity_keys(conn, table_name)
    assert expired_keys, "saving three sessions wrote no entity"
    overflow_blobs = _blob_names(conn, container_name)
    assert overflow_blobs, "the 2 MB session did not overflow to a blob"

    # One live session (real clock, default idle timeout).
    with tablesessions.SessionStore.from_connection_string(
        conn, table_name=table_name, container_name=container_name, app_name=APP_NAME
    ) as live_store:
        live = live_store.new()
        live["user"] = "live"
        live_store.save(live)
    live_keys = _entity_keys(conn, table_name) - expired_keys
    assert live_keys, "saving the live session wrote no entity"

    caplog.set_level(logging.INFO, logger=SWEEPER_LOGGER)
    function_app.sweep_expired_sessions(TimerRequest(past_due=False))

    remaining = _entity_keys(conn, table_name)
    assert not (remaining & expired_keys), "expired sessions are still in the table"
    assert live_keys <= remaining, "the live session was swept"
    # Only the overflow blobs: the sweeper may keep its own lease blob in the container.
    assert not (_blob_names(conn, container_name) & overflow_blobs), (
        "the expired session's overflow blob remains"
    )

    reports = _sweep_reports(caplog)
    assert len(reports) == 1, caplog.text
    report = reports[0]
    assert report["deleted"] == 3, report
    assert report["errors"] == 0, report
    assert report["complete"] is True, report
    assert report["skipped_locked"] is False, report
    warnings = [
        r for r in caplog.records if r.name == SWEEPER_LOGGER and r.levelno >= logging.WARNING
    ]
    assert not warnings, caplog.text


def test_run_sweep_with_explicit_environ_and_past_due_timer(
    function_app: ModuleType,
    sweeper_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tablesessions.SessionStore.from_connection_string(
        sweeper_env["TABLESESSIONS_CONNECTION_STRING"],
        table_name=sweeper_env["TABLESESSIONS_TABLE_NAME"],
        container_name=sweeper_env["TABLESESSIONS_CONTAINER_NAME"],
        app_name=APP_NAME,
    ) as store:
        store.create_storage()

    # The pure entry point: a plain mapping, no os.environ needed.
    result = function_app.run_sweep(dict(sweeper_env))
    assert result["deleted"] == 0
    assert result["errors"] == 0
    json.dumps(result)  # JSON-ready

    caplog.set_level(logging.INFO, logger=SWEEPER_LOGGER)
    caplog.clear()  # count only the timer run's report, not run_sweep's above
    function_app.sweep_expired_sessions(TimerRequest(past_due=True))
    assert any(
        r.name == SWEEPER_LOGGER and r.levelno == logging.WARNING and "past due" in r.getMessage()
        for r in caplog.records
    ), caplog.text
    assert len(_sweep_reports(caplog)) == 1


# --------------------------------------------------------------------------------------------
# The cache, swept by the same run when TABLESESSIONS_CACHE_TABLE_NAME is set
# --------------------------------------------------------------------------------------------

CACHE_APP = "sweepercache"


@pytest.fixture
def cache_env(sweeper_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The sweeper's settings plus a cache on its own table and container."""
    from tablesessions.testing import unique_name

    env = {
        **sweeper_env,
        "TABLESESSIONS_CACHE_TABLE_NAME": unique_name("cache"),
        "TABLESESSIONS_CACHE_CONTAINER_NAME": unique_name("cache"),
        "TABLESESSIONS_CACHE_APP_NAME": CACHE_APP,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _cache_with_clock(env: dict[str, str],
                      clock: Callable[[], dt.datetime]) -> tablesessions.TableCache:
    return tablesessions.TableCache.from_connection_string(
        env["TABLESESSIONS_CONNECTION_STRING"],
        table_name=env["TABLESESSIONS_CACHE_TABLE_NAME"],
        container_name=env["TABLESESSIONS_CACHE_CONTAINER_NAME"],
        app_name=CACHE_APP,
        clock=clock,
    )


def _an_hour_ago() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)


def _seed_cache(env: dict[str, str]) -> tuple[set[Key], set[str]]:
    """Three expired entries (one overflowed to a blob) and two live ones; return the
    expired rows' keys and the expired blob's name."""
    conn, table = env["TABLESESSIONS_CONNECTION_STRING"], env["TABLESESSIONS_CACHE_TABLE_NAME"]
    with _cache_with_clock(env, _an_hour_ago) as old:
        old.create_storage()
        old.set("big", secrets.token_bytes(1_000_000), ttl=60)
        old.set("a", "x", ttl=60)
        old.set("b", 1, ttl=60)
    expired = _entity_keys(conn, table)
    blobs = _blob_names(conn, env["TABLESESSIONS_CACHE_CONTAINER_NAME"])
    assert len(expired) == 3 and blobs
    with _cache_with_clock(env, lambda: dt.datetime.now(dt.timezone.utc)) as now:
        now.set("live", "y", ttl=3600)
        now.set("forever", "z", ttl=None)
    return expired, blobs


def _seed_sessions(env: dict[str, str], *, create: bool = True) -> None:
    with _store_with_clock(env, _an_hour_ago) as old:
        if create:
            old.create_storage()
        for i in range(2):
            session = old.new()
            session["user"] = f"expired-{i}"
            old.save(session)


def test_timer_function_sweeps_sessions_and_the_cache(
    function_app: ModuleType, cache_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    conn = cache_env["TABLESESSIONS_CONNECTION_STRING"]
    _seed_sessions(cache_env)
    expired, blobs = _seed_cache(cache_env)

    caplog.set_level(logging.INFO, logger=SWEEPER_LOGGER)
    function_app.sweep_expired_sessions(TimerRequest(past_due=False))

    assert not _entity_keys(conn, cache_env["TABLESESSIONS_TABLE_NAME"])  # sessions swept
    remaining = _entity_keys(conn, cache_env["TABLESESSIONS_CACHE_TABLE_NAME"])
    assert not (remaining & expired) and len(remaining) == 2  # live and never-expiring kept
    assert not (_blob_names(conn, cache_env["TABLESESSIONS_CACHE_CONTAINER_NAME"]) & blobs)
    reports = {r["kind"]: r for r in _sweep_reports(caplog)}
    assert set(reports) == {"sessions", "cache"}, caplog.text
    assert reports["sessions"]["deleted"] == 2 and reports["cache"]["deleted"] == 3
    assert all(r["errors"] == 0 and r["complete"] is True for r in reports.values())


def test_run_sweep_returns_the_cache_report_and_splits_the_budget(
    function_app: ModuleType, cache_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed_sessions(cache_env)
    _seed_cache(cache_env)
    budgets: dict[str, dt.timedelta] = {}
    for kind, cls in (("sessions", tablesessions.SessionStore),
                      ("cache", tablesessions.TableCache)):
        real = cls.sweep

        def spy(self: Any, *args: Any, _kind: str = kind, _real: Any = real,
                **kwargs: Any) -> Any:
            budgets[_kind] = kwargs["time_budget"]
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, "sweep", spy)
    result = function_app.run_sweep(dict(cache_env))
    assert result["deleted"] == 2
    cache_report = result["cache"]
    assert isinstance(cache_report, dict) and cache_report["deleted"] == 3
    json.dumps(result)
    total = dt.timedelta(seconds=int(cache_env["TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS"]))
    assert budgets["sessions"] == total / 2                     # at most half for sessions
    assert total / 2 <= budgets["cache"] <= total                # the cache gets the rest


def test_a_failed_session_sweep_does_not_skip_the_cache(
    function_app: ModuleType, cache_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    expired, _ = _seed_cache(cache_env)  # the sessions' table was never created
    caplog.set_level(logging.INFO, logger=SWEEPER_LOGGER)
    with pytest.raises(tablesessions.StorageNotFoundError):
        function_app.sweep_expired_sessions(TimerRequest(past_due=False))
    remaining = _entity_keys(cache_env["TABLESESSIONS_CONNECTION_STRING"],
                             cache_env["TABLESESSIONS_CACHE_TABLE_NAME"])
    assert not (remaining & expired), "the cache was not swept after the session sweep failed"
    assert [r["kind"] for r in _sweep_reports(caplog)] == ["cache"]
    assert any("session sweep failed" in r.getMessage() for r in caplog.records)


def test_a_failed_cache_sweep_does_not_skip_the_sessions(
    function_app: ModuleType, cache_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _seed_sessions(cache_env)  # the cache's table was never created
    caplog.set_level(logging.INFO, logger=SWEEPER_LOGGER)
    with pytest.raises(tablesessions.StorageNotFoundError):
        function_app.run_sweep(dict(cache_env))
    assert not _entity_keys(cache_env["TABLESESSIONS_CONNECTION_STRING"],
                            cache_env["TABLESESSIONS_TABLE_NAME"])
    assert [r["kind"] for r in _sweep_reports(caplog)] == ["sessions"]
    assert any("cache sweep failed" in r.getMessage() for r in caplog.records)


def test_an_empty_cache_table_setting_sweeps_sessions_only(
    function_app: ModuleType, sweeper_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    _seed_sessions(sweeper_env)
    caplog.set_level(logging.INFO, logger=SWEEPER_LOGGER)
    result = function_app.run_sweep({**sweeper_env, "TABLESESSIONS_CACHE_TABLE_NAME": ""})
    assert "cache" not in result and result["deleted"] == 2
    assert [r["kind"] for r in _sweep_reports(caplog)] == ["sessions"]
