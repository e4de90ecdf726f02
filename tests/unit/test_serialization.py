from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest

from tablesessions.serialization import decode_value, encode_value


def roundtrip(value: Any) -> Any:
    fragment, segments = encode_value("k", value)
    return decode_value(fragment, iter(segments))


@pytest.mark.parametrize(
    "value",
    [
        "text", "", "ünïcødé ✓", 0, -1, 2**70, 1.5, -0.0, True, False, None, [], {},
        [1, "a", None, [2.5, {"x": []}]], {"nested": {"deep": [1, 2, {"z": None}]}},
        dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 2, 29, 23, 59, 59, 123456),  # naive stays naive
        dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-5, minutes=-30))),
        dt.date(1999, 12, 31), uuid.uuid4(), b"", b"\x00\xff" * 100, Decimal("3.14159265358979"),
        Decimal("-1E+30"),
        {"$dt": "not a datetime"}, {"$b": 3}, {"$map": [["a", 1]]},  # user dicts shaped like tags
        {"$int": "0x10"},
        "lone \ud800 surrogate", {"key \udfff": ["\ud83d"]},  # valid JSON, not valid UTF-8
        pytest.param(10**5000, id="10**5000"),  # past Python's 4,300-digit int/str limit
        pytest.param(-(2**20_000), id="-2**20000"),
        {"a": b"x", "b": [b"y", {"c": b"z"}]},
    ],
)
def test_supported_values_round_trip_exactly(value: Any) -> None:
    out = roundtrip(value)
    assert out == value
    assert type(out) is type(value)
    if isinstance(value, dt.datetime):
        assert out.tzinfo == value.tzinfo


def test_nan_and_infinity_round_trip() -> None:
    assert math.isnan(roundtrip(float("nan")))
    assert roundtrip(float("inf")) == float("inf")


@pytest.mark.parametrize("value", [
    ("message", "category"), (), (1, (2, [3, (4,)])), [("error", "x"), ("info", "y")],
    (b"a", {"b": (b"c",)}),  # byte segments inside tuples keep their order
    {"$t": [1]}, {"$markup": "<b>"},  # user dicts shaped like the new tags
])
def test_tuples_round_trip_as_tuples(value: Any) -> None:
    # Flask's flashed messages are (category, message) tuples (issue 15).
    out = roundtrip(value)
    assert out == value
    assert repr(out) == repr(value)  # tuples stay tuples at every depth


def test_markup_round_trips_as_markup() -> None:
    from markupsafe import Markup

    out = roundtrip([("warning", Markup("<em>Testing</em>")), Markup("a &amp; b")])
    assert out == [("warning", Markup("<em>Testing</em>")), Markup("a &amp; b")]
    assert type(out[0][1]) is Markup
    assert type(out[1]) is Markup
    assert type(roundtrip("<em>plain</em>")) is str  # a plain str is not escaped markup


def test_objects_with_dunder_html_are_stored_as_markup_like_flask() -> None:
    from markupsafe import Markup

    class Widget:
        def __html__(self) -> str:
            return "<i>w</i>"

    assert roundtrip(Widget()) == Markup("<i>w</i>")


def test_bytes_travel_as_raw_segments_not_base64() -> None:
    payload = bytes(range(256)) * 1000
    fragment, segments = encode_value("k", {"file": payload})
    assert segments == [payload]
    assert len(fragment) < 40  # only a length reference in the JSON


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({1, 2}, "'cart'"),
        (object(), "'cart'"),
        ({"items": [1, {"when": dt.time(12)}]}, "'cart.items[1].when'"),
        ({1: "int key"}, "'cart'"),
        (bytearray(b"x"), "'cart'"),
    ],
)
def test_unsupported_values_raise_type_error_naming_the_key(value: Any, path: str) -> None:
    with pytest.raises(TypeError, match=path.replace("[", r"\[").replace("]", r"\]")):
        encode_value("cart", value)


def test_malformed_fragment_or_missing_segment_raises_value_error() -> None:
    with pytest.raises(ValueError):
        decode_value(b"{not json", iter([]))
    with pytest.raises(ValueError):
        decode_value(b'{"$b": 5}', iter([]))
    with pytest.raises(ValueError):
        decode_value(b'{"$b": 5}', iter([b"abc"]))
