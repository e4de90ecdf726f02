"""``CommonTests`` from cachelib 0.17.0's ``tests/common.py`` (pallets-eco/cachelib).

Names and assertions are upstream's. Changes: imports, type annotations, and
``test_expiration``'s uwsgi skip dropped (this backend is not uwsgi).
"""

from __future__ import annotations

from datetime import timedelta
from time import sleep

from .data import TestData


class CommonTests(TestData):
    """A base set of tests to be run for all cache types"""

    def test_set_get(self) -> None:
        cache = self.cache_factory()
        for k, v in self.sample_pairs.items():
            assert cache.set(k, v)
            assert cache.get(k) == v

    def test_set_get_many(self) -> None:
        cache = self.cache_factory()
        result = cache.set_many(self.sample_pairs)
        assert result == list(self.sample_pairs.keys())
        values = cache.get_many(*self.sample_pairs)
        assert values == list(self.sample_pairs.values())

    def test_get_dict(self) -> None:
        cache = self.cache_factory()
        cache.set_many(self.sample_pairs)
        d = cache.get_dict(*self.sample_pairs)
        assert d == self.sample_pairs

    def test_delete(self) -> None:
        cache = self.cache_factory()
        for k, v in self.sample_pairs.items():
            cache.set(k, v)
            assert cache.delete(k)
            assert not cache.get(k)

    def test_delete_many(self) -> None:
        cache = self.cache_factory()
        cache.set_many(self.sample_pairs)
        result = cache.delete_many(*self.sample_pairs)
        assert result == list(self.sample_pairs.keys())
        assert not any(cache.get_many(*self.sample_pairs))

    def test_delete_many_ignore_errors(self) -> None:
        cache = self.cache_factory()
        cache.set("bacon", "spam")
        cache.delete_many("eggs", "bacon")
        assert cache.get("bacon") is None

    def test_delete_many_raise_errors_nonexistent_key(self) -> None:
        cache = self.cache_factory(ignore_delete_many_errors=False)
        cache.set("bacon", "spam")
        # nonexistent keys are considered deleted and must not raise
        result = cache.delete_many("eggs", "bacon")
        assert result == ["eggs", "bacon"]
        assert cache.get("bacon") is None

    def test_add(self) -> None:
        cache = self.cache_factory()
        cache.set_many(self.sample_pairs)
        for k in self.sample_pairs:
            assert not cache.add(k, "updated")
        assert cache.get_many(*self.sample_pairs) == list(self.sample_pairs.values())
        for k, v in self.sample_pairs.items():
            assert cache.add(f"{k}-new", v)
            assert cache.get(f"{k}-new") == v

    def test_inc_dec(self) -> None:
        cache = self.cache_factory()
        for n in self.sample_numbers:
            assert not cache.get(f"{n}-key-inc")
            assert cache.inc(f"{n}-key-inc", n) == n
            assert cache.get(f"{n}-key-inc") == n
            assert cache.dec(f"{n}-key-dec", n) == -n
            assert cache.get(f"{n}-key-dec") == -n
            assert cache.dec(f"{n}-key-inc", 5) == n - 5

    def test_inc_dec_after_set(self) -> None:
        cache = self.cache_factory()
        assert cache.set("count", 10)
        assert cache.inc("count", 5) == 15
        assert cache.dec("count", 3) == 12
        assert cache.get("count") == 12

    def test_bool_roundtrip(self) -> None:
        cache = self.cache_factory()
        assert cache.set("true-key", True)
        assert cache.get("true-key") is True
        assert cache.set("false-key", False)
        assert cache.get("false-key") is False

    def test_expiration(self) -> None:
        cache = self.cache_factory()
        for k, v in self.sample_pairs.items():
            cache.set(f"{k}-t0", v, timeout=0)
            cache.set(f"{k}-t1", v, timeout=1)
            # timedeltas are equivalent to the same amount of seconds
            cache.set(f"{k}-td0", v, timeout=timedelta())
            cache.set(f"{k}-td1", v, timeout=timedelta(seconds=1))
        sleep(4)
        for k, v in self.sample_pairs.items():
            assert cache.get(f"{k}-t0") == v
            assert not cache.get(f"{k}-t1")
            assert cache.get(f"{k}-td0") == v
            assert not cache.get(f"{k}-td1")
