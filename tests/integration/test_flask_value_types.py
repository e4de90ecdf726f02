"""Tuples and Markup round-trip exactly through the store, on both faces (issue 15):
Flask's flashed messages are (category, message) tuples, often of Markup."""

from __future__ import annotations

import pytest
from markupsafe import Markup

from tests.conftest import MakeStore


async def test_tuples_and_markup_come_back_with_their_types(make_store: MakeStore) -> None:
    store = await make_store()
    other = await make_store()  # another instance reads it back
    session = store.new()
    session["_flashes"] = [("message", "saved"), ("warning", Markup("<em>careful</em>"))]
    session["pair"] = (1, (2, b"\x00"))
    await store.save(session)
    loaded = await other.get(session.id)
    assert loaded is not None
    flashes = loaded["_flashes"]
    assert flashes == [("message", "saved"), ("warning", Markup("<em>careful</em>"))]
    assert [type(f) for f in flashes] == [tuple, tuple]
    assert type(flashes[1][1]) is Markup
    assert loaded["pair"] == (1, (2, b"\x00"))
    assert type(loaded["pair"][1]) is tuple


async def test_other_unsupported_types_raise_before_any_write(make_store: MakeStore) -> None:
    store = await make_store()
    session = store.new()
    session["tags"] = {"a", "b"}
    with pytest.raises(TypeError, match="'tags'"):
        await store.save(session)
    assert await store.get(session.id) is None
