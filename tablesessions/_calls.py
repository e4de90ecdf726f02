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

from ._effects import (
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


class FixedBuffer:
    """A write-only stream into one preallocated buffer of the blob's known size.

    ``download_blob().readall()`` assembles the blob through intermediate
    buffers (~2 extra copies for a 64 MiB session); the pointer tells us the
    size, so both faces stream straight into this instead.
    """

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        self._view = memoryview(self.data)
        self._pos = 0

    def write(self, chunk: bytes) -> int:
        end = self._pos + len(chunk)
        if end > len(self.data):  # more than the pointer said: keep it, the digest check fails
            self.data.extend(bytes(end - len(self.data)))
            self._view = memoryview(self.data)
        self._view[self._pos:end] = chunk
        self._pos = end
        return len(chunk)

    def result(self) -> bytearray:
        self._view.release()
        return self.data if self._pos == len(self.data) else self.data[: self._pos]

    def writable(self) -> bool:
        return True


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
