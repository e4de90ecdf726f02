"""Encryption at rest: AES-256-GCM under a key ring with key ids.

The newest key (the ring's primary) encrypts; every key in the ring decrypts,
so keys rotate without logging anyone out: add a new primary, run
``tablesessions rotate-keys``, then drop the old key. The associated data binds
each ciphertext to the app, the session's row key and the payload format, so a
ciphertext copied onto another session's row, another app, or relabelled with
another codec fails to decrypt.

A ring comes either from explicit keys (:meth:`KeyRing.from_string`, the
``TABLESESSIONS_ENCRYPTION_KEYS`` variable) or, in the framework integrations,
from the framework's secret and its fallbacks (:meth:`KeyRing.from_secrets`,
HKDF-SHA256). See ``docs/security.md`` for the threat model.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

NONCE_BYTES = 12  # the GCM standard nonce; random per encryption
KEY_BYTES = 32  # AES-256
_KID_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
#: HKDF salt of derived rings: public and fixed. It separates these keys from every
#: other use of the framework secret (cookie signing, CSRF, ...).
_HKDF_SALT = b"tablesessions/encryption-at-rest/v1"
#: Key ids of derived rings start with this, then 16 hex digits (64 bits) of HKDF output.
DERIVED_KID_PREFIX = "h"


def _hkdf(material: bytes, info: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_HKDF_SALT,
                info=info).derive(material)


class UndecryptableError(ValueError):
    """A payload failed authentication: tampered, mis-bound, or under an unknown key."""


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("encryption needs cryptography: pip install cryptography") from exc
    return AESGCM(key)


class KeyRing:
    """AES-256 keys by id. The first key given (or ``primary``) encrypts.

    :param keys: key id -> 32-byte key. Ids: 1-32 of ``A-Z a-z 0-9 _ . -``.
    :param primary: the id that encrypts; defaults to the first key.
    :raises ValueError: for a malformed id, a key that is not 32 bytes, or an
        unknown primary.
    """

    def __init__(self, keys: Mapping[str, bytes], *, primary: str | None = None) -> None:
        if not keys:
            raise ValueError("a key ring needs at least one key")
        for kid, key in keys.items():
            if not _KID_RE.fullmatch(kid):
                raise ValueError(f"key id {kid!r}: 1-32 of A-Z a-z 0-9 _ . -")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ValueError(f"key {kid!r} must be exactly {KEY_BYTES} bytes")
        self.primary = primary if primary is not None else next(iter(keys))
        if self.primary not in keys:
            raise ValueError(f"primary key id {self.primary!r} is not in the ring")
        self._ciphers = {kid: _aesgcm(key) for kid, key in keys.items()}

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def __repr__(self) -> str:  # never the keys
        return f"KeyRing(key_ids={self.key_ids!r}, primary={self.primary!r})"

    @staticmethod
    def generate_key() -> bytes:
        """Return a fresh random 32-byte key."""
        return os.urandom(KEY_BYTES)

    @classmethod
    def from_string(cls, spec: str) -> KeyRing:
        """Parse ``"kid:base64key,kid2:base64key"`` (the first is the primary), as
        in the ``TABLESESSIONS_ENCRYPTION_KEYS`` variable. Key material is never
        echoed in errors."""
        keys: dict[str, bytes] = {}
        for part in (p.strip() for p in spec.split(",")):
            kid, sep, material = part.partition(":")
            if not sep:
                raise ValueError("each key must be written as <id>:<base64 key>")
            try:
                keys[kid.strip()] = base64.b64decode(material.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"key {kid.strip()!r} is not valid base64") from None
        return cls(keys)

    @classmethod
    def from_secrets(cls, secret: str | bytes, fallbacks: Iterable[str | bytes] = (), *,
                     context: str) -> KeyRing:
        """Derive a ring from a framework secret: ``secret`` encrypts, each of
        ``fallbacks`` (older secrets, while rotating) still decrypts.

        Each key is HKDF-SHA256 of the secret (fixed salt, ``info`` naming the
        ``context``); its id is a second HKDF output of the same secret, so a row
        written under any of the secrets names the key that opens it, and an id
        reveals nothing about the key or the secret. The same secret and context
        give the same ring on every instance. A fallback equal to the secret is
        dropped.

        :param context: what the keys are for (the integrations use ``"sessions"``);
            another context gives unrelated keys.
        :raises ValueError: for an empty secret.
        """
        keys: dict[str, bytes] = {}
        label = context.encode()
        for one in (secret, *fallbacks):
            material = one.encode() if isinstance(one, str) else bytes(one)
            if not material:
                raise ValueError("an empty secret cannot key encryption")
            kid = DERIVED_KID_PREFIX + _hkdf(material, b"tablesessions key id\x00" + label,
                                             8).hex()
            keys.setdefault(kid, _hkdf(material, b"tablesessions key\x00" + label, KEY_BYTES))
        return cls(keys)

    def encrypt(self, data: bytes, aad: bytes) -> tuple[bytes, str]:
        """Return (nonce + ciphertext + tag, key id) under the primary key."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._ciphers[self.primary].encrypt(nonce, data, aad), self.primary

    def decrypt(self, blob: bytes, kid: str, aad: bytes) -> bytes:
        """:raises UndecryptableError: when the key is unknown or authentication fails."""
        cipher = self._ciphers.get(kid)
        if cipher is None or len(blob) < NONCE_BYTES + 16:
            raise UndecryptableError("unknown key id or truncated ciphertext")
        from cryptography.exceptions import InvalidTag

        try:
            return bytes(cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad))
        except InvalidTag:
            raise UndecryptableError("ciphertext failed authentication") from None
