"""The ``tablesessions`` command when storage is down, hung, missing or refuses the key.

Every failure: the documented exit code, one line on stderr that names the next
step, printed once, no traceback, and quickly (issue 17: the command used to be
silent for 13-49 s). The time bounds are generous for a loaded 2-core machine:
each failure here takes well under 2 s on an idle one.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

import pytest

import tablesessions
from tablesessions import cli
from tablesessions.config import (
    ENV_APP_NAME,
    ENV_BLOB_ENDPOINT,
    ENV_CONNECTION_STRING,
    ENV_CONTAINER_NAME,
    ENV_TABLE_ENDPOINT,
    ENV_TABLE_NAME,
)
from tablesessions.testing import ACCOUNT_KEY, AzuriteServer, unique_name
from tablesessions.testing.azurite import free_ports

#: Generous: a refused connection fails in ~0.2 s per command on an idle machine.
FAST = 15.0


def conn_for(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (ENV_TABLE_ENDPOINT, ENV_BLOB_ENDPOINT, ENV_APP_NAME):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENV_TABLE_NAME, unique_name("cli"))
    monkeypatch.setenv(ENV_CONTAINER_NAME, unique_name("cli"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str, float]:
    started = time.monotonic()
    code = cli.main(list(argv))
    elapsed = time.monotonic() - started
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err, elapsed


def error_lines(err: str) -> list[str]:
    """The error lines, without the 'waiting for storage' notice."""
    return [line for line in err.splitlines() if "waiting for storage" not in line]


COMMANDS = [["init"], ["stats"], ["sweep"], ["sweep", "--dry-run"],
            ["inspect", "SESSION"], ["sessions", "--user", "bob"], ["revoke", "--user", "bob"]]


def argv_of(command: list[str]) -> list[str]:
    return [tablesessions.new_session_id() if a == "SESSION" else a for a in command]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_storage_down_fails_fast_with_one_line_naming_the_endpoint(
        command: list[str], env: None, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    [closed] = free_ports(1)  # nothing listens there: Azurite stopped
    monkeypatch.setenv(ENV_CONNECTION_STRING, conn_for(closed))
    code, out, err, elapsed = run(capsys, *argv_of(command))
    assert code == cli.EXIT_STORAGE
    assert elapsed < FAST
    [line] = error_lines(err)
    assert f"127.0.0.1:{closed}" in line and "cannot be reached" in line
    assert "check the endpoint" in line
    assert ACCOUNT_KEY not in err + out


@pytest.mark.parametrize("command", COMMANDS[1:], ids=" ".join)
def test_a_missing_table_exits_4_and_says_run_init(
        command: list[str], env: None, azurite: AzuriteServer,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CONNECTION_STRING, azurite.connection_string)
    code, out, err, elapsed = run(capsys, *argv_of(command), "--json")
    assert code == cli.EXIT_STORAGE and elapsed < FAST
    [line] = error_lines(err)  # once: not per partition, not again by the logger
    assert "does not exist" in line and "run `tablesessions init`" in line
    assert "no session with that id" not in line and "ResourceNotFoundError" not in line
    assert '"exit_code": 4' in out


def test_a_missing_table_with_the_container_present_is_one_error_not_18(
        env: None, azurite: AzuriteServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.storage.blob import ContainerClient

    monkeypatch.setenv(ENV_CONNECTION_STRING, azurite.connection_string)
    with ContainerClient.from_connection_string(
            azurite.connection_string, os.environ[ENV_CONTAINER_NAME]) as c:
        c.create_container()
    code, _, err, _ = run(capsys, "sweep")
    assert code == cli.EXIT_STORAGE
    [line] = error_lines(err)
    assert "the table" in line and "TableNotFound" not in err
    assert run(capsys, "init")[0] == cli.EXIT_OK
    assert run(capsys, "sweep")[0] == cli.EXIT_OK  # the lease was released


def test_a_missing_container_says_which(env: None, azurite: AzuriteServer,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CONNECTION_STRING, azurite.connection_string)
    code, _, err, _ = run(capsys, "sweep")
    assert code == cli.EXIT_STORAGE
    [line] = error_lines(err)
    assert "container" in line and "run `tablesessions init`" in line


def test_a_wrong_key_says_check_the_key(env: None, azurite: AzuriteServer,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=Xby8")
    monkeypatch.setenv(ENV_CONNECTION_STRING, wrong)
    code, _, err, elapsed = run(capsys, "stats")
    assert code == cli.EXIT_STORAGE and elapsed < FAST
    [line] = error_lines(err)
    assert "403" in line and "check the account key" in line and "AccountKey=" not in line


@contextlib.contextmanager
def hung_endpoint() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung load balancer)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


def test_a_hung_endpoint_says_what_it_waits_for_and_honours_timeout(
        env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with hung_endpoint() as port:
        monkeypatch.setenv(ENV_CONNECTION_STRING, conn_for(port))
        code, _, err, elapsed = run(capsys, "--timeout", "2", "inspect",
                                    tablesessions.new_session_id())
    assert code == cli.EXIT_STORAGE
    assert 1.0 < elapsed < 2 + FAST
    waiting = [line for line in err.splitlines() if "waiting for storage" in line]
    assert len(waiting) == 1 and f"127.0.0.1:{port}" in waiting[0]
    assert "read the session" in waiting[0] and "--timeout" in waiting[0]
    [line] = error_lines(err)
    assert "did not answer in time" in line or "cannot be reached" in line


def test_setting_errors_name_the_setting_and_no_unrelated_hint(
        env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CONNECTION_STRING, conn_for(1))
    code, _, err, _ = run(capsys, "--table-name", "no_such-name!", "stats")
    assert code == cli.EXIT_USAGE
    assert "--table-name" in err and ENV_TABLE_NAME in err and "(flags:" not in err
    code, _, err, _ = run(capsys, "--container-name", "Bad_Name", "stats")
    assert code == cli.EXIT_USAGE and "--container-name" in err and "(flags:" not in err
    monkeypatch.setenv("TABLESESSIONS_IDLE_TIMEOUT_SECONDS", "20m")
    code, _, err, _ = run(capsys, "stats")
    assert code == cli.EXIT_USAGE and "TABLESESSIONS_IDLE_TIMEOUT_SECONDS" in err
    monkeypatch.delenv("TABLESESSIONS_IDLE_TIMEOUT_SECONDS")
    monkeypatch.delenv(ENV_CONNECTION_STRING)
    code, _, err, _ = run(capsys, "stats")
    assert code == cli.EXIT_USAGE and "(flags: --connection-string" in err
    assert run(capsys, "--timeout", "0", "stats")[0] == cli.EXIT_USAGE
