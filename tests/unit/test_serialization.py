from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest

from tablesessions import serialization
from tablesessions.serialization import MAX_DEPTH, decode_value, encode_value


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


def _nested_lists(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


def _nested_dicts(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"n": value}
    return value


@pytest.mark.parametrize("make", [_nested_lists, _nested_dicts])
def test_nesting_up_to_the_limit_round_trips(make: Any) -> None:
    value = make(MAX_DEPTH - 1)  # plus the outer container: MAX_DEPTH levels
    assert roundtrip(value) == value


@pytest.mark.parametrize("levels", [MAX_DEPTH, MAX_DEPTH + 1, 5_000, 100_000])
@pytest.mark.parametrize("make", [_nested_lists, _nested_dicts])
def test_deeper_nesting_raises_type_error_not_recursion_error(make: Any, levels: int) -> None:
    with pytest.raises(TypeError, match=rf"session key 'k[\[.].*nested deeper than {MAX_DEPTH}"):
        encode_value("k", make(levels))


def test_self_referential_values_raise_type_error_naming_where_the_cycle_closes() -> None:
    cart: dict[str, Any] = {"items": []}
    cart["items"].append(cart)
    with pytest.raises(TypeError, match=r"session key 'cart\.items\[0\]': the value contains "
                                        r"itself \(a reference cycle\)"):
        encode_value("cart", cart)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError, match=r"session key 'k\[0\]': the value contains itself"):
        encode_value("k", loop)


def test_the_same_object_twice_is_not_a_cycle() -> None:
    shared = {"sku": "A-1"}
    assert roundtrip([shared, shared, {"again": shared}]) == [shared, shared, {"again": shared}]


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, None, True, "x", {"b": []}]}, 2**63 - 1, 2**64, -(2**70),
        [float("inf"), 1.0], "lone \ud800", {"s": 1e300, "t": 1e-7, "u": -0.0},
        ("t", "u"), {"$dt": "escaped"}, {"$other": 1, "x": 2},
        [dt.datetime(2024, 1, 1), b"raw", Decimal("1.5"), uuid.UUID(int=7)],
    ],
)
def test_orjson_and_stdlib_encoders_agree(value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = encode_value("k", value)
    monkeypatch.setattr(serialization, "_orjson_dumps", None)
    slow = encode_value("k", value)
    assert decode_value(fast[0], iter(fast[1])) == decode_value(slow[0], iter(slow[1]))
    assert fast[1] == slow[1]
    assert json.loads(fast[0]) == json.loads(slow[0])


class _IntLike(int):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"cart": [{"sku": "A-1", "qty": 2, "price": 9.5, "opts": {"size": "M"}}] * 3},
        [1, 2.5, None, True, "x", [], {}], 2**64 - 1, 2**64, [{"n": float("nan")}],
        {"x": [float("-inf")]}, [("t", 1)], {"u": uuid.UUID(int=7)}, [{"$dt": "escaped"}],
        {"$map": []}, {1: "non-str key"}, {"a": None, "b": float("nan")}, [None, 1.5],
        [_IntLike(3)], {"when": dt.date(2024, 1, 1)},
        [b"raw", {"b": b"more"}], "lone \ud800", [True, False, -0.0, 1e300],
    ],
)
def test_plain_json_skips_the_walk_with_the_same_bytes(value: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The check-only fast path writes exactly what the tagging walk writes, and
    leaves everything it cannot vouch for to the walk (which may refuse it)."""
    fast = _outcome(value)
    monkeypatch.setattr(serialization, "_fast", lambda value: None)
    assert fast == _outcome(value)


def _plain(value: Any) -> bool:
    """Plain JSON to the fast path: exact JSON types only, finite floats, at most
    MAX_DEPTH deep (what orjson writes exactly as the walk would)."""
    return serialization._kinds(value, serialization._PLAIN_OR_CONTAINER, floats=True) is not None


def _outcome(value: Any) -> tuple[bytes, list[bytes]] | str:
    try:
        return encode_value("k", value)
    except TypeError as exc:
        return str(exc)


@pytest.mark.parametrize(
    ("value", "plain"),
    [({"a": [1, "b", None, 2.5]}, True), ({"a": (1,)}, False), ({"a": float("nan")}, False),
     ([float("inf")], False), ({"k": uuid.UUID(int=1)}, False), ([[]] * 3, True),
     (float("nan"), False),
     ([1, [2, [3.5, [float("-inf")]]]], False), ({"a": {"b": [_IntLike(1)]}}, False)],
)
@pytest.mark.parametrize("by_referents", [True, False], ids=["referents", "by-levels"])
def test_what_counts_as_plain_json(value: Any, plain: bool, by_referents: bool,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Both ways of collecting a level's values give the answer: gc.get_referents
    # (CPython) and dict.values (the fallback for another interpreter).
    monkeypatch.setattr(serialization, "_REFERENTS_ARE_VALUES", by_referents)
    assert _plain(value) is plain


def test_the_plain_check_keeps_the_depth_limit() -> None:
    assert _plain(_nested_lists(MAX_DEPTH - 1))
    assert _plain(_nested_dicts(MAX_DEPTH - 1))
    assert not _plain(_nested_lists(MAX_DEPTH))
    assert not _plain(_nested_dicts(MAX_DEPTH))


class _Attrs:
    def __init__(self) -> None:
        self.price, self.tags = 9.5, ["a", (1, 2)]


_PLAIN_PROBES: list[Any] = [
    {"cart": [{"sku": "A-1", "qty": 2, "price": 9.5, "opts": {"size": "M"}}] * 3},
    {"k": [1, (2,)]}, {"a": {"b": [{"c": {}}]}},
    vars(_Attrs()),  # a split-table dict, whose values CPython keeps apart from the keys
    [vars(_Attrs())["tags"]], [[], [[]], [{}]], {"u": [uuid.UUID(int=3)]}, [_IntLike(2)],
    {"f": [1.5, float("nan")]}, [{"d": dt.date(2024, 1, 1)}], [b"raw"], [{1, 2}],
    {"k": "v", "x": None}, [Decimal("1")], {"deep": _nested_lists(MAX_DEPTH - 2)},
]


@pytest.mark.parametrize("value", _PLAIN_PROBES)
@pytest.mark.parametrize("floats", [True, False])
def test_the_referents_check_agrees_with_the_level_scan(value: Any, floats: bool) -> None:
    """The fast plain check (one gc.get_referents call per level) gives the same
    answer as collecting each level's values with dict.values, the way it is
    done where the probe fails."""
    assert serialization._REFERENTS_ARE_VALUES
    for allowed in (serialization._PLAIN_OR_CONTAINER, serialization._FAST):
        by_levels = serialization._kinds_by_levels(value, allowed, floats=floats)
        assert serialization._kinds(value, allowed, floats=floats) == by_levels


@pytest.mark.parametrize("value", [*_PLAIN_PROBES, {1: "int key", 2: [3]}, {(1, 2): "tuple key"},
                                   [{"ok": 1, 3: "int key inside"}]])
def test_both_checks_lead_to_the_same_bytes_or_error(value: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A dict with non-str keys: the referents include its keys, so the two checks
    # may differ (a tuple key is "not plain" to one, left to orjson by the other),
    # but either way the walk refuses it with the same error.
    fast = _outcome(value)
    monkeypatch.setattr(serialization, "_REFERENTS_ARE_VALUES", False)
    assert fast == _outcome(value)


def test_the_referents_probe_holds_here_and_would_catch_a_traversal_that_skips_values(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert serialization._referents_are_values()  # CPython: dicts and lists visit every value
    import gc

    def skips_atoms(*objs: Any) -> list[Any]:  # a traversal that visits only containers
        return [v for v in gc.get_referents(*objs) if isinstance(v, (dict, list))]

    monkeypatch.setattr(serialization, "_referents", skips_atoms)
    assert not serialization._referents_are_values()


def test_datetimes_bytes_and_decimals_inside_a_value_are_tagged_without_the_walk(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """orjson's default hook tags the four exact leaf types in its one pass; the
    Python walk is not entered (its first step raises here)."""
    value = {"items": [{"added": dt.datetime(2025, 6, 1, 9, 30, tzinfo=dt.timezone.utc),
                        "day": dt.date(2025, 6, 1), "price": Decimal("9.90"),
                        "thumb": b"\x89PNG", "tags": ["a"]} for _ in range(50)]}
    walked = encode_value("k", value)

    def no_walk(*args: Any) -> Any:
        raise AssertionError("the walk ran")

    monkeypatch.setattr(serialization, "_tag", no_walk)
    fast = encode_value("k", value)
    assert fast == walked
    assert len(fast[1]) == 50 and fast[1][0] == b"\x89PNG"
    assert roundtrip(value) == value


@pytest.mark.parametrize("value", [{"t": [("a", 1)]}, {"u": [uuid.UUID(int=5)]},
                                   [{"$dt": "user data"}], {"n": [float("nan"), None]},
                                   {"when": [dt.time(9, 30)]}, {"sub": [_IntLike(4)]}])
def test_what_the_fast_path_leaves_to_the_walk(value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tuples, UUIDs and enums (which orjson writes natively, untagged), a dict
    that may need the $map escape, NaN, unsupported types and subclasses."""
    calls: list[Any] = []
    real = serialization._tag

    def counted(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(serialization, "_tag", counted)
    with contextlib.suppress(TypeError):  # the walk refuses dt.time, as before
        encode_value("k", value)
    assert calls
