"""The pure rules: expiry, refresh throttle, size budget, change tracking, merge."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from tablesessions import SessionConflictError, SessionTooLargeError, StoreConfig
from tablesessions._record.payload import encode_key
from tablesessions._record.rules import COL_EXPIRES
from tablesessions._sessions.ids import new_session_id
from tablesessions._sessions.rules import COL_ABSOLUTE, Rules, changed_in_place
from tablesessions.models import PENDING, _Stored

from ..conftest import FakeClock


def rules(clock: FakeClock, **options: object) -> Rules:
    return Rules(StoreConfig(clock=clock, **options))  # type: ignore[arg-type]


def loaded(r: Rules, data: dict[str, object]) -> tuple[Rules, object]:
    s = r.new_session(new_session_id())
    s._data.update(data)
    entries = r.encode_all(s)
    r.mark_saved(s, "etag", entries, None, s.expires_at)
    return r, s


def test_both_deadlines_are_checked() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    later = now + dt.timedelta(minutes=1)
    assert Rules.is_live({COL_EXPIRES: later, COL_ABSOLUTE: later}, now)
    assert not Rules.is_live({COL_EXPIRES: now, COL_ABSOLUTE: later}, now)
    assert not Rules.is_live({COL_EXPIRES: later, COL_ABSOLUTE: now}, now)
    assert not Rules.is_live({}, now)


def test_new_sessions_expire_at_the_earlier_deadline(clock: FakeClock) -> None:
    # Equal timeouts: an idle timeout longer than the absolute one is refused (issue 17).
    r = rules(clock, idle_timeout=dt.timedelta(hours=1), absolute_timeout=dt.timedelta(hours=1))
    s = r.new_session(new_session_id())
    assert s.expires_at == s.absolute_expires_at == clock.now + dt.timedelta(hours=1)


def test_refresh_is_throttled_by_the_threshold(clock: FakeClock) -> None:
    r = rules(clock, idle_timeout=dt.timedelta(minutes=20), refresh_threshold=0.5)
    s = r.new_session(new_session_id())
    r.mark_saved(s, "e", {}, None, s.expires_at)
    clock.advance(dt.timedelta(minutes=9))
    assert not r.due_for_refresh(s, clock.now)
    clock.advance(dt.timedelta(minutes=2))  # 9 min left < 10 min threshold
    assert r.due_for_refresh(s, clock.now)


def test_refresh_never_passes_the_absolute_deadline(clock: FakeClock) -> None:
    r = rules(clock, idle_timeout=dt.timedelta(minutes=20),
              absolute_timeout=dt.timedelta(minutes=30))
    s = r.new_session(new_session_id())
    r.mark_saved(s, "e", {}, None, s.expires_at)
    clock.advance(dt.timedelta(minutes=15))
    assert r.next_expiry(s, clock.now) == s.absolute_expires_at
    s._stored.expires_at = s.absolute_expires_at  # type: ignore[union-attr]
    assert not r.due_for_refresh(s, clock.now)  # nothing to gain: no write


def test_oversized_payload_is_refused_before_any_write(clock: FakeClock) -> None:
    r = rules(clock, max_session_bytes=10_000)
    with pytest.raises(SessionTooLargeError) as info:
        r.pack({"k": encode_key("k", os.urandom(20_000))}, "rk")
    assert info.value.limit == 10_000 and info.value.size > 20_000
    assert "10,000" in str(info.value)


def test_overflow_decision_uses_the_inline_budget(clock: FakeClock) -> None:
    r = rules(clock, inline_budget=1000)
    assert not r.overflows(b"x" * 1000)
    assert r.overflows(b"x" * 1001)


def test_nested_in_place_changes_are_detected(clock: FakeClock) -> None:
    _, s = loaded(rules(clock), {"cart": [1], "name": "a", "meta": {"n": 1}})
    assert changed_in_place(s) == set()  # type: ignore[arg-type]
    s["cart"].append(2)  # type: ignore[index]
    s["meta"]["n"] = 2  # type: ignore[index]
    assert changed_in_place(s) == {"cart", "meta"}  # type: ignore[arg-type]
    assert s.modified  # type: ignore[attr-defined]


def test_setting_an_equal_value_is_not_a_change(clock: FakeClock) -> None:
    r, s = loaded(rules(clock), {"a": 1})
    s["a"] = 1  # type: ignore[index]
    assert r.changed_keys(s, r.encode_all(s)) == set()  # type: ignore[arg-type]
    del s["a"]  # type: ignore[attr-defined]
    assert r.changed_keys(s, r.encode_all(s)) == {"a"}  # type: ignore[arg-type]


def enc(**values: object) -> dict[str, object]:
    return {k: encode_key(k, v) for k, v in values.items()}


def test_merge_reapplies_only_our_changed_keys() -> None:
    base = enc(a=1, b=1, c=1)
    fresh = enc(a=1, b=2, c=1, d=9)          # another request changed b, added d
    ours = enc(a=5, b=1)                      # we changed a and deleted c
    merged = Rules.merge(fresh, base, ours, {"a", "c"}, "raise")  # type: ignore[arg-type]
    assert set(merged) == {"a", "b", "d"}
    assert merged["a"] == encode_key("a", 5) and merged["b"] == encode_key("b", 2)


def test_merge_key_conflict_policy() -> None:
    base = enc(a=1)
    fresh, ours = enc(a=2), enc(a=3)
    merged = Rules.merge(fresh, base, ours, {"a"}, "last_writer_wins")  # type: ignore[arg-type]
    assert merged["a"] == encode_key("a", 3)
    with pytest.raises(SessionConflictError, match="'a'"):
        Rules.merge(fresh, base, ours, {"a"}, "raise")  # type: ignore[arg-type]
    # Both writers setting the same value is not a conflict.
    Rules.merge(enc(a=3), base, ours, {"a"}, "raise")  # type: ignore[arg-type]


def test_stored_state_is_a_private_detail() -> None:
    assert "etag" in _Stored.__dataclass_fields__


def test_clock_must_be_aware() -> None:
    r = Rules(StoreConfig(clock=lambda: dt.datetime(2030, 1, 1)))
    with pytest.raises(ValueError, match="timezone-aware"):
        r.now()


def test_loaded_values_decode_lazily_and_untouched_keys_reuse_their_encoding(
        clock: FakeClock) -> None:
    r = rules(clock)
    s = r.new_session(new_session_id())
    s.update({"big": list(range(1000)), "name": "a", "cart": [1]})
    entries = r.encode_all(s)
    loaded = r.session_from(s.id, {"ExpiresAt": s.expires_at, "AbsoluteExpiresAt":
                                   s.absolute_expires_at, "CreatedAt": s.created_at},
                            "etag", entries)
    assert loaded._data["big"] is PENDING  # nothing decoded yet
    assert "big" in loaded  # membership does not decode either
    assert loaded._data["big"] is PENDING
    assert loaded["name"] == "a"
    again = r.encode_all(loaded)
    assert again["big"] is entries["big"]  # reused, never re-encoded
    assert again["name"] is entries["name"]  # a scalar that was only read
    loaded["cart"].append(2)  # a container handed out is re-encoded
    assert r.changed_keys(loaded, r.encode_all(loaded)) == {"cart"}
    assert dict(loaded) == {"big": list(range(1000)), "name": "a", "cart": [1, 2]}
