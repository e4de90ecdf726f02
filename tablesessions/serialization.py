"""Session values <-> JSON fragments plus raw byte segments. Never pickle.

Each top-level key is encoded on its own, so a save can tell which keys changed
and a merge can re-apply just those. ``bytes`` values are not base64'd into the
JSON: they become ``{"$b": length}`` and travel as raw segments beside it, which
keeps large binary sessions at ~1x their size in memory and in storage.

Exact round trips: str, int, float, bool, None, list, dict (str keys), datetime
(naive or aware, microseconds kept), date, UUID, bytes, Decimal, tuple and
``Markup`` (any object with ``__html__``, as Flask's tagged JSON: flashed
messages are tuples, often of Markup). Anything else raises ``TypeError``
naming the key.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

# Tag names for the non-JSON types. A user dict whose only key is a tag name is
# escaped as {"$map": [[key, value]]}: a list, so the decoder's bottom-up hook
# never mistakes the inner pair for a tag.
_DATETIME, _DATE, _UUID, _BYTES, _DECIMAL, _MAP = "$dt", "$date", "$uuid", "$b", "$dec", "$map"
_BIGINT = "$int"
# Flask's tagged JSON round-trips these two (issue 15); kept as their own small layer.
_TUPLE, _MARKUP = "$t", "$markup"
_TAGS = frozenset({_DATETIME, _DATE, _UUID, _BYTES, _DECIMAL, _MAP, _BIGINT, _TUPLE, _MARKUP})
#: Python refuses int <-> decimal str past 4,300 digits (CVE-2020-10735); ints
#: beyond ~12,000 bits travel as hex, which has no such limit.
_BIGINT_BITS = 12_000

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode
_dumps_ascii = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=True).encode


def encode_value(key: str, value: Any) -> tuple[bytes, list[bytes]]:
    """Encode one session value as (JSON fragment, byte segments in document order).

    :raises TypeError: for a value of an unsupported type, naming the key.
    """
    segments: list[bytes] = []
    try:
        tagged = _tag(value, segments)
    except _Unsupported as exc:
        where = key + "".join(reversed(exc.where))
        raise TypeError(f"session key {where!r}: {exc.reason}") from None
    try:
        return _dumps(tagged).encode("utf-8"), segments
    except UnicodeEncodeError:
        # A lone surrogate (valid in JSON, e.g. from a request body) cannot be
        # UTF-8: \u escapes carry it exactly, and the decoder reads them back.
        return _dumps_ascii(tagged).encode("ascii"), segments


class _Unsupported(Exception):
    """A value that cannot be stored; ``where`` collects its path on the way out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where: list[str] = []


_SUPPORTED = ("(supported: str, int, float, bool, None, list, tuple, dict, datetime, date, "
              "UUID, bytes, Decimal, Markup)")


def _tag(value: Any, segments: list[bytes]) -> Any:
    # Every save of a changed key walks its value, so the common exact types
    # come first and no path string is built unless a value is refused: for a
    # 64 KiB cart, building "cart[17].sku"-style paths up front doubled the cost.
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if kind is int:
        return value if value.bit_length() <= _BIGINT_BITS else {_BIGINT: hex(value)}
    if kind is dict:
        return _tag_dict(value, segments)
    if kind is list:
        return _tag_list(value, segments)
    return _tag_other(value, segments)


def _tag_dict(value: dict[Any, Any], segments: list[bytes]) -> Any:
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise _Unsupported(f"dict keys must be str, got {type(k).__name__}")
        try:
            out[k] = _tag(v, segments)
        except _Unsupported as exc:
            exc.where.append(f".{k}")
            raise
    if len(out) == 1 and next(iter(out)) in _TAGS:
        return {_MAP: [list(pair) for pair in out.items()]}
    return out


def _tag_list(value: list[Any] | tuple[Any, ...], segments: list[bytes]) -> list[Any]:
    out = []
    for i, v in enumerate(value):
        try:
            out.append(_tag(v, segments))
        except _Unsupported as exc:
            exc.where.append(f"[{i}]")
            raise
    return out


def _tag_other(value: Any, segments: list[bytes]) -> Any:
    # Subclasses of the plain types (IntEnum, OrderedDict...) and the tagged types.
    # Order matters: datetime before date (a datetime is a date), and Markup
    # (a str subclass) and tuple before their base types.
    tagged = _tag_flask(value, segments)
    if tagged is not None:
        return tagged
    if isinstance(value, (str, float)):
        return value
    if isinstance(value, int):  # not a bool: bool cannot be subclassed
        return _tag(int(value), segments)
    if isinstance(value, dict):
        return _tag_dict(value, segments)
    if isinstance(value, (list, tuple)):
        return _tag_list(value, segments)
    if isinstance(value, bytes):
        segments.append(value)
        return {_BYTES: len(value)}
    if isinstance(value, dt.datetime):
        return {_DATETIME: value.isoformat()}
    if isinstance(value, dt.date):
        return {_DATE: value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {_UUID: str(value)}
    if isinstance(value, Decimal):
        return {_DECIMAL: str(value)}
    raise _Unsupported(f"values of type {type(value).__name__} cannot be stored {_SUPPORTED}")


def _tag_flask(value: Any, segments: list[bytes]) -> Any:
    """Tag the two types Flask's tagged JSON round-trips beyond ours, else None."""
    if isinstance(value, tuple):
        return {_TUPLE: _tag_list(value, segments)}
    html = getattr(value, "__html__", None)
    if callable(html):  # Flask's rule (TagMarkup): the object's own HTML, as Markup
        return {_MARKUP: str(html())}
    return None


def _markup(text: str) -> Any:
    try:
        from markupsafe import Markup
    except ImportError:  # pragma: no cover - markupsafe ships with Flask and Jinja
        return text  # written by an app that had it; readable here as the same text
    return Markup(text)  # noqa: S704 - text is what Markup.__html__ gave at save time


def decode_value(fragment: bytes, segments: Iterator[bytes]) -> Any:
    """Decode one value from its JSON fragment, taking bytes from ``segments`` in order.

    :raises ValueError: when the fragment is malformed or refers to missing bytes.
    """
    if b'{"$' not in fragment:
        return json.loads(fragment)  # no tags: skip the per-object hook (the common case)
    return json.loads(fragment, object_hook=_untagger(segments))


def _untagger(segments: Iterator[bytes]) -> Callable[[dict[str, Any]], Any]:
    def hook(obj: dict[str, Any]) -> Any:
        if len(obj) != 1:
            return obj
        tag, payload = next(iter(obj.items()))
        if tag not in _TAGS:
            return obj
        if tag == _BYTES:
            # json's parser calls the hook on leaf objects in document order,
            # which is the order encode_value appended the segments in.
            data = next(segments, None)
            if data is None or len(data) != payload:
                raise ValueError("byte segment missing or of the wrong length")
            return data
        if tag == _DATETIME:
            return dt.datetime.fromisoformat(payload)
        if tag == _DATE:
            return dt.date.fromisoformat(payload)
        if tag == _UUID:
            return uuid.UUID(payload)
        if tag == _DECIMAL:
            return Decimal(payload)
        if tag == _BIGINT:
            return int(payload, 16)
        if tag == _TUPLE:
            return tuple(payload)
        if tag == _MARKUP:
            return _markup(payload)
        return dict((k, v) for k, v in payload)  # _MAP: an escaped user dict

    return hook
