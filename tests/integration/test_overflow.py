"""Blob overflow (issue 3) on both faces: protocol, round trips, failure safety, scale."""

from __future__ import annotations

import hashlib
import os
import random
import zlib
from typing import Any

import orjson
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient

import tablesessions
from tablesessions import RetryPolicy, SessionDecodeError, SessionTooLargeError
from tablesessions._record import deflate, payload
from tablesessions._record.effects import ReadBlob, ReadEntity
from tablesessions._record.limits import MAX_INLINE_BYTES
from tablesessions._sessions.ops import get as get_op
from tablesessions.encryption import KeyRing
from tablesessions.testing import AzuriteServer, FaultProxyPair, RequestCounter

from ..conftest import MakeStore

BIG = 900_000  # incompressible bytes: over the 704,000-byte default inline budget


def blobs(azurite: AzuriteServer, container: str) -> list[str]:
    with ContainerClient.from_connection_string(azurite.connection_string, container) as c:
        return sorted(b.name for b in c.list_blobs())


def methods(counter: RequestCounter) -> list[tuple[str, str]]:
    return [(r.method, r.service) for r in counter.records]


async def test_overflow_round_trips_and_counts(
        make_store: MakeStore, request_counter: RequestCounter, azurite: AzuriteServer,
        storage_names: tuple[str, str]) -> None:
    store = await make_store()
    session = store.new()
    session["file"] = os.urandom(BIG)
    await store.save(session)
    assert methods(request_counter) == [("PUT", "blob"), ("POST", "table")]
    [first] = blobs(azurite, storage_names[1])
    assert first.startswith(f"default/{tablesessions._sessions.ids.row_key_for(session.id)}/")

    request_counter.reset()
    loaded = await store.get(session.id)
    assert loaded is not None
    assert loaded["file"] == session["file"]
    assert methods(request_counter) == [("GET", "table"), ("GET", "blob")]

    request_counter.reset()
    loaded["file"] = os.urandom(BIG)
    await store.save(loaded)  # new blob, entity replace, old blob delete
    assert methods(request_counter) == [("PUT", "blob"), ("PUT", "table"), ("DELETE", "blob")]
    [second] = blobs(azurite, storage_names[1])
    assert second != first

    request_counter.reset()
    loaded["file"] = b"small again"
    await store.save(loaded)  # moves back inline; the blob goes
    assert methods(request_counter) == [("PUT", "table"), ("DELETE", "blob")]
    assert blobs(azurite, storage_names[1]) == []
    assert (await store.get(session.id)) == {"file": b"small again"}


async def test_payload_exactly_at_the_default_budget_stays_inline_on_azurite(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    store = await make_store()
    session = store.new()
    session["k"] = b""
    await store.save(session)
    loaded = await store.get(session.id)
    assert loaded is not None
    loaded["k"] = os.urandom(MAX_INLINE_BYTES)
    size = len(tablesessions._record.payload.assemble(store._rules.encode_all(loaded)))
    loaded["k"] = loaded["k"][: MAX_INLINE_BYTES - (size - MAX_INLINE_BYTES)]
    stored = tablesessions._record.payload.assemble(store._rules.encode_all(loaded))
    assert len(stored) == MAX_INLINE_BYTES
    await store.save(loaded)  # a replace of 704,000 bytes: Azurite's JSON-body check passes
    assert blobs(azurite, storage_names[1]) == []
    again = await store.get(session.id)
    assert again is not None
    assert again["k"] == loaded["k"]


async def test_delete_and_regenerate_remove_blobs(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    store = await make_store()
    one, two = store.new(), store.new()
    one["f"] = os.urandom(BIG)
    two["f"] = os.urandom(BIG)
    await store.save(one)
    await store.save(two)
    assert len(blobs(azurite, storage_names[1])) == 2
    await store.delete(one.id)  # by id: the pointer is read first
    fresh = await store.regenerate(await store.get(two.id))
    names = blobs(azurite, storage_names[1])
    assert len(names) == 1
    assert tablesessions._sessions.ids.row_key_for(fresh.id) in names[0]
    assert (await store.get(fresh.id))["f"] == two["f"]
    await store.delete(fresh)
    assert blobs(azurite, storage_names[1]) == []


async def test_digest_mismatch_raises_the_documented_decode_error(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    store = await make_store()
    session = store.new()
    session["f"] = os.urandom(BIG)
    await store.save(session)
    [name] = blobs(azurite, storage_names[1])
    with ContainerClient.from_connection_string(azurite.connection_string,
                                                storage_names[1]) as c:
        c.upload_blob(name, os.urandom(BIG + 40), overwrite=True)  # tampered
    with pytest.raises(SessionDecodeError, match="digest"):
        await store.get(session.id)


def test_reader_re_reads_when_a_concurrent_save_replaced_the_blob(
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    """Drive the core's get step by step and let another save land in between."""
    store = tablesessions.SessionStore.from_connection_string(
        azurite.connection_string, table_name=storage_names[0],
        container_name=storage_names[1])
    store.create_storage()
    session = store.new()
    session["f"] = os.urandom(BIG)
    store.save(session)
    policy = store.config.retry

    op = get_op(store._rules, session.id)
    effect = next(op)
    assert isinstance(effect, ReadEntity)
    old_row = store._execute(effect, policy, None)

    writer = store.get(session.id)
    assert writer is not None
    writer["f"] = newer = os.urandom(BIG)
    store.save(writer)  # new blob; the old one is deleted

    effect = op.send(old_row)
    assert isinstance(effect, ReadBlob)
    with pytest.raises(ResourceNotFoundError) as gone:
        store._execute(effect, policy, None)
    effect = op.throw(gone.value)
    assert isinstance(effect, ReadEntity)  # re-reads the entity instead of failing
    effect = op.send(store._execute(effect, policy, None))
    assert isinstance(effect, ReadBlob)
    with pytest.raises(StopIteration) as done:
        op.send(store._execute(effect, policy, None))
    assert done.value.value["f"] == newer  # never a mix of old and new
    store.close()


def test_entity_update_failing_after_the_upload_keeps_the_old_session(
        fault_proxy: FaultProxyPair, azurite: AzuriteServer,
        storage_names: tuple[str, str]) -> None:
    store = tablesessions.SessionStore.from_connection_string(
        fault_proxy.connection_string, table_name=storage_names[0],
        container_name=storage_names[1], retry=RetryPolicy(max_attempts=1))
    store.create_storage()
    session = store.new()
    session["f"] = os.urandom(BIG)
    store.save(session)
    [old] = blobs(azurite, storage_names[1])

    loaded = store.get(session.id)
    assert loaded is not None
    loaded["f"] = os.urandom(BIG)
    fault_proxy.table.fail_next("500", n=1, methods={"PUT"})  # the entity replace fails
    with pytest.raises(HttpResponseError):
        store.save(loaded)

    clean = tablesessions.SessionStore.from_connection_string(
        azurite.connection_string, table_name=storage_names[0],
        container_name=storage_names[1])
    still = clean.get(session.id)
    assert still is not None
    assert still["f"] == session["f"]  # intact and readable
    names = blobs(azurite, storage_names[1])
    assert old in names
    assert len(names) == 2  # the new blob is an orphan under the session's prefix
    store.close()
    clean.close()


async def test_over_the_cap_with_overflow_writes_nothing(
        make_store: MakeStore, request_counter: RequestCounter) -> None:
    store = await make_store(max_session_bytes=2_000_000)
    session = store.new()
    session["f"] = os.urandom(2_100_000)
    with pytest.raises(SessionTooLargeError):
        await store.save(session)
    assert request_counter.count == 0


async def test_5_mib_incompressible_session_round_trips_exactly(make_store: MakeStore) -> None:
    store = await make_store()
    session = store.new()
    data: dict[str, Any] = {"f": os.urandom(5 * 2**20), "meta": {"name": "upload.bin"}}
    session.update(data)
    await store.save(session)
    loaded = await store.get(session.id)
    assert loaded is not None
    assert dict(loaded) == data


def test_64_mib_incompressible_session_round_trips_exactly(
        azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    # Once, on the sync face (the async face shares every rule and ran 5 MiB above).
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=storage_names[0],
            container_name=storage_names[1]) as store:
        store.create_storage()
        session = store.new()
        session["f"] = payload = os.urandom(64 * 2**20)
        store.save(session)
        loaded = store.get(session.id)
        assert loaded is not None
        assert loaded["f"] == payload


async def test_a_session_past_16_mib_is_read_in_one_blob_get(
        make_store: MakeStore, request_counter: RequestCounter) -> None:
    # Issue 18: 8 MiB first read + 4 MiB ranges made this 5 calls; the floor makes 2.
    store = await make_store()
    session = store.new()
    session["f"] = payload = os.urandom(16 * 2**20 + 4096)
    await store.save(session)
    request_counter.reset()
    loaded = await store.get(session.id)
    assert loaded is not None
    assert methods(request_counter) == [("GET", "table"), ("GET", "blob")]
    assert loaded["f"] == payload


def _ring() -> KeyRing:
    return KeyRing({"k1": KeyRing.generate_key()})


async def test_an_encrypted_blob_is_bound_to_its_write_by_the_gcm_tag(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    store = await make_store(key_ring=_ring())
    session = store.new()
    session["f"] = first = os.urandom(BIG)
    await store.save(session)
    with TableClient.from_connection_string(azurite.connection_string,
                                            storage_names[0]) as table:
        [row] = list(table.list_entities())
    [name] = blobs(azurite, storage_names[1])
    with ContainerClient.from_connection_string(azurite.connection_string,
                                                storage_names[1]) as c:
        sealed = c.download_blob(name).readall()
    # The digest column is the ciphertext's tag: nothing hashed on either side.
    assert row["BlobDigest"] == "gcm:" + sealed[-16:].hex()
    loaded = await store.get(session.id)
    assert loaded is not None and loaded["f"] == first

    loaded["f"] = os.urandom(BIG)
    await store.save(loaded)  # a new blob; the old one is deleted
    [new_name] = blobs(azurite, storage_names[1])
    with ContainerClient.from_connection_string(azurite.connection_string,
                                                storage_names[1]) as c:
        # A replay of the session's own earlier ciphertext: authentic under the key
        # and this row's associated data, but not this write's.
        c.upload_blob(new_name, sealed, overwrite=True)
        assert await store.get(session.id) is None  # encrypted: tampering reads as none
        # The right tag on altered ciphertext: the decryption refuses it.
        with TableClient.from_connection_string(azurite.connection_string,
                                                storage_names[0]) as table:
            [row] = list(table.list_entities())
        tag = bytes.fromhex(str(row["BlobDigest"])[4:])
        altered = bytearray(sealed)
        altered[-16:] = tag
        c.upload_blob(new_name, bytes(altered), overwrite=True)
        assert await store.get(session.id) is None


async def test_a_gcm_digest_on_a_plaintext_row_is_refused(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    store = await make_store()
    session = store.new()
    session["f"] = os.urandom(BIG)
    await store.save(session)
    with TableClient.from_connection_string(azurite.connection_string,
                                            storage_names[0]) as table:
        [row] = list(table.list_entities())
        [name] = blobs(azurite, storage_names[1])
        with ContainerClient.from_connection_string(azurite.connection_string,
                                                    storage_names[1]) as c:
            data = c.download_blob(name).readall()
        row["BlobDigest"] = "gcm:" + data[-16:].hex()  # no key ring: no tag to trust
        table.update_entity(row)
    with pytest.raises(SessionDecodeError, match="digest"):
        await store.get(session.id)


async def _one_overflowed_session(make_store: MakeStore, azurite: AzuriteServer,
                                  container: str) -> tuple[Any, Any, bytes, str]:
    """A store, one session saved with a blob-sized value, the value and its blob."""
    store = await make_store()
    session = store.new()
    session["f"] = data = os.urandom(BIG)
    await store.save(session)
    [name] = blobs(azurite, container)
    return store, session, data, name


def _only_row(azurite: AzuriteServer, table_name: str) -> dict[str, Any]:
    with TableClient.from_connection_string(azurite.connection_string, table_name) as table:
        [row] = list(table.list_entities())
    return dict(row)


async def test_a_plaintext_blob_is_bound_to_its_upload_by_the_etag(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    store, session, data, name = await _one_overflowed_session(make_store, azurite,
                                                               storage_names[1])
    with ContainerClient.from_connection_string(azurite.connection_string,
                                                storage_names[1]) as c:
        etag = c.get_blob_client(name).get_blob_properties().etag
        # The digest column is the upload's ETag: nothing hashed on either side.
        assert _only_row(azurite, storage_names[0])["BlobDigest"] == f"etag:{etag}"
        loaded = await store.get(session.id)
        assert loaded is not None and loaded["f"] == data
        # The same bytes written again (a replay): a SHA-256 digest would accept
        # them; the service gave the blob a new ETag, so the row no longer names it.
        c.upload_blob(name, data, overwrite=True)
    with pytest.raises(SessionDecodeError, match="digest"):
        await store.get(session.id)


async def test_rows_with_a_sha256_digest_stay_readable(
        make_store: MakeStore, azurite: AzuriteServer, storage_names: tuple[str, str]) -> None:
    """Rows written before ETag pointers carry the blob's SHA-256, checked as before."""
    store, session, data, name = await _one_overflowed_session(make_store, azurite,
                                                               storage_names[1])
    with ContainerClient.from_connection_string(azurite.connection_string,
                                                storage_names[1]) as c:
        blob = c.download_blob(name).readall()
        with TableClient.from_connection_string(azurite.connection_string,
                                                storage_names[0]) as table:
            [row] = list(table.list_entities())
            row["BlobDigest"] = hashlib.sha256(blob).hexdigest()
            table.update_entity(row)
        loaded = await store.get(session.id)
        assert loaded is not None and loaded["f"] == data
        c.upload_blob(name, os.urandom(len(blob)), overwrite=True)  # same size, other bytes
    with pytest.raises(SessionDecodeError, match="digest"):
        await store.get(session.id)


async def test_a_large_json_key_is_deflated_in_pieces_and_reads_back(
        make_store: MakeStore, request_counter: RequestCounter, azurite: AzuriteServer,
        storage_names: tuple[str, str]) -> None:
    # Issue 18: a fragment past deflate.PARALLEL_FROM is deflated in pieces on the
    # helper threads, through a real save on either face (the async one deflates
    # on its event loop's thread), and stays one zlib stream the stdlib inflates.
    store = await make_store()
    session = store.new()
    # Random order ids keep the stream past the inline budget (~1.2 MB deflated).
    rng = random.Random(18)
    history = [{"order": rng.randbytes(12).hex(), "qty": i % 7, "note": "gift wrap " * (i % 5)}
               for i in range(60_000)]
    session.update({"history": history, "user": "ada"})
    await store.save(session)
    assert methods(request_counter) == [("PUT", "blob"), ("POST", "table")]

    [name] = blobs(azurite, storage_names[1])
    with ContainerClient.from_connection_string(azurite.connection_string,
                                                storage_names[1]) as c:
        stored = payload.split(c.download_blob(name).readall())["history"]
    flags, packed = stored.packed(payload.DEFAULT_COMPRESS_THRESHOLD, 1)
    fragment = orjson.dumps(history)
    assert len(fragment) >= deflate.PARALLEL_FROM and flags == 1
    assert zlib.decompress(packed) == fragment
    if deflate._helper_count():  # the 2-core CI machine: the pieces, not one stream
        assert packed == deflate.compress_in_pieces(fragment, 1, 1)
        assert packed != deflate._compress_whole(fragment, 1)

    request_counter.reset()
    loaded = await store.get(session.id)
    assert loaded is not None
    assert methods(request_counter) == [("GET", "table"), ("GET", "blob")]
    assert dict(loaded) == {"history": history, "user": "ada"}
