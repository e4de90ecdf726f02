"""Hostile input through the store, property-based (issue 9).

Case counts: 10,000 generated ids through get/delete/lock (no storage call may
happen), 10,000 generated values and keys through the codec, 300 of them
through real Azurite and back, and 300 garbage payloads planted in storage. Those are
the exhaustive budgets, which CI runs; the everyday gate runs a tenth of each
(``tests/budgets.py``).
"""

from __future__ import annotations

import ast
import datetime as dt
import importlib
import math
import pathlib
import uuid
from decimal import Decimal
from typing import Any

import pytest
from azure.data.tables import TableClient, UpdateMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tablesessions
from tablesessions import SessionDecodeError
from tablesessions._record.payload import assemble, decode_entries, encode_key, split
from tablesessions.testing import AzuriteServer, RequestCounter
from tests.budgets import cases

FUZZ = settings(max_examples=cases(10_000), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
STORAGE = settings(max_examples=cases(300), deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])

hostile_ids = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="#?/\\\x00\x1f\x7f\u0085'\" =&%", min_size=1, max_size=60),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            min_size=42, max_size=44),  # near-valid shapes
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
    st.none(), st.integers(), st.binary(max_size=50), st.lists(st.text(max_size=5), max_size=3),
)


@pytest.fixture(scope="module")
def fuzz_store(azurite: AzuriteServer) -> Any:
    counter = RequestCounter()
    with tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=tablesessions.testing.unique_name("fz"),
            container_name=tablesessions.testing.unique_name("fz"),
            client_options=counter.client_options()) as store:
        store.create_storage()
        yield store, counter


@FUZZ
@given(hostile_ids)
def test_hostile_ids_never_raise_and_never_reach_storage(fuzz_store: Any, value: Any) -> None:
    store, counter = fuzz_store
    if tablesessions.is_valid_session_id(value):
        return  # a well-formed random id is allowed to be looked up
    counter.reset()
    assert store.get(value) is None
    store.delete(value)
    with store.lock(value, timeout=0) as locked:
        assert locked is None
    assert counter.count == 0


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(),
    st.binary(max_size=200), st.datetimes(timezones=st.none() | st.just(dt.timezone.utc)),
    st.dates(), st.uuids(), st.decimals(allow_nan=False, allow_infinity=False))
tag_like_keys = st.sampled_from(["$dt", "$date", "$uuid", "$b", "$dec", "$map", "$t", ""])
values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8) | tag_like_keys, children, max_size=4),
    max_leaves=12)
session_keys = st.text(max_size=30) | tag_like_keys


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return (type(b) is dict and a.keys() == b.keys()
                and all(same(a[k], b[k]) for k in a))
    if isinstance(a, list):
        return type(b) is list and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b and (
        not isinstance(a, (dt.datetime, Decimal)) or str(a) == str(b))


@FUZZ
@given(st.dictionaries(session_keys, values, max_size=5))
def test_generated_sessions_round_trip_through_the_codec(data: dict[str, Any]) -> None:
    entries = {k: encode_key(k, v) for k, v in data.items()}
    back = decode_entries(split(assemble(entries)))
    assert same(data, back)


@STORAGE
@given(st.dictionaries(session_keys, values, max_size=4))
def test_generated_sessions_round_trip_through_azurite(fuzz_store: Any,
                                                       data: dict[str, Any]) -> None:
    store, _ = fuzz_store
    session = store.new()
    session.update(data)
    store.save(session)
    loaded = store.get(session.id)
    assert loaded is not None
    assert same(data, dict(loaded))


@STORAGE
@given(st.binary(max_size=2000), st.sampled_from(["ts1", "ts1+zlib", "ts1+aesgcm:k", "x"]))
def test_garbage_in_storage_is_a_documented_error_or_no_session(
        fuzz_store: Any, azurite: AzuriteServer, junk: bytes, codec: str) -> None:
    store, _ = fuzz_store
    session = store.new()
    session["x"] = 1
    store.save(session)
    pk, rk = store._rules.keys(session.id)
    with TableClient.from_connection_string(azurite.connection_string,
                                            store.table_name) as raw:
        row = dict(raw.get_entity(pk, rk))
        row.update(D0=junk, Size=len(junk), Chunks=1, Codec=codec)
        raw.update_entity(row, mode=UpdateMode.REPLACE)
    try:
        result = store.get(session.id)
    except SessionDecodeError:
        return  # the documented error for a corrupt unencrypted payload
    assert result is None or isinstance(result, tablesessions.Session)


def _module_of(package: pathlib.Path, path: pathlib.Path) -> str:
    return ".".join(("tablesessions", *path.relative_to(package).with_suffix("").parts))


def test_every_query_filter_is_a_constant_with_parameters() -> None:
    """No filter is ever built by string formatting: values go in ``parameters``."""
    package = pathlib.Path(tablesessions.__file__).parent
    found = 0
    trees = {path: ast.parse(path.read_text()) for path in package.rglob("*.py")}
    # Module-level string constants anywhere in the package (modules import each
    # other's filters, e.g. _PARTITION = "PartitionKey eq @pk").
    constants = {t.id: n.value.value for tree in trees.values() for n in tree.body
                 if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
                 and isinstance(n.value.value, str)
                 for t in n.targets if isinstance(t, ast.Name)}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "QueryPage":
                found += 1
                first = node.args[0] if node.args else next(
                    k.value for k in node.keywords if k.arg == "filter")
                where = f"{path.name}:{node.lineno}"
                if isinstance(first, ast.Name):
                    assert first.id in constants, f"{where}: filter is not a constant"
                    text = constants[first.id]
                elif isinstance(first, ast.Subscript) and isinstance(first.value, ast.Name):
                    # A table of filters made at import from constants: check each one.
                    module = importlib.import_module(_module_of(package, path))
                    table = getattr(module, first.value.id)
                    assert isinstance(table, tuple) and table, f"{where}: not a filter table"
                    for text in table[1:]:
                        assert "@" in text and "'" not in text, f"{where}: {text!r}"
                    text = table[-1]
                else:
                    assert isinstance(first, ast.Constant), f"{where}: filter is built"
                    text = str(first.value)
                assert "@" in text, where
                assert "'" not in text, f"{where}: a literal value inside the filter"
    assert found >= 2


def test_uuid_and_decimal_edge_values() -> None:
    for value in (uuid.UUID(int=0), Decimal("-0"), Decimal("1E-999")):
        entries = {"k": encode_key("k", value)}
        assert str(decode_entries(split(assemble(entries)))["k"]) == str(value)
