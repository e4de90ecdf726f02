"""Shared bits of the framework suites: the secret, hostile cookies, Set-Cookie parsing."""

from __future__ import annotations

import re

from tablesessions import new_session_id
from tablesessions._sessions.cookies import CookieSigner

SECRET = "framework-suite-secret"
OTHER_SECRET = "not-the-framework-secret"
COOKIE_RE = re.compile(r"[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}")


def hostile_cookies() -> list[bytes]:
    """Cookie values an attacker or a broken client might send, as raw header bytes."""
    unsigned = new_session_id()
    forged = CookieSigner(OTHER_SECRET).sign(unsigned)
    good_shape = CookieSigner(SECRET).sign(unsigned)
    values = [
        "", "x", ".", "..", "null", "undefined", "=", "a" * 4096,
        unsigned,                                   # a real-looking id, unsigned
        unsigned + ".",                             # empty signature
        unsigned + "." + "A" * 43,                  # wrong signature
        forged,                                     # signed with another secret
        good_shape[:-1],                            # truncated
        good_shape + "x",                           # extended
        good_shape.replace(".", ":"),               # wrong separator
        good_shape.upper(),                         # case-mangled
        unsigned + "=." + "A" * 42,                 # padding in the id
        '"' + forged + '"',                         # quoted (unquoted by the parsers)
        "' OR 1=1 --", "${jndi:ldap://x/a}", "<script>alert(1)</script>",
        "../../etc/passwd", "%00%ff%fe", "\\x00",
    ]
    raw = [v.encode("latin-1") for v in values]
    raw += [
        "é".encode() * 40,                          # non-ASCII (UTF-8 bytes)
        "\u2603".encode() * 29,                     # 87 bytes of snowmen
        b"\xff\xfe\xfd" * 29,                       # invalid UTF-8
        ("é" * 87).encode("latin-1"),               # 87 latin-1 chars: the right length
    ]
    return raw


HOSTILE_IDS = [f"hostile{i}" for i in range(len(hostile_cookies()))]


def cookie_header(name: str, raw_value: bytes) -> bytes:
    return name.encode("ascii") + b"=" + raw_value


def parse_set_cookie(header: str) -> tuple[str, str, dict[str, str]]:
    """Split a Set-Cookie value into (name, value, {lowercased attribute: value})."""
    first, *rest = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    attrs: dict[str, str] = {}
    for part in rest:
        key, _, val = part.partition("=")
        attrs[key.strip().lower()] = val.strip()
    return name, value, attrs
