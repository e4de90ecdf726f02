"""docs/configuration.md cannot drift from ``StoreConfig``: every field has a row
whose default is the real one, and every environment variable is listed."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tablesessions import RetryPolicy, config
from tablesessions.config import UNSET, StoreConfig, utc_now

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
ROW = re.compile(r"^\| `(?P<name>\w+)` \| `(?P<default>[^`]*)` \|", re.MULTILINE)
# init=False fields (key_ring_given...) are derived, not options.
FIELDS = {f.name: f for f in dataclasses.fields(StoreConfig) if f.init}


def documented_defaults() -> dict[str, str]:
    return {m["name"]: m["default"] for m in ROW.finditer(PAGE.read_text(encoding="utf-8"))
            if m["name"] in FIELDS}


def real_default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    assert field.default_factory is not dataclasses.MISSING, field.name
    return field.default_factory()


def test_every_option_has_a_row() -> None:
    assert sorted(documented_defaults()) == sorted(FIELDS)


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
