"""What a cache wrote, read with the bare SDK: what someone with read access to the
storage account sees (for the encryption-at-rest tests of the framework backends)."""

from __future__ import annotations

from typing import Any

from azure.data.tables import TableClient


def raw_entities(connection_string: str, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, as the bare SDK returns it."""
    with TableClient.from_connection_string(connection_string, table) as client:
        return [dict(e) for e in client.list_entities()]


def stored_text(entities: list[dict[str, Any]]) -> bytes:
    """Every str, bytes and int property value of ``entities``, joined by NULs."""
    out = bytearray()
    for entity in entities:
        for value in entity.values():
            value = getattr(value, "value", value)  # EntityProperty (Int64, binary)
            if isinstance(value, str):
                out += value.encode() + b"\0"
            elif isinstance(value, (bytes, bytearray)):
                out += bytes(value) + b"\0"
            elif isinstance(value, int) and not isinstance(value, bool):
                out += str(value).encode() + b"\0"
    return bytes(out)
