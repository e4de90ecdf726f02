"""The encoder's plain-value check in C (``tablesessions/_scan.c``) against the
Python reference (``serialization._kinds``).

The C check decides whether a value is written with one orjson call, so a
wrong "yes" would store a tuple as a list or a UUID as a string. Both checks
must give the same set of kinds (or the same None) for every value, and the
encoder must write the same bytes, or raise the same error, with either.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import Markup

from tablesessions import serialization
from tablesessions.serialization import MAX_DEPTH, encode_value

SETTINGS = settings(max_examples=500, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

c_kinds = serialization._scan_kinds


def test_the_c_check_is_built_here() -> None:
    # scripts/bootstrap.sh builds it (setup.py); without a compiler the package
    # still works on the Python check, but this gate measures and tests the C one.
    assert c_kinds is not None, "tablesessions._scan was not built: is a C compiler installed?"


def test_the_c_check_is_given_the_same_types_as_the_python_check() -> None:
    assert len(set(serialization._FAST_ORDER)) == len(serialization._FAST_ORDER)
    assert frozenset(serialization._FAST_ORDER) == serialization._FAST
    assert serialization._FAST_ORDER[0] is str  # the C check's inlined commonest leaf


class _Str(str):
    pass


class _Int(int):
    pass


class _Dict(dict[str, Any]):
    pass


class _List(list[Any]):
    pass


class _Colour(enum.Enum):
    RED = 1


class _Level(enum.IntEnum):
    HIGH = 3


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.binary(max_size=8), st.datetimes(), st.dates(), st.uuids(), st.times(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from([_Str("s"), _Int(4), _Colour.RED, _Level.HIGH, Markup("<b>"), 1 + 2j,
                     frozenset({1}), bytearray(b"x")]),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=6), inner, max_size=5),
        st.dictionaries(st.text(max_size=6), inner, max_size=3).map(_Dict),
        st.lists(inner, max_size=3).map(_List),
    ),
    max_leaves=40,
)


def _python(value: Any, floats: bool) -> set[type] | None:
    return serialization._kinds(value, serialization._FAST, floats=floats)


def _c(value: Any, floats: bool) -> set[type] | None:
    assert c_kinds is not None
    return c_kinds(value, serialization._FAST_ORDER, MAX_DEPTH, floats)


@SETTINGS
@given(values, st.booleans())
def test_the_c_check_agrees_with_the_python_check(value: Any, floats: bool) -> None:
    # Every dict key here is an exact str, where the two checks are defined alike.
    assert _c(value, floats) == _python(value, floats)


def _outcome(value: Any) -> tuple[bytes, list[bytes]] | str:
    try:
        return encode_value("k", value)
    except TypeError as exc:
        return str(exc)


@SETTINGS
@given(values)
def test_the_encoder_writes_the_same_bytes_or_error_with_either_check(value: Any) -> None:
    with_c = _outcome(value)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serialization, "_scan_kinds", None)
        assert _outcome(value) == with_c


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": [1, "b", None, 2.5, True]}, {dict, list, int, str, type(None), float, bool}),
        ([b"x", dt.datetime(2024, 1, 1), dt.date(2024, 1, 1), Decimal("1")],
         {list, bytes, dt.datetime, dt.date, Decimal}),
        ("just text", {str}), ([], {list}), ({}, {dict}),
        ({"a": (1,)}, None), ({"u": uuid.UUID(int=1)}, None), ([_Colour.RED], None),
        ([_Level.HIGH], None), ([_Str("s")], None), ({"d": _Dict()}, None), ([_List()], None),
        ([dt.time(9)], None),
    ],
)
def test_what_the_c_check_admits(value: Any, expected: set[type] | None) -> None:
    assert _c(value, True) == expected


def test_floats_are_checked_only_when_asked() -> None:
    for bad in (float("nan"), float("inf"), float("-inf")):
        assert _c({"x": [1.0, bad]}, True) is None
        assert _c({"x": [1.0, bad]}, False) == {dict, list, float}
        assert _c(bad, True) is None
    assert _c([1e308, -0.0, 5e-324], True) == {list, float}


@pytest.mark.parametrize("value", [{1: "int key"}, {"ok": {(1, 2): "tuple key"}},
                                   [{_Str("k"): "str-subclass key"}], {None: 1}])
def test_a_key_that_is_not_an_exact_str_goes_to_the_walk(value: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    assert _c(value, True) is None
    with_c = _outcome(value)
    monkeypatch.setattr(serialization, "_scan_kinds", None)
    assert _outcome(value) == with_c


def _nested(levels: int, make_dict: bool) -> Any:
    value: Any = [] if not make_dict else {}
    for _ in range(levels):
        value = {"k": value} if make_dict else [value]
    return value


@pytest.mark.parametrize("make_dict", [False, True], ids=["lists", "dicts"])
def test_the_depth_limit_is_the_python_checks(make_dict: bool) -> None:
    # The value itself is level 1: MAX_DEPTH levels of containers pass, one more does not.
    ok, deep = _nested(MAX_DEPTH - 1, make_dict), _nested(MAX_DEPTH, make_dict)
    assert _c(ok, True) is not None and _python(ok, True) is not None
    assert _c(deep, True) is None and _python(deep, True) is None


def test_a_value_that_contains_itself_stops_at_the_depth_limit() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    ring: dict[str, Any] = {"a": {}}
    ring["a"]["back"] = ring
    assert _c(loop, True) is None
    assert _c(ring, True) is None
    with pytest.raises(TypeError, match="contains itself"):
        encode_value("k", loop)


def test_a_large_value_is_checked_whole() -> None:
    big = {"rows": [{"n": i, "s": str(i), "f": i / 3} for i in range(200_000)]}
    assert _c(big, True) == {dict, list, int, str, float}
    big["rows"][-1]["late"] = (1,)  # the last value decides too
    assert _c(big, True) is None


@pytest.mark.parametrize(
    ("args", "error"),
    [((1, [str], 5, True), TypeError), ((1, (), 5, True), TypeError),
     ((1, (str, "int"), 5, True), TypeError), ((1, (str,) * 33, 5, True), TypeError),
     ((1, (str,), -1, True), ValueError), ((1, (str,), "5", True), TypeError),
     ((1, (str,), 5), TypeError)],
)
def test_bad_arguments_are_refused(args: tuple[Any, ...], error: type[Exception]) -> None:
    assert c_kinds is not None
    with pytest.raises(error):
        c_kinds(*args)
