"""A caller's own transport wins over ``_record.clients.sync_transport``; how the
default transport reads the environment is tested in test_clients.py."""

from __future__ import annotations

from tablesessions import StoreConfig
from tablesessions._record.clients import sync_transport


def test_a_callers_own_transport_is_left_alone() -> None:
    assert sync_transport(StoreConfig(client_options={"transport": object()})) == {}
