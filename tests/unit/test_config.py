from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import tablesessions
from tablesessions import StoreConfig
from tablesessions._base import make_config
from tablesessions.config import settings_from_env


@pytest.mark.parametrize(
    "options",
    [
        {"table_name": "1bad"}, {"table_name": "ab"}, {"table_name": "has-dash"},
        {"container_name": "Upper"}, {"container_name": "a--b"}, {"app_name": "bad/app"},
        {"app_name": "x#"}, {"app_name": ""}, {"idle_timeout": dt.timedelta(0)},
        {"refresh_threshold": 1.5}, {"inline_budget": 800_000}, {"max_session_bytes": 0},
        {"concurrency": "yolo"}, {"key_conflict": "first"}, {"on_storage_error": "ignore"},
        {"read_timeout": 0}, {"compression_level": 10}, {"max_merge_attempts": 0},
    ],
)
def test_bad_options_raise_value_error(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        StoreConfig(**options)


def test_unknown_option_is_named() -> None:
    with pytest.raises(TypeError, match="idle_timout"):
        make_config("sessions", "sessions-overflow", "default", dt.timedelta(minutes=1),
                    dt.timedelta(hours=1), {"idle_timout": 5})


def test_from_connection_string_rejects_unknown_options_before_connecting() -> None:
    with pytest.raises(TypeError, match="colour"):
        tablesessions.SessionStore.from_connection_string("UseDevelopmentStorage=true",
                                                          colour="blue")


def test_env_settings_use_the_documented_names() -> None:
    env = {"TABLESESSIONS_TABLE_NAME": "t1abc", "TABLESESSIONS_CONTAINER_NAME": "c-1",
           "TABLESESSIONS_APP_NAME": "shop", "TABLESESSIONS_IDLE_TIMEOUT_SECONDS": "60",
           "UNRELATED": "x"}
    assert settings_from_env(env) == {"table_name": "t1abc", "container_name": "c-1",
                                      "app_name": "shop", "idle_timeout": dt.timedelta(minutes=1)}


def test_from_env_without_a_source_explains_what_to_set() -> None:
    with pytest.raises(ValueError, match="TABLESESSIONS_CONNECTION_STRING"):
        tablesessions.SessionStore.from_env({})


def test_token_credential_constructor_uses_the_given_credential() -> None:
    class Cred:
        def get_token(self, *scopes: str, **kw: Any) -> Any:
            raise AssertionError("not called: no request is made")

    store = tablesessions.SessionStore("https://acct.table.core.windows.net",
                                       "https://acct.blob.core.windows.net", credential=Cred())
    assert store._table.url.startswith("https://acct.table.core.windows.net")
    assert store._owned_credential is None  # the caller's credential is the caller's to close
    store.close()


def test_default_credential_is_default_azure_credential() -> None:
    store = tablesessions.SessionStore.from_account("acct")
    from azure.identity import DefaultAzureCredential

    assert isinstance(store._owned_credential, DefaultAzureCredential)
    store.close()
