"""The asyncio I/O face: performs the core's effects with the
``azure.data.tables.aio`` and ``azure.storage.blob.aio`` clients, one set per
event loop (``per_loop``). The async ``SessionStore`` and ``TableCache`` are
built on it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableClient
from azure.storage.blob.aio import BlobLeaseClient, ContainerClient

from ..config import RecordConfig
from ..retry import Deadline, RetryPolicy
from .calls import BlobSink, call_for, read_blob_result
from .clients import async_transport, blob_kwargs, sdk_kwargs
from .driver import adrive
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
from .per_loop import PerLoop

T = TypeVar("T")
F = TypeVar("F", bound="AsyncFace")
Clients = tuple[TableClient, ContainerClient]


async def _close_clients(clients: Clients) -> None:
    await clients[0].close()
    await clients[1].close()


def endpoint_clients(config: RecordConfig, table_endpoint: str, blob_endpoint: str,
                     credential: Any) -> tuple[Callable[[], Clients], Any]:
    """(a factory of one loop's clients, the credential the face owns or None).

    ``credential=None``: the async ``DefaultAzureCredential``, owned by the face.
    """
    owned = None
    if credential is None:
        from azure.identity.aio import DefaultAzureCredential

        credential = owned = DefaultAzureCredential()
    kw = sdk_kwargs(config)

    def clients() -> Clients:
        return (TableClient(endpoint=table_endpoint, table_name=config.table_name,
                            credential=credential, **kw, **async_transport(config)),
                ContainerClient(account_url=blob_endpoint,
                                container_name=config.container_name, credential=credential,
                                **blob_kwargs(config), **async_transport(config)))

    return clients, owned


def connection_string_clients(config: RecordConfig, conn_str: str) -> Callable[[], Clients]:
    kw = sdk_kwargs(config)

    def clients() -> Clients:
        return (TableClient.from_connection_string(conn_str, table_name=config.table_name,
                                                   **kw, **async_transport(config)),
                ContainerClient.from_connection_string(
                    conn_str, container_name=config.container_name, **blob_kwargs(config),
                    **async_transport(config)))

    return clients


class AsyncFace(RecordFace):
    """The async twin of :class:`~tablesessions._record.sync_face.SyncFace`.

    Safe to share between tasks: the SDK's aiohttp transport pools connections
    per client. Each event loop that uses it gets its own clients (closed when
    that loop shuts down).
    """

    def _attach(self, clients: Callable[[], Clients], owned_credential: Any) -> None:
        # One set of clients per event loop (see per_loop: Starlette's TestClient).
        self._clients = PerLoop(clients, _close_clients)
        self._owned_credential = owned_credential
        self._handlers: dict[type[Any], Callable[..., Awaitable[Any]]] = {
            QueryPage: self._query_page, ReadBlob: self._read_blob, ListBlobs: self._list_blobs,
            LeaseBlob: self._lease_blob, CreateStorage: self._create_storage,
        }

    @property
    def _table(self) -> TableClient:
        return self._clients.get()[0]

    @property
    def _container(self) -> ContainerClient:
        return self._clients.get()[1]

    async def close(self) -> None:
        """Close the SDK clients (and the credential this object created)."""
        await self._clients.close()
        if self._owned_credential is not None:
            await self._owned_credential.close()

    async def __aenter__(self: F) -> F:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def create_storage(self) -> None:
        """Create the table and the overflow container if missing. Idempotent."""
        await self._run(create_storage_op(), background=True)

    # -- running core operations ------------------------------------------------

    async def _run(self, op: Op[T], *, kind: Any = None, default: Any = None,
                   background: bool = False, per_call: bool = False) -> T:
        # Request path: one deadline for the whole operation. Background work
        # (sweeps, maintenance) runs for minutes: each call gets its own.
        # ``per_call``: waits (the lock) may outlast one deadline; each call gets its own.
        deadline = None if background or per_call else self._deadline()
        policy = self.config.background_retry if background else self.config.retry
        await self._clients.bind()
        try:
            return await adrive(op, lambda effect: self._execute(effect, policy, deadline))
        except Exception as exc:
            if kind is not None and self._absorb(kind, exc):
                return default  # type: ignore[no-any-return]
            raise

    async def _execute(self, effect: Effect, policy: RetryPolicy,
                       shared: Deadline | None) -> Any:
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        if isinstance(effect, TimeLeft):
            return None if shared is None else shared.remaining()
        if isinstance(effect, Parallel):
            return await self._parallel(effect, policy, shared)
        deadline = shared or Deadline(policy.deadline)
        if isinstance(effect, (PutBlob, ReadBlob)):
            size = len(effect.data) if isinstance(effect, PutBlob) else effect.expected_size
            deadline.extend(size / self.config.transfer_rate)
        handler: Callable[..., Any] = self._handlers.get(type(effect), self._call)
        try:
            return await policy.arun(lambda: handler(effect, **self._timeouts(deadline, policy)),
                                     deadline)
        except HttpResponseError as exc:
            missing = storage_not_found(exc, self.config)
            if missing is None:
                raise
            raise missing from exc

    async def _parallel(self, effect: Parallel, policy: RetryPolicy,
                        shared: Deadline | None) -> list[Any]:
        gate = asyncio.Semaphore(effect.limit)

        async def one(op: Op[Any]) -> Any:
            async with gate:
                try:
                    return await adrive(op, lambda e: self._execute(e, policy, shared))
                except Exception as exc:
                    return exc

        return list(await asyncio.gather(*(one(op) for op in effect.ops)))

    # -- effect handlers: the only place this face touches the SDK ----------------
    async def _call(self, e: Effect, **t: Any) -> Any:
        call = call_for(e)
        assert call is not None
        client = self._table if call.client == "table" else self._container
        try:
            answer = await getattr(client, call.method)(*call.args, **call.kwargs, **t)
        except (ResourceNotFoundError, ResourceExistsError) as exc:
            # A missing table or container is never "already done".
            if call.ok_if == type(exc).__name__ and storage_not_found(exc, self.config) is None:
                return None
            raise
        return call.finish(answer)

    async def _query_page(self, e: QueryPage, **t: Any) -> tuple[list[Row], Any]:
        pages = self._table.query_entities(
            e.filter, parameters=dict(e.parameters), results_per_page=e.page_size,
            select=list(e.select) if e.select else None, **t,
        ).by_page(continuation_token=e.continuation)
        rows: list[Row] = []
        async for page in pages:
            rows = [Row(ent, str(ent.metadata["etag"])) async for ent in page]
            break
        return rows, pages.continuation_token  # type: ignore[attr-defined]

    async def _read_blob(self, e: ReadBlob, **t: Any) -> bytes:
        # One GET (see _clients.blob_kwargs), kept without a copy.
        sink = BlobSink()
        downloader = await self._container.download_blob(e.name, **t)
        await downloader.readinto(sink)
        return read_blob_result(e, downloader, sink)

    async def _list_blobs(self, e: ListBlobs, **t: Any) -> tuple[list[BlobInfo], str | None]:
        pages = self._container.list_blobs(name_starts_with=e.prefix, results_per_page=5000,
                                           **t).by_page(continuation_token=e.continuation)
        items: list[BlobInfo] = []
        async for page in pages:
            items = [BlobInfo(b.name, b.last_modified, b.size) async for b in page]
            break
        return items, pages.continuation_token  # type: ignore[attr-defined]

    async def _lease_blob(self, e: LeaseBlob, **t: Any) -> str | None:
        blob = self._container.get_blob_client(e.name)
        if e.lease_id is not None:
            lease = BlobLeaseClient(blob, lease_id=e.lease_id)
            if e.release:
                await lease.release(**t)
                return None
            await lease.renew(**t)
            return e.lease_id
        lease = BlobLeaseClient(blob, lease_id=e.proposed_id or str(uuid.uuid4()))
        for _ in range(2):
            try:
                await lease.acquire(lease_duration=e.seconds, **t)
                return str(lease.id)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    await blob.upload_blob(b"", overwrite=False, **t)
            except HttpResponseError as exc:
                if exc.status_code == 409:
                    return None
                raise
        return None

    async def _create_storage(self, e: CreateStorage, **t: Any) -> None:
        with contextlib.suppress(ResourceExistsError):
            await self._table.create_table(**t)
        with contextlib.suppress(ResourceExistsError):
            await self._container.create_container(**t)
