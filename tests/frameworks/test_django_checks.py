"""``manage.py check`` validates ``settings.TABLESESSIONS`` with no storage call."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from .django_setup import configure

if not settings.configured:
    configure()

from django.core import checks
from django.test import override_settings

import tablesessions.django
from tablesessions.django import check_settings, get_store

CONN = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test: the checks must make none."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a system check tried to connect")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in [n for n in os.environ if n.startswith("TABLESESSIONS_")]:
        monkeypatch.delenv(name)


def run(configured: Any) -> list[tuple[str, str, str | None]]:
    with override_settings(TABLESESSIONS=configured):
        messages = check_settings()
        assert tablesessions.django._store is None  # nothing was built
    return [(m.id or "", m.msg, m.hint) for m in messages]


def ids(configured: Any) -> list[str]:
    return [i for i, _, _ in run(configured)]


def test_a_valid_configuration_passes() -> None:
    assert run({"CONNECTION_STRING": CONN, "TABLE_NAME": "sessions",
                "IDLE_TIMEOUT_SECONDS": 1200, "ABSOLUTE_TIMEOUT_SECONDS": dt.timedelta(hours=8),
                "OPTIONS": {"on_storage_error": "empty"}}) == []


def test_an_unknown_key_is_named_as_the_user_wrote_it() -> None:
    [(check_id, message, hint)] = run({"CONNECTION_STRING": CONN, "TABEL_NAME": "sessions"})
    assert check_id == "tablesessions.E002"
    assert message == "TABLESESSIONS has the unknown key 'TABEL_NAME'"
    assert "TABLESESSIONS_" not in message
    assert hint is not None
    assert hint.startswith("Did you mean 'TABLE_NAME'?")


@pytest.mark.parametrize("configured", ["DefaultEndpointsProtocol=http;...", ["x"], 5])
def test_tablesessions_must_be_a_dict(configured: Any) -> None:
    [(check_id, message, _)] = run(configured)
    assert check_id == "tablesessions.E001"
    assert message == f"TABLESESSIONS must be a dict, not {type(configured).__name__}"


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("IDLE_TIMEOUT_SECONDS", "20m", "TABLESESSIONS['IDLE_TIMEOUT_SECONDS'] must be a number"),
    ("ABSOLUTE_TIMEOUT_SECONDS", True, "TABLESESSIONS['ABSOLUTE_TIMEOUT_SECONDS'] must be a"),
    ("TABLE_NAME", 5, "TABLESESSIONS['TABLE_NAME'] must be a string, not int"),
    ("OPTIONS", "on_storage_error=empty", "TABLESESSIONS['OPTIONS'] must be a dict"),
])
def test_wrong_value_types_name_the_setting(key: str, value: Any, expected: str) -> None:
    [(check_id, message, _)] = run({"CONNECTION_STRING": CONN, key: value})
    assert check_id == "tablesessions.E003"
    assert message.startswith(expected), message


@pytest.mark.parametrize(("configured", "fragment"), [
    ({"TABLE_NAME": "a"}, "table_name 'a'"),
    ({"IDLE_TIMEOUT_SECONDS": -5}, "must be positive"),
    ({"OPTIONS": {"on_storage_error": "ignore"}}, "on_storage_error must be raise or empty"),
])
def test_bad_values_are_reported(configured: dict[str, Any], fragment: str) -> None:
    [(check_id, message, _)] = run({"CONNECTION_STRING": CONN, **configured})
    assert check_id == "tablesessions.E004"
    assert fragment in message


def test_an_unknown_option_is_named() -> None:
    [(check_id, message, hint)] = run({"CONNECTION_STRING": CONN,
                                       "OPTIONS": {"on_storage_eror": "empty"}})
    assert check_id == "tablesessions.E002"
    assert "'on_storage_eror'" in message
    assert hint is not None
    assert "'on_storage_error'" in hint


@pytest.mark.parametrize("configured", [None, {}, {"TABLE_NAME": "sessions"}])
def test_no_connection_is_reported(configured: Any) -> None:
    [(check_id, message, hint)] = run(configured)
    assert check_id == "tablesessions.E005"
    assert message == "no storage connection is configured"
    assert hint is not None
    assert "TABLESESSIONS_CONNECTION_STRING" in hint


def test_one_endpoint_alone_is_reported() -> None:
    assert ids({"TABLE_ENDPOINT": "https://a.table.core.windows.net"}) == ["tablesessions.E005"]


def test_a_connection_from_the_environment_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLESESSIONS_CONNECTION_STRING", CONN)
    assert run({"TABLE_NAME": "sessions"}) == []
    monkeypatch.setenv("TABLESESSIONS_IDLE_TIMEOUT_SECONDS", "abc")
    [(check_id, _, _)] = run({"TABLE_NAME": "sessions"})
    assert check_id == "tablesessions.E004"  # the environment is checked too


def test_the_check_is_registered_and_runs_with_manage_py_check() -> None:
    with override_settings(TABLESESSIONS={"TABEL_NAME": "x"}):
        messages = checks.run_checks(tags=["tablesessions"])
    assert [m.id for m in messages] == ["tablesessions.E002", "tablesessions.E005"]
    assert all(isinstance(m, checks.Error) for m in messages)


def test_get_store_raises_the_same_message() -> None:
    with override_settings(TABLESESSIONS={"CONNECTION_STRING": CONN, "TABEL_NAME": "x"}), \
            pytest.raises(ValueError, match=r"^TABLESESSIONS has the unknown key 'TABEL_NAME'$"):
        get_store()


def test_manage_py_check_in_a_project(tmp_path: Path) -> None:
    """The real command, in a fresh process: the app config makes ``check`` see it."""
    (tmp_path / "proj_settings.py").write_text(textwrap.dedent("""
        SECRET_KEY = "x"
        INSTALLED_APPS = ["django.contrib.sessions", "tablesessions.django.TableSessionsConfig"]
        SESSION_ENGINE = "tablesessions.django"
        TABLESESSIONS = {"TABEL_NAME": "sessions"}
        DATABASES = {}
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLESESSIONS_")}
    env.update(DJANGO_SETTINGS_MODULE="proj_settings",
               PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    done = subprocess.run([sys.executable, "-m", "django", "check"], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert "tablesessions.E002" in done.stderr
    assert "TABLESESSIONS has the unknown key 'TABEL_NAME'" in done.stderr
    assert "tablesessions.E005" in done.stderr
