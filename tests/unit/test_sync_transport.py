"""The sync clients' transport resolves requests' environment settings once per
endpoint (``_record.clients.sync_transport``), with requests' own answers."""

from __future__ import annotations

import pytest
import requests

from tablesessions import StoreConfig
from tablesessions._record.clients import sync_transport


def _session() -> requests.Session:
    transport = sync_transport(StoreConfig())["transport"]
    transport.open()
    session: requests.Session = transport.session
    return session


def test_proxies_come_from_the_environment_as_requests_says(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "bypassed.example")
    session = _session()
    plain = requests.Session()
    for url in ("https://acct.table.core.windows.net/t", "https://bypassed.example/t"):
        ours = session.merge_environment_settings(url, {}, False, True, None)
        theirs = plain.merge_environment_settings(url, {}, False, True, None)
        assert ours == theirs
    assert session.merge_environment_settings(
        "https://acct.table.core.windows.net/x", {}, False, True, None
    )["proxies"]["https"] == "http://proxy.example:3128"


def test_resolved_once_per_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    session = _session()
    calls = []
    real = requests.Session.merge_environment_settings

    def counting(self: requests.Session, *args: object) -> dict[str, object]:
        calls.append(args[0])
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(requests.Session, "merge_environment_settings", counting)
    for path in ("a", "b", "c"):
        settings = session.merge_environment_settings(
            f"https://acct.table.core.windows.net/{path}", {}, False, True, None)
        settings["proxies"]["https"] = "mutated"  # a caller's change is not kept
    session.merge_environment_settings("https://acct.blob.core.windows.net/a", {}, False,
                                       True, None)
    assert len(calls) == 2  # one per endpoint, not one per request
    assert "mutated" not in str(session.merge_environment_settings(
        "https://acct.table.core.windows.net/d", {}, False, True, None))


def test_a_callers_own_transport_is_left_alone() -> None:
    assert sync_transport(StoreConfig(client_options={"transport": object()})) == {}
