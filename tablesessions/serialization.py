"""Session values <-> JSON fragments plus raw byte segments. Never pickle.

Each top-level key is encoded on its own, so a save can tell which keys changed
and a merge can re-apply just those. ``bytes`` values are not base64'd into the
JSON: they become ``{"$b": length}`` and travel as raw segments beside it, which
keeps large binary sessions at ~1x their size in memory and in storage.

Exact round trips: str, int, float, bool, None, list, dict (str keys), datetime
(naive or aware, microseconds kept), date, UUID, bytes, Decimal, tuple and
``Markup`` (any object with ``__html__``, as Flask's tagged JSON: flashed
messages are tuples, often of Markup). Anything else raises ``TypeError``
naming the key, and so do values nested deeper than ``MAX_DEPTH`` levels and
values that contain themselves (a cycle): the walk counts depth, so neither can
reach a ``RecursionError``.

Encoding is one orjson call when the value allows it (the fast path,
``_fast``): exact JSON types, plus exact bytes, datetimes, dates and Decimals,
which orjson hands to a hook that tags them; a check over the value decides
first (``tablesessions/_scan.c`` where the package was built with a C compiler,
else ``_kinds``, the same check in Python). Otherwise two steps: a Python walk
that tags the non-JSON types (tuples, UUIDs, Markup, subclasses...) and refuses
what cannot be stored, then one JSON encoder call. The encoder is orjson (same
compact JSON as the stdlib's, many times faster); the stdlib's writes what
orjson refuses or would write differently (NaN and infinities, which orjson
turns into null; ints past 64 bits; lone surrogates). Every path writes the
same bytes (tests compare them), read by decode_value (orjson, then a walk of
the tags only).
"""

from __future__ import annotations

import datetime as dt
import gc
import itertools
import json
import operator
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from math import isfinite
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
_orjson_dumps: Callable[..., bytes] | None
try:  # the same compact JSON, ~15x faster than the stdlib's encoder (docs/performance.md)
    import orjson

    _orjson_dumps = orjson.dumps
    #: Datetimes and dates go to the hook, not orjson's own format.
    _PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME
except ImportError:  # pragma: no cover - a core dependency; the stdlib encoder still works
    _orjson_dumps = None
    _PASSTHROUGH = 0


_LEAF = frozenset({str, bool, type(None)})
#: Leaves orjson writes as the walk would (floats are checked for NaN/infinity apart).
_PLAIN: frozenset[type] = frozenset({str, int, bool, type(None)})
_PLAIN_OR_CONTAINER: frozenset[type] = _PLAIN | {float, dict, list}
#: Leaves the fast path tags through orjson's default hook (exact types only:
#: subclasses, tuples, UUIDs and enums, which orjson would write natively or
#: differently, go through the walk).
_HOOKED: frozenset[type] = frozenset({bytes, dt.datetime, dt.date, Decimal})
_FAST = _PLAIN_OR_CONTAINER | _HOOKED
#: ``_FAST`` for the C check, most common first (it compares them in order; a
#: test keeps the two equal).
_FAST_ORDER = (str, int, float, dict, list, bool, type(None), bytes, dt.datetime, dt.date, Decimal)
_scan_kinds: Callable[[Any, tuple[type, ...], int, bool], set[type] | None] | None
try:  # _kinds in C: a pointer compare per value, ~10x faster (tablesessions/_scan.c)
    from tablesessions._scan import kinds as _scan_kinds
except ImportError:  # pragma: no cover - built without a C compiler: _kinds does it
    _scan_kinds = None
_chain = itertools.chain.from_iterable
#: Deeper values are refused: JSON decoders recurse per level, so a deeper value
#: could be written and then fail to read back (Python's own limit is ~1,000 frames).
MAX_DEPTH = 100


class _Segments(list[bytes]):
    """The byte segments of one value; ``nonfinite`` is set (only) when the walk
    met a NaN or an infinity (no ``__init__``: this is built once per key saved)."""

    __slots__ = ("nonfinite",)
    nonfinite: bool


def encode_value(key: str, value: Any) -> tuple[bytes, list[bytes]]:
    """Encode one session value as (JSON fragment, byte segments in document order).

    :raises TypeError: for a value that cannot be stored, naming the key: an
        unsupported type, a non-``str`` dict key, nesting deeper than
        :data:`MAX_DEPTH` levels, or a value that contains itself (a cycle).
        Nothing is written: the save encodes before its first storage call.
    """
    fast = _fast(value)
    if fast is not None:
        return fast
    segments = _Segments()
    try:
        tagged = _tag(value, segments, 0)
    except _Unsupported as exc:
        raise TypeError(f"session key {exc.describe(key)}") from None
    if _orjson_dumps is not None and not hasattr(segments, "nonfinite"):
        try:
            return _orjson_dumps(tagged), segments
        except TypeError:  # orjson.JSONEncodeError: an int past 64 bits, a lone surrogate
            pass
    try:
        return _dumps(tagged).encode("utf-8"), segments
    except UnicodeEncodeError:
        # A lone surrogate (valid in JSON, e.g. from a request body) cannot be
        # UTF-8: \u escapes carry it exactly, and the decoder reads them back.
        return _dumps_ascii(tagged).encode("ascii"), segments


def _fast(value: Any) -> tuple[bytes, list[bytes]] | None:
    """orjson's encoding of ``value`` in one call, when it is exactly what the walk
    would write; else None (the walk decides, and may refuse the value).

    That holds for exact str, int, float, bool, None, dict and list, and the exact
    bytes, datetime, date and Decimal, which orjson hands to a hook that tags them
    as the walk does (``_Hook``), at most :data:`MAX_DEPTH` deep (the C check, or
    :func:`_kinds` without it, decides that first). orjson itself refuses non-str
    keys, ints past 64 bits and lone surrogates. Its output is then checked for
    what the walk would write differently: a dict whose first key starts with "$"
    (it may need the ``{"$map"}`` escape: one ``{"$`` more than the hook's tags;
    inside a JSON string the quote would be escaped), and NaN or an infinity
    (orjson writes null; where there is a null, the floats are checked, unless the
    C check already did). The ``$`` search is one memchr; ``null`` costs ~45 us per
    64 KiB.
    """
    if _orjson_dumps is None:
        return None
    if _scan_kinds is not None:  # the C check, floats included (no null search then)
        kinds, floats_checked = _scan_kinds(value, _FAST_ORDER, MAX_DEPTH, True), True
    else:
        kinds, floats_checked = _kinds(value, _FAST, floats=False), False
    if kinds is None:
        return None
    try:
        if kinds.isdisjoint(_HOOKED):
            fragment, segments, tags = _orjson_dumps(value), _Segments(), 0
        else:
            hook = _Hook()
            fragment = _orjson_dumps(value, default=hook, option=_PASSTHROUGH)
            segments, tags = hook.segments, hook.tags
    except TypeError:  # orjson.JSONEncodeError: a non-str key, a big int, a lone surrogate
        return None
    if b"$" in fragment and fragment.count(b'{"$') != tags:
        return None
    if (not floats_checked and float in kinds and b"null" in fragment
            and _kinds(value, _FAST, floats=True) is None):
        return None
    return fragment, segments


class _Hook:
    """orjson's default hook on the fast path: tags the exact bytes, datetime,
    date and Decimal as ``_tag_other`` does (byte segments in document order,
    the order orjson meets them in), and counts the tags it wrote."""

    __slots__ = ("segments", "tags")

    def __init__(self) -> None:
        self.segments = _Segments()
        self.tags = 0

    def __call__(self, value: Any) -> dict[str, Any]:
        kind = type(value)
        self.tags += 1
        if kind is bytes:
            self.segments.append(value)
            return {_BYTES: len(value)}
        if kind is dt.datetime:
            return {_DATETIME: value.isoformat()}
        if kind is dt.date:
            return {_DATE: value.isoformat()}
        if kind is Decimal:
            return {_DECIMAL: str(value)}
        raise TypeError(kind.__name__)  # not reached: _kinds admits only the four


class _Unsupported(Exception):
    """A value that cannot be stored; ``where`` collects its path on the way out
    (innermost first), ``ids`` the containers it passed through (to tell a cycle
    from plain depth)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where: list[str] = []
        self.ids: list[int] = []

    def describe(self, key: str) -> str:
        steps, ids = self.where[::-1], self.ids[::-1]
        if len(set(ids)) < len(ids):  # a container met twice on one path: a cycle
            seen: set[int] = set()
            for n, ident in enumerate(ids):
                if ident in seen:
                    return (f"{key + ''.join(steps[:n])!r}: the value contains itself "
                            "(a reference cycle) and cannot be stored")
                seen.add(ident)
        if len(steps) > 12:  # deep nesting: the start of the path says where
            steps = [*steps[:10], "..."]
        return f"{key + ''.join(steps)!r}: {self.reason}"


_SUPPORTED = ("(supported: str, int, float, bool, None, list, tuple, dict, datetime, date, "
              "UUID, bytes, Decimal, Markup)")


def _kinds(value: Any, allowed: frozenset[type], *, floats: bool) -> set[type] | None:
    """The exact types of ``value`` and of everything nested in it (dict values,
    list items), when all are in ``allowed``, it is at most :data:`MAX_DEPTH`
    deep and (with ``floats``) every float is finite; else None.

    Level by level, so that each step is a few C calls over all the values of a
    level instead of Python code per value. The values of a level come from
    ``gc.get_referents`` where it yields exactly a dict's values and a list's
    items (CPython's traversal; probed at import, :data:`_REFERENTS_ARE_VALUES`):
    one call for the whole level, about a third of the cost of collecting them
    with ``dict.values`` (docs/performance.md). Leaves have no referents, so the
    next level is the referents of the whole level, with no filtering step.
    """
    kind = type(value)
    if kind not in allowed:
        return None
    if kind is float and floats and not isfinite(value):
        return None
    seen = {kind}
    if kind is not dict and kind is not list:
        return seen
    if not _REFERENTS_ARE_VALUES:
        return _kinds_by_levels(value, allowed, floats=floats)
    level: list[Any] = [value]
    depth = 1
    while True:
        if depth > MAX_DEPTH:
            return None
        level = _referents(*level)
        kinds = set(map(type, level))
        if not kinds <= allowed:
            return None
        if floats and float in kinds and not all(map(isfinite, _only(level, float))):
            return None  # NaN or an infinity: only the stdlib encoder writes them
        seen |= kinds
        if dict not in kinds and list not in kinds:
            return seen
        depth += 1


def _kinds_by_levels(value: dict[str, Any] | list[Any], allowed: frozenset[type], *,
                     floats: bool) -> set[type] | None:
    """:func:`_kinds` for an interpreter whose ``gc.get_referents`` does not yield
    exactly the values (the same answer, from ``dict.values`` and the lists)."""
    dicts, lists = ([value], []) if type(value) is dict else ([], [value])
    seen: set[type] = {type(value)}
    depth = 1
    while True:
        if depth > MAX_DEPTH:
            return None
        values = [*_chain(map(dict.values, dicts)), *_chain(lists)]
        kinds = set(map(type, values))
        if not kinds <= allowed:
            return None
        if floats and float in kinds and not all(map(isfinite, _only(values, float))):
            return None
        seen |= kinds
        if dict not in kinds and list not in kinds:
            return seen
        dicts = list(_only(values, dict))
        lists = list(_only(values, list))
        depth += 1


def _referents_are_values() -> bool:
    """Whether ``gc.get_referents`` of exact dicts and lists gives exactly their
    values and items: dicts with str keys (split, combined, untracked because
    every value is atomic, and emptied), nested and empty lists. Atomic objects
    must give nothing. Anything else (another interpreter, a future CPython) and
    :func:`_kinds` uses :func:`_kinds_by_levels`."""

    class _Probe:
        def __init__(self) -> None:
            self.a, self.b = 1.5, "x"  # a split-table __dict__

    emptied = {"gone": 1, "kept": None}
    del emptied["gone"]
    probes: list[Any] = [{"a": 1, "b": "x", "c": 2.5, "d": None, "e": True},
                         {"n": [1, {"k": []}], "m": {}}, vars(_Probe()), emptied,
                         [1, "x", 2.5, None, False, [], {}], [], {}]
    expected = [v for p in probes for v in (p.values() if type(p) is dict else p)]
    got = _referents(*probes)
    atoms = _referents("s", 1, 2.5, True, None, 2**80)
    return not atoms and sorted(map(id, got)) == sorted(map(id, expected))


_referents = gc.get_referents
_REFERENTS_ARE_VALUES = _referents_are_values()


def _only(values: list[Any], kind: type) -> Iterator[Any]:
    """The ``values`` whose exact type is ``kind`` (a C-level filter)."""
    return itertools.compress(values, map(operator.is_, map(type, values), itertools.repeat(kind)))


def _tag(value: Any, segments: _Segments, depth: int) -> Any:
    # Every save of a changed key walks its value, so the common exact types
    # come first and no path string is built unless a value is refused: for a
    # 64 KiB cart, building "cart[17].sku"-style paths up front doubled the cost.
    kind = type(value)
    if kind in _LEAF:
        return value
    if kind is float:
        if value - value != 0.0:  # NaN or an infinity: only the stdlib encoder writes them
            segments.nonfinite = True
        return value
    if kind is int:
        return value if value.bit_length() <= _BIGINT_BITS else {_BIGINT: hex(value)}
    if kind is dict:
        return _tag_dict(value, segments, depth + 1)
    if kind is list:
        return _tag_list(value, segments, depth + 1)
    return _tag_other(value, segments, depth)


def _too_deep() -> _Unsupported:
    return _Unsupported(f"nested deeper than {MAX_DEPTH} levels")


def _tag_dict(value: dict[Any, Any], segments: _Segments, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _too_deep()
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise _Unsupported(f"dict keys must be str, got {type(k).__name__}")
        try:
            out[k] = v if type(v) in _LEAF else _tag(v, segments, depth)
        except _Unsupported as exc:
            exc.where.append(f".{k}")
            exc.ids.append(id(value))
            raise
    if len(out) == 1 and next(iter(out)) in _TAGS:
        return {_MAP: [list(pair) for pair in out.items()]}
    return out


def _tag_list(value: list[Any] | tuple[Any, ...], segments: _Segments, depth: int) -> list[Any]:
    if depth > MAX_DEPTH:
        raise _too_deep()
    out = []
    for i, v in enumerate(value):
        try:
            out.append(v if type(v) in _LEAF else _tag(v, segments, depth))
        except _Unsupported as exc:
            exc.where.append(f"[{i}]")
            exc.ids.append(id(value))
            raise
    return out


def _tag_other(value: Any, segments: _Segments, depth: int) -> Any:
    # Subclasses of the plain types (IntEnum, OrderedDict...) and the tagged types.
    # Order matters: datetime before date (a datetime is a date), and Markup
    # (a str subclass) and tuple before their base types. A new tagged type is one
    # more isinstance branch here and one more tag in the decoder's hook.
    tagged = _tag_flask(value, segments, depth)
    if tagged is not None:
        return tagged
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _tag(float(value), segments, depth)
    if isinstance(value, int):  # not a bool: bool cannot be subclassed
        return _tag(int(value), segments, depth)
    if isinstance(value, dict):
        return _tag_dict(value, segments, depth + 1)
    if isinstance(value, (list, tuple)):
        return _tag_list(value, segments, depth + 1)
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


def _tag_flask(value: Any, segments: _Segments, depth: int) -> Any:
    """Tag the two types Flask's tagged JSON round-trips beyond ours, else None."""
    if isinstance(value, tuple):
        return {_TUPLE: _tag_list(value, segments, depth + 1)}
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


def decode_value(fragment: bytes, segments: Iterator[bytes | memoryview]) -> Any:
    """Decode one value from its JSON fragment, taking bytes from ``segments`` in order.

    orjson parses (several times faster than the stdlib's ``json``, and without a
    Python hook per object); then a walk turns the tags back into their types,
    only as far as the fragment has tags: it counts them first (every tag starts
    with ``{"$``, which in JSON can only open an object whose first key starts
    with ``$``) and stops at the last one, so a value with no tag is never walked
    and a datetime near the start of a 64 KiB value costs a few steps (a value
    with tags in its second half goes to the stdlib's parser, which is then
    cheaper than the walk). Fragments
    orjson would read differently go to the stdlib's parser, as before: ints past
    64 bits (orjson makes them floats: a run of 19 digits sends the fragment
    there), NaN and infinities and lone surrogates (orjson refuses them). The
    result is the same as :func:`_decode_stdlib`'s (tests compare the two).

    :raises ValueError: when the fragment is malformed or refers to missing bytes.
    """
    if _orjson_loads is None or _DIGIT_RUN in fragment.translate(_DIGITS):
        return _decode_stdlib(fragment, segments)
    last = fragment.rfind(b'{"$')
    if last > len(fragment) >> 1:
        # A tag in the second half: walking that far in Python costs more than
        # the stdlib's parser calling its hook per object (measured, docs/cache.md).
        return _decode_stdlib(fragment, segments)
    try:
        value = _orjson_loads(fragment)
    except ValueError:  # orjson.JSONDecodeError: NaN, a lone surrogate, or malformed
        return _decode_stdlib(fragment, segments)
    if last < 0:
        return value
    try:
        # Counted up to the last one only: none follows it.
        return _Untag(segments, fragment.count(b'{"$', 0, last + 3)).any(value)
    except (TypeError, KeyError, RecursionError) as exc:  # a malformed tag's payload
        raise ValueError(f"malformed tagged value: {type(exc).__name__}") from None


def _decode_stdlib(fragment: bytes, segments: Iterator[bytes | memoryview]) -> Any:
    """The stdlib's parser with a per-object hook: the reference decoder, and the
    path for what orjson cannot read the same (see :func:`decode_value`)."""
    try:
        if b'{"$' not in fragment:
            return json.loads(fragment)  # no tags: skip the per-object hook
        return json.loads(fragment, object_hook=_untagger(segments))
    except (TypeError, KeyError, RecursionError) as exc:  # a malformed tag's payload
        raise ValueError(f"malformed tagged value: {type(exc).__name__}") from None


_orjson_loads: Callable[[bytes], Any] | None
try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - a core dependency; the stdlib parser still works
    _orjson_loads = None

#: ``fragment.translate(_DIGITS)`` keeps digits as ``0`` and blanks the rest, so
#: one ``in`` finds a run of 19 digits: an int orjson might read as a float
#: (past u64, or below -2**63; a string holding such a run costs only the slower parser).
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_DIGIT_RUN = b"0" * 19


class _Untag:
    """Turns the tags of an orjson-parsed value back into their types, in place,
    in document order (the order ``encode_value`` appended the byte segments in),
    each tag's payload before the tag (bottom-up, as the stdlib's object hook),
    and stops once all ``left`` tag-shaped objects of the fragment were met."""

    __slots__ = ("left", "segments")

    def __init__(self, segments: Iterator[bytes | memoryview], left: int) -> None:
        self.segments = segments
        self.left = left

    def any(self, value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            return self.dict(value)
        if kind is list:
            return self.list(value)
        return value

    def dict(self, obj: dict[str, Any]) -> Any:
        for first in obj:  # the first key only
            if first[:1] == "$":
                self.left -= 1
                if len(obj) == 1 and first in _TAGS:
                    return self.tag(first, obj[first])
            break
        for k, v in obj.items():
            kind = type(v)
            if kind is dict or kind is list:
                if self.left <= 0:
                    break
                # Replacing a value leaves the dict's size unchanged: safe mid-iteration.
                obj[k] = self.dict(v) if kind is dict else self.list(v)
        return obj

    def list(self, items: list[Any]) -> list[Any]:
        for i, v in enumerate(items):
            kind = type(v)
            if kind is dict or kind is list:
                if self.left <= 0:
                    break
                items[i] = self.dict(v) if kind is dict else self.list(v)
        return items

    def tag(self, tag: str, payload: Any) -> Any:
        payload = self.any(payload)
        if tag == _BYTES:
            data = next(self.segments, None)
            if data is None or len(data) != payload:
                raise ValueError("byte segment missing or of the wrong length")
            return data if type(data) is bytes else bytes(data)
        return _untag(tag, payload)


def _untag(tag: str, payload: Any) -> Any:
    """A tag's value from its (already decoded) payload; not ``$b``."""
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


def _untagger(segments: Iterator[bytes | memoryview]) -> Callable[[dict[str, Any]], Any]:
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
            return data if type(data) is bytes else bytes(data)
        return _untag(tag, payload)

    return hook
