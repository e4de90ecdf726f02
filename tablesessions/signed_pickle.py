"""Authenticated pickle: a pickle is loaded only after its HMAC tag verifies (issue 16).

Django's and cachelib's cache contracts cache arbitrary objects (functions, classes,
model instances), so their backends must pickle. Unpickling bytes someone else wrote
runs their code, so :class:`PickleSigner` refuses to hand anything to ``pickle.loads``
unless it carries a valid tag under one of its keys.

Format (version 1)::

    b"TSP1" | HMAC-SHA256(key, b"TSP1" | pickle) (32 bytes) | pickle

The key is ``HKDF-SHA256(secret, salt=b"tablesessions.signed_pickle", info=b"TSP1:" +
context)``: one secret gives unrelated keys per ``context``, so a value signed for one
use does not verify in another. ``fallbacks`` (old secrets, e.g. Django's
``SECRET_KEY_FALLBACKS``) verify but never sign. A value that fails verification raises
:class:`Unverified` and logs one WARNING on the ``tablesessions.security`` logger, with
the context and the reason only: never the data, its key or the secret. The cache backends
turn it into a miss. The tag authenticates; it does not encrypt.

Anyone who holds the secret can make the application unpickle what they like: the secret
guards code execution, not only integrity (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle
from collections.abc import Iterable
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .exceptions import TableSessionsError

__all__ = ["MAGIC", "PickleSigner", "Unverified"]

security_log = logging.getLogger("tablesessions.security")

#: The format prefix; a later format gets a new one, and this version refuses it.
MAGIC = b"TSP1"
_TAG = hashlib.sha256().digest_size  # 32
_HEADER = len(MAGIC) + _TAG
_SALT = b"tablesessions.signed_pickle"

Secret = str | bytes


class Unverified(TableSessionsError):
    """The bytes are not an authenticated pickle under any of the signer's keys.

    Raised by :meth:`PickleSigner.loads` when the format prefix is missing or unknown,
    the value is too short to hold a tag, or the tag does not verify (tampered, truncated,
    written under another secret or context, or not ours at all). Nothing was unpickled.
    The cache backends treat it as a miss; a direct caller should do the same, and look
    at who can write to the storage if it keeps happening.
    """


def _key(secret: Secret, context: str) -> bytes:
    if isinstance(secret, str):
        raw = secret.encode()
    elif isinstance(secret, bytes):
        raw = secret
    else:
        raise TypeError(f"a signing secret is str or bytes, not {type(secret).__name__}")
    if not raw:
        # HKDF of an empty secret is a key anyone can compute: it would authenticate nothing.
        raise ValueError("an authenticated pickle needs a non-empty secret")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT,
                info=MAGIC + b":" + context.encode())
    return hkdf.derive(raw)


def _tag(key: bytes, body: bytes | memoryview) -> bytes:
    mac = hmac.new(key, MAGIC, hashlib.sha256)
    mac.update(body)  # no copy of a large pickle: the prefix and the body are fed in turn
    return mac.digest()


class PickleSigner:
    """Pickle and sign with the current secret; verify under it or a fallback, then unpickle.

    :param secret: the current secret (``str`` or ``bytes``, non-empty); it signs every
        :meth:`dumps`.
    :param fallbacks: older secrets, accepted by :meth:`loads` only, so values written
        before a rotation stay readable until they expire. Remove a secret from here to
        make every value signed under it unreadable.
    :param context: what the values are for (``"cache"``, ``"django-cache"``, ...); a
        distinct context derives a distinct key from the same secret.
    :raises ValueError: an empty secret or fallback.
    :raises TypeError: a secret that is neither ``str`` nor ``bytes``.
    """

    def __init__(self, secret: Secret, fallbacks: Iterable[Secret] = (), *,
                 context: str = "cache") -> None:
        self.context = context
        self._signing_key = _key(secret, context)
        self._keys = [self._signing_key, *(_key(f, context) for f in fallbacks)]

    def dumps(self, obj: Any) -> bytes:
        """Pickle ``obj`` and sign it with the current secret.

        :returns: ``MAGIC``, the 32-byte tag and the pickle.
        :raises pickle.PicklingError: (or ``TypeError``/``AttributeError``) if ``obj``
            cannot be pickled, as ``pickle.dumps`` raises it.
        """
        body = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        return MAGIC + _tag(self._signing_key, body) + body

    def loads(self, data: bytes | bytearray | memoryview) -> Any:
        """Verify ``data`` under every key, in constant time per key, then unpickle it.

        :raises Unverified: the prefix is missing or unknown, ``data`` is too short,
            or no key verifies the tag; ``pickle.loads`` is not called.
        :raises TypeError: ``data`` is not bytes-like.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"an authenticated pickle is bytes, not {type(data).__name__}")
        view = memoryview(data)
        if len(view) < _HEADER or view[:len(MAGIC)] != MAGIC:
            self._refuse("no tablesessions pickle header")
        tag, body = view[len(MAGIC):_HEADER], view[_HEADER:]
        # Check every key, even after a match, so the time taken does not say which one.
        verified = False
        for key in self._keys:
            verified |= hmac.compare_digest(_tag(key, body), tag)
        if not verified:
            self._refuse("tag does not verify under any configured secret")
        return pickle.loads(body)  # noqa: S301 - authenticated above

    def _refuse(self, reason: str) -> NoReturn:
        # The reason and the context only: never the bytes, the cache key or a secret.
        security_log.warning("unverified pickle refused (context %r): %s; treated as a miss",
                             self.context, reason)
        raise Unverified(reason)
