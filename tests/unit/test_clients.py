"""How the store builds its SDK clients: the async transport's environment handling."""

from __future__ import annotations

import pytest

from tablesessions._record import clients
from tablesessions.config import StoreConfig


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clients._endpoint_proxy.cache_clear()


def test_the_async_transport_reads_no_environment_per_request() -> None:
    """trust_env would cost two thread-pool hops per request (netrc, proxies)."""
    transport = clients.async_transport(StoreConfig())["transport"]
    assert transport._use_env_settings is False


def test_proxy_variables_still_apply_once_per_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    found = clients._env_proxy("https://acct.table.core.windows.net/sessions()?x=1")
    assert found is not None
    proxy, auth = found
    assert str(proxy) == "http://proxy.example:3128" and auth.login == "user"
    assert clients._env_proxy("http://127.0.0.1:10002/devstoreaccount1") is None  # no HTTP_PROXY

    monkeypatch.setenv("NO_PROXY", "acct.blob.core.windows.net")
    assert clients._env_proxy("https://acct.blob.core.windows.net/c/b") is None
    # Read once per endpoint: a later change of the variables is not seen.
    monkeypatch.delenv("HTTPS_PROXY")
    assert clients._env_proxy("https://acct.table.core.windows.net/other") == found


def test_the_sync_transport_reads_no_environment_per_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """trust_env would scan the environment and look for ~/.netrc on every request."""
    clients._requests_endpoint_proxies.cache_clear()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/corp.pem")
    transport = clients.sync_transport(StoreConfig())["transport"]
    assert transport._use_env_settings is False
    assert transport.connection_config.verify == "/etc/ssl/certs/corp.pem"  # read once
    explicit = clients.sync_transport(StoreConfig(client_options={"connection_verify": False}))
    assert explicit["transport"].connection_config.verify is False
    assert clients.sync_transport(StoreConfig(client_options={"transport": object()})) == {}

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "acct.blob.core.windows.net")
    assert clients._requests_env_proxies("https://acct.table.core.windows.net/t") == {
        "https": "http://proxy.example:3128"}
    assert clients._requests_env_proxies("https://acct.blob.core.windows.net/c") is None
