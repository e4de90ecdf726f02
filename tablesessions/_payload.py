"""The binary payload layout, compression and chunking (sans-I/O).

Layout v1 (before compression)::

    b"TS" | version u8 | key count u32
    per key:  key length u32 | key utf-8 | fragment length u32 | segment count u32
              | segment lengths u64...
    then per key, in the same order: fragment bytes, then its segments

Everything is big-endian. The header lets a reader slice each key's fragment
and segments without parsing the others; a save reuses the encodings of keys it
did not touch, and a merge compares encodings key by key.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._limits import MAX_PROPERTY_BYTES
from .serialization import decode_value, encode_value

FORMAT_VERSION = 1
_MAGIC = b"TS"
CODEC_PLAIN = "ts1"
CODEC_ZLIB = "ts1+zlib"
#: Compression is tried only above this size; below it zlib's header costs more than it saves.
DEFAULT_COMPRESS_THRESHOLD = 1024
_SAMPLE = 16 * 1024


@dataclass(frozen=True, slots=True)
class EncodedKey:
    """One key's encoding: its JSON fragment and raw byte segments."""

    fragment: bytes
    segments: tuple[bytes, ...]



def encode_key(key: str, value: Any) -> EncodedKey:
    """Encode one session entry. :raises TypeError: for unsupported values."""
    fragment, segments = encode_value(key, value)
    return EncodedKey(fragment, tuple(segments))


def assemble(entries: Mapping[str, EncodedKey]) -> bytes:
    """Join encoded keys into one uncompressed payload."""
    header = [_MAGIC, struct.pack(">BI", FORMAT_VERSION, len(entries))]
    body: list[bytes] = []
    for key, enc in entries.items():
        kb = key.encode("utf-8")
        header.append(struct.pack(">I", len(kb)))
        header.append(kb)
        header.append(struct.pack(">II", len(enc.fragment), len(enc.segments)))
        header.extend(struct.pack(">Q", len(s)) for s in enc.segments)
        body.append(enc.fragment)
        body.extend(enc.segments)
    return b"".join(header + body)


def split(payload: bytes) -> dict[str, EncodedKey]:
    """Slice a payload into its keys' encodings. :raises ValueError: if malformed."""
    view = memoryview(payload)
    try:
        if bytes(view[:2]) != _MAGIC:
            raise ValueError("not a tablesessions payload")
        version, count = struct.unpack_from(">BI", view, 2)
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported payload version {version}")
        pos = 7
        layout: list[tuple[str, int, list[int]]] = []
        for _ in range(count):
            (klen,) = struct.unpack_from(">I", view, pos)
            key = bytes(view[pos + 4 : pos + 4 + klen]).decode("utf-8")
            pos += 4 + klen
            flen, nseg = struct.unpack_from(">II", view, pos)
            pos += 8
            seg_lens = list(struct.unpack_from(f">{nseg}Q", view, pos))
            pos += 8 * nseg
            layout.append((key, flen, seg_lens))
        out: dict[str, EncodedKey] = {}
        for key, flen, seg_lens in layout:
            fragment = bytes(view[pos : pos + flen])
            pos += flen
            segs = []
            for n in seg_lens:
                segs.append(bytes(view[pos : pos + n]))
                pos += n
            out[key] = EncodedKey(fragment, tuple(segs))
        if pos != len(view):
            raise ValueError("payload length does not match its header")
        return out
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed payload: {exc}") from exc


def decode_key(entry: EncodedKey) -> Any:
    """Decode one key's value. :raises ValueError: if the fragment is malformed."""
    return decode_value(entry.fragment, iter(entry.segments))


def decode_entries(entries: Mapping[str, EncodedKey]) -> dict[str, Any]:
    """Decode every key's value. :raises ValueError: if a fragment is malformed."""
    return {k: decode_key(e) for k, e in entries.items()}


def compress(payload: bytes, *, threshold: int, level: int) -> tuple[bytes, str]:
    """Return (stored bytes, codec id), compressing only when it pays.

    A 16 KiB sample is compressed first: incompressible data (images, random
    tokens, already-compressed uploads) skips the full pass, which would cost
    CPU and, for a 64 MiB session, another full-size buffer.
    """
    if len(payload) < threshold:
        return payload, CODEC_PLAIN
    if len(payload) > _SAMPLE * 2:
        sample = payload[:_SAMPLE]
        if len(zlib.compress(sample, level)) > 0.9 * len(sample):
            return payload, CODEC_PLAIN
    packed = zlib.compress(payload, level)
    if len(packed) >= len(payload):
        return payload, CODEC_PLAIN
    return packed, CODEC_ZLIB


def decompress(stored: bytes, codec: str, *, max_size: int) -> bytes:
    """Undo :func:`compress`.

    :raises ValueError: for an unknown codec, or a payload inflating past max_size.
    """
    if codec == CODEC_PLAIN:
        return stored
    if codec == CODEC_ZLIB:
        # Bounded, so a hostile or corrupt payload cannot inflate without limit.
        d = zlib.decompressobj()
        try:
            out = d.decompress(stored, max_size + 1)
        except zlib.error as exc:
            raise ValueError(f"corrupt compressed payload: {exc}") from exc
        if len(out) > max_size or d.unconsumed_tail:
            raise ValueError("decompressed payload exceeds max_session_bytes")
        return out
    raise ValueError(f"unknown codec {codec!r}")


def chunk_columns(stored: bytes) -> dict[str, bytes]:
    """Split stored bytes into ``D0``, ``D1``... binary columns of at most 64,000 bytes."""
    view = memoryview(stored)
    return {
        f"D{i}": bytes(view[off : off + MAX_PROPERTY_BYTES])
        for i, off in enumerate(range(0, len(stored), MAX_PROPERTY_BYTES))
    }


def join_columns(entity: Mapping[str, Any], count: int) -> bytes:
    """Reassemble the ``D*`` columns. :raises ValueError: when one is missing."""
    parts = []
    for i in range(count):
        part = entity.get(f"D{i}")
        if not isinstance(part, (bytes, bytearray)):
            raise ValueError(f"data column D{i} missing")
        parts.append(bytes(part))
    return b"".join(parts)
