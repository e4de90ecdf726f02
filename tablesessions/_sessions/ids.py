"""Session ids and the storage keys derived from them.

Only a SHA-256 hash of the id reaches storage or logs: a leaked table, backup or
log line must not yield a live session token.
"""

from __future__ import annotations

import hashlib
import re
import secrets

#: 32 random bytes = 256 bits, as unpadded URL-safe base64: 43 characters.
ID_BYTES = 32
ID_LENGTH = 43
_ID_RE = re.compile(r"[A-Za-z0-9_-]{43}")
#: 43 characters carry 258 bits; the last one's 2 low bits are padding and must
#: be zero, so only every fourth base64url character may end an id.
_CANONICAL_LAST = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[::4])


def new_session_id() -> str:
    """Return a fresh 256-bit, URL-safe session id."""
    return secrets.token_urlsafe(ID_BYTES)


def is_valid_session_id(value: object) -> bool:
    """Return whether ``value`` is exactly the shape :func:`new_session_id` produces.

    Strict: the charset and length, and that the last character carries no stray
    bits (so each 256-bit id has exactly one spelling).
    """
    return (isinstance(value, str) and len(value) == ID_LENGTH
            and value[-1] in _CANONICAL_LAST and _ID_RE.fullmatch(value) is not None)


def row_key_for(session_id: str) -> str:
    """Return the RowKey for a session id: its SHA-256 hex digest."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()
