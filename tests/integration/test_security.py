"""Encryption at rest, key rotation, and revoking a user's sessions (issue 9)."""

from __future__ import annotations

import logging
import os

import pytest
from azure.data.tables import TableClient, UpdateMode

from tablesessions.encryption import KeyRing
from tablesessions.testing import AzuriteServer, RequestCounter

from ..conftest import CANARY, FakeClock, MakeStore

K1, K2 = KeyRing.generate_key(), KeyRing.generate_key()


def table(azurite: AzuriteServer, names: tuple[str, str]) -> TableClient:
    return TableClient.from_connection_string(azurite.connection_string, names[0])


async def test_payloads_are_encrypted_inline_and_in_blobs(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    store = await make_store(key_ring=KeyRing({"k1": K1}))
    small, big = store.new(), store.new()
    small["secret"] = CANARY
    big["secret"] = CANARY
    big["file"] = os.urandom(900_000)
    await store.save(small)
    await store.save(big)
    assert (await store.get(small.id))["secret"] == CANARY
    assert (await store.get(big.id))["file"] == big["file"]
    with table(azurite, storage_names) as raw:
        rows = list(raw.list_entities())
    assert {r["Codec"] for r in rows} == {"ts1+aesgcm:k1"}
    assert all(CANARY.encode() not in r.get("D0", b"") for r in rows)


async def test_ciphertext_moved_to_another_row_reads_as_no_session_and_is_logged(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str],
        caplog: pytest.LogCaptureFixture) -> None:
    store = await make_store(key_ring=KeyRing({"k1": K1}))
    victim, attacker = store.new(), store.new()
    victim["role"] = "admin"
    attacker["role"] = "user"
    await store.save(victim)
    await store.save(attacker)
    with table(azurite, storage_names) as raw:
        rows = {r["RowKey"]: r for r in raw.list_entities()}
        from tablesessions._sessions.ids import row_key_for

        stolen = rows[row_key_for(victim.id)]
        target = dict(rows[row_key_for(attacker.id)])
        for column in ("D0", "Size", "Chunks", "Codec"):  # the admin ciphertext, whole
            target[column] = stolen[column]
        raw.update_entity(target, mode=UpdateMode.REPLACE)
    with caplog.at_level(logging.WARNING, logger="tablesessions.security"):
        assert await store.get(attacker.id) is None
    warnings = [r for r in caplog.records if r.name == "tablesessions.security"]
    assert len(warnings) == 1
    assert attacker.id not in warnings[0].getMessage()
    assert "admin" not in warnings[0].getMessage()
    assert (await store.get(victim.id))["role"] == "admin"  # the original is untouched


async def test_a_flipped_bit_reads_as_no_session(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    store = await make_store(key_ring=KeyRing({"k1": K1}))
    session = store.new()
    session["x"] = 1
    await store.save(session)
    with table(azurite, storage_names) as raw:
        [row] = list(raw.list_entities())
        row["D0"] = bytes([row["D0"][0] ^ 1]) + row["D0"][1:]
        raw.update_entity(row, mode=UpdateMode.REPLACE)
    assert await store.get(session.id) is None


async def test_plaintext_is_refused_once_encryption_is_on_unless_migrating(
        make_store: MakeStore) -> None:
    plain = await make_store()
    session = plain.new()
    session["x"] = 1
    await plain.save(session)
    strict = await make_store(key_ring=KeyRing({"k1": K1}))
    assert await strict.get(session.id) is None
    migrating = await make_store(key_ring=KeyRing({"k1": K1}), accept_plaintext=True)
    assert await migrating.get(session.id) == {"x": 1}
    report = await migrating.rotate_keys()
    assert report.rotated == 1
    assert await strict.get(session.id) == {"x": 1}  # encrypted now


async def test_key_rotation_is_complete_and_resumable(make_store: MakeStore) -> None:
    old = await make_store(key_ring=KeyRing({"k1": K1}))
    ids = []
    for i in range(6):
        s = old.new()
        s["i"] = i
        if i == 0:
            s["file"] = os.urandom(800_000)  # overflowed: its blob is re-encrypted too
        await old.save(s)
        ids.append(s.id)
    both = await make_store(key_ring=KeyRing({"k2": K2, "k1": K1}))  # k2 is the new primary
    assert (await both.get(ids[3]))["i"] == 3  # old keys still decrypt

    cut = await both.rotate_keys(time_budget=0)  # a run cut short
    assert not cut.complete
    first = await both.rotate_keys()
    assert first.complete
    assert cut.rotated + first.rotated == 6
    again = await both.rotate_keys()
    assert again.rotated == 0  # nothing left under k1

    only_new = await make_store(key_ring=KeyRing({"k2": K2}))
    for i, sid in enumerate(ids):
        assert (await only_new.get(sid))["i"] == i


async def test_revoke_user_ends_all_their_sessions_in_one_write(
        make_store: MakeStore, request_counter: RequestCounter) -> None:
    store = await make_store()
    laptop, phone, other = store.new(), store.new(), store.new()
    for s in (laptop, phone, other):
        s["x"] = 1
    await store.bind_user(laptop, "alice@example.com")
    await store.bind_user(phone, "alice@example.com")
    await store.bind_user(other, "bob@example.com")
    listed = await store.user_sessions("alice@example.com")
    assert len(listed) == 2
    assert all(laptop.id not in repr(item) for item in listed)

    request_counter.reset()
    assert await store.get(laptop.id) is not None
    assert request_counter.count == 2  # the session, then the user's generation

    request_counter.reset()
    await store.revoke_user("alice@example.com")
    writes = [m for m, _ in request_counter.requests if m != "GET"]
    assert writes == ["PATCH"]  # one merge, however many sessions
    assert await store.get(laptop.id) is None
    assert await store.get(phone.id) is None
    assert await store.get(other.id) is not None
    assert await store.user_sessions("alice@example.com") == []

    again = store.new()
    await store.bind_user(again, "alice@example.com")  # a new login after the revoke
    assert await store.get(again.id) is not None


async def test_regenerate_keeps_the_user_binding(make_store: MakeStore) -> None:
    store = await make_store()
    session = store.new()
    await store.bind_user(session, "carol")
    fresh = await store.regenerate(session)
    assert len(await store.user_sessions("carol")) == 1
    await store.revoke_user("carol")
    assert await store.get(fresh.id) is None


async def test_bad_user_ids_are_refused_before_storage(
        make_store: MakeStore, request_counter: RequestCounter) -> None:
    store = await make_store()
    with pytest.raises(ValueError, match="user_id"):
        await store.revoke_user("")
    with pytest.raises(ValueError, match="user_id"):
        await store.bind_user(store.new(), "x" * 2000)
    assert request_counter.count == 0


async def test_nothing_secret_is_logged_even_at_debug(
        make_store: MakeStore, caplog: pytest.LogCaptureFixture) -> None:
    """Every operation, failures included, with all loggers at DEBUG."""
    store = await make_store(key_ring=KeyRing({"k1": K1}))
    with caplog.at_level(logging.DEBUG):
        session = store.new()
        session["secret"] = CANARY
        session["file"] = os.urandom(800_000)
        await store.save(session)
        loaded = await store.get(session.id)
        loaded["secret"] = CANARY + "2"
        await store.save(loaded)
        stale = await store.get(session.id)
        await store.delete(session.id)
        stale["more"] = CANARY
        await store.save(stale)  # deleted meanwhile: logged, not resurrected
        await store.regenerate(store.new())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "deleted" in text  # the suite really captured the store's own lines
    assert session.id not in text
    assert CANARY not in text


async def test_the_sweeper_removes_index_entries_past_their_session(
        make_store: MakeStore, clock: FakeClock, azurite: AzuriteServer,
        storage_names: tuple[str, str]) -> None:
    import datetime as dt

    store = await make_store(idle_timeout=dt.timedelta(minutes=5),
                             absolute_timeout=dt.timedelta(minutes=30))
    old = store.new()
    await store.bind_user(old, "dave")
    clock.advance(dt.timedelta(minutes=20))
    live = store.new()
    await store.bind_user(live, "dave")
    clock.advance(dt.timedelta(minutes=15))  # old's absolute deadline has passed
    report = await store.sweep()
    assert report.index_entries_deleted == 1
    with table(azurite, storage_names) as raw:
        index = [r for r in raw.list_entities() if "~u~" in r["PartitionKey"]]
    from tablesessions._sessions.ids import row_key_for

    assert [r["RowKey"] for r in index] == [row_key_for(live.id)]
