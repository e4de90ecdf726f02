"""The binary payload layout, per-key compression and chunking (sans-I/O).

Layout v1::

    b"TS" | version u8 | key count u32
    per key:  key length u32 | key utf-8 | flags u8 | stored fragment length u32
              | fragment length u32 | segment count u32 | segment lengths u64...
    then per key, in the same order: fragment bytes, then its segments

Everything is big-endian. Flag bit 0 marks a zlib-compressed fragment: any zlib
stream (ISA-L's deflate writes it at levels 1 to 3, the stdlib's otherwise, a
large fragment in pieces on several cores: ``deflate.py``; the stdlib's
inflates it). The header lets a reader slice each key without parsing
the others, and carries each fragment's inflated length, so the size limit is
checked before anything is inflated and a compressed fragment is only inflated
when its key is read.

Compression is per key, not per payload: each key keeps its compressed form, so
a save that changes one small key of a 64 KiB session recompresses that key
only (whole-payload zlib cost ~250 us per save at that size). Byte segments
(the ``bytes`` values: images, uploads) are stored raw; they are usually
compressed already.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from typing import Any

from ..serialization import decode_value, encode_value
from .deflate import compress
from .limits import MAX_PROPERTY_BYTES

#: A byte segment: ``bytes`` when encoded here, a view into the payload when loaded.
Buffer = bytes | memoryview

FORMAT_VERSION = 1
_MAGIC = b"TS"
CODEC_PLAIN = "ts1"
#: Fragments are compressed from this size; below it zlib's overhead outweighs the gain.
DEFAULT_COMPRESS_THRESHOLD = 1024
# No compressibility sample before the full pass: a fragment is always JSON
# text from orjson (bytes values are raw segments), and the most random text it
# can write (uniform printable ASCII) still deflates to 0.83 of its size, under
# the 0.9 a sample would have refused, so a sample never saved a pass and cost
# ~12 us on every large first save (docs/performance.md).
_ZLIB = 1


class EncodedKey:
    """One key's encoding: its JSON fragment and raw byte segments, plus the
    fragment's stored (possibly compressed) form, computed once and reused. A
    key loaded compressed is inflated on first use of ``fragment``."""

    __slots__ = ("_fragment", "_packed", "_raw_len", "segments")

    def __init__(self, fragment: bytes | None, segments: tuple[Buffer, ...],
                 packed: tuple[int, bytes] | None = None, raw_len: int = 0) -> None:
        self._fragment = fragment
        self.segments = segments
        self._packed = packed
        self._raw_len = len(fragment) if fragment is not None else raw_len

    @property
    def fragment(self) -> bytes:
        """The JSON fragment. :raises ValueError: if the stored form is corrupt."""
        if self._fragment is None:
            assert self._packed is not None
            self._fragment = _inflate(self._packed[1], self._raw_len)
        return self._fragment

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, EncodedKey) or self.segments != other.segments:
            return False
        if self._packed is not None and self._packed == other._packed:
            return True  # same stored bytes: equal without inflating
        return self.fragment == other.fragment

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:  # never the data
        return f"<EncodedKey {len(self.fragment)} B, {len(self.segments)} segments>"

    def raw_size(self) -> int:
        return self._raw_len + sum(map(len, self.segments)) if self.segments else self._raw_len

    def packed(self, threshold: int, level: int) -> tuple[int, bytes]:
        """(flags, stored fragment): zlib when the fragment is large and it pays."""
        if self._packed is None:
            self._packed = _pack(self.fragment, threshold, level)
        return self._packed


def _pack(fragment: bytes, threshold: int, level: int) -> tuple[int, bytes]:
    if len(fragment) < threshold:
        return 0, fragment
    packed = compress(fragment, level)
    return (_ZLIB, packed) if len(packed) < len(fragment) else (0, fragment)


# Precompiled: assemble and split run on every write and every read.
_HEAD = struct.Struct(">BI")
_KEY_LEN = struct.Struct(">I")
_KEY_META = struct.Struct(">BIII")
_SEG_LEN = struct.Struct(">Q")


def _key_bytes(key: str) -> bytes:
    # "surrogatepass": a key with a lone surrogate (from a JSON request body) round-
    # trips instead of failing the save; every other key is plain UTF-8 as before.
    return key.encode("utf-8", "surrogatepass")


def encode_key(key: str, value: Any) -> EncodedKey:
    """Encode one session entry. :raises TypeError: for unsupported values."""
    fragment, segments = encode_value(key, value)
    return EncodedKey(fragment, tuple(segments))


def raw_size(entries: Mapping[str, EncodedKey]) -> int:
    """The uncompressed size of a payload: what ``max_session_bytes`` limits."""
    # A plain loop, no per-key generator: it runs before every write (~2 us for a
    # session's eight keys against ~4.8 us as a sum over generators).
    size = 7
    for key, enc in entries.items():
        size += len(_key_bytes(key)) + 17 + 8 * len(enc.segments) + enc.raw_size()
    return size


def assemble(entries: Mapping[str, EncodedKey], *, threshold: int = DEFAULT_COMPRESS_THRESHOLD,
             level: int = 1) -> bytes:
    """Join encoded keys into one payload, each fragment compressed when it pays."""
    header: list[Buffer] = [_MAGIC, _HEAD.pack(FORMAT_VERSION, len(entries))]
    body: list[Buffer] = []
    for key, enc in entries.items():
        flags, stored = enc.packed(threshold, level)
        kb = _key_bytes(key)
        segments = enc.segments
        header += (_KEY_LEN.pack(len(kb)), kb,
                   _KEY_META.pack(flags, len(stored), enc._raw_len, len(segments)))
        body.append(stored)
        if segments:
            header += [_SEG_LEN.pack(len(s)) for s in segments]
            body += segments
    header += body
    return b"".join(header)


def split(payload: bytes | bytearray, *, max_size: int | None = None) -> dict[str, EncodedKey]:
    """Slice a payload into its keys' encodings. Compressed fragments stay
    compressed until read; their declared sizes must fit ``max_size`` in all
    (and each inflates to exactly its declared size), so a hostile payload
    cannot balloon.

    :raises ValueError: if malformed or over ``max_size``.
    """
    # It runs on every get, so it is written for speed: precompiled structs, one
    # pass. Fragments are copied out (small; json needs bytes); byte segments stay
    # memoryviews into the payload, so a 16 MiB upload is not copied on a get,
    # only when its key is decoded (``decode_key``).
    buf = memoryview(payload)
    try:
        if buf[:2] != _MAGIC:
            raise ValueError("not a tablesessions payload")
        version, count = _HEAD.unpack_from(buf, 2)
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported payload version {version}")
        pos, declared = 7, 0
        layout: list[tuple[str, int, int, int, tuple[int, ...]]] = []
        for _ in range(count):
            (klen,) = _KEY_LEN.unpack_from(buf, pos)
            pos += 4
            key = str(buf[pos : pos + klen], "utf-8", "surrogatepass")
            pos += klen
            flags, flen, raw_len, nseg = _KEY_META.unpack_from(buf, pos)
            pos += 13
            seg_lens: tuple[int, ...] = ()
            if nseg:
                seg_lens = struct.unpack_from(f">{nseg}Q", buf, pos)
                pos += 8 * nseg
                declared += sum(seg_lens)
            declared += raw_len
            if max_size is not None and declared > max_size:
                raise ValueError("payload exceeds max_session_bytes")
            layout.append((key, flags, flen, raw_len, seg_lens))
        out: dict[str, EncodedKey] = {}
        for key, flags, flen, raw_len, seg_lens in layout:
            stored = bytes(buf[pos : pos + flen])
            pos += flen
            segs: tuple[Buffer, ...] = ()
            if seg_lens:
                parts = []
                for n in seg_lens:
                    parts.append(buf[pos : pos + n])
                    pos += n
                segs = tuple(parts)
            if flags & _ZLIB:
                out[key] = EncodedKey(None, segs, (flags, stored), raw_len)
            elif flen != raw_len:
                raise ValueError("fragment length does not match its header")
            else:
                out[key] = EncodedKey(stored, segs, (flags, stored))
        if pos != len(buf):
            raise ValueError("payload length does not match its header")
        return out
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed payload: {exc}") from exc


def _inflate(stored: bytes, size: int) -> bytes:
    """Inflate to exactly ``size`` bytes (the header's word), never more."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(stored, size + 1)
    except zlib.error as exc:
        raise ValueError(f"corrupt compressed fragment: {exc}") from exc
    if len(out) != size or d.unconsumed_tail or not d.eof or d.unused_data:
        raise ValueError("compressed fragment is truncated, corrupt or not its declared size")
    return out


def decode_key(entry: EncodedKey) -> Any:
    """Decode one key's value. :raises ValueError: if the fragment is malformed."""
    if any(type(s) is not bytes for s in entry.segments):
        # Segments still viewing the loaded payload become the ``bytes`` values
        # themselves (one copy, needed anyway): the value and the kept encoding
        # share it, and the payload's buffer is freed once no key views it.
        entry.segments = tuple(bytes(s) for s in entry.segments)
    return decode_value(entry.fragment, iter(entry.segments))


def decode_entries(entries: Mapping[str, EncodedKey]) -> dict[str, Any]:
    """Decode every key's value. :raises ValueError: if a fragment is malformed."""
    return {k: decode_key(e) for k, e in entries.items()}


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
