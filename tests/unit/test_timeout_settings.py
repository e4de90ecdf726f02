"""Timeouts accept a timedelta, seconds as numbers, and numeric strings; anything else
is refused with an error naming the setting, and inconsistent timeouts are refused
(issue 17)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import tablesessions
import tablesessions.aio
from tablesessions import StoreConfig
from tablesessions.config import (
    ENV_ABSOLUTE_TIMEOUT,
    ENV_IDLE_TIMEOUT,
    settings_from_env,
    timeout_setting,
)

CONN = "UseDevelopmentStorage=true"


@pytest.mark.parametrize(("value", "seconds"), [
    (dt.timedelta(minutes=20), 1200), (1200, 1200), (1.5, 1.5), ("1200", 1200),
    (" 90.5 ", 90.5), ("1e3", 1000),
])
def test_accepted_forms(value: Any, seconds: float) -> None:
    assert timeout_setting(value, "idle_timeout") == dt.timedelta(seconds=seconds)
    config = StoreConfig(idle_timeout=value)
    assert config.idle_timeout == dt.timedelta(seconds=seconds)


def test_none_means_the_callers_default() -> None:
    assert timeout_setting(None, "absolute_timeout") is None


@pytest.mark.parametrize(("value", "error"), [
    ("20m", ValueError), ("", ValueError), ("nan", ValueError), ("inf", ValueError),
    (0, ValueError), (-5, ValueError), (dt.timedelta(0), ValueError),
    (True, TypeError), ([1200], TypeError), (b"1200", TypeError), (object(), TypeError),
])
def test_rejected_forms_name_the_setting(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="idle_timeout"):
        StoreConfig(idle_timeout=value)


@pytest.mark.parametrize("face", [tablesessions.SessionStore, tablesessions.aio.SessionStore])
def test_constructors_take_seconds(face: Any) -> None:
    store = face.from_connection_string(CONN, idle_timeout=1200, absolute_timeout="3600")
    assert store.config.idle_timeout == dt.timedelta(minutes=20)
    assert store.config.absolute_timeout == dt.timedelta(hours=1)
    with pytest.raises(TypeError, match="absolute_timeout"):
        face.from_connection_string(CONN, absolute_timeout=[1])


def test_an_idle_timeout_longer_than_the_absolute_one_is_refused() -> None:
    with pytest.raises(ValueError, match=r"idle_timeout .* longer than absolute_timeout"):
        StoreConfig(idle_timeout=dt.timedelta(hours=13))  # default absolute: 12 h
    with pytest.raises(ValueError, match="longer than absolute_timeout"):
        tablesessions.SessionStore.from_connection_string(CONN, idle_timeout=600,
                                                          absolute_timeout=300)
    five_minutes: Any = 300  # StoreConfig's fields are typed as what they hold: timedelta
    config = StoreConfig(idle_timeout=five_minutes, absolute_timeout=five_minutes)
    assert config.idle_timeout == config.absolute_timeout == dt.timedelta(minutes=5)


def test_environment_variables_are_parsed_and_named_in_errors() -> None:
    assert settings_from_env({ENV_IDLE_TIMEOUT: "60", ENV_ABSOLUTE_TIMEOUT: "7200.0"}) == {
        "idle_timeout": dt.timedelta(minutes=1), "absolute_timeout": dt.timedelta(hours=2)}
    with pytest.raises(ValueError, match=ENV_IDLE_TIMEOUT) as info:
        settings_from_env({ENV_IDLE_TIMEOUT: "20m"})
    assert "'20m'" in str(info.value)
    with pytest.raises(ValueError, match=ENV_ABSOLUTE_TIMEOUT):
        tablesessions.SessionStore.from_env({"TABLESESSIONS_CONNECTION_STRING": CONN,
                                             ENV_ABSOLUTE_TIMEOUT: "-1"})
