"""How each storage effect maps onto an Azure SDK method call (sans-I/O).

Both faces look the call up here and only differ in ``f(...)`` versus
``await f(...)``; the sync and async SDK clients share method names and
arguments. Paged listings, downloads and leases differ in shape between the
SDK's sync and async APIs, so the faces handle those themselves.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import EdmType, UpdateMode

from .effects import (
    DeleteBatch,
    DeleteBlob,
    DeleteEntity,
    Effect,
    InsertEntity,
    PutBlob,
    ReadBlob,
    ReadEntity,
    Row,
    Transaction,
    TxOp,
    UpdateEntity,
    UpsertEntity,
)
from .storage_errors import MISSING_STORAGE_CODES


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


def read_blob_result(e: ReadBlob, downloader: Any, sink: BlobSink) -> bytes:
    """The downloaded bytes of ``e``, once its ETag condition holds.

    Compared here rather than sent as If-Match: Azurite answers a conditional
    read of a deleted blob with 412, which would hide the 404 that tells a
    reader a concurrent save replaced the blob (re-read the row).

    :raises ResourceModifiedError: when ``e.etag`` is set and the blob read is
        not the one it names (written since).
    """
    if e.etag is not None and downloader.properties.etag != e.etag:
        raise ResourceModifiedError("the blob's ETag is not the one its pointer names")
    return sink.result()


def _put_blob(e: PutBlob) -> Call:
    # ``ContainerClient.upload_blob`` returns a BlobClient, not the response: the
    # new blob's ETag (what an overflow pointer binds the blob by, docs/overflow.md
    # "Integrity") comes from the response itself. One hook per attempt; a block
    # upload (over 64 MiB) answers its commit last, and that carries the ETag.
    seen: list[str] = []

    def hook(response: Any) -> None:
        etag = response.http_response.headers.get("ETag")
        if etag:
            seen.append(str(etag))

    return Call("container", "upload_blob", (e.name, e.data),
                {"overwrite": False, "raw_response_hook": hook},
                lambda _: seen[-1] if seen else None)


def _condition(etag: str | None) -> MatchConditions:
    return MatchConditions.IfNotModified if etag else MatchConditions.Unconditionally


def _etag(meta: Any) -> str:
    return str(meta["etag"])


def _row(entity: Any) -> Row:
    return Row(entity, entity.metadata["etag"])


def _none(_: Any) -> None:
    return None


def _deleted(responses: list[Any]) -> Callable[[Any], bool]:
    """``finish`` of a delete: the SDK returns None for 204 and for 404 alike, so
    the status comes from a per-call response hook."""

    def finish(_: Any) -> bool:
        if not responses:
            return False
        http = responses[-1]
        if http.status_code == 404 and http.headers.get("x-ms-error-code") \
                in MISSING_STORAGE_CODES:
            # The SDK swallowed "no such table" as "no such entity": say it.
            raise ResourceNotFoundError("the table does not exist", response=http)
        return bool(http.status_code < 300)

    return finish


def _response_hook(responses: list[Any]) -> Callable[[Any], None]:
    def hook(response: Any) -> None:
        responses.append(response.http_response)

    return hook


_UTC = dt.timezone.utc


def _wire(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The entity as handed to the SDK: a copy, with each UTC ``datetime`` already
    written as the service's ``Edm.DateTime`` text.

    The SDK would write the same text (``%Y-%m-%dT%H:%M:%S.%fZ``), but through an
    ``astimezone``, a ``strftime`` and a caught ``AttributeError`` per column (the
    SDK's serialization of a session row, this copy included: 41.2 -> 36.7 us).
    Datetimes the SDK itself returned (``TablesEntityDatetime``, kept in preserved
    columns) and any other zone are left to it.
    """
    out = dict(entity)
    for name, value in out.items():
        if type(value) is dt.datetime and value.tzinfo is _UTC:
            out[name] = (value.isoformat(timespec="microseconds")[:-6] + "Z", EdmType.DATETIME)
    return out


def _tx_op(op: TxOp) -> tuple[str, Any, dict[str, Any]]:
    if op.kind == "upsert":
        return ("upsert", _wire(op.entity), {"mode": UpdateMode.REPLACE})
    keys = {"PartitionKey": op.entity["PartitionKey"], "RowKey": op.entity["RowKey"]}
    return ("delete", keys, {"etag": op.etag, "match_condition": _condition(op.etag)})


def call_for(e: Effect) -> Call | None:
    """The SDK call that performs ``e``, or None when the face handles it itself."""
    if isinstance(e, ReadEntity):
        return Call("table", "get_entity", (e.partition_key, e.row_key),
                    {"select": list(e.select) if e.select else None}, _row,
                    ok_if="ResourceNotFoundError")
    if isinstance(e, InsertEntity):
        # Without "Prefer: return-no-content" the service answers an insert with
        # the whole entity echoed back (201), which the SDK parses and
        # deserializes only to drop it: a 64 KiB session's ~18 KB row comes back
        # down the wire. 204 carries the ETag, all a save keeps (docs/performance.md).
        return Call("table", "create_entity", (_wire(e.entity),),
                    {"response_preference": "return-no-content"}, _etag)
    if isinstance(e, UpdateEntity):
        return Call("table", "update_entity", (_wire(e.entity),),
                    {"mode": UpdateMode.REPLACE if e.replace else UpdateMode.MERGE,
                     "etag": e.etag, "match_condition": _condition(e.etag)}, _etag)
    if isinstance(e, UpsertEntity):
        return Call("table", "upsert_entity", (_wire(e.entity),), {"mode": UpdateMode.REPLACE},
                    _etag)
    if isinstance(e, DeleteEntity):
        responses: list[Any] = []
        return Call("table", "delete_entity", (e.partition_key, e.row_key),
                    {"etag": e.etag, "match_condition": _condition(e.etag),
                     "raw_response_hook": _response_hook(responses)}, _deleted(responses))
    if isinstance(e, Transaction):
        if not 1 <= len(e.ops) <= 100:
            raise ValueError(f"a transaction holds 1..100 operations, not {len(e.ops)}")
        return Call("table", "submit_transaction", ([_tx_op(op) for op in e.ops],), {}, _none)
    if isinstance(e, DeleteBatch):
        ops = [("delete", {"PartitionKey": pk, "RowKey": rk},
                {"etag": etag, "match_condition": MatchConditions.IfNotModified})
               for pk, rk, etag in e.deletes]
        return Call("table", "submit_transaction", (ops,), {}, _none)
    if isinstance(e, PutBlob):
        return _put_blob(e)
    if isinstance(e, DeleteBlob):
        return Call("container", "delete_blob", (e.name,), {}, _none,
                    ok_if="ResourceNotFoundError")
    return None
