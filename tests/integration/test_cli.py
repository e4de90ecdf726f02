"""The ``tablesessions`` command, run in-process against Azurite: output, exit codes."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import subprocess
import sys
from typing import Any

import pytest
from azure.storage.blob import BlobLeaseClient, ContainerClient

import tablesessions
from tablesessions import cli
from tablesessions.config import (
    ENV_ABSOLUTE_TIMEOUT,
    ENV_APP_NAME,
    ENV_BLOB_ENDPOINT,
    ENV_CONNECTION_STRING,
    ENV_CONTAINER_NAME,
    ENV_IDLE_TIMEOUT,
    ENV_TABLE_ENDPOINT,
    ENV_TABLE_NAME,
)
from tablesessions.testing import AzuriteServer

APP = "cliapp"
SECRET = "hunter2-do-not-print"


class Result:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> dict[str, Any]:
        value = json.loads(self.out)  # exactly one JSON document on stdout
        assert isinstance(value, dict)
        return value


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return Result(code, captured.out, captured.err)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, azurite: AzuriteServer,
        storage_names: tuple[str, str]) -> dict[str, str]:
    table, container = storage_names
    for name in (ENV_TABLE_ENDPOINT, ENV_BLOB_ENDPOINT, ENV_IDLE_TIMEOUT, ENV_ABSOLUTE_TIMEOUT):
        monkeypatch.delenv(name, raising=False)
    values = {ENV_CONNECTION_STRING: azurite.connection_string, ENV_TABLE_NAME: table,
              ENV_CONTAINER_NAME: container, ENV_APP_NAME: APP}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def store_at(env: dict[str, str], hours_ago: float = 0.0) -> tablesessions.SessionStore:
    """A web-tier store whose clock runs ``hours_ago`` behind (1 min idle timeout)."""

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours_ago)

    return tablesessions.SessionStore.from_connection_string(
        env[ENV_CONNECTION_STRING], table_name=env[ENV_TABLE_NAME],
        container_name=env[ENV_CONTAINER_NAME], app_name=APP,
        idle_timeout=dt.timedelta(minutes=1), clock=clock)


def seed(env: dict[str, str], *, expired: int, live: int = 0,
         partitions: str | None = None) -> list[str]:
    """Create sessions (expired ones an hour ago); return the live ones' ids."""
    ids: list[str] = []
    with store_at(env, hours_ago=1) as old, store_at(env) as now:
        old.create_storage()
        for i in range(expired):
            session = old.new()
            while partitions and hashlib.sha256(session.id.encode()).hexdigest()[0] != \
                    partitions[i % len(partitions)]:
                session = old.new()
            session["secret"] = SECRET
            old.save(session)
        for _ in range(live):
            session = now.new()
            session["secret"] = SECRET
            now.save(session)
            ids.append(session.id)
    return ids


def test_init_is_idempotent_and_stats_counts(env: dict[str, str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    first = run(capsys, "init")
    assert first.code == cli.EXIT_OK and env[ENV_TABLE_NAME] in first.out
    assert run(capsys, "init", "--json").json()["ready"] is True
    seed(env, expired=2, live=3)

    stats = run(capsys, "--json", "stats").json()
    assert (stats["sessions"], stats["expired"], stats["overflowed"]) == (5, 2, 0)
    assert sum(stats["histogram"].values()) == 5
    human = run(capsys, "stats")
    assert human.code == 0 and "expired" in human.out and "<1KiB" in human.out


def test_sweep_deletes_and_reports_json(env: dict[str, str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    live = seed(env, expired=4, live=2)

    dry = run(capsys, "sweep", "--dry-run")
    assert dry.code == cli.EXIT_OK and "dry run" in dry.out and "would be deleted" in dry.out
    assert run(capsys, "stats", "--json").json()["sessions"] == 6  # nothing deleted

    result = run(capsys, "sweep", "--json")
    assert result.code == cli.EXIT_OK
    report = result.json()
    assert report["deleted"] == 4 and report["complete"] is True and report["errors"] == 0
    assert report["dry_run"] is False and report["skipped_locked"] is False
    assert run(capsys, "stats", "--json").json()["sessions"] == 2
    with store_at(env) as store:
        assert all(store.get(i) is not None for i in live)

    human = run(capsys, "sweep")
    assert human.code == 0 and "complete" in human.out and SECRET not in human.out


def test_a_spent_time_budget_exits_1_and_the_next_run_finishes(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    seed(env, expired=4, partitions="05")
    partial = run(capsys, "--json", "sweep", "--time-budget", "0", "--max-parallel", "1")
    assert partial.code == cli.EXIT_INCOMPLETE
    assert partial.json()["complete"] is False and partial.json()["deleted"] == 2
    rest = run(capsys, "sweep", "--json")
    assert rest.code == cli.EXIT_OK and rest.json()["deleted"] == 2


def test_another_sweeper_holding_the_lease_exits_3(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    seed(env, expired=1)
    with ContainerClient.from_connection_string(env[ENV_CONNECTION_STRING],
                                                env[ENV_CONTAINER_NAME]) as container:
        blob = container.get_blob_client(f"{APP}.sweeper.lock")  # the documented name
        blob.upload_blob(b"", overwrite=True)
        lease = BlobLeaseClient(blob)
        lease.acquire(lease_duration=60)
        try:
            held = run(capsys, "sweep", "--json")
            human = run(capsys, "sweep")
        finally:
            lease.release()
    assert held.code == cli.EXIT_LOCKED and held.json()["skipped_locked"] is True
    assert human.code == cli.EXIT_LOCKED and "another sweeper" in human.out
    assert run(capsys, "sweep").code == cli.EXIT_OK


def test_inspect_shows_metadata_but_data_only_when_asked(
        env: dict[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    [session_id] = seed(env, expired=0, live=1)
    prefix = hashlib.sha256(session_id.encode()).hexdigest()[:12]

    plain = run(capsys, "inspect", session_id)
    assert plain.code == 0 and prefix in plain.out
    assert SECRET not in plain.out + plain.err and session_id not in plain.out + plain.err
    as_json = run(capsys, "inspect", session_id, "--json").json()
    assert "data" not in as_json and as_json["row_key_prefix"] == prefix
    assert as_json["expired"] is False and session_id not in json.dumps(as_json)

    shown = run(capsys, "inspect", "--show-data", session_id)
    assert shown.code == 0 and SECRET in shown.out and session_id not in shown.out
    assert run(capsys, "--json", "inspect", session_id, "--show-data").json()["data"] == {
        "secret": SECRET}

    monkeypatch.setattr(sys, "stdin", io.StringIO(session_id + "\n"))  # keeps it off argv
    from_stdin = run(capsys, "inspect", "-")
    assert from_stdin.code == 0 and prefix in from_stdin.out


def test_inspect_of_a_bad_or_unknown_id_never_echoes_it(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    seed(env, expired=0)
    bad = "Zm9vYmFy-looks-like-a-token-but-is-not"
    invalid = run(capsys, "inspect", bad)
    assert invalid.code == cli.EXIT_USAGE and bad not in invalid.out + invalid.err
    unknown_id = tablesessions.new_session_id()
    unknown = run(capsys, "inspect", unknown_id, "--json")
    assert unknown.code == cli.EXIT_INCOMPLETE and unknown_id not in unknown.out + unknown.err
    assert unknown.json()["exit_code"] == cli.EXIT_INCOMPLETE


def live_session_starting_with(env: dict[str, str], prefix: str) -> str:
    """Save a live session whose id starts with ``prefix``; return the id."""
    with store_at(env) as store:
        store.create_storage()
        session = store.new()
        while not session.id.startswith(prefix):  # ids are local until saved
            session = store.new()
        session["secret"] = SECRET
        store.save(session)
        return session.id


def test_an_id_that_starts_with_a_dash_is_the_id_not_a_flag(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # One id in 64 starts with "-", one in 4,096 with "-h": argparse alone reads
    # the first as an unknown flag and the second as --help.
    for dash_id in (live_session_starting_with(env, "-"),
                    live_session_starting_with(env, "-h")):
        prefix = hashlib.sha256(dash_id.encode()).hexdigest()[:12]
        for argv in (["inspect", dash_id], ["inspect", dash_id, "--show-data"],
                     ["--json", "inspect", "--show-data", dash_id]):
            shown = run(capsys, *argv)
            assert shown.code == cli.EXIT_OK, shown.err
            assert prefix in shown.out and dash_id not in shown.out + shown.err
        assert run(capsys, "--json", "inspect", dash_id).json()["row_key_prefix"] == prefix
    unknown = "-h" + tablesessions.new_session_id()[2:]
    assert tablesessions.is_valid_session_id(unknown)
    missing = run(capsys, "inspect", unknown)
    assert missing.code == cli.EXIT_INCOMPLETE and "usage:" not in missing.out
    assert unknown not in missing.out + missing.err


def test_argument_errors_never_echo_a_secret_and_answer_json(
        env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    session_id = tablesessions.new_session_id()
    account_key = env[ENV_CONNECTION_STRING].split("AccountKey=")[1].split(";")[0]
    refused = {
        # an id typed twice, or in the wrong place: argparse quotes the extra one
        "unrecognized": ["inspect", session_id, session_id[::-1]],
        "choice": [session_id, "stats"],
        # a connection string that lost its quotes, split at a space
        "split": ["--connection-string", "DefaultEndpointsProtocol=http;AccountName=x",
                  f"AccountKey={account_key}", "stats"],
        "type": ["--timeout", session_id, "stats"],
    }
    for name, argv in refused.items():
        result = run(capsys, *argv)
        assert result.code == cli.EXIT_USAGE, name
        assert "error:" in result.err and "<not shown>" in result.err, name
        for secret in (session_id, session_id[::-1], account_key):
            assert secret not in result.out + result.err, name
    # With --json every refused command line is one JSON object on stdout too.
    for argv in (["--json", "frobnicate"], ["stats", "--json", "--bogus"],
                 ["--json", "inspect"], ["sweep", "--time-budget", "-1", "--json"],
                 ["--json", "cache", "get", "k"]):
        result = run(capsys, *argv)
        document = result.json()
        assert result.code == document["exit_code"] == cli.EXIT_USAGE, argv
        assert document["error"] in result.err and "usage:" in result.err
    # After "--" nothing is a flag, --json included.
    plain = run(capsys, "inspect", "--", "--json")
    assert plain.code == cli.EXIT_USAGE and plain.out == ""


def test_configuration_errors_exit_2_without_a_traceback(
        env: dict[str, str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CONNECTION_STRING)
    missing = run(capsys, "stats")
    assert missing.code == cli.EXIT_USAGE and ENV_CONNECTION_STRING in missing.err
    assert run(capsys, "stats", "--json").json()["exit_code"] == cli.EXIT_USAGE
    monkeypatch.setenv(ENV_CONNECTION_STRING, env[ENV_CONNECTION_STRING])
    assert run(capsys, "--table-name", "no_such-name!", "stats").code == cli.EXIT_USAGE
    assert run(capsys, "sweep", "--time-budget", "-1").code == cli.EXIT_USAGE
    assert run(capsys, "sweep", "--max-parallel", "0").code == cli.EXIT_USAGE
    assert run(capsys, "frobnicate").code == cli.EXIT_USAGE
    assert run(capsys).code == cli.EXIT_USAGE  # a command is required


def test_storage_and_auth_failures_exit_4(env: dict[str, str],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    wrong_key = env[ENV_CONNECTION_STRING].replace("AccountKey=Eby8", "AccountKey=Xby8")
    denied = run(capsys, "--connection-string", wrong_key, "stats")
    assert denied.code == cli.EXIT_STORAGE and "403" in denied.err
    assert "AccountKey" not in denied.err
    # A table that does not exist (init never ran for it).
    missing = run(capsys, "--table-name", "neverCreated1", "stats", "--json")
    assert missing.code == cli.EXIT_STORAGE and missing.json()["exit_code"] == 4


def test_flags_override_the_environment(env: dict[str, str],
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, expired=0, live=2)
    monkeypatch.setenv(ENV_TABLE_NAME, "neverCreated2")
    monkeypatch.setenv(ENV_APP_NAME, "someotherapp")
    counted = run(capsys, "stats", "--json", "--table-name", env[ENV_TABLE_NAME],
                  "--app-name", APP)
    assert counted.code == 0 and counted.json()["sessions"] == 2


def test_endpoint_flags_replace_an_inherited_connection_string() -> None:
    args = cli._parser().parse_args(["--table-endpoint", "https://a.table.core.windows.net",
                                     "--blob-endpoint", "https://a.blob.core.windows.net",
                                     "stats"])
    env = cli._environ(args, {ENV_CONNECTION_STRING: "UseDevelopmentStorage=true",
                              ENV_TABLE_NAME: "fromenv"})
    assert ENV_CONNECTION_STRING not in env
    assert env[ENV_TABLE_ENDPOINT] == "https://a.table.core.windows.net"
    assert env[ENV_TABLE_NAME] == "fromenv"


def test_progress_is_drawn_on_a_terminal_only(env: dict[str, str],
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    seed(env, expired=3)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    logger = logging.getLogger("tablesessions.sweeper")
    level, handlers = logger.level, list(logger.handlers)
    assert cli.main(["sweep", "--json"]) == 0
    drawn = terminal.getvalue()
    assert "sweeping [" in drawn and "17/17" in drawn and "\r" in drawn
    assert json.loads(capsys.readouterr().out)["deleted"] == 3  # stdout stays clean JSON
    assert (logger.level, logger.handlers) == (level, handlers)  # restored

    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)  # not a terminal: no progress
    assert cli.main(["sweep"]) == 0
    assert "sweeping [" not in plain.getvalue()


def test_help_version_and_python_dash_m(capsys: pytest.CaptureFixture[str]) -> None:
    helped = run(capsys, "--help")
    assert helped.code == 0 and "exit codes" in helped.out and ENV_APP_NAME in helped.out
    assert run(capsys, "sweep", "--help").code == 0
    assert run(capsys, "--version").code == 0
    completed = subprocess.run([sys.executable, "-m", "tablesessions", "--version"],
                               capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0 and tablesessions.__version__ in completed.stdout


def test_rotate_keys_revoke_and_sessions(capsys: pytest.CaptureFixture[str],
                                         env: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from tablesessions.encryption import KeyRing

    old, new = KeyRing.generate_key(), KeyRing.generate_key()
    assert run(capsys, "init").code == 0
    with tablesessions.SessionStore.from_connection_string(
            env[ENV_CONNECTION_STRING], table_name=env[ENV_TABLE_NAME],
            container_name=env[ENV_CONTAINER_NAME], app_name=APP,
            key_ring=KeyRing({"old": old})) as store:
        laptop, phone = store.new(), store.new()
        laptop["secret"] = SECRET
        store.bind_user(laptop, "alice")
        store.bind_user(phone, "alice")

    assert run(capsys, "rotate-keys").code == 2  # no keys configured: usage error
    keys = f"new:{base64.b64encode(new).decode()},old:{base64.b64encode(old).decode()}"
    monkeypatch.setenv("TABLESESSIONS_ENCRYPTION_KEYS", keys)
    rotated = run(capsys, "--json", "rotate-keys")
    assert rotated.code == 0
    assert rotated.json()["rotated"] == 2
    assert rotated.json()["primary"] == "new"
    assert run(capsys, "--json", "rotate-keys").json()["rotated"] == 0  # nothing left

    listed = run(capsys, "--json", "sessions", "--user", "alice")
    assert listed.code == 0
    assert len(listed.json()["sessions"]) == 2
    assert laptop.id not in listed.out
    assert SECRET not in listed.out

    assert run(capsys, "revoke", "--user", "alice").code == 0
    assert run(capsys, "--json", "sessions", "--user", "alice").json()["sessions"] == []
    with tablesessions.SessionStore.from_connection_string(
            env[ENV_CONNECTION_STRING], table_name=env[ENV_TABLE_NAME],
            container_name=env[ENV_CONTAINER_NAME], app_name=APP,
            key_ring=KeyRing({"new": new})) as store:
        assert store.get(laptop.id) is None
    assert run(capsys, "revoke", "--user", "").code == 2


def test_bad_sweep_budget_variable_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                                     env: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS", "soon")
    result = run(capsys, "sweep")
    assert result.code == 2
    assert "TABLESESSIONS_SWEEP_TIME_BUDGET_SECONDS" in result.err
