"""``TestData`` from cachelib 0.17.0's ``tests/conftest.py`` (pallets-eco/cachelib, BSD-3-Clause),
unchanged but for the ``cache_factory`` annotation that mypy needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class TestData:
    """This class centralizes all data samples used in tests"""

    cache_factory: Callable[..., Any]  # set on the class by the cache_factory fixture

    sample_numbers = [0, 10, 1024000, 9, 5000000000000, 99, 738, 2000000]
    sample_pairs: dict[Any, Any] = {
        "128": False,
        "beef": True,
        "crevettes": {},
        "1024": "spam",
        "bacon": "eggs",
        "sausage": 2048,
        "3072": [],
        "brandy": [{}, "fried eggs"],
        "lobster": ["baked beans", [512]],
        "4096": {"sauce": [], 256: "truffle"},
    }
