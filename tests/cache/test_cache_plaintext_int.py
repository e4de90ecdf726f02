"""An encrypting ``TableCache`` refuses a clear ``IntValue`` counter as it refuses a
plaintext payload (planted by someone who can write the table, or written before
encryption was turned on); with ``accept_plaintext=True`` it is read."""

from __future__ import annotations

import logging

import pytest

from tablesessions.encryption import KeyRing

from .conftest import MakeCache

RING = KeyRing.from_secrets("plaintext-int-test", context="cache-test")


async def test_a_clear_counter_is_a_logged_miss_where_encryption_is_required(
        make_cache: MakeCache, caplog: pytest.LogCaptureFixture) -> None:
    clear = await make_cache()                       # no ring: a native IntValue column
    await clear.set("hits", 41, ttl=None)
    sealed = await make_cache(key_ring=RING)
    with caplog.at_level(logging.WARNING, logger="tablesessions.security"):
        assert await sealed.get("hits", "miss") == "miss"
        assert await sealed.get_many(["hits"]) == {}
        with pytest.raises(ValueError, match="no readable cache entry"):
            await sealed.incr("hits")
    assert [r.name for r in caplog.records].count("tablesessions.security") == 3
    assert await clear.get("hits") == 41             # unchanged: nothing was rewritten
    lenient = await make_cache(key_ring=RING, accept_plaintext=True)
    assert await lenient.get("hits") == 41
    assert await lenient.incr("hits") == 42          # and rewritten sealed
    assert await sealed.get("hits") == 42
