"""Key rotation: re-encrypt stored sessions under the key ring's primary key.

Resumable by construction: it only touches rows not yet under the primary key,
so a run cut short by its time budget, a crash or Ctrl-C is finished by the
next. A row saved meanwhile (412) is skipped: that save already used the
primary key, or the next run gets it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from .._record import blobs
from .._record.effects import Op, Parallel, QueryPage, ReadEntity, Row, UpdateEntity
from .._record.keys import PARTITION_SUFFIXES
from .._record.limits import MAX_QUERY_PAGE
from .._record.rules import (
    COL_BLOB,
    COL_BLOB_DIGEST,
    COL_BLOB_SIZE,
    COL_CHUNKS,
    COL_TOKEN,
    new_write_token,
)
from ..exceptions import SessionDecodeError
from .ops import _delete_blob_quietly, _upload_if_overflowing
from .rules import COL_DELETED, Rules


@dataclass
class RotationReport:
    """What ``store.rotate_keys()`` did. ``complete`` is False when the time
    budget ran out; run it again to continue."""

    scanned: int = 0
    rotated: int = 0
    skipped: int = 0
    errors: int = 0
    complete: bool = True
    primary: str = ""
    error_messages: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"scanned": self.scanned, "rotated": self.rotated, "skipped": self.skipped,
                "errors": self.errors, "complete": self.complete, "primary": self.primary,
                "error_messages": list(self.error_messages)}


def rotate_keys(rules: Rules, *, time_budget: float | None, max_parallel: int
                ) -> Op[RotationReport]:
    ring = rules.config.key_ring
    if ring is None:
        raise ValueError("rotate_keys needs a store configured with key_ring=")
    stop_at = None if time_budget is None else time.monotonic() + time_budget
    parts = tuple(_partition(rules, f"{rules.config.app_name}-{s}", ring.primary, stop_at)
                  for s in PARTITION_SUFFIXES)
    results = yield Parallel(parts, max_parallel)
    report = RotationReport(primary=ring.primary)
    for result in results:
        if isinstance(result, Exception):
            report.errors += 1
            report.complete = False
            report.error_messages.append(type(result).__name__)
            continue
        report.scanned += result.scanned
        report.rotated += result.rotated
        report.skipped += result.skipped
        report.errors += result.errors
        report.error_messages += result.error_messages
        report.complete &= result.complete
    return report


def _partition(rules: Rules, pk: str, primary: str, stop_at: float | None
               ) -> Op[RotationReport]:
    report = RotationReport()
    token: Any = None
    while True:
        rows, token = yield QueryPage("PartitionKey eq @pk", {"pk": pk},
                                      ("PartitionKey", "RowKey", "Codec", COL_DELETED),
                                      MAX_QUERY_PAGE, token)
        for row in rows:
            report.scanned += 1
            if rules.key_id_of(row.entity) == primary or row.entity.get(COL_DELETED):
                continue  # done already, or a logout's tombstone (no payload)
            if stop_at is not None and time.monotonic() > stop_at:
                report.complete = False
                return report
            try:
                done = yield from _reseal_row(rules, pk, str(row.entity["RowKey"]))
            except SessionDecodeError as exc:
                report.errors += 1
                report.error_messages.append(type(exc).__name__)
                continue
            if done:
                report.rotated += 1
            else:
                report.skipped += 1
        if not token:
            return report


def _reseal_row(rules: Rules, pk: str, rk: str) -> Op[bool]:
    row: Row | None = yield ReadEntity(pk, rk)
    if row is None or not rules.is_live(row.entity, rules.now()):
        return False  # gone, a tombstone or expired: the sweeper's, never rewritten
    old_pointer = rules.pointer_of(row.entity)
    if old_pointer is None:
        stored = rules.inline_bytes(row.entity)
    else:
        data = yield from blobs.read(rules, old_pointer, row.entity)
        if data is None:
            return False  # replaced by a concurrent save: under the primary key already
        stored = data
    sealed, codec = rules.reseal(row.entity, stored)
    pointer = yield from _upload_if_overflowing(rules, rk, sealed)
    entity = {k: v for k, v in row.entity.items()
              if not (k.startswith("D") and k[1:].isdigit())
              and k not in (COL_BLOB, COL_BLOB_SIZE, COL_BLOB_DIGEST, COL_CHUNKS)}
    entity.update(rules.payload_columns(sealed, pointer), Codec=codec)
    entity[COL_TOKEN] = new_write_token()
    try:
        # Conditional on the ETag of the live copy just read (the write rule in _ops).
        yield UpdateEntity(entity, row.etag, replace=True)
    except (ResourceModifiedError, ResourceNotFoundError):
        if pointer is not None:
            yield from _delete_blob_quietly(pointer.name)
        return False
    if old_pointer is not None:
        yield from _delete_blob_quietly(old_pointer.name)
    return True
