"""Ambiguous writes: the request reached Azurite and was applied, then the
response was lost (the proxy's ``drop_response``). The retry meets its own
earlier attempt as 409 (insert, blob upload) or 412 (conditional update); the
store must recognise that as success, without a conflict and without writing
twice. Each write kind, on both faces.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from azure.core.exceptions import AzureError

from tablesessions import RetryPolicy, Session
from tablesessions.testing import Fault, FaultProxyPair
from tests.conftest import Face, FakeClock, MakeStore
from tests.reliability.conftest import RawStorage, wait_until

TABLE_INSERT = {"POST"}
TABLE_REPLACE = {"PUT"}
TABLE_MERGE = {"PATCH", "MERGE"}
IDLE = dt.timedelta(minutes=20)  # the store's default idle_timeout


async def _stores(make_store: MakeStore, fault_proxy: FaultProxyPair,
                  **options: Any) -> tuple[Face, Face]:
    """(clean, proxied): the clean one, straight to Azurite, creates the storage;
    ``options`` go to the proxied one."""
    clean = await make_store(inline_budget=1000)
    proxied = await make_store(fault_proxy.connection_string, inline_budget=1000, **options)
    fault_proxy.reset_stats()
    return clean, proxied


async def _next_save_is_one_request(proxied: Face, session: Session,
                                    fault_proxy: FaultProxyPair) -> None:
    """The session knows the ETag really stored: its next change is exactly one
    table request (no 412, no re-read, no merge round)."""
    fault_proxy.reset_stats()
    session["after"] = True
    await proxied.save(session)
    assert fault_proxy.table.stats.seen == 1, "the store lost track of the stored ETag"


async def test_create(make_store: MakeStore, fault_proxy: FaultProxyPair,
                      raw: RawStorage) -> None:
    clean, proxied = await _stores(make_store, fault_proxy)
    session = proxied.new()
    session["user"] = "ada"
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods=TABLE_INSERT)

    await proxied.save(session)  # neither raises nor reports a conflict

    # Insert (applied, answer lost), insert again (409), read of the write token.
    assert fault_proxy.table.stats.seen == 3
    assert fault_proxy.table.stats.faults == {Fault.DROP_RESPONSE: 1}
    stored = await clean.get(session.id)
    assert stored is not None and dict(stored) == {"user": "ada"}
    assert len(raw.rows()) == 1
    assert not session.is_new
    await _next_save_is_one_request(proxied, session, fault_proxy)


async def test_conditional_update(make_store: MakeStore, fault_proxy: FaultProxyPair,
                                  raw: RawStorage) -> None:
    clean, proxied = await _stores(make_store, fault_proxy)
    created = clean.new()
    created.update({"user": "ada", "cart": [1]})
    await clean.save(created)
    session = await proxied.get(created.id)
    assert session is not None
    session["cart"].append(2)
    etag_before = raw.etag(session.id)
    fault_proxy.reset_stats()
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods=TABLE_REPLACE)

    await proxied.save(session)

    # Replace (applied, answer lost), replace again (412: our own ETag moved on),
    # re-read finds our write token: success, not a merge round.
    assert fault_proxy.table.stats.seen == 3
    stored = await clean.get(session.id)
    assert stored is not None and dict(stored) == {"user": "ada", "cart": [1, 2]}
    assert raw.etag(session.id) != etag_before
    await _next_save_is_one_request(proxied, session, fault_proxy)


async def test_expiry_refresh(make_store: MakeStore, fault_proxy: FaultProxyPair,
                              raw: RawStorage, clock: FakeClock) -> None:
    clean, proxied = await _stores(make_store, fault_proxy)
    created = clean.new()
    created["user"] = "ada"
    await clean.save(created)
    before = raw.row(created.id)
    assert before is not None
    clock.advance(dt.timedelta(minutes=15))  # past the refresh threshold (half of 20 min)
    session = await proxied.get(created.id)
    assert session is not None and not session.modified
    fault_proxy.reset_stats()
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods=TABLE_MERGE)

    await proxied.save(session)

    # A merge of ExpiresAt (and a write token) conditional on the ETag (applied,
    # answer lost), again (412: our own ETag moved on), then the re-read finds our
    # token: success, and the session adopts the ETag really stored.
    assert fault_proxy.table.stats.seen == 3
    after = raw.row(created.id)
    assert after is not None
    assert after["ExpiresAt"] == clock.now + IDLE == session.expires_at
    unchanged = {k: v for k, v in before.items() if k not in ("ExpiresAt", "WriteToken")}
    assert {k: after[k] for k in unchanged} == unchanged  # the data untouched
    stored = await clean.get(created.id)
    assert stored is not None and dict(stored) == {"user": "ada"}
    await _next_save_is_one_request(proxied, session, fault_proxy)


@pytest.mark.parametrize("when", ["create", "update"])
async def test_overflow_blob_upload(make_store: MakeStore, fault_proxy: FaultProxyPair,
                                    raw: RawStorage, when: str) -> None:
    clean, proxied = await _stores(make_store, fault_proxy)
    rng = random.Random(4)
    big = rng.randbytes(5000)  # incompressible, over inline_budget=1000
    if when == "create":
        session = proxied.new()
    else:
        created = clean.new()
        created["blob"] = rng.randbytes(3000)
        await clean.save(created)
        loaded = await proxied.get(created.id)
        assert loaded is not None
        session = loaded
    session["blob"] = big
    fault_proxy.reset_stats()
    fault_proxy.blob.fail_next(Fault.DROP_RESPONSE, methods={"PUT"})

    await proxied.save(session)

    # Upload (applied, answer lost), upload again (409 on If-None-Match *: our own).
    assert fault_proxy.blob.stats.faults == {Fault.DROP_RESPONSE: 1}
    assert fault_proxy.blob.stats.seen == (2 if when == "create" else 3)  # + old blob delete
    row = raw.row(session.id)
    assert row is not None
    assert raw.blobs() == [row["BlobName"]], "exactly one blob, the one the row points to"
    stored = await clean.get(session.id)
    assert stored is not None and stored["blob"] == big
    await _next_save_is_one_request(proxied, session, fault_proxy)


@pytest.mark.parametrize("target", ["session", "id"])
async def test_delete(make_store: MakeStore, fault_proxy: FaultProxyPair, raw: RawStorage,
                      target: str) -> None:
    """Not a 409/412 case, but the same question: a retried delete meets 404."""
    clean, proxied = await _stores(make_store, fault_proxy)
    created = clean.new()
    created["blob"] = random.Random(5).randbytes(3000)
    await clean.save(created)
    session = await proxied.get(created.id)
    assert session is not None
    fault_proxy.reset_stats()
    # The delete is a replace by a tombstone (PUT, If-Match *): drop its answer.
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods={"PUT"})
    fault_proxy.blob.fail_next(Fault.DROP_RESPONSE, methods={"DELETE"})

    await proxied.delete(session if target == "session" else session.id)

    assert await clean.get(created.id) is None
    assert raw.rows() == [] and raw.blobs() == []
    assert len(raw.tombstones()) == 1


# -- beyond one dropped answer ------------------------------------------------------


async def test_a_caller_may_retry_a_save_whose_insert_landed(
    make_store: MakeStore, fault_proxy: FaultProxyPair
) -> None:
    """The insert lands, its answer is lost, and storage stays down past the
    deadline: save raises (correctly: the outcome is unknown). The caller retries
    the save later. That retry meets our own row (409) and must not call it
    another session's: it is this Session object's own earlier write.

    Today the retry raises SessionConflictError("a session with this id already
    exists"): the write token is drawn per attempt in ``_ops._insert``, so the
    second save cannot recognise the first save's token.
    """
    clean, proxied = await _stores(make_store, fault_proxy,
                                   retry=RetryPolicy(max_attempts=3, deadline=1.0))
    session = proxied.new()
    session["user"] = "ada"
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods=TABLE_INSERT)
    fault_proxy.table.fail_next(Fault.BUSY_503, 100)
    with pytest.raises(AzureError):
        await proxied.save(session)
    fault_proxy.clear()

    await proxied.save(session)  # the caller's retry, storage healthy again

    stored = await clean.get(session.id)
    assert stored is not None and dict(stored) == {"user": "ada"}


@pytest.mark.parametrize("concurrency", ["merge", "strict"])
async def test_a_caller_may_retry_a_save_whose_update_landed(
    make_store: MakeStore, fault_proxy: FaultProxyPair, concurrency: str
) -> None:
    """As above for an update. With ``merge`` the retry re-reads, finds its own
    data and writes it again: correct. With ``strict`` it raises
    SessionConflictError although nobody else touched the session."""
    clean, proxied = await _stores(make_store, fault_proxy, concurrency=concurrency,
                                   retry=RetryPolicy(max_attempts=3, deadline=1.0))
    created = clean.new()
    created["n"] = 1
    await clean.save(created)
    session = await proxied.get(created.id)
    assert session is not None
    session["n"] = 2
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods=TABLE_REPLACE)
    fault_proxy.table.fail_next(Fault.BUSY_503, 100)
    with pytest.raises(AzureError):
        await proxied.save(session)
    fault_proxy.clear()

    await proxied.save(session)

    stored = await clean.get(session.id)
    assert stored is not None and dict(stored) == {"n": 2}


async def test_a_late_duplicate_insert_does_not_resurrect_a_deleted_session(
    make_store: MakeStore, fault_proxy: FaultProxyPair, raw: RawStorage
) -> None:
    """The other half of ambiguity: the first attempt is not lost but late. It
    outlives the client's read timeout, the retry creates the row, the user logs
    out (delete), and then the first attempt reaches the service and inserts the
    row again: a logged-out session is live again, for a whole idle period.

    Azure documents that a write can succeed after the client timed out; an
    insert is the one write that nothing conditions (update and refresh need the
    row to exist, so a late copy of either meets 404 or 412).
    """
    clean, proxied = await _stores(make_store, fault_proxy, read_timeout=0.3,
                                   retry=RetryPolicy(max_attempts=4, deadline=3.0))
    fault_proxy.table.configure(delay=1.0)
    session = proxied.new()
    session["user"] = "ada"
    fault_proxy.table.fail_next(Fault.DELAY, methods=TABLE_INSERT)
    await proxied.save(session)  # attempt 1 held by the proxy; attempt 2 inserts
    await proxied.delete(session)  # logout
    assert await clean.get(session.id) is None
    forwarded = fault_proxy.table.stats.forwarded

    # The held attempt now reaches Azurite (the client stopped waiting long ago).
    wait_until(lambda: fault_proxy.table.stats.forwarded > forwarded)

    assert await clean.get(session.id) is None, "the deleted session is live again"
    assert raw.rows() == []
    assert len(raw.tombstones()) == 1  # the late insert met it and got 409
