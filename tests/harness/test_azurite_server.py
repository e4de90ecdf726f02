"""AzuriteServer against the real emulator: ports, connection string, process lifecycle."""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from tablesessions.testing import (
    ACCOUNT_KEY,
    AzuriteNotFoundError,
    AzuriteServer,
    AzuriteStartError,
    find_azurite,
    unique_name,
)
from tablesessions.testing import azurite as azurite_module

DEFAULT_PORTS = {10000, 10001, 10002}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_ports_are_free_distinct_and_not_the_defaults(azurite: AzuriteServer) -> None:
    ports = {azurite.blob_port, azurite.queue_port, azurite.table_port}
    assert len(ports) == 3
    assert not ports & DEFAULT_PORTS
    assert azurite.running
    assert azurite.table_endpoint == f"http://127.0.0.1:{azurite.table_port}/devstoreaccount1"
    assert azurite.blob_endpoint == f"http://127.0.0.1:{azurite.blob_port}/devstoreaccount1"
    assert all(_accepts(port) for port in (azurite.blob_port, azurite.table_port))


def test_connection_string_format(azurite: AzuriteServer) -> None:
    assert azurite.account_name == "devstoreaccount1"
    assert azurite.account_key == ACCOUNT_KEY
    assert azurite.connection_string == (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{azurite.blob_port}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{azurite.table_port}/devstoreaccount1;"
    )
    routed = azurite.connection_string_for(table_endpoint="http://127.0.0.1:1/devstoreaccount1")
    assert "TableEndpoint=http://127.0.0.1:1/devstoreaccount1;" in routed
    assert f"BlobEndpoint={azurite.blob_endpoint};" in routed


def test_connection_string_works_with_table_client(azurite: AzuriteServer) -> None:
    table_name = unique_name("t")
    with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        table = service.create_table(table_name)
        table.create_entity({"PartitionKey": "p", "RowKey": "r", "answer": 42})
        entity = table.get_entity("p", "r")
        assert entity["answer"] == 42
        assert table_name in {t.name for t in service.list_tables()}


def test_connection_string_works_with_blob_client(azurite: AzuriteServer) -> None:
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        container = service.create_container(unique_name("c"))
        container.upload_blob("b", b"payload")
        assert container.download_blob("b").readall() == b"payload"


def test_stop_kills_the_whole_process_group_and_is_idempotent() -> None:
    server = AzuriteServer().start()
    pid = server.pid
    assert pid is not None
    assert os.getpgid(pid) == pid  # its own group, so killpg reaches everything it spawned
    port = server.table_port
    server.stop()
    assert not _alive(pid)
    assert not _group_alive(pid)
    assert not server.running
    assert server.pid is None
    assert not _accepts(port)
    server.stop()  # second stop is a no-op
    assert not server.running


def test_stop_flushes_disk_data_and_restart_reuses_ports(tmp_path: Path) -> None:
    table_name = unique_name("t")
    with AzuriteServer(location=tmp_path / "data") as server:
        ports = (server.blob_port, server.queue_port, server.table_port)
        with TableServiceClient.from_connection_string(server.connection_string) as service:
            service.create_table(table_name).upsert_entity({"PartitionKey": "p", "RowKey": "r"})
        server.stop()  # SIGTERM: Azurite saves its metadata on the way out
        server.restart()
        assert (server.blob_port, server.queue_port, server.table_port) == ports
        with TableServiceClient.from_connection_string(server.connection_string) as service:
            entity = service.get_table_client(table_name).get_entity("p", "r")
            assert entity["RowKey"] == "r"
    assert any((tmp_path / "data").iterdir())


def test_kill_is_abrupt_and_restart_serves_again() -> None:
    with AzuriteServer() as server:
        pid = server.pid
        assert pid is not None
        server.kill()
        assert not _alive(pid)
        assert not _accepts(server.table_port)
        server.restart()
        assert server.pid != pid
        with TableServiceClient.from_connection_string(server.connection_string) as service:
            # In-memory data does not survive a restart, but the service is back.
            assert list(service.list_tables()) == []


def test_restart_of_a_running_server_keeps_ports() -> None:
    with AzuriteServer() as server:
        port, pid = server.table_port, server.pid
        server.restart()
        assert server.table_port == port
        assert server.pid != pid
        assert _accepts(port)


def test_unstarted_server_has_no_ports() -> None:
    server = AzuriteServer()
    assert not server.running
    with pytest.raises(RuntimeError, match="not been started"):
        _ = server.table_port
    server.stop()  # stopping a never-started server is harmless


def test_find_azurite_prefers_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _script(tmp_path / "my-azurite", "exit 0")
    monkeypatch.setenv("AZURITE_BIN", str(fake))
    assert find_azurite() == fake
    monkeypatch.setenv("AZURITE_BIN", str(tmp_path / "missing"))
    with pytest.raises(AzuriteNotFoundError, match="AZURITE_BIN"):
        find_azurite()


def test_find_azurite_searches_node_modules_upward_from_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    fake = _script(bin_dir / "azurite", "exit 0")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.delenv("AZURITE_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(azurite_module, "_REPO_ROOT", tmp_path / "elsewhere")
    monkeypatch.chdir(nested)
    assert find_azurite() == fake.resolve()


def test_find_azurite_error_names_every_place_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURITE_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(azurite_module, "_REPO_ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AzuriteNotFoundError) as info:
        find_azurite()
    message = str(info.value)
    assert "AZURITE_BIN" in message
    assert "PATH" in message
    assert "node_modules/.bin/azurite" in message
    # Advice a pip user can follow: no repository of ours needed (issue 17).
    assert "npm install --save-dev azurite@3.35.0" in message


def test_early_exit_reports_the_output_tail(tmp_path: Path) -> None:
    fake = _script(tmp_path / "azurite", "echo 'boom: cannot start' >&2; exit 3")
    server = AzuriteServer(executable=fake, startup_timeout=10)
    with pytest.raises(AzuriteStartError, match=r"(?s)code 3.*boom: cannot start"):
        server.start()
    assert not server.running


def test_start_times_out_and_kills_a_silent_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    fake = _script(tmp_path / "azurite", f"echo $$ > {pid_file}; exec sleep 60")
    server = AzuriteServer(executable=fake, startup_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(AzuriteStartError, match="not ready within"):
        server.start()
    assert time.monotonic() - started < 10
    assert not _alive(int(pid_file.read_text()))


def test_start_retries_when_a_chosen_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        real_free_ports = azurite_module.free_ports
        calls: list[int] = []

        def first_table_port_taken(count: int) -> list[int]:
            calls.append(count)
            ports = real_free_ports(count)
            return [*ports[:2], busy] if len(calls) == 1 else ports

        monkeypatch.setattr(azurite_module, "free_ports", first_table_port_taken)
        with AzuriteServer() as server:
            assert len(calls) == 2
            assert server.table_port != busy
            assert _accepts(server.table_port)
