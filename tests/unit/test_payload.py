from __future__ import annotations

import base64
import os
import random
import zlib

import orjson
import pytest

from tablesessions._record import deflate
from tablesessions._record.limits import MAX_PROPERTY_BYTES
from tablesessions._record.payload import (
    _pack,
    assemble,
    chunk_columns,
    decode_entries,
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


def test_a_session_key_with_a_lone_surrogate_round_trips() -> None:
    entries = {"k\ud800": encode_key("k\ud800", 1)}
    assert decode_entries(split(assemble(entries))) == {"k\ud800": 1}


def test_split_rejects_trailing_bytes() -> None:
    with pytest.raises(ValueError, match="length"):
        split(assemble({"a": encode_key("a", 1)}) + b"x")


def test_compression_is_per_key_and_only_when_it_pays() -> None:
    text = [{"sku": f"SKU-{i}", "name": "Classic Oak Lamp", "qty": i % 4} for i in range(400)]
    entries = {"flag": encode_key("flag", "x" * 100), "cart": encode_key("cart", text)}
    payload = assemble(entries, threshold=1024, level=1)
    assert len(payload) < entries["cart"].raw_size() / 4
    assert entries["flag"].packed(1024, 1) == (0, entries["flag"].fragment)  # small: raw
    flags, _ = entries["cart"].packed(1024, 1)
    assert flags == 1
    back = split(payload, max_size=10**6)
    assert back == entries
    assert decode_entries(back)["cart"] == text


def test_a_loaded_key_keeps_its_compressed_form_for_the_next_save() -> None:
    cart = encode_key("cart", ["item"] * 2000)
    loaded = split(assemble({"cart": cart}))["cart"]
    assert loaded.packed(1024, 1) == cart.packed(1024, 1)  # reused, not recompressed
    assert loaded._packed is not None


def test_incompressible_fragments_are_stored_raw() -> None:
    noise = os.urandom(60_000)
    assert _pack(noise, 1024, 1) == (0, noise)  # deflate could not shrink it
    text = base64.b85encode(noise)  # text-encoded noise still compresses ~20%: it pays
    assert _pack(text, 1024, 1)[0] == 1


def test_the_most_random_json_text_still_deflates_under_nine_tenths() -> None:
    # Why _pack tries no sample first: a fragment is orjson's output, and even
    # uniformly random printable ASCII, or random code points, written as JSON
    # deflates well under the 0.9 a sample would have skipped compression at.
    rng = random.Random(18)
    texts = ["".join(chr(rng.randrange(32, 127)) for _ in range(60_000)),
             "".join(chr(rng.randrange(0x100, 0xD800)) for _ in range(20_000)),
             "".join(chr(rng.randrange(0x10000, 0x110000)) for _ in range(15_000))]
    for text in texts:
        fragment = orjson.dumps([text])
        flags, stored = _pack(fragment, 1024, 1)
        assert flags == 1 and len(stored) < 0.9 * len(fragment)


def test_decompression_is_bounded_against_bombs() -> None:
    bomb_key = encode_key("k", "a" * 5_000_000)
    payload = assemble({"k": bomb_key})
    assert len(payload) < 100_000
    with pytest.raises(ValueError, match="max_session_bytes"):
        split(payload, max_size=1_000_000)
    assert split(payload, max_size=6_000_000)["k"] == bomb_key


def test_corrupt_compressed_fragment_is_a_value_error_when_read() -> None:
    payload = bytearray(assemble({"k": encode_key("k", "b" * 5000)}))
    payload[-5] ^= 0xFF
    entry = split(bytes(payload))["k"]  # still compressed: nothing inflated yet
    with pytest.raises(ValueError):
        entry.fragment  # noqa: B018


def test_a_fragment_larger_than_its_header_declares_is_refused() -> None:
    payload = bytearray(assemble({"k": encode_key("k", "c" * 50_000)}))
    # Header of key "k": magic(2) version(1) count(4) klen(4) key(1) flags(1)
    # stored length(4), then the declared inflated length (4 bytes).
    at = 2 + 1 + 4 + 4 + 1 + 1 + 4
    payload[at:at + 4] = (100).to_bytes(4, "big")  # claims 100 bytes
    entry = split(bytes(payload), max_size=1_000)["k"]  # passes the size check...
    with pytest.raises(ValueError, match="declared size"):
        entry.fragment  # noqa: B018  ...but never inflates past what it declared


def test_chunks_respect_the_measured_64000_byte_property_limit() -> None:
    data = os.urandom(MAX_PROPERTY_BYTES * 3 + 17)
    cols = chunk_columns(data)
    assert list(cols) == ["D0", "D1", "D2", "D3"]
    assert all(len(v) <= 64_000 for v in cols.values())
    assert join_columns(cols, 4) == data
    with pytest.raises(ValueError, match="D4"):
        join_columns(cols, 5)


def test_fragments_compressed_by_isal_are_plain_zlib_streams(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ISA-L's deflate (levels 1-3) writes zlib streams the stdlib inflates, so the
    codec id stays and rows are readable by instances without it; and payloads
    written by the stdlib's zlib read the same."""
    cart = [{"sku": f"SKU-{i}", "name": "Classic Oak Lamp", "qty": i % 4} for i in range(400)]
    with_isal = encode_key("cart", cart)
    flags, stored = with_isal.packed(1024, 1)
    assert flags == 1 and zlib.decompress(stored) == with_isal.fragment
    monkeypatch.setattr(deflate, "_isal", None)
    stdlib = encode_key("cart", cart)
    assert stdlib.packed(1024, 1)[1] == zlib.compress(stdlib.fragment, 1)
    for entry in (with_isal, stdlib):
        assert decode_entries(split(assemble({"cart": entry})))["cart"] == cart
    # Level 6 is past ISA-L's range: the stdlib's zlib at that level.
    assert _pack(stdlib.fragment, 1024, 6)[1] == zlib.compress(stdlib.fragment, 6)
