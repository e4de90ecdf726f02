"""``ClearTests`` from cachelib 0.17.0's ``tests/clear.py``; imports and annotations only."""

from __future__ import annotations

from .data import TestData


class ClearTests(TestData):
    """Tests for the optional 'clear' method specified by BaseCache"""

    def test_clear(self) -> None:
        cache = self.cache_factory()
        assert cache.set_many(self.sample_pairs)
        assert cache.clear()
        assert not any(cache.get_many(*self.sample_pairs))
