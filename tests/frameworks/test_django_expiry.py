"""Django's expiry API and settings, enforced by the server (against a real Azurite).

The cookie is only what the browser is told: these tests replay it after the
lifetime the app gave the session, with the store's clock moved forward, and
check that the stored row (read by another store instance too) refuses it.
"""

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

from django.http import HttpRequest, JsonResponse
from django.http.response import HttpResponseBase
from django.test import AsyncClient, Client, override_settings
from django.urls import path

import tablesessions
from tablesessions._sessions.cookies import CookieSigner
from tablesessions.django import SessionStore, get_store
from tablesessions.testing import AzuriteServer, RequestCounter
from tests.conftest import FakeClock

from .helpers import SECRET, parse_set_cookie

COOKIE = "sessionid"


# -- the app ----------------------------------------------------------------------------------
def peek(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"count": request.session.get("count", 0)})


def count(request: HttpRequest) -> JsonResponse:
    request.session["count"] = request.session.get("count", 0) + 1
    return JsonResponse({"count": request.session["count"]})


def expire_in(request: HttpRequest, seconds: int) -> JsonResponse:
    request.session["count"] = request.session.get("count", 0) + 1
    request.session.set_expiry(seconds)
    return JsonResponse({"age": request.session.get_expiry_age()})


def expire_negative(request: HttpRequest, seconds: int) -> JsonResponse:
    request.session["count"] = 1
    request.session.set_expiry(-seconds)
    return JsonResponse({})


def expire_at(request: HttpRequest, seconds: int) -> JsonResponse:
    request.session["count"] = request.session.get("count", 0) + 1
    request.session.set_expiry(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds))
    return JsonResponse({"age": request.session.get_expiry_age()})


def expire_after(request: HttpRequest, seconds: int) -> JsonResponse:
    request.session["count"] = request.session.get("count", 0) + 1
    request.session.set_expiry(dt.timedelta(seconds=seconds))
    return JsonResponse({"age": request.session.get_expiry_age()})


def expire_default(request: HttpRequest) -> JsonResponse:
    request.session.set_expiry(None)
    return JsonResponse({"age": request.session.get_expiry_age()})


async def aexpire_in(request: HttpRequest, seconds: int) -> JsonResponse:
    session = request.session
    await session.aset("count", await session.aget("count", 0) + 1)
    await session.aset_expiry(seconds)
    return JsonResponse({"age": await session.aget_expiry_age(),
                         "browser": await session.aget_expire_at_browser_close()})


urlpatterns = [
    path("peek", peek), path("count", count), path("expire-in/<int:seconds>", expire_in),
    path("expire-negative/<int:seconds>", expire_negative),
    path("expire-at/<int:seconds>", expire_at), path("expire-after/<int:seconds>", expire_after),
    path("expire-default", expire_default), path("aexpire-in/<int:seconds>", aexpire_in),
]


# -- fixtures ---------------------------------------------------------------------------------
Settings = dict[str, Any]


@pytest.fixture
def config(azurite: AzuriteServer, storage_names: tuple[str, str],
           request_counter: RequestCounter, clock: FakeClock) -> Settings:
    table, container = storage_names
    return {"CONNECTION_STRING": azurite.connection_string, "TABLE_NAME": table,
            "CONTAINER_NAME": container, "APP_NAME": "djangoexpiry",
            "OPTIONS": {"client_options": request_counter.client_options(), "clock": clock}}


@pytest.fixture
def store(config: Settings, request_counter: RequestCounter
          ) -> Iterator[tablesessions.SessionStore]:
    with override_settings(TABLESESSIONS=config, ROOT_URLCONF=__name__):
        built = get_store()
        built.create_storage()
        request_counter.reset()
        yield built


@pytest.fixture
def other_instance(azurite: AzuriteServer, storage_names: tuple[str, str], clock: FakeClock
                   ) -> Iterator[tablesessions.SessionStore]:
    """A second store on the same table: another app instance (keyed by the same
    SECRET_KEY, as the integration keys its own store: rows are encrypted)."""
    table, container = storage_names
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=table, container_name=container,
            app_name="djangoexpiry", clock=clock) as other:
        other.encrypt_with_secret(settings.SECRET_KEY)
        yield other


def cookie_of(response: HttpResponseBase) -> tuple[str, dict[str, str]]:
    morsel = response.cookies[COOKIE]
    _, value, attrs = parse_set_cookie(str(morsel.output(header="")).strip())
    return value, attrs


def session_id(cookie: str) -> str:
    sid = CookieSigner(SECRET).unsign(cookie)
    assert sid is not None
    return sid


def replay(cookie: str) -> Client:
    client = Client()
    client.cookies[COOKIE] = cookie
    return client


def row(config: Settings, store: tablesessions.SessionStore, cookie: str) -> dict[str, Any]:
    pk, rk = store._rules.keys(session_id(cookie))
    with TableClient.from_connection_string(config["CONNECTION_STRING"],
                                            table_name=config["TABLE_NAME"]) as table:
        return dict(table.get_entity(pk, rk))


SECOND = dt.timedelta(seconds=1)


# -- set_expiry --------------------------------------------------------------------------------
def test_a_replayed_cookie_fails_after_set_expiry_300(
        store: tablesessions.SessionStore, other_instance: tablesessions.SessionStore,
        clock: FakeClock, config: Settings) -> None:
    response = Client().get("/expire-in/300")
    assert response.json() == {"age": 300}
    cookie, attrs = cookie_of(response)
    assert attrs["max-age"] == "300"
    assert row(config, store, cookie)["IdleSeconds"] == 300
    clock.advance(299 * SECOND)
    assert replay(cookie).get("/peek").json() == {"count": 1}
    assert other_instance.get(session_id(cookie)) is not None
    clock.advance(2 * SECOND)  # 301 s: the store's default idle would be 20 min
    assert replay(cookie).get("/peek").json() == {"count": 0}
    assert other_instance.get(session_id(cookie)) is None


def test_set_expiry_slides_on_each_write_as_in_django(
        store: tablesessions.SessionStore, clock: FakeClock) -> None:
    client = Client()
    cookie, _ = cookie_of(client.get("/expire-in/300"))
    clock.advance(200 * SECOND)
    assert client.get("/count").json() == {"count": 2}  # a write: 300 s from now
    clock.advance(200 * SECOND)
    assert replay(cookie).get("/peek").json() == {"count": 2}
    clock.advance(101 * SECOND)
    assert replay(cookie).get("/peek").json() == {"count": 0}


@pytest.mark.parametrize("route", ["expire-at", "expire-after"])
def test_a_datetime_or_timedelta_expiry_is_a_deadline_activity_does_not_move(
        store: tablesessions.SessionStore, clock: FakeClock, config: Settings,
        route: str) -> None:
    client = Client()
    response = client.get(f"/{route}/120")
    assert 118 <= response.json()["age"] <= 120
    cookie, attrs = cookie_of(response)
    assert 118 <= int(attrs["max-age"]) <= 120
    stored = row(config, store, cookie)
    assert abs(stored["AbsoluteExpiresAt"] - (clock() + 120 * SECOND)) < 2 * SECOND
    clock.advance(60 * SECOND)
    assert client.get("/count").json() == {"count": 2}
    clock.advance(62 * SECOND)
    assert replay(cookie).get("/peek").json() == {"count": 0}


def test_a_negative_expiry_expires_the_session_on_the_server_at_once(
        store: tablesessions.SessionStore) -> None:
    response = Client().get("/expire-negative/10")
    cookie, attrs = cookie_of(response)
    assert int(attrs["max-age"]) <= 0  # Django tells the browser to drop it
    assert store.get(session_id(cookie)) is None  # and the server agrees
    assert replay(cookie).get("/peek").json() == {"count": 0}


def test_set_expiry_0_is_a_browser_session_that_the_server_still_expires(
        store: tablesessions.SessionStore, clock: FakeClock, config: Settings) -> None:
    response = Client().get("/expire-in/0")
    cookie, attrs = cookie_of(response)
    assert "max-age" not in attrs
    assert "expires" not in attrs
    stored = row(config, store, cookie)
    assert stored["BrowserSession"] is True
    assert "IdleSeconds" not in stored  # the default lifetime: the store's idle timeout
    clock.advance(store.config.idle_timeout + SECOND)
    assert replay(cookie).get("/peek").json() == {"count": 0}


def test_set_expiry_none_goes_back_to_the_default(
        store: tablesessions.SessionStore, config: Settings) -> None:
    client = Client()
    cookie, _ = cookie_of(client.get("/expire-in/300"))
    response = client.get("/expire-default")
    assert response.json() == {"age": int(store.config.idle_timeout.total_seconds())}
    assert "IdleSeconds" not in row(config, store, cookie)


# -- settings ------------------------------------------------------------------------------
def test_session_cookie_age_when_set_is_the_server_idle_timeout(
        store: tablesessions.SessionStore, clock: FakeClock, config: Settings) -> None:
    with override_settings(SESSION_COOKIE_AGE=600):
        response = Client().get("/count")
        cookie, attrs = cookie_of(response)
        assert attrs["max-age"] == "600"
        assert row(config, store, cookie)["IdleSeconds"] == 600
        assert SessionStore(cookie).get_expiry_age() == 600
        clock.advance(601 * SECOND)
        assert replay(cookie).get("/peek").json() == {"count": 0}


def test_session_cookie_age_unset_means_the_store_idle_timeout(
        store: tablesessions.SessionStore, config: Settings) -> None:
    assert not settings.is_overridden("SESSION_COOKIE_AGE")
    cookie, attrs = cookie_of(Client().get("/count"))
    assert attrs["max-age"] == str(int(store.config.idle_timeout.total_seconds()))
    assert "IdleSeconds" not in row(config, store, cookie)


def test_expire_at_browser_close_setting(store: tablesessions.SessionStore,
                                         config: Settings) -> None:
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=True):
        cookie, attrs = cookie_of(Client().get("/count"))
        assert "max-age" not in attrs
        assert row(config, store, cookie)["BrowserSession"] is True
        session = SessionStore(cookie)
        assert session.get_expire_at_browser_close() is True
        session.set_expiry(300)  # an explicit expiry overrides the setting, as in Django
        session.save()
        assert "BrowserSession" not in row(config, store, cookie)


def test_save_every_request_renews_the_server_expiry_on_reads(
        store: tablesessions.SessionStore, clock: FakeClock,
        request_counter: RequestCounter) -> None:
    client = Client()
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True, SESSION_COOKIE_AGE=300):
        cookie, _ = cookie_of(client.get("/count"))
        clock.advance(100 * SECOND)  # 200 s left: not due under the usual threshold
        request_counter.reset()
        response = client.get("/peek")
        assert response.json() == {"count": 1}
        assert cookie_of(response)[1]["max-age"] == "300"
        assert [m for m, _ in request_counter.requests] == ["GET", "PATCH"]  # read, renew
        clock.advance(250 * SECOND)  # 350 s after the write, 250 s after the last request
        assert replay(cookie).get("/peek").json() == {"count": 1}


def test_without_save_every_request_reads_do_not_extend_the_session(
        store: tablesessions.SessionStore, clock: FakeClock,
        request_counter: RequestCounter) -> None:
    client = Client()
    with override_settings(SESSION_COOKIE_AGE=300):
        cookie, _ = cookie_of(client.get("/count"))
        clock.advance(100 * SECOND)
        request_counter.reset()
        assert client.get("/peek").json() == {"count": 1}
        assert request_counter.count == 1  # the read only, as Django's db backend
        clock.advance(201 * SECOND)
        assert replay(cookie).get("/peek").json() == {"count": 0}


def test_an_explicit_absolute_timeout_caps_django_expiry(
        config: Settings, clock: FakeClock) -> None:
    capped = {**config, "ABSOLUTE_TIMEOUT_SECONDS": 3600}
    with override_settings(TABLESESSIONS=capped, ROOT_URLCONF=__name__):
        get_store().create_storage()
        response = Client().get(f"/expire-at/{86400 * 7}")
        assert 3598 <= response.json()["age"] <= 3600  # the cookie tells the truth
        cookie, attrs = cookie_of(response)
        assert 3598 <= int(attrs["max-age"]) <= 3600
        clock.advance(3601 * SECOND)
        assert replay(cookie).get("/peek").json() == {"count": 0}


def test_the_default_absolute_timeout_bounds_an_idle_expiry(
        store: tablesessions.SessionStore, clock: FakeClock) -> None:
    client = Client()
    response = client.get(f"/expire-in/{86400}")
    # Django would say a day; the 12 h default deadline is the server's truth.
    deadline = int(store.config.absolute_timeout.total_seconds())
    assert deadline - 2 <= response.json()["age"] <= deadline
    cookie, _ = cookie_of(response)
    clock.advance(store.config.absolute_timeout + SECOND)
    assert replay(cookie).get("/peek").json() == {"count": 0}


def test_cycle_key_keeps_the_expiry(store: tablesessions.SessionStore, clock: FakeClock,
                                    config: Settings) -> None:
    session = SessionStore()
    session["a"] = 1
    session.set_expiry(300)
    session.save()
    session.cycle_key()
    session.save()
    key = session.session_key
    assert key is not None
    assert row(config, store, key)["IdleSeconds"] == 300
    clock.advance(301 * SECOND)
    assert not SessionStore(key).exists(key)


# -- the a* twins ------------------------------------------------------------------------------
async def test_async_set_expiry_is_enforced_by_the_server(
        store: tablesessions.SessionStore, clock: FakeClock) -> None:
    client = AsyncClient()
    response = await client.get("/aexpire-in/300")
    assert response.json() == {"age": 300, "browser": False}
    assert response.cookies[COOKIE]["max-age"] == 300
    cookie = response.cookies[COOKIE].value
    clock.advance(301 * SECOND)
    replayed = AsyncClient()
    replayed.cookies[COOKIE] = cookie
    assert (await replayed.get("/peek")).json() == {"count": 0}


async def test_async_session_methods(store: tablesessions.SessionStore,
                                     clock: FakeClock) -> None:
    session = SessionStore()
    await session.acreate()
    key = session.session_key
    assert key is not None
    assert await session.aexists(key)
    await session.aset("a", 1)
    await session.aset_expiry(dt.timedelta(seconds=90))
    modification = dt.datetime.now(dt.timezone.utc)
    assert 88 <= await session.aget_expiry_age(modification=modification) <= 90
    date = await session.aget_expiry_date()
    assert abs(date - (modification + 90 * SECOND)) < 2 * SECOND
    assert await session.aget_expire_at_browser_close() is False
    await session.asave()
    loaded = SessionStore(key)
    assert await loaded.aload() == {"a": 1, "_session_expiry": await session.aget(
        "_session_expiry")}
    clock.advance(91 * SECOND)
    assert not await loaded.aexists(key)
    clock.advance(dt.timedelta(minutes=2))  # past the sweeper's safety margin
    await SessionStore.aclear_expired()
    pk, rk = store._rules.keys(session_id(key))
    with TableClient.from_connection_string(settings.TABLESESSIONS["CONNECTION_STRING"],
                                            table_name=store.config.table_name) as table:
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": pk})
        assert rk not in [e["RowKey"] for e in rows]


def test_a_naive_datetime_expiry_without_use_tz_is_local_time(
        store: tablesessions.SessionStore, clock: FakeClock, config: Settings) -> None:
    with override_settings(USE_TZ=False):
        session = SessionStore()
        session["a"] = 1
        session.set_expiry(dt.datetime.now() + dt.timedelta(seconds=120))  # naive, local
        session.save()
        key = session.session_key
        assert key is not None
        stored = row(config, store, key)["AbsoluteExpiresAt"]
        assert abs(stored - (clock() + 120 * SECOND)) < 2 * SECOND
        clock.advance(121 * SECOND)
        assert not SessionStore(key).exists(key)


async def test_expiry_keyword_arguments_are_djangos_arithmetic(
        store: tablesessions.SessionStore) -> None:
    session = SessionStore()
    modification = dt.datetime.now(dt.timezone.utc)
    day = modification + dt.timedelta(days=1)
    # With expiry= given, Django's arithmetic only: no cap by the 12 h deadline.
    assert session.get_expiry_age(modification=modification, expiry=day) == 86400
    assert session.get_expiry_date(modification=modification, expiry=day) == day
    assert session.get_expiry_age(expiry=0) == session.get_session_cookie_age()
    assert await session.aget_expiry_age(modification=modification, expiry=day) == 86400
    assert await session.aget_expiry_date(modification=modification, expiry=60) == (
        modification + dt.timedelta(seconds=60))
    # Without it, the session's own expiry: a datetime replaces the default
    # deadline, an idle timeout (seconds) is capped by it.
    session.set_expiry(day)
    assert session.get_expiry_age(modification=modification) == 86400
    session.set_expiry(86400)
    deadline = int(store.config.absolute_timeout.total_seconds())
    assert deadline - 2 <= session.get_expiry_age(modification=modification) <= deadline
    date = session.get_expiry_date(modification=modification)
    assert abs(date - (modification + dt.timedelta(seconds=deadline))) < 2 * SECOND
