"""docs/configuration.md cannot drift from ``StoreConfig`` and ``CacheConfig``:
every field has a row (in its section) whose default is the real one, and every
environment variable is listed."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tablesessions import RetryPolicy, config
from tablesessions.config import UNSET, CacheConfig, RecordConfig, StoreConfig, utc_now

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `(?P<name>\w+)` \| `(?P<default>[^`]*)` \|", re.MULTILINE)
# init=False fields (key_ring_given...) are derived, not options.
FIELDS = {f.name: f for f in dataclasses.fields(StoreConfig) if f.init}
#: The cache section lists the cache's own fields and the ones whose default differs.
_SHARED = {f.name: f for f in dataclasses.fields(RecordConfig) if f.init}
CACHE_FIELDS = {f.name: f for f in dataclasses.fields(CacheConfig) if f.init
                if f.name not in _SHARED or f.name in ("table_name", "container_name",
                                                       "app_name")}


def section(title: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def documented_defaults(title: str = "Store options",
                        fields: dict[str, Any] = FIELDS) -> dict[str, str]:
    return {m["name"]: m["default"] for m in ROW.finditer(section(title))
            if m["name"] in fields}


def real_default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    assert field.default_factory is not dataclasses.MISSING, field.name
    return field.default_factory()


def test_every_option_has_a_row() -> None:
    assert sorted(documented_defaults()) == sorted(FIELDS)


def test_every_cache_option_has_a_row_with_its_real_default() -> None:
    documented = documented_defaults("Cache options", CACHE_FIELDS)
    assert sorted(documented) == sorted(CACHE_FIELDS)
    namespace = {"timedelta": timedelta}
    for name, text in documented.items():
        assert eval(text, namespace) == real_default(CACHE_FIELDS[name]), name


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_documented_default_is_the_real_one(name: str) -> None:
    text = documented_defaults()[name]
    # The page shows each default as a Python expression; evaluate it.
    namespace = {"timedelta": timedelta, "RetryPolicy": RetryPolicy, "utc_now": utc_now,
                 "UNSET": UNSET}
    assert eval(text, namespace) == real_default(FIELDS[name]), text


def test_every_environment_variable_is_listed() -> None:
    text = PAGE.read_text(encoding="utf-8")
    names = [value for key, value in vars(config).items()
             if key.startswith("ENV_") and isinstance(value, str)]
    assert len(names) >= 9
    for name in names:
        assert f"`{name}`" in text, name
