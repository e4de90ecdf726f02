"""The shared cookie signer and cookie attributes (pure: no storage, no framework)."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import pytest

import tablesessions
from tablesessions import new_session_id
from tablesessions._sessions.cookies import (
    COOKIE_LENGTH,
    CookieSigner,
    CookieSpec,
    end_cookie,
    normalize_samesite,
    store_from_settings,
)

from .helpers import COOKIE_RE, HOSTILE_IDS, OTHER_SECRET, SECRET, hostile_cookies, parse_set_cookie


def test_sign_round_trips_and_has_the_documented_shape() -> None:
    signer = CookieSigner(SECRET)
    session_id = new_session_id()
    value = signer.sign(session_id)
    assert COOKIE_RE.fullmatch(value)
    assert len(value) == COOKIE_LENGTH
    assert value.startswith(session_id + ".")
    assert signer.unsign(value) == session_id


def test_str_and_bytes_secrets_agree() -> None:
    session_id = new_session_id()
    assert CookieSigner(SECRET).sign(session_id) == CookieSigner(SECRET.encode()).sign(session_id)


def test_another_secret_is_rejected() -> None:
    value = CookieSigner(OTHER_SECRET).sign(new_session_id())
    assert CookieSigner(SECRET).unsign(value) is None


def test_fallback_secrets_verify_but_the_current_one_signs() -> None:
    session_id = new_session_id()
    old_cookie = CookieSigner("old").sign(session_id)
    rotated = CookieSigner(SECRET, ["old"])
    assert rotated.unsign(old_cookie) == session_id
    assert rotated.sign(session_id) == CookieSigner(SECRET).sign(session_id) != old_cookie


@pytest.mark.parametrize("raw", hostile_cookies(), ids=HOSTILE_IDS)
def test_hostile_values_unsign_to_none(raw: bytes) -> None:
    assert CookieSigner(SECRET).unsign(raw.decode("latin-1")) is None
    assert CookieSigner(SECRET).unsign(raw.decode("utf-8", "surrogateescape")) is None


@pytest.mark.parametrize("value", [None, 42, b"bytes", ["list"]])
def test_non_strings_unsign_to_none(value: object) -> None:
    assert CookieSigner(SECRET).unsign(value) is None


def test_empty_secret_and_bad_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        CookieSigner("")
    with pytest.raises(ValueError, match="session id"):
        CookieSigner(SECRET).sign("not-an-id")


def test_spec_headers_carry_every_flag() -> None:
    spec = CookieSpec(name="sid", path="/app", domain="example.com", partitioned=True)
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    name, value, attrs = parse_set_cookie(spec.set_header("v", 90, now))
    assert (name, value) == ("sid", "v")
    assert attrs == {"max-age": "90", "expires": "Tue, 01 Jan 2030 00:01:30 GMT", "path": "/app",
                     "domain": "example.com", "secure": "", "httponly": "",
                     "samesite": "Lax", "partitioned": ""}
    _, value, attrs = parse_set_cookie(spec.delete_header())
    assert value == ""
    assert attrs["max-age"] == "0"
    assert attrs["expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "bad name"}, "token"),
    ({"name": "a;b"}, "token"),
    ({"path": "/a;Domain=evil"}, "path"),
    ({"domain": "x\r\nSet-Cookie: y"}, "domain"),
    ({"samesite": "None", "secure": False}, "Secure"),
])
def test_spec_refuses_unsafe_attributes(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CookieSpec(**kwargs)  # type: ignore[arg-type]


def test_normalize_samesite() -> None:
    assert normalize_samesite("lax") == "Lax"
    assert normalize_samesite("STRICT") == "Strict"
    assert normalize_samesite("none") == "None"
    assert normalize_samesite(None) is None
    with pytest.raises(ValueError, match="SameSite"):
        normalize_samesite("sometimes")


def test_end_cookie_only_when_needed() -> None:
    store = tablesessions.SessionStore.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;"
        "TableEndpoint=http://127.0.0.1:9/a;BlobEndpoint=http://127.0.0.1:9/a;")
    signer, spec = CookieSigner(SECRET), CookieSpec()
    specs: list[CookieSpec] = []

    def spec_of() -> CookieSpec:
        specs.append(spec)
        return spec

    now = dt.datetime.now(dt.timezone.utc)
    fresh = store.new()
    # A new, empty session: nothing to say, unless a stale cookie must go.
    assert end_cookie(spec_of, signer, fresh, incoming=None, expiry_before=fresh.expires_at,
                      now=now) is None
    assert specs == [], "no header, so the settings were never read"
    stale = end_cookie(spec_of, signer, fresh, incoming="stale", expiry_before=fresh.expires_at,
                       now=now)
    assert stale is not None
    assert parse_set_cookie(stale)[2]["max-age"] == "0"
    store.close()


def test_verify_tells_the_current_secret_from_a_fallback() -> None:
    session_id = new_session_id()
    rotated = CookieSigner(SECRET, ["old"])
    assert rotated.verify(CookieSigner(SECRET).sign(session_id)) == (session_id, True)
    assert rotated.verify(CookieSigner("old").sign(session_id)) == (session_id, False)
    assert rotated.verify(CookieSigner(OTHER_SECRET).sign(session_id)) is None


class CountingSigner(CookieSigner):
    signed = 0

    def sign(self, session_id: str) -> str:
        self.signed += 1
        return super().sign(session_id)


def _stored_session(data: dict[str, object]) -> tablesessions.Session:
    from tablesessions.models import _Stored

    now = dt.datetime.now(dt.timezone.utc)
    expires = now + dt.timedelta(minutes=20)
    return tablesessions.Session(new_session_id(), data, created_at=now, expires_at=expires,
                                 absolute_expires_at=now + dt.timedelta(hours=1),
                                 stored=_Stored(etag="e", entries={}, pointer=None,
                                                expires_at=expires))


def test_end_cookie_keeps_a_current_cookie_without_signing_again() -> None:
    signer, spec = CountingSigner(SECRET, ["old"]), CookieSpec()
    session = _stored_session({"user": "alice"})
    now = dt.datetime.now(dt.timezone.utc)
    current = CookieSigner(SECRET).sign(session.id)
    same: dict[str, Any] = {"expiry_before": session.expires_at, "now": now}
    # Verified with the current secret, same id, same expiry: nothing to send, no HMAC.
    assert end_cookie(lambda: spec, signer, session, incoming=current, incoming_current=True,
                      **same) is None
    assert signer.signed == 0
    # Without the verification flag the same answer costs one signature.
    assert end_cookie(lambda: spec, signer, session, incoming=current, **same) is None
    assert signer.signed == 1
    # Signed with a fallback secret: re-signed with the current one.
    old = CookieSigner("old").sign(session.id)
    header = end_cookie(lambda: spec, signer, session, incoming=old, incoming_current=False,
                        **same)
    assert header is not None and parse_set_cookie(header)[1] == current
    # A current cookie for another id (the session was regenerated): a new cookie.
    other = CookieSigner(SECRET).sign(new_session_id())
    header = end_cookie(lambda: spec, signer, session, incoming=other, incoming_current=True,
                        **same)
    assert header is not None and parse_set_cookie(header)[1] == current
    # The expiry moved (a refresh): a new Max-Age, even for the current cookie.
    header = end_cookie(lambda: spec, signer, session, incoming=current, incoming_current=True,
                        expiry_before=session.expires_at - dt.timedelta(minutes=5), now=now)
    assert header is not None and parse_set_cookie(header)[2]["max-age"] == str(20 * 60)


def test_store_from_settings_merges_env_and_rejects_typos() -> None:
    class Factory:
        seen: ClassVar[dict[str, object]] = {}

        @classmethod
        def from_env(cls, environ: dict[str, str], **options: object) -> str:
            cls.seen = {"environ": environ, "options": options}
            return "store"

    env = {"TABLESESSIONS_CONNECTION_STRING": "from-env", "TABLESESSIONS_APP_NAME": "envapp",
           "UNRELATED": "x"}
    result = store_from_settings(Factory, {
        "TABLESESSIONS_APP_NAME": "mine",
        "TABLESESSIONS_IDLE_TIMEOUT_SECONDS": dt.timedelta(minutes=2),
        "TABLESESSIONS_TABLE_NAME": None,
        "TABLESESSIONS_OPTIONS": {"on_storage_error": "empty"},
    }, environ=env)
    assert result == "store"
    assert Factory.seen == {
        "environ": {"TABLESESSIONS_CONNECTION_STRING": "from-env",
                    "TABLESESSIONS_APP_NAME": "mine",
                    "TABLESESSIONS_IDLE_TIMEOUT_SECONDS": "120.0"},
        "options": {"on_storage_error": "empty"},
    }
    # Endpoints in the settings are not overridden by a connection string in the env.
    store_from_settings(Factory, {"TABLESESSIONS_TABLE_ENDPOINT": "https://t",
                                  "TABLESESSIONS_BLOB_ENDPOINT": "https://b"}, environ=env)
    assert Factory.seen["environ"] == {"TABLESESSIONS_TABLE_ENDPOINT": "https://t",
                                       "TABLESESSIONS_BLOB_ENDPOINT": "https://b",
                                       "TABLESESSIONS_APP_NAME": "envapp"}
    with pytest.raises(ValueError, match="TABLESESSIONS_TABEL_NAME"):
        store_from_settings(Factory, {"TABLESESSIONS_TABEL_NAME": "x"}, environ={})
