"""The sweeper's checkpoint, as sans-I/O generators: ``read_checkpoint``, ``save_checkpoint``.

A sweep that hits its time budget, loses its lease or crashes leaves work undone.
The checkpoint records what is left (the partitions still to scan and where the
orphan pass got to) so that the next sweep resumes there instead of starting a
new cycle; a sweep that finishes the cycle removes it.

The checkpoint of an unfinished sweep is a small entity in the sessions table,
not metadata on the lock blob: the effect vocabulary has no blob-metadata call,
an entity needs no permission beyond the table role the store already has, a
complete run (the usual case) costs one point read (a 404), and the ETag keeps a
sweeper whose lease lapsed from overwriting the checkpoint of the one after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from .effects import DeleteEntity, Effect, InsertEntity, Op, ReadEntity, UpdateEntity
from .keys import PARTITION_SUFFIXES
from .rules import RecordRules

logger = logging.getLogger("tablesessions.sweeper")

COL_PENDING = "PendingPartitions"
COL_ORPHANS_PENDING = "OrphansPending"
COL_ORPHAN_MARKER = "OrphanMarker"
COL_UPDATED = "UpdatedAt"


def checkpoint_keys(app_name: str) -> tuple[str, str]:
    """Where an unfinished sweep records its remaining work.

    Session partitions are ``<app>-<hex digit>`` and app names cannot contain
    ``-``, so ``<app>-sweeper`` is neither a session partition nor another app's.
    """
    return f"{app_name}-sweeper", "checkpoint"


@dataclass
class Work:
    """What a sweep cycle still has to do: the checkpoint's content.

    ``partitions`` holds the suffixes of the partitions not yet swept to the
    end, ``orphans`` whether the orphan pass is still due and ``marker`` the
    blob listing's continuation marker where it stopped. The sweep updates it
    in place as it goes; the default is a whole fresh cycle.
    """

    partitions: str = PARTITION_SUFFIXES
    orphans: bool = True
    marker: str | None = None

    @property
    def finished(self) -> bool:
        return not self.partitions and not self.orphans


def read_checkpoint(app_name: str, *,
                    call: Callable[[Effect], Op[Any]]) -> Op[tuple[str | None, Work]]:
    """The checkpoint's ETag (None when there is none) and the work it leaves.

    ``call`` is the sweeper's counting wrapper around one effect.
    """
    pk, rk = checkpoint_keys(app_name)
    row = yield from call(ReadEntity(pk, rk))
    if row is None:
        return None, Work()
    return row.etag, work_from(row.entity)


def work_from(entity: Mapping[str, Any]) -> Work:
    """The checkpoint's remaining work, or a fresh cycle when it is done or unreadable."""
    pending = entity.get(COL_PENDING)
    orphans = entity.get(COL_ORPHANS_PENDING)
    marker = entity.get(COL_ORPHAN_MARKER)
    if (not isinstance(pending, str) or not isinstance(orphans, bool)
            or not set(pending) <= set(PARTITION_SUFFIXES) or len(set(pending)) != len(pending)):
        return Work()
    work = Work(pending, orphans, str(marker) if marker else None)
    return Work() if work.finished else work


def save_checkpoint(rules: RecordRules, etag: str | None, work: Work, *,
                    call: Callable[[Effect], Op[Any]],
                    fail: Callable[[str, BaseException], None]) -> Op[None]:
    """Record unfinished work, or remove the checkpoint once the cycle is done.

    ``etag`` is what :func:`read_checkpoint` returned; ``call`` is the sweeper's
    counting wrapper around one effect and ``fail`` records an error in its
    report without stopping it.
    """
    pk, rk = checkpoint_keys(rules.config.app_name)
    entity = {"PartitionKey": pk, "RowKey": rk, COL_PENDING: work.partitions,
              COL_ORPHANS_PENDING: work.orphans, COL_ORPHAN_MARKER: work.marker or "",
              COL_UPDATED: rules.now()}
    if work.finished and etag is None:
        return  # the usual case: nothing recorded, nothing to record
    # Each condition failing means another sweeper (after our lease lapsed) moved
    # the checkpoint on since we read it: its word wins.
    effect: Effect
    raced: tuple[type[Exception], ...]
    if work.finished:
        effect, raced = DeleteEntity(pk, rk, etag), (ResourceModifiedError,)
    elif etag is None:
        effect, raced = InsertEntity(entity), (ResourceExistsError,)
    else:
        effect = UpdateEntity(entity, etag, replace=True)
        raced = (ResourceModifiedError, ResourceNotFoundError)
    try:
        yield from call(effect)
    except raced:
        logger.info("sweep checkpoint changed by another sweeper; not overwritten")
    except Exception as exc:
        fail("saving the sweep checkpoint", exc)
