"""The storage calls the sans-I/O core asks its face to make.

The core's operations are generators: they yield one of these, the sync or
async face performs it (under the retry layer) and sends back the result, or
throws the ``azure.core.exceptions`` error into the generator. So every rule
exists once, and each face is only an interpreter of this small vocabulary.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Row:
    """An entity as read back: its properties and ETag."""

    entity: Mapping[str, Any]
    etag: str


@dataclass(frozen=True, slots=True)
class ReadEntity:
    """Point read. Result: ``Row | None`` (None for 404)."""

    partition_key: str
    row_key: str
    select: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class InsertEntity:
    """Create-if-absent. Result: the new ETag. Raises ``ResourceExistsError``."""

    entity: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class UpdateEntity:
    """Replace or merge an existing entity. ``etag=None`` means If-Match ``*``:
    it still never creates a row. Result: the new ETag. Raises
    ``ResourceModifiedError`` (412) or ``ResourceNotFoundError`` (404)."""

    entity: Mapping[str, Any]
    etag: str | None
    replace: bool


@dataclass(frozen=True, slots=True)
class UpsertEntity:
    """Insert or replace, with no If-Match (last writer wins). Result: the new ETag."""

    entity: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DeleteEntity:
    """Delete, conditional on ``etag`` when given. Result: whether a row was
    deleted (False for 404, which is success). Raises ``ResourceModifiedError``
    on a stale ETag."""

    partition_key: str
    row_key: str
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of a parameterised query. Result: ``(list[Row], next_token | None)``."""

    filter: str
    parameters: Mapping[str, Any]
    select: tuple[str, ...] | None
    page_size: int
    continuation: Any = None


@dataclass(frozen=True, slots=True)
class DeleteBatch:
    """An entity group transaction of conditional deletes (one partition, 1..100).
    Result: None. Raises ``TableTransactionError`` when any operation fails."""

    deletes: tuple[tuple[str, str, str], ...]  # (partition key, row key, etag)


@dataclass(frozen=True, slots=True)
class TxOp:
    """One operation of a :class:`Transaction`: ``"upsert"`` (insert or replace
    ``entity``) or ``"delete"`` (``entity`` needs only its keys; conditional on
    ``etag`` when given, else If-Match ``*``)."""

    kind: Literal["upsert", "delete"]
    entity: Mapping[str, Any]
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class Transaction:
    """An entity group transaction: 1..100 operations on one partition, each
    entity once, at most 4 MiB, atomic. Result: None. Raises
    ``TableTransactionError`` when any operation fails (none is applied)."""

    ops: tuple[TxOp, ...]


@dataclass(frozen=True, slots=True)
class PutBlob:
    """Upload a new immutable blob with If-None-Match ``*``. Result: the new
    blob's ETag (``str``), or None if the service sent none. Raises
    ``ResourceExistsError`` when the name exists."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ReadBlob:
    """Download a blob of (about) ``expected_size`` bytes. Result: a bytes-like
    buffer. Raises ``ResourceNotFoundError``; with ``etag``, raises
    ``ResourceModifiedError`` when the blob read is not the one that ETag names
    (written since)."""

    name: str
    expected_size: int = 0
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteBlob:
    """Delete a blob. Result: None (404 is success)."""

    name: str


@dataclass(frozen=True, slots=True)
class BlobInfo:
    name: str
    last_modified: dt.datetime
    size: int


@dataclass(frozen=True, slots=True)
class ListBlobs:
    """One page of blob names under a prefix. Result: ``(list[BlobInfo], next_token | None)``."""

    prefix: str
    continuation: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseBlob:
    """Acquire (``lease_id=None``), renew or release a lease on a blob, creating
    an empty blob first if needed. Result: the lease id, or None when another
    holder has it (acquire) or on release. A renew of a lost lease raises."""

    name: str
    seconds: int
    lease_id: str | None = None
    release: bool = False
    #: for an acquire: the id to propose, so that a retried acquire is idempotent
    proposed_id: str | None = None


@dataclass(frozen=True, slots=True)
class CreateStorage:
    """Create the table and the container if missing. Result: None."""


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait (lock polling). Result: None."""

    seconds: float


@dataclass(frozen=True, slots=True)
class TimeLeft:
    """Ask how long the operation may still run. Result: seconds left in its
    shared deadline (may be negative), or None when its calls have no shared
    deadline (background work, lock polling). Not a storage call."""


@dataclass(frozen=True, slots=True)
class Parallel:
    """Run sub-operations concurrently, at most ``limit`` at once (threads in the
    sync face, tasks in the async one). Result: their results in order; an
    exception from a sub-operation is returned in its place, not raised."""

    ops: tuple[Generator[Any, Any, Any], ...]
    limit: int


Effect = (ReadEntity | InsertEntity | UpdateEntity | UpsertEntity | DeleteEntity | QueryPage
          | DeleteBatch | Transaction | PutBlob | ReadBlob | DeleteBlob | ListBlobs | LeaseBlob
          | CreateStorage | Sleep | TimeLeft | Parallel)

#: A core operation: yields effects, receives their results, returns a T.
Op = Generator[Effect, Any, T]
