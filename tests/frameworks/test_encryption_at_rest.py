"""Encryption at rest by default in the integrations (issue 14, item 6).

Flask, Django and Starlette derive an AES-256-GCM key ring from the framework's
secret (HKDF); fallback secrets still decrypt while rotating; an explicit
``key_ring`` (or ``key_ring=None``) wins; plaintext rows stay readable and are
encrypted on their next write. Checked on the raw table in Azurite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.data.tables import TableClient
from django.test import Client, override_settings
from flask import Flask

import tablesessions
import tablesessions.aio
from tablesessions.encryption import KeyRing
from tablesessions.testing import AzuriteServer, RequestCounter

from .helpers import SECRET
from .test_cross_framework import flask_app, starlette_app
from .test_django import tablesessions_settings

OLD_SECRET = "the-secret-before-rotation"
CANARY = "alice-plaintext-canary"  # a value that must never be visible in the table


@pytest.fixture
def table(azurite: AzuriteServer, storage_names: tuple[str, str]) -> Iterator[TableClient]:
    with TableClient.from_connection_string(azurite.connection_string,
                                            storage_names[0]) as client:
        yield client


def session_rows(table: TableClient) -> list[dict[str, Any]]:
    return [dict(e) for e in table.list_entities()
            if not e.get("Deleted") and str(e.get("Codec", "")).startswith("ts")]


def assert_ciphertext(table: TableClient, expected_kid: str) -> None:
    rows = session_rows(table)
    assert rows, "no session row was written"
    for row in rows:
        codec = str(row["Codec"])
        assert codec.endswith("+aesgcm:" + expected_kid), codec
        assert CANARY.encode() not in repr(row).encode(), "plaintext visible in the table"


def kid_of(secret: str) -> str:
    return KeyRing.from_secrets(secret, context="sessions").primary


def store_for(azurite: AzuriteServer, storage_names: tuple[str, str],
              **options: Any) -> tablesessions.SessionStore:
    table, container = storage_names
    return tablesessions.SessionStore.from_connection_string(
        azurite.connection_string, table_name=table, container_name=container, **options)


def login_flask(app: Flask) -> Any:
    client = app.test_client()
    client.post(f"/login/{CANARY}")
    return client


# -- Flask ----------------------------------------------------------------------------
def test_flask_encrypts_under_a_key_from_secret_key(
        session_store: tablesessions.SessionStore, table: TableClient) -> None:
    client = login_flask(flask_app(session_store))
    assert_ciphertext(table, kid_of(SECRET))
    assert client.post("/count").json == {"user": CANARY, "count": 2}


def test_flask_rotation_reads_sessions_under_a_fallback_secret(
        azurite: AzuriteServer, storage_names: tuple[str, str],
        session_store: tablesessions.SessionStore, table: TableClient) -> None:
    before = flask_app(session_store)
    before.config["SECRET_KEY"] = OLD_SECRET
    client = login_flask(before)
    assert_ciphertext(table, kid_of(OLD_SECRET))
    cookie = client.get_cookie("session")
    assert cookie is not None

    with store_for(azurite, storage_names) as fresh:  # a new instance, new secret
        after = flask_app(fresh)
        after.config["SECRET_KEY_FALLBACKS"] = [OLD_SECRET]
        rotated = after.test_client()
        rotated.set_cookie("session", cookie.value)
        assert rotated.post("/count").json == {"user": CANARY, "count": 2}
        assert_ciphertext(table, kid_of(SECRET))  # re-encrypted on its write

        # Without the fallback the old cookie (and key) is refused: a fresh, empty
        # session, so the view's session["count"] fails.
        client2 = flask_app(fresh).test_client()
        client2.set_cookie("session", cookie.value)
        assert client2.post("/count").status_code == 500


def test_flask_explicit_key_ring_choice_wins(
        azurite: AzuriteServer, storage_names: tuple[str, str], table: TableClient,
        session_store: tablesessions.SessionStore) -> None:
    ring = KeyRing({"mine": KeyRing.generate_key()})
    with store_for(azurite, storage_names, key_ring=ring) as explicit:
        login_flask(flask_app(explicit))
        assert_ciphertext(table, "mine")
    for row in session_rows(table):
        table.delete_entity(row["PartitionKey"], row["RowKey"])
    with store_for(azurite, storage_names, key_ring=None) as plain:
        login_flask(flask_app(plain))
        (row,) = session_rows(table)
        assert "+aesgcm:" not in str(row["Codec"])  # key_ring=None: plaintext, as chosen


def test_flask_plaintext_rows_stay_readable_and_are_encrypted_on_next_write(
        azurite: AzuriteServer, storage_names: tuple[str, str], table: TableClient) -> None:
    with store_for(azurite, storage_names, key_ring=None) as plain:
        plain.create_storage()
        client = login_flask(flask_app(plain))  # written before the upgrade: plaintext
    cookie = client.get_cookie("session")
    assert cookie is not None
    (row,) = session_rows(table)
    assert "+aesgcm:" not in str(row["Codec"])

    with store_for(azurite, storage_names) as upgraded:  # no key_ring given: derived
        client = flask_app(upgraded).test_client()
        client.set_cookie("session", cookie.value)
        assert client.post("/count").json == {"user": CANARY, "count": 2}
    assert_ciphertext(table, kid_of(SECRET))


# -- Django ---------------------------------------------------------------------------
def test_django_encrypts_and_rotates_with_secret_key_fallbacks(
        azurite: AzuriteServer, storage_names: tuple[str, str],
        request_counter: RequestCounter, table: TableClient) -> None:
    from tablesessions.django import get_store

    settings = tablesessions_settings(azurite, storage_names, request_counter)
    with override_settings(TABLESESSIONS=settings, SECRET_KEY=OLD_SECRET):
        get_store().create_storage()
        client = Client()
        assert client.get(f"/login/{CANARY}").json() == {"user": CANARY}
        assert_ciphertext(table, kid_of(OLD_SECRET))
        cookie = client.cookies["sessionid"].value
    # The cookie signer rotates as well: the old cookie is accepted through the fallback.
    with override_settings(TABLESESSIONS=settings, SECRET_KEY=SECRET,
                           SECRET_KEY_FALLBACKS=[OLD_SECRET]):
        client = Client()
        client.cookies["sessionid"] = cookie
        assert client.get("/peek").json() == {"count": 0, "user": CANARY}
        assert client.get("/count").json() == {"count": 1}
        assert_ciphertext(table, kid_of(SECRET))


# -- Starlette ------------------------------------------------------------------------
async def test_starlette_encrypts_under_the_middleware_secret(
        async_session_store: tablesessions.aio.SessionStore,
        session_store: tablesessions.SessionStore, table: TableClient) -> None:
    # Written by Flask (same secret), then changed through Starlette: still one ring.
    flask_client = login_flask(flask_app(session_store))
    cookie = flask_client.get_cookie("session")
    assert cookie is not None
    transport = httpx.ASGITransport(app=starlette_app(async_session_store))
    async with httpx.AsyncClient(transport=transport, base_url="https://b.test") as client:
        client.cookies.set("session", cookie.value, domain="b.test")
        assert (await client.post("/count")).json() == {"count": 2}
    assert async_session_store.config.key_ring is not None
    assert_ciphertext(table, kid_of(SECRET))


def test_derived_rings_are_stable_and_separate() -> None:
    one = KeyRing.from_secrets(SECRET, [OLD_SECRET], context="sessions")
    again = KeyRing.from_secrets(SECRET.encode(), [OLD_SECRET], context="sessions")
    assert one.key_ids == again.key_ids and one.primary == kid_of(SECRET)
    assert one.key_ids[1] == kid_of(OLD_SECRET)
    other = KeyRing.from_secrets(SECRET, context="cache")
    assert other.primary not in one.key_ids
    sealed, kid = one.encrypt(b"data", b"aad")
    assert again.decrypt(sealed, kid, b"aad") == b"data"  # another instance, same secret
    assert SECRET not in repr(one)
    with pytest.raises(ValueError):
        KeyRing.from_secrets("", context="sessions")


def test_only_an_unset_key_ring_is_derived(azurite: AzuriteServer,
                                           storage_names: tuple[str, str]) -> None:
    ring = KeyRing({"mine": KeyRing.generate_key()})
    with store_for(azurite, storage_names) as unset, \
            store_for(azurite, storage_names, key_ring=None) as opted_out, \
            store_for(azurite, storage_names, key_ring=ring) as explicit, \
            store_for(azurite, storage_names, accept_plaintext=False) as strict:
        assert unset.config.key_ring is None  # the store alone: plaintext
        assert unset.encrypt_with_secret(SECRET)
        assert unset.config.key_ring is not None and unset.config.accept_plaintext
        assert unset.config.key_ring.primary == kid_of(SECRET)
        assert not opted_out.encrypt_with_secret(SECRET) and opted_out.config.key_ring is None
        assert not explicit.encrypt_with_secret(SECRET) and explicit.config.key_ring is ring
        assert strict.encrypt_with_secret(SECRET) and not strict.config.accept_plaintext
        # A new secret (the old one in the fallbacks) re-derives: both keys, new primary.
        assert unset.encrypt_with_secret(OLD_SECRET, [SECRET])
        assert unset.config.key_ring.key_ids == (kid_of(OLD_SECRET), kid_of(SECRET))


def test_rotate_keys_encrypts_plaintext_rows_under_the_derived_ring(
        azurite: AzuriteServer, storage_names: tuple[str, str], table: TableClient) -> None:
    with store_for(azurite, storage_names, key_ring=None) as plain:
        plain.create_storage()
        session = plain.new()
        session["user"] = CANARY
        plain.save(session)
    with store_for(azurite, storage_names) as store:
        store.encrypt_with_secret(SECRET)
        store.rotate_keys()
        assert_ciphertext(table, kid_of(SECRET))
        loaded = store.get(session.id)
        assert loaded is not None and loaded["user"] == CANARY
