"""Encryption at rest (opt-in): AES-256-GCM under a key ring with key ids.

The newest key (the ring's primary) encrypts; every key in the ring decrypts,
so keys rotate without logging anyone out: add a new primary, run
``tablesessions rotate-keys``, then drop the old key. The associated data binds
each ciphertext to the app, the session's row key and the payload format, so a
ciphertext copied onto another session's row, another app, or relabelled with
another codec fails to decrypt. Needs the ``encryption`` extra (cryptography).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from typing import Any

NONCE_BYTES = 12  # the GCM standard nonce; random per encryption
KEY_BYTES = 32  # AES-256
_KID_RE = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class UndecryptableError(ValueError):
    """A payload failed authentication: tampered, mis-bound, or under an unknown key."""


def _aesgcm(key: bytes) -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("encryption needs the extra: pip install 'tablesessions[encryption]'"
                          ) from exc
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
