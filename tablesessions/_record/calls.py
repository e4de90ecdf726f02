"""How each storage effect maps onto an Azure SDK method call (sans-I/O).

Both faces look the call up here and only differ in ``f(...)`` versus
``await f(...)``; the sync and async SDK clients share method names and
arguments. Paged listings, downloads and leases differ in shape between the
SDK's sync and async APIs, so the faces handle those themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from .effects import (
    DeleteBatch,
    DeleteBlob,
    DeleteEntity,
    Effect,
    InsertEntity,
    PutBlob,
    ReadEntity,
    Row,
    UpdateEntity,
)


@dataclass(frozen=True, slots=True)
class Call:
    """``client.method(*args, **kwargs)`` on the table or the container client;
    ``finish`` turns the SDK's answer into the effect's result."""

    client: Literal["table", "container"]
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    finish: Callable[[Any], Any]
    #: the SDK error class name that means "already in the desired state"
    ok_if: str | None = None


class BlobSink:
    """A write-only stream that keeps the SDK's downloaded buffers as they are.

    An overflow read is one GET (``_clients.blob_kwargs``), which reaches
    ``readinto`` as the SDK's single ``bytes`` buffer: it is kept, with no copy
    and no preallocated, zero-filled buffer. A blob that arrives in several
    ranges (only one larger than any session the store writes) is joined once.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, chunk: bytes) -> int:
        self._parts.append(chunk)
        return len(chunk)

    def writable(self) -> bool:
        return True

    def result(self) -> bytes:
        parts = self._parts
        if len(parts) == 1 and type(parts[0]) is bytes:
            return parts[0]
        return b"".join(parts)


def _condition(etag: str | None) -> MatchConditions:
    return MatchConditions.IfNotModified if etag else MatchConditions.Unconditionally


def _etag(meta: Any) -> str:
    return str(meta["etag"])


def _row(entity: Any) -> Row:
    return Row(entity, entity.metadata["etag"])


def _none(_: Any) -> None:
    return None


def call_for(e: Effect) -> Call | None:
    """The SDK call that performs ``e``, or None when the face handles it itself."""
    if isinstance(e, ReadEntity):
        return Call("table", "get_entity", (e.partition_key, e.row_key),
                    {"select": list(e.select) if e.select else None}, _row,
                    ok_if="ResourceNotFoundError")
    if isinstance(e, InsertEntity):
        return Call("table", "create_entity", (dict(e.entity),), {}, _etag)
    if isinstance(e, UpdateEntity):
        return Call("table", "update_entity", (dict(e.entity),),
                    {"mode": UpdateMode.REPLACE if e.replace else UpdateMode.MERGE,
                     "etag": e.etag, "match_condition": _condition(e.etag)}, _etag)
    if isinstance(e, DeleteEntity):
        return Call("table", "delete_entity", (e.partition_key, e.row_key),
                    {"etag": e.etag, "match_condition": _condition(e.etag)}, _none)
    if isinstance(e, DeleteBatch):
        ops = [("delete", {"PartitionKey": pk, "RowKey": rk},
                {"etag": etag, "match_condition": MatchConditions.IfNotModified})
               for pk, rk, etag in e.deletes]
        return Call("table", "submit_transaction", (ops,), {}, _none)
    if isinstance(e, PutBlob):
        return Call("container", "upload_blob", (e.name, e.data), {"overwrite": False}, _none)
    if isinstance(e, DeleteBlob):
        return Call("container", "delete_blob", (e.name,), {}, _none,
                    ok_if="ResourceNotFoundError")
    return None
