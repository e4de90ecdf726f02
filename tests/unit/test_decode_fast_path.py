"""The orjson decoder (``decode_value``) against the stdlib reference (``_decode_stdlib``).

Old payloads must decode identically: every fragment the encoder writes (and
wrote: the format did not change) gives the same value, of the same types, from
both decoders, with the byte segments taken in the same order.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from tablesessions import serialization
from tablesessions.serialization import _decode_stdlib, decode_value, encode_value

SETTINGS = settings(max_examples=400, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

_TAG_NAMES = [*sorted(serialization._TAGS), "$other", "$"]

leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits too
    st.sampled_from([2**64 - 1, 2**64, -(2**63) - 1, 10**30, 2**12_001, -(2**13_000)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),  # lone surrogates included
    st.sampled_from(['{"$dt":"x"}', "$5.00", "12345678901234567890123", '{"$b":3}']),
    st.binary(max_size=40),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.dates(), st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(max_size=10).map(Markup),
)
keys = st.one_of(st.text(max_size=8), st.sampled_from(_TAG_NAMES))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(keys, inner, max_size=5),
        st.builds(lambda k, v: {k: v}, st.sampled_from(_TAG_NAMES), inner),  # tag-shaped
    ),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dt.datetime):
        return bool(a == b and a.tzinfo == b.tzinfo)
    return bool(a == b)


def _both(fragment: bytes, segments: list[bytes]) -> tuple[Any, Any]:
    return decode_value(fragment, iter(segments)), _decode_stdlib(fragment, iter(segments))


@SETTINGS
@given(values)
def test_the_orjson_decoder_reads_every_encoded_value_as_the_stdlib_does(value: Any) -> None:
    fragment, segments = encode_value("k", value)
    new, old = _both(fragment, segments)
    assert _same(new, old)
    assert encode_value("k", new) == (fragment, segments)  # and it is the value written


@SETTINGS
@given(st.lists(values, min_size=1, max_size=6))
def test_a_tag_in_either_half_of_a_large_value_decodes_the_same(parts: list[Any]) -> None:
    # Padding moves the tags between the walked half and the stdlib's half.
    for value in ({"pad": "x" * 4000, "v": parts}, {"v": parts, "pad": "x" * 4000}):
        fragment, segments = encode_value("k", value)
        new, old = _both(fragment, segments)
        assert _same(new, old)


@pytest.mark.parametrize("fragment", [
    b'{"a":[1,{"$dt":"2024-01-01T00:00:00"}],"b":{"$t":[{"$b":1},{"$b":2}]}}',
    b'[{"$b":1},{"$map":[["$b",{"$b":2}]]},{"$b":3}]',  # segments in document order
])
def test_segments_are_taken_in_document_order(fragment: bytes) -> None:
    segments = [b"x", b"yy", b"zzz"]
    new, old = _both(fragment, segments)
    assert _same(new, old)


def test_a_value_with_tags_only_near_its_start_is_walked_only_that_far() -> None:
    when = dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
    value = {"at": when, "cart": [{"sku": i, "opts": {"n": [i]}} for i in range(2000)]}
    fragment, _ = encode_value("k", value)
    visited: list[int] = []
    real = serialization._Untag.dict

    def counting(self: Any, obj: dict[str, Any]) -> Any:
        visited.append(1)
        return real(self, obj)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(serialization._Untag, "dict", counting)
        out = decode_value(fragment, iter(()))
    assert out == value
    assert type(out["at"]) is dt.datetime
    assert len(visited) <= 3  # the top level and the tag, not 4,000 cart dicts


@pytest.mark.parametrize("value", [
    2**64, -(2**63) - 1, [1, 10**25], {"x": float("nan")}, "lone \ud800", [float("-inf")],
])
def test_what_orjson_reads_differently_goes_to_the_stdlib_parser(value: Any) -> None:
    fragment, segments = encode_value("k", value)
    new, old = _both(fragment, segments)
    assert _same(new, old)
    assert _same(new, value) or (isinstance(value, dict) and math.isnan(new["x"]))


@pytest.mark.parametrize("fragment", [
    b'{"$dt":5}', b'{"$t":5}', b'{"$map":[1]}', b'{"$uuid":"nope"}', b'{"$b":"x"}',
    b'[{"$date":null}]', b'{"$b":1}', b"[" * 5000 + b"]" * 5000,
])
def test_malformed_tags_raise_value_error_on_both_paths(fragment: bytes) -> None:
    with pytest.raises(ValueError):
        decode_value(fragment, iter(()))
    with pytest.raises(ValueError):
        _decode_stdlib(fragment, iter(()))


def test_without_orjson_the_stdlib_parser_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    value = {"a": dt.date(2024, 1, 1), "b": b"raw", "c": (uuid.UUID(int=1), Decimal("1.5"))}
    fragment, segments = encode_value("k", value)
    monkeypatch.setattr(serialization, "_orjson_loads", None)
    assert _same(decode_value(fragment, iter(segments)), value)


@SETTINGS
@given(values)
def test_the_plain_check_skips_the_walk_only_where_the_walk_writes_the_same(value: Any) -> None:
    """The fast path (orjson in one call, with its tagging hook) with either way
    of collecting the values, and no fast path at all (the walk) give the same
    bytes, segments and error, for values mixing every supported type, tuples,
    tag-shaped keys, NaN and ints past 64 bits."""
    outcomes: list[object] = []
    for referents, fast in ((True, True), (False, True), (False, False)):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(serialization, "_REFERENTS_ARE_VALUES", referents)
            if not fast:
                patch.setattr(serialization, "_fast", lambda value: None)
            try:
                outcomes.append(encode_value("k", value))
            except TypeError as exc:
                outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1] == outcomes[2]
