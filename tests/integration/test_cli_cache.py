"""``tablesessions cache init|sweep|stats``, in-process against Azurite: the cache's
settings (``TABLESESSIONS_CACHE_*``), output, exit codes and one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import os

import pytest
from azure.storage.blob import BlobLeaseClient, ContainerClient

import tablesessions
from tablesessions import cli
from tablesessions.config import (
    ENV_APP_NAME,
    ENV_BLOB_ENDPOINT,
    ENV_CACHE_APP_NAME,
    ENV_CACHE_CONTAINER_NAME,
    ENV_CACHE_TABLE_NAME,
    ENV_CONNECTION_STRING,
    ENV_CONTAINER_NAME,
    ENV_TABLE_ENDPOINT,
    ENV_TABLE_NAME,
)
from tablesessions.testing import ACCOUNT_KEY, AzuriteServer, unique_name
from tablesessions.testing.azurite import free_ports

from .test_cli_failures import FAST, conn_for, error_lines

APP = "clicache"
VALUE = "cached-value-do-not-print"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, azurite: AzuriteServer,
        storage_names: tuple[str, str]) -> dict[str, str]:
    """The cache's variables, and session ones pointing elsewhere: the cache
    commands must read only theirs."""
    table, container = storage_names
    for name in (ENV_TABLE_ENDPOINT, ENV_BLOB_ENDPOINT):
        monkeypatch.delenv(name, raising=False)
    values = {ENV_CONNECTION_STRING: azurite.connection_string, ENV_CACHE_TABLE_NAME: table,
              ENV_CACHE_CONTAINER_NAME: container, ENV_CACHE_APP_NAME: APP,
              ENV_TABLE_NAME: unique_name("sessions"), ENV_CONTAINER_NAME: unique_name("s"),
              ENV_APP_NAME: "sessionsapp"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def cache_at(env: dict[str, str], hours_ago: float = 0.0) -> tablesessions.TableCache:
    """A web-tier cache on the CLI's namespace, its clock ``hours_ago`` behind."""

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours_ago)

    return tablesessions.TableCache.from_connection_string(
        env[ENV_CONNECTION_STRING], table_name=env[ENV_CACHE_TABLE_NAME],
        container_name=env[ENV_CACHE_CONTAINER_NAME], app_name=APP, clock=clock)


def seed(env: dict[str, str], *, expired: int, live: int = 0, forever: int = 0) -> None:
    with cache_at(env, hours_ago=1) as old, cache_at(env) as now:
        for i in range(expired):
            old.set(f"old-{i}", VALUE, ttl=60)
        for i in range(live):
            now.set(f"live-{i}", VALUE, ttl=3600)
        for i in range(forever):
            old.set(f"forever-{i}", VALUE, ttl=None)


def test_init_stats_and_sweep_act_on_the_cache(env: dict[str, str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cache", "init")
    assert code == cli.EXIT_OK and env[ENV_CACHE_TABLE_NAME] in out
    code, out, _ = run(capsys, "cache", "init", "--json")
    assert code == cli.EXIT_OK and json.loads(out) == {
        "table": env[ENV_CACHE_TABLE_NAME], "container": env[ENV_CACHE_CONTAINER_NAME],
        "ready": True}
    seed(env, expired=3, live=2, forever=1)
    with cache_at(env) as now:
        now.set("blob", os.urandom(800_000), ttl=3600)

    code, out, _ = run(capsys, "cache", "stats", "--json")
    stats = json.loads(out)
    assert code == cli.EXIT_OK
    assert (stats["entries"], stats["expired"], stats["no_expiry"], stats["overflowed"]) == (
        7, 3, 1, 1)
    code, out, _ = run(capsys, "cache", "stats")
    assert code == cli.EXIT_OK and f"namespace {APP!r}" in out and "without expiry" in out

    code, out, _ = run(capsys, "cache", "sweep", "--dry-run")
    assert code == cli.EXIT_OK and "dry run" in out and "entries would be deleted" in out
    code, out, err = run(capsys, "--json", "cache", "sweep")
    report = json.loads(out)
    assert code == cli.EXIT_OK and report["deleted"] == 3 and report["complete"] is True
    code, out, _ = run(capsys, "cache", "stats", "--json")
    assert json.loads(out)["entries"] == 4 and json.loads(out)["expired"] == 0
    with cache_at(env) as now:
        assert now.get("live-0") == VALUE and now.get("forever-0") == VALUE
    code, out, err = run(capsys, "cache", "sweep")
    assert code == cli.EXIT_OK and "complete" in out and VALUE not in out + err


def test_the_name_flags_stand_for_the_cache_settings_under_cache(
        env: dict[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    table, container = unique_name("flagged"), unique_name("flagged")
    monkeypatch.delenv(ENV_CACHE_TABLE_NAME)
    monkeypatch.delenv(ENV_CACHE_CONTAINER_NAME)
    code, out, _ = run(capsys, "cache", "init", "--json", "--table-name", table,
                       "--container-name", container, "--app-name", "flagged")
    assert code == cli.EXIT_OK and json.loads(out)["table"] == table
    with tablesessions.TableCache.from_connection_string(
            env[ENV_CONNECTION_STRING], table_name=table, container_name=container,
            app_name="flagged") as cache:
        cache.set("k", "v", ttl=None)
    code, out, _ = run(capsys, "cache", "stats", "--json", "--table-name", table,
                       "--container-name", container, "--app-name", "flagged")
    assert code == cli.EXIT_OK and json.loads(out)["entries"] == 1


def test_another_sweeper_holding_the_lease_exits_3(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "cache", "init")[0] == cli.EXIT_OK
    seed(env, expired=1)
    with ContainerClient.from_connection_string(env[ENV_CONNECTION_STRING],
                                                env[ENV_CACHE_CONTAINER_NAME]) as container:
        blob = container.get_blob_client(f"{APP}.sweeper.lock")
        blob.upload_blob(b"", overwrite=True)
        lease = BlobLeaseClient(blob)
        lease.acquire(lease_duration=60)
        try:
            code, out, _ = run(capsys, "cache", "sweep", "--json")
        finally:
            lease.release()
    assert code == cli.EXIT_LOCKED and json.loads(out)["skipped_locked"] is True
    assert run(capsys, "cache", "sweep")[0] == cli.EXIT_OK


@pytest.mark.parametrize("command", ["stats", "sweep"])
def test_a_missing_table_says_run_cache_init(
        command: str, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "cache", command, "--json")
    assert code == cli.EXIT_STORAGE
    [line] = error_lines(err)
    assert "run `tablesessions cache init`" in line  # the sweep needs its container first
    assert ENV_CACHE_TABLE_NAME in line or ENV_CACHE_CONTAINER_NAME in line
    assert json.loads(out)["exit_code"] == cli.EXIT_STORAGE


@pytest.mark.parametrize("command", ["init", "stats", "sweep"])
def test_storage_down_fails_fast_with_one_line(
        command: str, env: dict[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    [closed] = free_ports(1)
    monkeypatch.setenv(ENV_CONNECTION_STRING, conn_for(closed))
    import time

    started = time.monotonic()
    code, out, err = run(capsys, "cache", command, "--timeout", "5")
    assert code == cli.EXIT_STORAGE and time.monotonic() - started < FAST
    [line] = error_lines(err)
    assert f"127.0.0.1:{closed}" in line and "cannot be reached" in line
    assert ACCOUNT_KEY not in out + err


def test_setting_errors_name_the_cache_setting(
        env: dict[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(capsys, "cache", "stats", "--table-name", "no_such-name!")
    assert code == cli.EXIT_USAGE and "--table-name" in err and ENV_CACHE_TABLE_NAME in err
    monkeypatch.setenv("TABLESESSIONS_CACHE_DEFAULT_TTL_SECONDS", "soon")
    code, _, err = run(capsys, "cache", "stats")
    assert code == cli.EXIT_USAGE and "TABLESESSIONS_CACHE_DEFAULT_TTL_SECONDS" in err
    monkeypatch.delenv("TABLESESSIONS_CACHE_DEFAULT_TTL_SECONDS")
    monkeypatch.delenv(ENV_CONNECTION_STRING)
    code, _, err = run(capsys, "cache", "sweep")
    assert code == cli.EXIT_USAGE and "(flags: --connection-string" in err
    code, _, err = run(capsys, "cache")
    assert code == cli.EXIT_USAGE                       # a command is required
    code, _, err = run(capsys, "cache", "inspect", "x")
    assert code == cli.EXIT_USAGE                       # session-only commands are not here


def test_help_lists_the_cache_group(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cache", "--help")
    assert code == 0 and all(c in out for c in ("init", "sweep", "stats"))
    assert ENV_CACHE_TABLE_NAME in out
    code, out, _ = run(capsys, "cache", "sweep", "--help")
    assert code == 0 and ENV_CACHE_TABLE_NAME in out and "--time-budget" in out


