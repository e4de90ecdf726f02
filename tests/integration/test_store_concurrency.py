"""ETag-conditional saves: merge by default, strict and overwrite modes."""

from __future__ import annotations

from typing import Any

import pytest

from tablesessions import SessionConflictError

from ..conftest import Face, MakeStore


async def _two_copies(store: Face) -> tuple[Any, Any, str]:
    s = store.new()
    s["a"] = 0
    s["b"] = 0
    await store.save(s)
    one = await store.get(s.id)
    two = await store.get(s.id)
    return one, two, s.id


async def test_merge_keeps_both_requests_changes(make_store: MakeStore) -> None:
    store = await make_store()
    one, two, sid = await _two_copies(store)
    one["a"] = 1
    two["b"] = 2
    two["cart"] = ["x"]
    await store.save(one)
    await store.save(two)  # 412, re-read, re-apply b and cart
    assert await store.get(sid) == {"a": 1, "b": 2, "cart": ["x"]}
    assert two == {"a": 1, "b": 2, "cart": ["x"]}  # the merged state is visible


async def test_merge_same_key_last_writer_wins_by_default(make_store: MakeStore) -> None:
    store = await make_store()
    one, two, sid = await _two_copies(store)
    one["a"] = 1
    two["a"] = 2
    await store.save(one)
    await store.save(two)
    assert (await store.get(sid))["a"] == 2


async def test_merge_same_key_can_raise(make_store: MakeStore) -> None:
    store = await make_store(key_conflict="raise")
    one, two, sid = await _two_copies(store)
    one["a"] = 1
    two["a"] = 2
    await store.save(one)
    with pytest.raises(SessionConflictError, match="'a'"):
        await store.save(two)
    assert (await store.get(sid))["a"] == 1


async def test_merge_of_a_deleted_key(make_store: MakeStore) -> None:
    store = await make_store()
    one, two, sid = await _two_copies(store)
    del one["a"]
    two["b"] = 5
    await store.save(one)
    await store.save(two)
    assert await store.get(sid) == {"b": 5}


async def test_strict_mode_raises_on_any_conflict(make_store: MakeStore) -> None:
    store = await make_store(concurrency="strict")
    one, two, sid = await _two_copies(store)
    one["a"] = 1
    two["b"] = 2
    await store.save(one)
    with pytest.raises(SessionConflictError):
        await store.save(two)
    assert await store.get(sid) == {"a": 1, "b": 0}


async def test_overwrite_mode_is_last_writer_wins_for_the_whole_session(
        make_store: MakeStore) -> None:
    store = await make_store(concurrency="overwrite")
    one, two, sid = await _two_copies(store)
    one["a"] = 1
    two["b"] = 2
    await store.save(one)
    await store.save(two)
    assert await store.get(sid) == {"a": 0, "b": 2}  # one's change is lost, by choice


async def test_nested_mutation_is_saved_and_merged(make_store: MakeStore) -> None:
    store = await make_store()
    s = store.new()
    s["cart"] = ["apple"]
    s["wish"] = []
    await store.save(s)
    one = await store.get(s.id)
    two = await store.get(s.id)
    one["cart"].append("pear")
    two["wish"].append("boat")
    assert one.modified
    await store.save(one)
    await store.save(two)
    assert await store.get(s.id) == {"cart": ["apple", "pear"], "wish": ["boat"]}
