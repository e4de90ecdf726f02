"""The expiry sweeper as a sans-I/O generator: ``sweep``.

Table Storage has no TTL: expired sessions and their overflow blobs stay, billed,
until the sweeper deletes them. Both stores drive these generators, so the sync
and async faces sweep identically (see ``docs/sweeper.md``).

How a sweep stays cheap and safe under live traffic:

* It queries each of the app's 16 partitions for ``ExpiresAt lt @cutoff`` (the
  same filter without a PartitionKey is a full table scan), selecting only the
  key, expiry and pointer columns.
* It deletes in entity group transactions of at most 100 deletes, each
  conditional on the ETag the scan saw: a session refreshed after the scan fails
  its condition and is never deleted, and the rest of its batch is resubmitted.
* One sweeper at a time: a blob lease on ``<app>.sweeper.lock``, beside (not
  under) the app's ``<app>/`` blob prefix, so the orphan pass never lists it.
* A time budget stops it early; a checkpoint entity keeps the unfinished work
  (``_sweep_checkpoint``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableTransactionError

from ..models import SweepReport
from .effects import (
    BlobInfo,
    DeleteBatch,
    DeleteBlob,
    DeleteEntity,
    Effect,
    LeaseBlob,
    ListBlobs,
    Op,
    Parallel,
    QueryPage,
    ReadEntity,
    Row,
)
from .keys import log_id, partition_key_for
from .limits import MAX_BATCH_OPERATIONS, MAX_QUERY_PAGE
from .rules import COL_BLOB, COL_EXPIRES, RecordRules
from .storage_errors import missing_storage
from .sweep_checkpoint import Work, read_checkpoint, save_checkpoint

logger = logging.getLogger("tablesessions.sweeper")

#: A blob lease lasts 15-60 s (or forever). 60 s bounds how long a crashed
#: sweeper blocks the next one; renewing every 15 s outlasts a few slow calls.
LEASE_SECONDS = 60
RENEW_EVERY = 15.0
#: A session is swept only once it has been expired this long by the sweeper's
#: clock: a web server whose clock lags, or a request that read the session just
#: before its deadline and is about to refresh it, does not lose it to a sweep.
EXPIRY_MARGIN = dt.timedelta(seconds=60)

#: A report keeps this many messages; ``errors`` counts them all.
MAX_ERROR_MESSAGES = 20

_EXPIRED = "PartitionKey eq @pk and ExpiresAt lt @cutoff"  # no parentheses: see AZURE-FACTS
_PARTITION = "PartitionKey eq @pk"
_SWEEP_COLUMNS = ("PartitionKey", "RowKey", COL_EXPIRES, COL_BLOB)


_ROW_KEY = re.compile(r"[0-9a-f]{64}")
_TX_INDEX = re.compile(r"\s*(\d+):")


class ExtraPass(Protocol):
    """A record type's own sweep step (see :func:`sweep`)."""

    def __call__(self, rules: Any, cutoff: dt.datetime, *, dry_run: bool,
                 call: Callable[[Effect], Op[Any]]) -> Op[int]: ...


def lock_blob_name(app_name: str) -> str:
    """The sweeper's lease blob, in the overflow container beside the ``<app>/`` prefix."""
    return f"{app_name}.sweeper.lock"


@dataclass(frozen=True, slots=True)
class _Expired:
    pk: str
    rk: str
    etag: str
    blob: str | None


class _Run:
    """One sweep's state, shared with its sub-operations (threads in the sync face)."""

    def __init__(self, rules: RecordRules, *, dry_run: bool, budget: dt.timedelta | None,
                 grace: dt.timedelta, parallel: int, extra_pass: ExtraPass | None) -> None:
        self.rules = rules
        self.extra_pass = extra_pass
        self.app = rules.config.app_name
        self.dry_run = dry_run
        self.budget = budget
        self.grace = grace
        self.parallel = parallel
        self.report = SweepReport(dry_run=dry_run)
        self.started = rules.now()
        self.cutoff = self.started - EXPIRY_MARGIN
        self.lock_name = lock_blob_name(self.app)
        self.lease_id: str | None = None
        self.lease_lost = False
        self.renewed = time.monotonic()
        self.units = [0, 0]  # done, total: for progress reports
        self._mutex = threading.Lock()

    def call(self, effect: Effect) -> Op[Any]:
        """Yield one storage effect, counted in ``report.requests``."""
        with self._mutex:
            self.report.requests += 1
        return (yield effect)

    def add(self, *, scanned: int = 0, deleted: int = 0, blobs: int = 0, orphans: int = 0,
            skipped: int = 0) -> None:
        with self._mutex:
            r = self.report
            r.scanned += scanned
            r.deleted += deleted
            r.blobs_deleted += blobs
            r.orphans_deleted += orphans
            r.skipped += skipped

    def fail(self, where: str, exc: BaseException) -> None:
        """Count an error and keep going: one bad partition never aborts the run.

        A missing table or container does: every partition would fail alike
        (issue 17), so it propagates once instead of being counted per partition.
        """
        if missing_storage(exc):
            raise exc
        text = str(exc).strip()
        message = f"{where}: {type(exc).__name__}"
        if text:
            message += f": {text.splitlines()[0][:200]}"
        logger.warning("sweep: %s", message)
        with self._mutex:
            self.report.errors += 1
            if len(self.report.error_messages) < MAX_ERROR_MESSAGES:
                self.report.error_messages.append(message)

    def out_of_time(self) -> bool:
        if self.lease_lost:
            return True
        return self.budget is not None and self.rules.now() - self.started >= self.budget

    def keep_lease(self) -> Op[None]:
        """Renew the lease when due; whichever sub-operation notices first does it."""
        with self._mutex:
            if (self.lease_id is None or self.lease_lost
                    or time.monotonic() - self.renewed < RENEW_EVERY):
                return
            self.renewed = time.monotonic()
        try:
            yield from self.call(LeaseBlob(self.lock_name, LEASE_SECONDS, lease_id=self.lease_id))
        except Exception as exc:
            # Another sweeper may hold it now: stop at the next check (deletes stay
            # safe either way, being conditional; only the work would be doubled).
            self.lease_lost = True
            self.fail("lost the sweeper lease, stopping", exc)

    def progress(self, unit: str) -> None:
        with self._mutex:
            self.units[0] += 1
            snapshot = {"done": self.units[0], "total": self.units[1], "unit": unit,
                        "scanned": self.report.scanned, "deleted": self.report.deleted}
        logger.debug("sweep progress: %s done (%d/%d)", unit, snapshot["done"],
                     snapshot["total"], extra={"sweep_progress": snapshot})


# -- sweep ---------------------------------------------------------------------------


def sweep(rules: RecordRules, *, dry_run: bool = False, time_budget: dt.timedelta | None = None,
          orphan_grace: dt.timedelta = dt.timedelta(hours=1),
          max_parallel: int = 4, extra_pass: ExtraPass | None = None) -> Op[SweepReport]:
    """Delete expired records, their blobs and old orphan blobs; return a report.

    ``extra_pass``: a record type's own cleanup, run last under the same lease
    and budget (sessions: the user index, ``_sessions.users.sweep_index``); it
    returns how many index entries it deleted.

    A dry run takes no lease and writes nothing (not even the checkpoint): it
    previews a whole cycle. A real run that finds the lease taken returns at once
    with ``skipped_locked=True``.

    :raises ValueError: for a negative budget or grace, or ``max_parallel < 1``.
    """
    if max_parallel < 1:
        raise ValueError("max_parallel must be >= 1")
    if (time_budget is not None and time_budget < dt.timedelta(0)) \
            or orphan_grace < dt.timedelta(0):
        raise ValueError("time_budget and orphan_grace must not be negative")
    began = time.monotonic()
    run = _Run(rules, dry_run=dry_run, budget=time_budget, grace=orphan_grace,
               parallel=max_parallel, extra_pass=extra_pass)
    if dry_run:
        work = Work()
        yield from _sweep_work(run, work)
        run.report.complete = work.finished
    else:
        # A proposed id makes a retried acquire idempotent.
        lease = yield from run.call(LeaseBlob(run.lock_name, LEASE_SECONDS,
                                              proposed_id=str(uuid.uuid4())))
        if lease is None:
            logger.info("sweep skipped: another sweeper holds the lease")
            run.report.skipped_locked = True
            run.report.complete = False
        else:
            run.lease_id, run.renewed = lease, time.monotonic()
            yield from _sweep_under_lease(run)
    run.report.duration = dt.timedelta(seconds=time.monotonic() - began)
    return run.report


def _sweep_under_lease(run: _Run) -> Op[None]:
    closed = False
    try:
        etag, work = yield from read_checkpoint(run.app, call=run.call)
        yield from _sweep_work(run, work)
        run.report.complete = work.finished
        yield from save_checkpoint(run.rules, etag, work, call=run.call, fail=run.fail)
    except GeneratorExit:
        closed = True  # the driver is gone (Ctrl-C): no effect can run; the lease lapses
        raise
    finally:
        if not closed:  # also when an error propagates: the next sweeper need not wait
            yield from _release(run)


def _sweep_work(run: _Run, work: Work) -> Op[None]:
    """Sweep the pending partitions (in parallel), then the orphans; update ``work``."""
    pending = work.partitions
    run.units[1] = len(pending) + int(work.orphans)
    if pending:
        subs = tuple(_sweep_partition(run, f"{run.app}-{s}", first=i == 0)
                     for i, s in enumerate(pending))
        results = yield Parallel(subs, min(run.parallel, len(subs)))
        if all(isinstance(result, BaseException) for result in results):
            # Not one partition reached: storage failed as a whole (down, refused
            # the credential), which a caller must see as an error (issue 17).
            raise results[0]
        left = []
        for suffix, result in zip(pending, results, strict=True):
            if isinstance(result, BaseException):
                run.fail(f"partition {run.app}-{suffix}", result)
            if result is not True:
                left.append(suffix)  # unfinished or failed: the next run retries it
        work.partitions = "".join(left)
    if work.orphans:
        try:
            yield from _sweep_orphans(run, work, first=not pending)
        except Exception as exc:
            run.fail("orphan pass", exc)
    if run.extra_pass is not None and not run.out_of_time():
        try:
            removed = yield from run.extra_pass(run.rules, run.cutoff, dry_run=run.dry_run,
                                                call=run.call)
            with run._mutex:
                run.report.index_entries_deleted += removed
        except Exception as exc:
            run.fail("user index pass", exc)


def _sweep_partition(run: _Run, pk: str, *, first: bool) -> Op[bool]:
    """Delete one partition's expired sessions; return whether it reached the end.

    The run's first partition starts even with its budget spent, so a budget
    shorter than one page still makes progress run after run.
    """
    if not first and run.out_of_time():
        return False
    params = {"pk": pk, "cutoff": run.cutoff}
    due: list[_Expired] = []
    token: Any = None
    finished = False
    while True:
        # The real service may return short or empty pages that carry a token.
        rows, token = yield from run.call(QueryPage(_EXPIRED, params, _SWEEP_COLUMNS,
                                                    MAX_QUERY_PAGE, token))
        run.add(scanned=len(rows))
        due.extend(_expired(row) for row in rows)
        while len(due) >= MAX_BATCH_OPERATIONS:
            yield from _delete(run, due[:MAX_BATCH_OPERATIONS])
            del due[:MAX_BATCH_OPERATIONS]
        yield from run.keep_lease()
        if token is None:
            finished = True
            break
        if run.out_of_time():
            break
    if due:  # already scanned; never an empty batch
        yield from _delete(run, due)
    run.progress(pk)
    return finished


def _expired(row: Row) -> _Expired:
    e = row.entity
    return _Expired(str(e["PartitionKey"]), str(e["RowKey"]), row.etag,
                    str(e[COL_BLOB]) if e.get(COL_BLOB) else None)


def _delete(run: _Run, batch: Sequence[_Expired]) -> Op[None]:
    """Delete 1..100 expired rows of one partition, conditionally, then their blobs.

    A transaction is atomic: a row refreshed (412) or deleted (404) since the
    scan fails the whole batch, and the error names its index. That row is
    dropped and the others resubmitted, so a refreshed session is never deleted
    and the rest are not lost. A dropped row's blob is left to the orphan pass.
    """
    if run.dry_run:
        run.add(deleted=len(batch), blobs=sum(1 for c in batch if c.blob))
        return
    left = list(batch)
    deleted: list[_Expired] = []
    while left:
        try:
            yield from run.call(DeleteBatch(tuple((c.pk, c.rk, c.etag) for c in left)))
        except TableTransactionError as exc:
            if exc.status_code not in (404, 412):
                raise
            index = _failed_index(exc, len(left))
            if index is None:  # no trustworthy index: one conditional delete each
                done = yield from _delete_singly(run, left)
                deleted.extend(done)
                break
            dropped = left.pop(index)
            run.add(skipped=1)
            logger.debug("sweep: session %s changed after the scan (%s); kept",
                         log_id(dropped.rk), exc.status_code)
            continue
        deleted.extend(left)
        break
    run.add(deleted=len(deleted))
    for c in deleted:
        if c.blob is None:
            continue
        try:
            yield from run.call(DeleteBlob(c.blob))
        except Exception as exc:
            run.fail(f"blob of session {log_id(c.rk)} (the orphan pass retries it)", exc)
        else:
            run.add(blobs=1)


def _failed_index(exc: TableTransactionError, size: int) -> int | None:
    """The failed operation's index, only when the service's message names it
    (``"<index>:<text>"``): the SDK defaults ``.index`` to 0 otherwise."""
    match = _TX_INDEX.match(str(getattr(exc, "message", "") or ""))
    index = int(match.group(1)) if match else None
    return index if index is not None and index < size else None


def _delete_singly(run: _Run, rows: Sequence[_Expired]) -> Op[list[_Expired]]:
    deleted = []
    for c in rows:
        try:
            yield from run.call(DeleteEntity(c.pk, c.rk, c.etag))
        except ResourceModifiedError:
            run.add(skipped=1)
        else:
            deleted.append(c)  # a 404 lands here too: the row is gone either way
    return deleted


def _sweep_orphans(run: _Run, work: Work, *, first: bool) -> Op[None]:
    """Delete blobs under ``<app>/`` older than the grace that no row points to.

    They come from a save that lost a race, a crash between upload and entity
    write, or a failed blob delete. The grace covers uploads whose entity write
    is still in flight; a blob name is never reused, so once a row stops
    pointing at a blob it never will again.
    """
    prefix = run.rules.blob_prefix()  # "<app>/": never the lock blob "<app>.sweeper.lock"
    now = run.rules.now()
    while True:
        if not first and run.out_of_time():
            return
        blobs, marker = yield from run.call(ListBlobs(prefix, work.marker))
        old = [b for b in blobs if now - b.last_modified >= run.grace]
        if old:
            subs = tuple(_check_orphan(run, b, first=first) for b in old)
            results = yield Parallel(subs, min(run.parallel, len(subs)))
            for result in results:
                if isinstance(result, BaseException):
                    run.fail("orphan check", result)
            if any(result is False for result in results):
                return  # out of time mid-page: the next run re-lists this page
        first = False
        yield from run.keep_lease()
        work.marker = marker
        if marker is None:
            work.orphans = False
            run.progress("orphans")
            return


def _check_orphan(run: _Run, blob: BlobInfo, *, first: bool) -> Op[bool]:
    """Delete ``blob`` if no row points at it; False when skipped for time."""
    if not first and run.out_of_time():
        return False
    yield from run.keep_lease()  # a listing page holds up to 5,000 blobs to check
    parts = blob.name.split("/")
    if len(parts) != 3 or not _ROW_KEY.fullmatch(parts[1]):
        return True  # not a name this library writes: never ours to delete
    rk = parts[1]
    row = yield from run.call(ReadEntity(partition_key_for(run.app, rk), rk, (COL_BLOB,)))
    if row is not None and row.entity.get(COL_BLOB) == blob.name:
        return True  # live, or expired and left to the partition pass with its row
    if not run.dry_run:
        yield from run.call(DeleteBlob(blob.name))
    run.add(orphans=1)
    return True


def _release(run: _Run) -> Op[None]:
    try:
        yield from run.call(LeaseBlob(run.lock_name, LEASE_SECONDS, lease_id=run.lease_id,
                                      release=True))
    except Exception as exc:
        # Lost or lapsed already: either way it frees itself within LEASE_SECONDS.
        logger.info("could not release the sweeper lease (%s)", type(exc).__name__)
