"""Crash: Azurite with disk persistence is SIGKILLed and restarted on the same
ports. Every acknowledged write must still be there, exact, and the stores that
were connected before the crash must work again without being rebuilt.

Azurite (3.35) is not as durable as the service: it saves its table and blob
metadata (LokiJS) every 5 s, so a SIGKILL loses whatever was acknowledged in
the last few seconds (the real service acknowledges a write only once it is
durably stored). The test therefore waits until Azurite has saved its metadata
after the last acknowledged write before it kills it: what it checks is that
the library's acknowledgements are real writes, in a format that survives.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import AzureError
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

from tablesessions import Session
from tablesessions.testing import AzuriteServer
from tests.conftest import Face, FakeClock, MakeStore
from tests.reliability.conftest import RawStorage

# Azurite's metadata files under --location (queue ones are never dirtied here).
METADATA = ("__azurite_db_table__.json", "__azurite_db_blob__.json",
            "__azurite_db_blob_extent__.json")
IDLE = dt.timedelta(minutes=20)


@pytest.fixture
def disk_azurite(tmp_path: Path) -> Iterator[AzuriteServer]:
    with AzuriteServer(location=tmp_path / "azurite") as server:
        yield server


def wait_for_metadata_save(location: Path, since: float, timeout: float = 15.0) -> float:
    """Wait until Azurite has saved every metadata file after ``since`` (wall clock);
    return how long that took."""
    started = time.time()
    while not all((location / name).exists() and (location / name).stat().st_mtime > since
                  for name in METADATA):
        if time.time() - started > timeout:
            raise AssertionError("Azurite did not save its metadata in time")
        time.sleep(0.05)
    time.sleep(0.5)  # let the save that just started finish writing
    return time.time() - started


class Model:
    """What the acknowledged writes say storage holds."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.live: dict[str, tuple[dict[str, Any], dt.datetime]] = {}
        self.gone: list[str] = []

    def saved(self, session: Session) -> None:
        self.live[session.id] = (dict(session), session.expires_at)


async def _acknowledged_writes(store: Face, model: Model, clock: FakeClock) -> list[Session]:
    """Inserts (inline and overflowing), updates (across the inline/blob line),
    refreshes and deletes; returns sessions still held in memory."""
    rng = random.Random(11)
    sessions: list[Session] = []
    for i in range(24):
        session = store.new()
        session["i"] = i
        session["payload"] = rng.randbytes(3000 if i % 3 == 0 else 20)  # 1 in 3 overflows
        await store.save(session)
        model.saved(session)
        sessions.append(session)
    for session in sessions[:8]:  # updates: 0, 3, 6 shrink inline; the rest grow into a blob
        loaded = await store.get(session.id)
        assert loaded is not None
        loaded["payload"] = rng.randbytes(20 if loaded["i"] % 3 == 0 else 3000)
        loaded["cart"] = [loaded["i"]]
        await store.save(loaded)
        model.saved(loaded)
    clock.advance(dt.timedelta(minutes=15))  # past half the idle timeout: refresh is due
    for session in sessions[8:14]:
        loaded = await store.get(session.id)
        assert loaded is not None
        await store.save(loaded)  # unmodified: an expiry refresh
        assert loaded.expires_at == clock.now + IDLE
        model.saved(loaded)
    for n, session in enumerate(sessions[14:18]):
        await store.delete(session if n % 2 else session.id)
        del model.live[session.id]
        model.gone.append(session.id)
    held = await store.get(sessions[20].id)
    assert held is not None
    return [held]


async def _check(store: Face, model: Model) -> None:
    for sid, (data, expires) in model.live.items():
        session = await store.get(sid)
        assert session is not None, "an acknowledged session is gone"
        assert dict(session) == data
        assert session.expires_at == expires
    for sid in model.gone:
        assert await store.get(sid) is None, "a deleted session is back"


async def test_acknowledged_writes_survive_sigkill(
    make_store: MakeStore, disk_azurite: AzuriteServer, clock: FakeClock, tmp_path: Path
) -> None:
    store = await make_store(disk_azurite.connection_string, inline_budget=1000)
    model = Model(clock)
    held = await _acknowledged_writes(store, model, clock)
    acked_at = time.time()
    waited = wait_for_metadata_save(tmp_path / "azurite", acked_at)

    disk_azurite.kill()

    # While it is down, requests fail fast (connection refused), well within the deadline.
    started = time.monotonic()
    with pytest.raises(AzureError):
        await store.get(held[0].id)
    down_for = time.monotonic() - started
    assert down_for < 2.0 + 1.0

    disk_azurite.restart()

    # The stores connected before the crash work on: nothing to rebuild.
    await _check(store, model)
    fresh = await make_store(disk_azurite.connection_string, inline_budget=1000)
    await _check(fresh, model)
    # A session loaded before the crash saves after it: its ETag survived too.
    (session,) = held
    session["after_crash"] = True
    await store.save(session)
    model.saved(session)
    await _check(fresh, model)
    # Every overflow blob is referenced, none lost, none left over.
    conn = disk_azurite.connection_string
    with TableClient.from_connection_string(conn, store.table_name) as table, \
            ContainerClient.from_connection_string(conn, store.container_name) as container:
        raw = RawStorage(table, container)
        rows = raw.rows()
        assert len(rows) == len(model.live)
        assert sorted(r["BlobName"] for r in rows if r.get("BlobName")) == raw.blobs()
    print(f"\ncrash: {len(model.live)} live + {len(model.gone)} deleted sessions checked; "
          f"waited {waited:.1f} s for Azurite's metadata save; "
          f"a get while down failed in {down_for:.2f} s")
