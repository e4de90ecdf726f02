"""Issue 14 item 5: a value the codec cannot encode (deep nesting, a cycle, an
unsupported type deep inside) raises ``TypeError`` naming the key, on both faces,
before any storage call; the stored copy is untouched."""

from __future__ import annotations

from typing import Any

import pytest

from tablesessions.serialization import MAX_DEPTH
from tablesessions.testing import RequestCounter

from ..conftest import MakeStore


def _cyclic() -> dict[str, Any]:
    cart: dict[str, Any] = {"items": []}
    cart["items"].append({"parent": cart})
    return cart


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


BAD = [
    pytest.param(_cyclic, r"'cart\.items\[0\]\.parent': the value contains itself", id="cycle"),
    pytest.param(lambda: _deep(MAX_DEPTH + 1), rf"'cart\[0\].*nested deeper than {MAX_DEPTH}",
                 id="too-deep"),
    pytest.param(lambda: _deep(50_000), "nested deeper", id="far-too-deep"),
]


@pytest.mark.parametrize(("make_value", "message"), BAD)
async def test_bad_value_in_a_new_session_raises_type_error_and_writes_nothing(
        make_store: MakeStore, request_counter: RequestCounter, make_value: Any,
        message: str) -> None:
    store = await make_store()
    session = store.new()
    session["ok"] = 1
    session["cart"] = make_value()
    with pytest.raises(TypeError, match=message):
        await store.save(session)
    assert request_counter.count == 0
    assert await store.get(session.id) is None


@pytest.mark.parametrize(("make_value", "message"), BAD)
async def test_bad_value_in_a_saved_session_leaves_the_stored_copy_untouched(
        make_store: MakeStore, request_counter: RequestCounter, make_value: Any,
        message: str) -> None:
    store = await make_store()
    session = store.new()
    session["ok"] = 1
    session["cart"] = {"items": ["a"]}
    await store.save(session)
    loaded = await store.get(session.id)
    assert loaded is not None
    request_counter.reset()
    loaded["cart"] = make_value()
    with pytest.raises(TypeError, match=message):
        await store.save(loaded)
    assert request_counter.count == 0
    again = await store.get(session.id)
    assert again is not None and dict(again) == {"ok": 1, "cart": {"items": ["a"]}}


async def test_in_place_mutation_into_a_cycle_is_refused_too(
        make_store: MakeStore, request_counter: RequestCounter) -> None:
    store = await make_store()
    session = store.new()
    session["cart"] = {"items": []}
    await store.save(session)
    loaded = await store.get(session.id)
    assert loaded is not None
    items = loaded["cart"]["items"]  # read, then mutated in place: found at save
    items.append(items)
    request_counter.reset()
    with pytest.raises(TypeError, match=r"'cart\.items\[0\]': the value contains itself"):
        await store.save(loaded)
    assert request_counter.count == 0
