"""``HasTests`` from cachelib 0.17.0's ``tests/has.py``; imports and annotations only."""

from __future__ import annotations

from .data import TestData


class HasTests(TestData):
    """Tests for the optional 'has' method specified by BaseCache"""

    def test_has(self) -> None:
        cache = self.cache_factory()
        assert cache.set_many(self.sample_pairs)
        for k in self.sample_pairs:
            assert cache.has(k)
        assert not cache.has("unknown")
