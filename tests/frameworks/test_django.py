"""tablesessions.django (``SESSION_ENGINE``) against a real Azurite, sync and async."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from azure.data.tables import TableClient
from django.conf import settings

from .django_setup import configure

if not settings.configured:
    configure()

from django.contrib.sessions.backends.base import UpdateError
from django.core.management import call_command
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.test import AsyncClient, Client, override_settings
from django.urls import path

import tablesessions
from tablesessions._sessions.cookies import CookieSigner
from tablesessions.django import SessionStore, get_store
from tablesessions.testing import AzuriteServer, RequestCounter
from tests.conftest import FakeClock

from .helpers import (
    COOKIE_RE,
    HOSTILE_IDS,
    SECRET,
    hostile_cookies,
    parse_set_cookie,
)

COOKIE = "sessionid"


# -- the app ----------------------------------------------------------------------------------
def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("never touches the session")


def peek(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"count": request.session.get("count", 0),
                         "user": request.session.get("user")})


def count(request: HttpRequest) -> JsonResponse:
    request.session["count"] = request.session.get("count", 0) + 1
    return JsonResponse({"count": request.session["count"]})


def login(request: HttpRequest, user: str) -> JsonResponse:
    request.session.cycle_key()  # what django.contrib.auth.login does
    request.session["user"] = user
    return JsonResponse({"user": user})


def logout(request: HttpRequest) -> JsonResponse:
    request.session.flush()  # what django.contrib.auth.logout does
    return JsonResponse({})


def deleted_meanwhile(request: HttpRequest) -> JsonResponse:
    """Simulate a concurrent logout: the record goes while this request works."""
    request.session["count"] = request.session.get("count", 0) + 1
    session_id = CookieSigner(SECRET).unsign(request.session.session_key)
    assert session_id is not None
    get_store().delete(session_id)
    return JsonResponse({})


async def apeek(request: HttpRequest) -> JsonResponse:
    session = request.session
    return JsonResponse({"count": await session.aget("count", 0),
                         "user": await session.aget("user"),
                         "keys": sorted(await session.akeys()),
                         "has_user": await session.ahas_key("user")})


async def acount(request: HttpRequest) -> JsonResponse:
    value = await request.session.aget("count", 0) + 1
    await request.session.aset("count", value)
    return JsonResponse({"count": value})


async def alogin(request: HttpRequest, user: str) -> JsonResponse:
    await request.session.acycle_key()
    await request.session.aset("user", user)
    return JsonResponse({"user": user})


async def alogout(request: HttpRequest) -> JsonResponse:
    await request.session.aflush()
    return JsonResponse({})


urlpatterns = [
    path("plain", plain), path("peek", peek), path("count", count),
    path("login/<str:user>", login), path("logout", logout),
    path("deleted-meanwhile", deleted_meanwhile),
    path("apeek", apeek), path("acount", acount), path("alogin/<str:user>", alogin),
    path("alogout", alogout),
]


# -- fixtures ---------------------------------------------------------------------------------
def tablesessions_settings(azurite: AzuriteServer, storage_names: tuple[str, str],
                           counter: RequestCounter, **options: Any) -> dict[str, Any]:
    table, container = storage_names
    return {"CONNECTION_STRING": azurite.connection_string, "TABLE_NAME": table,
            "CONTAINER_NAME": container, "APP_NAME": "djangoapp",
            "OPTIONS": {"client_options": counter.client_options(), **options}}


@pytest.fixture
def store(azurite: AzuriteServer, storage_names: tuple[str, str],
          request_counter: RequestCounter) -> Iterator[tablesessions.SessionStore]:
    with override_settings(TABLESESSIONS=tablesessions_settings(azurite, storage_names,
                                                                request_counter)):
        built = get_store()
        built.create_storage()
        request_counter.reset()
        yield built


def only_cookie(response: HttpResponseBase) -> tuple[str, dict[str, str]]:
    headers = [str(morsel.output(header="")).strip() for morsel in response.cookies.values()]
    assert len(headers) == 1, headers
    name, value, attrs = parse_set_cookie(headers[0])
    assert name == COOKIE
    return value, attrs


def vary(response: HttpResponseBase) -> set[str]:
    return {v.strip().lower() for v in response.get("Vary", "").split(",") if v.strip()}


# -- sync -------------------------------------------------------------------------------------
def test_a_view_that_never_touches_the_session_makes_no_storage_call(
        store: tablesessions.SessionStore, request_counter: RequestCounter) -> None:
    client = Client()
    client.get("/count")
    request_counter.reset()
    response = client.get("/plain")
    assert response.status_code == 200
    assert request_counter.count == 0
    assert not response.cookies
    assert "cookie" not in vary(response)


def test_first_write_sets_a_signed_cookie_with_the_store_expiry(
        store: tablesessions.SessionStore, request_counter: RequestCounter) -> None:
    response = Client().get("/count")
    assert response.json() == {"count": 1}
    assert request_counter.count == 1  # one insert
    value, attrs = only_cookie(response)
    assert COOKIE_RE.fullmatch(value)
    assert CookieSigner(SECRET).unsign(value) is not None
    assert {"httponly", "secure"} <= attrs.keys()
    assert attrs["samesite"] == "Lax"
    assert attrs["path"] == "/"
    idle = int(store.config.idle_timeout.total_seconds())
    assert idle - 5 <= int(attrs["max-age"]) <= idle
    assert "cookie" in vary(response)


def test_counter_survives_and_reads_set_no_cookie(
        store: tablesessions.SessionStore, request_counter: RequestCounter) -> None:
    client = Client()
    for expected in (1, 2, 3):
        assert client.get("/count").json() == {"count": expected}
    request_counter.reset()
    response = client.get("/peek")
    assert response.json() == {"count": 3, "user": None}
    assert request_counter.count == 1
    assert not response.cookies
    assert "cookie" in vary(response)


@pytest.mark.parametrize("raw", hostile_cookies(), ids=HOSTILE_IDS)
def test_hostile_cookies_give_a_fresh_session_without_storage_calls(
        store: tablesessions.SessionStore, request_counter: RequestCounter, raw: bytes) -> None:
    header = (COOKIE.encode() + b"=" + raw).decode("latin-1")
    response = Client().get("/peek", HTTP_COOKIE=header)
    assert response.status_code == 200
    assert response.json() == {"count": 0, "user": None}
    assert request_counter.count == 0


def test_cycle_key_at_login_changes_the_id_and_kills_the_old_one(
        store: tablesessions.SessionStore) -> None:
    client = Client()
    before, _ = only_cookie(client.get("/count"))
    after, _ = only_cookie(client.get("/login/alice"))
    assert after != before
    assert client.get("/peek").json() == {"count": 1, "user": "alice"}
    signer = CookieSigner(SECRET)
    old_id, new_id = signer.unsign(before), signer.unsign(after)
    assert old_id is not None
    assert new_id is not None
    assert store.get(old_id) is None
    assert store.get(new_id) is not None
    replay = Client()
    replay.cookies[COOKIE] = before
    assert replay.get("/peek").json() == {"count": 0, "user": None}


def test_flush_at_logout_deletes_the_record_and_the_cookie(
        store: tablesessions.SessionStore) -> None:
    client = Client()
    cookie, _ = only_cookie(client.get("/login/alice"))
    response = client.get("/logout")
    value, attrs = only_cookie(response)
    assert value in ("", '""')  # Django's delete_cookie writes an empty quoted value
    assert attrs["max-age"] == "0"
    session_id = CookieSigner(SECRET).unsign(cookie)
    assert session_id is not None
    assert store.get(session_id) is None


def test_a_cookie_signed_with_a_fallback_secret_is_resigned(
        store: tablesessions.SessionStore, request_counter: RequestCounter) -> None:
    client = Client()
    with override_settings(SECRET_KEY="old-secret"):
        old, _ = only_cookie(client.get("/count"))
    with override_settings(SECRET_KEY=SECRET, SECRET_KEY_FALLBACKS=["old-secret"]):
        request_counter.reset()
        response = client.get("/peek")
        assert response.json() == {"count": 1, "user": None}
        assert request_counter.count == 1  # the read; re-signing writes nothing
        new, _ = only_cookie(response)
    signer = CookieSigner(SECRET)
    assert new != old
    assert signer.unsign(new) == CookieSigner("old-secret").unsign(old)


def test_a_session_deleted_meanwhile_is_interrupted_not_recreated(
        store: tablesessions.SessionStore) -> None:
    client = Client()
    cookie, _ = only_cookie(client.get("/count"))
    response = client.get("/deleted-meanwhile")
    assert response.status_code == 400  # SessionInterrupted
    session_id = CookieSigner(SECRET).unsign(cookie)
    assert session_id is not None
    assert store.get(session_id) is None


# -- the SessionBase contract, directly -------------------------------------------------------
def test_session_base_contract(store: tablesessions.SessionStore,
                               request_counter: RequestCounter) -> None:
    session = SessionStore()
    assert session.session_key is None
    assert session.is_empty()
    session["a"] = 1
    session.save()
    key = session.session_key
    assert key is not None
    assert COOKIE_RE.fullmatch(key)
    assert session.exists(key)
    loaded = SessionStore(key)
    assert loaded["a"] == 1
    assert loaded.get_expiry_age() == int(store.config.idle_timeout.total_seconds())
    assert not loaded.get_expire_at_browser_close()
    loaded.delete()
    assert not session.exists(key)
    request_counter.reset()
    forged = SessionStore("x" * 87)
    assert forged.session_key is None
    assert dict(forged.items()) == {}
    assert request_counter.count == 0


def test_create_saves_at_once_and_save_after_delete_is_an_update_error(
        store: tablesessions.SessionStore) -> None:
    session = SessionStore()
    session.create()
    assert session.session_key is not None
    assert session.exists(session.session_key)
    other = SessionStore(session.session_key)
    other["x"] = 1
    session.delete()
    with pytest.raises(UpdateError):
        other.save()


def test_a_strict_conflict_is_an_update_error(azurite: AzuriteServer,
                                              storage_names: tuple[str, str],
                                              request_counter: RequestCounter) -> None:
    config = tablesessions_settings(azurite, storage_names, request_counter,
                                    concurrency="strict")
    with override_settings(TABLESESSIONS=config):
        get_store().create_storage()
        first = SessionStore()
        first["n"] = 0
        first.save()
        a, b = SessionStore(first.session_key), SessionStore(first.session_key)
        a["n"], b["n"] = 1, 2
        a.save()
        with pytest.raises(UpdateError):
            b.save()


def test_clearsessions_runs_the_sweeper(azurite: AzuriteServer, storage_names: tuple[str, str],
                                        request_counter: RequestCounter,
                                        clock: FakeClock) -> None:
    config = tablesessions_settings(azurite, storage_names, request_counter, clock=clock)
    with override_settings(TABLESESSIONS=config):
        get_store().create_storage()
        for n in range(3):
            session = SessionStore()
            session["n"] = n
            session.save()
        table = TableClient.from_connection_string(azurite.connection_string,
                                                   table_name=storage_names[0])
        with table:
            assert len(list(table.list_entities())) == 3
            call_command("clearsessions")
            assert len(list(table.list_entities())) == 3  # nothing expired yet
            # The sweeper leaves a safety margin (a minute) past expiry: go well beyond.
            clock.advance(get_store().config.idle_timeout + dt.timedelta(minutes=10))
            call_command("clearsessions")
            assert len(list(table.list_entities())) == 0


# -- async ------------------------------------------------------------------------------------
async def test_async_views_use_the_a_methods(store: tablesessions.SessionStore,
                                             request_counter: RequestCounter) -> None:
    client = AsyncClient()
    assert (await client.get("/acount")).json() == {"count": 1}
    assert (await client.get("/acount")).json() == {"count": 2}
    before = client.cookies[COOKIE].value
    response = await client.get("/alogin/alice")
    after = response.cookies[COOKIE].value
    assert after != before
    assert (await client.get("/apeek")).json() == {"count": 2, "user": "alice",
                                                   "keys": ["count", "user"], "has_user": True}
    old_id = CookieSigner(SECRET).unsign(before)
    assert old_id is not None
    assert store.get(old_id) is None
    request_counter.reset()
    response = await client.get("/alogout")
    assert response.cookies[COOKIE].value == ""
    assert (await client.get("/apeek")).json()["user"] is None
    new_id = CookieSigner(SECRET).unsign(after)
    assert new_id is not None
    assert store.get(new_id) is None


async def test_async_session_base_methods(store: tablesessions.SessionStore) -> None:
    session = SessionStore()
    await session.aset("a", 1)
    await session.asave()
    key = session.session_key
    assert key is not None
    assert await session.aexists(key)
    loaded = SessionStore(key)
    assert await loaded.aget("a") == 1
    assert await loaded.aget_expiry_age() == int(store.config.idle_timeout.total_seconds())
    await loaded.acycle_key()
    assert loaded.session_key != key
    assert not await session.aexists(key)
    await loaded.asave()
    assert await loaded.aexists(loaded.session_key or "")
    await loaded.adelete()
    assert not await loaded.aexists(loaded.session_key or "")
