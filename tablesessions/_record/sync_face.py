"""The synchronous I/O face: performs the core's effects with ``azure.data.tables``
and ``azure.storage.blob``. ``SessionStore`` and ``TableCache`` are built on it,
so both run operations, retries, deadlines and parallel sub-operations alike."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import IO, Any, TypeVar, cast

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.blob import BlobLeaseClient, ContainerClient

from ..config import RecordConfig
from ..retry import Deadline, RetryPolicy
from .calls import BlobSink, call_for, read_blob_result
from .clients import blob_kwargs, sdk_kwargs, sync_transport
from .driver import drive
from .effects import (
    BlobInfo,
    CreateStorage,
    Effect,
    LeaseBlob,
    ListBlobs,
    Op,
    Parallel,
    PutBlob,
    QueryPage,
    ReadBlob,
    Row,
    Sleep,
    TimeLeft,
)
from .face import RecordFace, create_storage_op
from .failure import storage_not_found
from .per_process import PerProcessPool

T = TypeVar("T")
F = TypeVar("F", bound="SyncFace")


def endpoint_clients(config: RecordConfig, table_endpoint: str, blob_endpoint: str,
                     credential: Any) -> tuple[TableClient, ContainerClient, Any]:
    """(table client, container client, the credential the face owns or None).

    ``credential=None``: a ``DefaultAzureCredential``, owned (closed) by the face.
    """
    owned = None
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = owned = DefaultAzureCredential()
    table = TableClient(endpoint=table_endpoint, table_name=config.table_name,
                        credential=credential, **sdk_kwargs(config), **sync_transport(config))
    container = ContainerClient(account_url=blob_endpoint, container_name=config.container_name,
                                credential=credential, **blob_kwargs(config),
                                **sync_transport(config))
    return table, container, owned


def connection_string_clients(config: RecordConfig, conn_str: str
                              ) -> tuple[TableClient, ContainerClient]:
    table = TableClient.from_connection_string(conn_str, table_name=config.table_name,
                                               **sdk_kwargs(config), **sync_transport(config))
    container = ContainerClient.from_connection_string(
        conn_str, container_name=config.container_name, **blob_kwargs(config),
        **sync_transport(config))
    return table, container


#: The most threads a face's pool runs at once, across all its callers; each
#: ``Parallel`` still uses at most its own ``limit`` of them.
LANE_THREADS = 32
#: Set in a pool thread while it runs a lane (a nested Parallel gets its own pool).
_IN_LANE = threading.local()


class SyncFace(RecordFace):
    """Runs core operations: one deadline per request-path operation, tenacity
    around each call, threads for :class:`Parallel` sub-operations."""

    def _attach(self, table: TableClient, container: ContainerClient,
                owned_credential: Any) -> None:
        self._table = table
        self._container = container
        self._owned_credential = owned_credential
        self._lanes = PerProcessPool(LANE_THREADS, "tablesessions")
        self._busy = 0  # shared-pool threads reserved by running lanes
        self._busy_lock = threading.Lock()
        self._handlers: dict[type[Any], Callable[..., Any]] = {
            QueryPage: self._query_page, ReadBlob: self._read_blob, ListBlobs: self._list_blobs,
            LeaseBlob: self._lease_blob, CreateStorage: self._create_storage,
        }

    def close(self) -> None:
        """Close the SDK clients (and the credential this object created), and
        stop the threads of parallel sub-operations."""
        self._lanes.shutdown()
        self._table.close()
        self._container.close()
        if self._owned_credential is not None:
            self._owned_credential.close()

    def __enter__(self: F) -> F:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def create_storage(self) -> None:
        """Create the table and the overflow container if missing. Idempotent."""
        self._run(create_storage_op(), background=True)

    # -- running core operations ------------------------------------------------

    def _run(self, op: Op[T], *, kind: Any = None, default: Any = None,
             background: bool = False, per_call: bool = False) -> T:
        # Request path: one deadline for the whole operation. Background work
        # (sweeps, maintenance) runs for minutes: each call gets its own.
        # ``per_call``: waits (the lock) may outlast one deadline; each call gets its own.
        deadline = None if background or per_call else self._deadline()
        policy = self.config.background_retry if background else self.config.retry
        try:
            return drive(op, lambda effect: self._execute(effect, policy, deadline))
        except Exception as exc:
            if kind is not None and self._absorb(kind, exc):
                return default  # type: ignore[no-any-return]
            raise

    def _execute(self, effect: Effect, policy: RetryPolicy, shared: Deadline | None) -> Any:
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        if isinstance(effect, TimeLeft):
            return None if shared is None else shared.remaining()
        if isinstance(effect, Parallel):
            return self._parallel(effect, policy, shared)
        deadline = shared or Deadline(policy.deadline)
        if isinstance(effect, (PutBlob, ReadBlob)):
            size = len(effect.data) if isinstance(effect, PutBlob) else effect.expected_size
            deadline.extend(size / self.config.transfer_rate)
        handler: Callable[..., Any] = self._handlers.get(type(effect), self._call)
        try:
            return policy.run(lambda: handler(effect, **self._timeouts(deadline, policy)), deadline)
        except HttpResponseError as exc:
            missing = storage_not_found(exc, self.config)
            if missing is None:
                raise
            raise missing from exc

    def _parallel(self, effect: Parallel, policy: RetryPolicy,
                  shared: Deadline | None) -> list[Any]:
        """Run the sub-operations in at most ``effect.limit`` lanes on the face's
        own thread pool, kept for the face's life: starting threads per call cost
        ~3 ms per ``get_many`` here, which a hand-written loop with a pool of its
        own does not pay. Each lane takes the next sub-operation until none is
        left. Concurrent callers share the pool's threads while it has free ones;
        lanes beyond that, and a ``Parallel`` inside a lane (waiting on the shared
        pool from one of its threads could wait forever), get a pool of their
        own, as before: no lane waits for a thread while its deadline runs."""
        ops = effect.ops
        results: list[Any] = [None] * len(ops)
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(ops)):
            todo.put(i)
        stop = threading.Event()

        def lane() -> None:
            _IN_LANE.active = True
            try:
                while not stop.is_set():
                    try:
                        i = todo.get_nowait()
                    except queue.Empty:
                        return
                    try:
                        results[i] = drive(ops[i], lambda e: self._execute(e, policy, shared))
                    except Exception as exc:
                        results[i] = exc
            finally:
                _IN_LANE.active = False

        lanes = max(1, min(effect.limit, len(ops)))
        # A lane must never queue behind other callers' lanes (its caller's
        # deadline runs meanwhile): lanes the shared pool has no free thread for,
        # and every lane of a nested Parallel, run on a pool of this call's own.
        shared_lanes = 0 if getattr(_IN_LANE, "active", False) else self._claim(lanes)
        own = ThreadPoolExecutor(lanes - shared_lanes, thread_name_prefix="tablesessions") \
            if shared_lanes < lanes else None
        futures = [self._lanes.get().submit(lane) for _ in range(shared_lanes)]
        if own is not None:
            futures += [own.submit(lane) for _ in range(lanes - shared_lanes)]
        try:
            for future in futures:
                future.result()
        except BaseException:
            # Ctrl-C: don't sit out the sub-operations still to start.
            stop.set()
            for future in futures:
                future.cancel()
            raise
        finally:
            self._release(shared_lanes)
            if own is not None:
                own.shutdown(wait=False)
        return results

    def _claim(self, lanes: int) -> int:
        """Reserve up to ``lanes`` of the shared pool's free threads; how many."""
        with self._busy_lock:
            granted = min(lanes, LANE_THREADS - self._busy)
            self._busy += granted
            return granted

    def _release(self, lanes: int) -> None:
        if lanes:
            with self._busy_lock:
                self._busy -= lanes

    # -- effect handlers: the only place this face touches the SDK ----------------
    def _call(self, e: Effect, **t: Any) -> Any:
        call = call_for(e)
        assert call is not None
        client = self._table if call.client == "table" else self._container
        try:
            answer = getattr(client, call.method)(*call.args, **call.kwargs, **t)
        except (ResourceNotFoundError, ResourceExistsError) as exc:
            # A missing table or container is never "already done".
            if call.ok_if == type(exc).__name__ and storage_not_found(exc, self.config) is None:
                return None
            raise
        return call.finish(answer)

    def _query_page(self, e: QueryPage, **t: Any) -> tuple[list[Row], Any]:
        pages = self._table.query_entities(
            e.filter, parameters=dict(e.parameters), results_per_page=e.page_size,
            select=list(e.select) if e.select else None, **t,
        ).by_page(continuation_token=e.continuation)
        rows = [Row(ent, str(ent.metadata["etag"])) for ent in next(pages, [])]
        return rows, pages.continuation_token  # type: ignore[attr-defined]

    def _read_blob(self, e: ReadBlob, **t: Any) -> bytes:
        # One GET (see _clients.blob_kwargs), kept without a copy.
        sink = BlobSink()
        downloader = self._container.download_blob(e.name, **t)
        downloader.readinto(cast("IO[bytes]", sink))
        return read_blob_result(e, downloader, sink)

    def _list_blobs(self, e: ListBlobs, **t: Any) -> tuple[list[BlobInfo], str | None]:
        pages = self._container.list_blobs(name_starts_with=e.prefix, results_per_page=5000,
                                           **t).by_page(continuation_token=e.continuation)
        items = [BlobInfo(b.name, b.last_modified, b.size) for b in next(pages, [])]
        return items, pages.continuation_token  # type: ignore[attr-defined]

    def _lease_blob(self, e: LeaseBlob, **t: Any) -> str | None:
        blob = self._container.get_blob_client(e.name)
        if e.lease_id is not None:
            lease = BlobLeaseClient(blob, lease_id=e.lease_id)
            if e.release:
                lease.release(**t)
                return None
            lease.renew(**t)
            return e.lease_id
        # A proposed id makes a retried acquire idempotent: the service accepts
        # an acquire that repeats the current holder's id.
        lease = BlobLeaseClient(blob, lease_id=e.proposed_id or str(uuid.uuid4()))
        for _ in range(2):
            try:
                lease.acquire(lease_duration=e.seconds, **t)
                return str(lease.id)
            except ResourceNotFoundError:
                # First run (or a lifecycle rule removed it): create it, then acquire.
                with contextlib.suppress(ResourceExistsError):
                    blob.upload_blob(b"", overwrite=False, **t)
            except HttpResponseError as exc:
                if exc.status_code == 409:
                    return None  # another holder
                raise
        return None

    def _create_storage(self, e: CreateStorage, **t: Any) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._table.create_table(**t)
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container(**t)
