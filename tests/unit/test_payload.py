from __future__ import annotations

import os
import zlib

import pytest

from tablesessions._limits import MAX_PROPERTY_BYTES
from tablesessions._payload import (
    CODEC_PLAIN,
    CODEC_ZLIB,
    assemble,
    chunk_columns,
    compress,
    decode_entries,
    decompress,
    encode_key,
    join_columns,
    split,
)


def test_assemble_split_round_trip_keeps_each_key_separate() -> None:
    entries = {"a": encode_key("a", [1, 2]), "bin": encode_key("bin", {"x": b"\x00" * 10}),
               "é": encode_key("é", "v")}
    parts = split(assemble(entries))
    assert parts == entries
    assert decode_entries(parts) == {"a": [1, 2], "bin": {"x": b"\x00" * 10}, "é": "v"}
    assert parts["a"] != parts["é"]


@pytest.mark.parametrize(
    "junk", [b"", b"XX\x01", b"TS\x02\x00\x00\x00\x00", b"TS\x01\x00\x00\x00\x05"])
def test_split_rejects_malformed_payloads(junk: bytes) -> None:
    with pytest.raises(ValueError):
        split(junk)


def test_split_rejects_trailing_bytes() -> None:
    with pytest.raises(ValueError, match="length"):
        split(assemble({"a": encode_key("a", 1)}) + b"x")


def test_compression_only_when_it_pays() -> None:
    small = b"a" * 100
    assert compress(small, threshold=1024, level=1) == (small, CODEC_PLAIN)
    text = b'{"user": "someone", "cart": [1, 2, 3]}' * 200
    packed, codec = compress(text, threshold=1024, level=1)
    assert codec == CODEC_ZLIB and len(packed) < len(text) / 5
    assert decompress(packed, codec, max_size=len(text)) == text
    noise = os.urandom(200_000)
    assert compress(noise, threshold=1024, level=1) == (noise, CODEC_PLAIN)


def test_decompression_is_bounded_against_bombs() -> None:
    bomb = zlib.compress(b"\x00" * 10_000_000)
    with pytest.raises(ValueError, match="max_session_bytes"):
        decompress(bomb, CODEC_ZLIB, max_size=1_000_000)
    with pytest.raises(ValueError):
        decompress(b"not zlib", CODEC_ZLIB, max_size=100)
    with pytest.raises(ValueError, match="codec"):
        decompress(b"x", "rot13", max_size=100)


def test_chunks_respect_the_measured_64000_byte_property_limit() -> None:
    data = os.urandom(MAX_PROPERTY_BYTES * 3 + 17)
    cols = chunk_columns(data)
    assert list(cols) == ["D0", "D1", "D2", "D3"]
    assert all(len(v) <= 64_000 for v in cols.values())
    assert join_columns(cols, 4) == data
    with pytest.raises(ValueError, match="D4"):
        join_columns(cols, 5)
