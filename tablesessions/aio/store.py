"""The asyncio :class:`SessionStore`: performs the core's effects with the
``azure.data.tables.aio`` and ``azure.storage.blob.aio`` clients."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

from .._base import StoreBase, make_config
from .._record.async_face import AsyncFace, connection_string_clients, endpoint_clients
from .._sessions import ops as _ops
from .._sessions.rotation import RotationReport
from ..config import TimeoutLike
from ..models import Session, StorageStats, SweepReport

_IDLE = dt.timedelta(minutes=20)


class SessionStore(StoreBase, AsyncFace):
    """The async twin of :class:`tablesessions.SessionStore`: the same constructors
    and methods, awaitable, with ``async with``.

    Safe to share between tasks: the SDK's aiohttp transport pools connections
    per client. Each event loop that uses the store gets its own clients (closed
    when that loop shuts down); ``await store.close()`` on shutdown.
    """

    def __init__(
        self,
        table_endpoint: str,
        blob_endpoint: str,
        *,
        credential: Any = None,
        table_name: str = "sessions",
        container_name: str = "sessions-overflow",
        app_name: str = "default",
        idle_timeout: TimeoutLike = _IDLE,
        absolute_timeout: TimeoutLike | None = None,
        **options: Any,
    ) -> None:
        """Connect with a token credential (default: the async ``DefaultAzureCredential()``)."""
        config = make_config(table_name, container_name, app_name, idle_timeout,
                             absolute_timeout, options)
        StoreBase.__init__(self, config)
        self._attach(*endpoint_clients(config, table_endpoint, blob_endpoint, credential))

    @classmethod
    def from_connection_string(
        cls,
        conn_str: str,
        *,
        table_name: str = "sessions",
        container_name: str = "sessions-overflow",
        app_name: str = "default",
        idle_timeout: TimeoutLike = _IDLE,
        absolute_timeout: TimeoutLike | None = None,
        **options: Any,
    ) -> SessionStore:
        """Connect with a storage connection string (Azurite, or account-key auth)."""
        config = make_config(table_name, container_name, app_name, idle_timeout,
                             absolute_timeout, options)
        store = cls.__new__(cls)
        StoreBase.__init__(store, config)
        store._attach(connection_string_clients(config, conn_str), None)
        return store

    # -- public API (documented on the sync store) ---------------------------
    async def get(self, session_id: str | None) -> Session | None:
        """Return the live session with this id, or None (never raises for a bad id)."""
        return await self._run(_ops.get(self._rules, session_id), kind="read", default=None)

    async def save(self, session: Session) -> None:
        """Write what changed (see :meth:`tablesessions.SessionStore.save`)."""
        await self._run(_ops.save(self._rules, session), kind="write", default=None)

    async def delete(self, session: Session | str | None) -> None:
        """Delete a session and its overflow blob. Idempotent."""
        await self._run(_ops.delete(self._rules, session), kind="write", default=None)

    async def regenerate(self, session: Session) -> Session:
        """Return a saved copy under a new id and delete the old record."""
        return await self._run(_ops.regenerate(self._rules, session))

    async def update(self, session_id: str | None,
                     fn: Callable[[Session], object]) -> Session | None:
        """Change a session atomically: read it, call ``fn(session)`` to change it in
        place, and write it conditionally on the ETag. If another request changed
        the session meanwhile, back off, re-read and call ``fn`` again on the
        fresh copy, within the operation's deadline. The way to keep a counter
        exact (``fn`` = ``lambda s: s.update(n=s.get("n", 0) + 1)``).

        ``fn`` may run more than once, so it must only change the session (no
        other side effects). Costs 2 calls (read and replace) without contention.
        Never swallowed by ``on_storage_error="empty"``.

        :returns: the session as saved, or None when there is no live session
            (``fn`` is not called) or it was deleted meanwhile.
        :raises SessionConflictError: when the deadline runs out under contention.
        """
        return await self._run(_ops.update(self._rules, session_id, fn))

    @contextlib.asynccontextmanager
    async def lock(self, session_id: str | None, *, timeout: float = 10.0,
             lease: float = 30.0) -> AsyncIterator[Session | None]:
        """Hold an exclusive lease on a session for the block, ASP.NET-style.

        ``async with store.lock(sid, timeout=5, lease=30) as session:`` yields the
        session (None if there is none) and, when the block ends normally,
        saves it and releases the lock in one write; on an exception it only
        releases. At most one holder at a time; waiters poll with jitter until
        ``timeout``. The lease expires, so a crashed holder blocks others for
        at most ``lease`` seconds. Requests that use plain ``get``/``save`` are
        not blocked (they merge as usual).

        :raises LockTimeoutError: with ``.holder`` and ``.age`` for diagnostics.
        :raises SessionConflictError: on exit, if the lease ran out and another
            request took the lock (the block's changes are not saved).
        """
        from .._sessions import lock as _lock

        session = await self._run(_lock.acquire(self._rules, session_id, timeout, lease),
                            per_call=True)
        try:
            yield session
        except BaseException:
            if session is not None:
                await self._run(_lock.release(self._rules, session, save=False))
            raise
        if session is not None:
            await self._run(_lock.release(self._rules, session, save=True))

    # -- users and keys ------------------------------------------------------------
    async def bind_user(self, session: Session, user_id: str) -> None:
        """Tie ``session`` to a user, so :meth:`revoke_user` can end it, and save it.

        Costs: the user record read (created on first use), one index insert and
        the save. From then on each ``get`` of the session also reads the user
        record (one more point read) to check it was not revoked.

        :raises ValueError: for an empty or over-long ``user_id``.
        """
        from .._sessions import users as _users

        await self._run(_users.bind_and_save(self._rules, session, user_id))

    async def revoke_user(self, user_id: str) -> None:
        """End every session of the user on every instance: one conditional merge of
        the user's generation, whatever the number of sessions ("log out everywhere")."""
        from .._sessions import users as _users

        await self._run(_users.revoke(self._rules, user_id))

    async def user_sessions(self, user_id: str) -> list[dict[str, Any]]:
        """List the user's live sessions: metadata only, identified by a row key prefix."""
        from .._sessions import users as _users

        return await self._run(_users.sessions_of(self._rules, user_id), background=True)

    async def rotate_keys(self, *, time_budget: float | None = None,
                    max_parallel: int = 4) -> RotationReport:
        """Re-encrypt every session not yet under the key ring's primary key.

        Resumable: run it again after a time-out or crash and it continues.
        :raises ValueError: when the store has no ``key_ring``.
        """
        from .._sessions import rotation as _rotation

        return await self._run(_rotation.rotate_keys(self._rules, time_budget=time_budget,
                                               max_parallel=max_parallel), background=True)

    # -- maintenance (tablesessions._sessions.admin) ----------------------------------------
    async def sweep(self, *, dry_run: bool = False, time_budget: dt.timedelta | None = None,
              orphan_grace: dt.timedelta = dt.timedelta(hours=1),
              max_parallel: int = 4) -> SweepReport:
        """Delete expired sessions and their blobs, and orphan blobs older than
        ``orphan_grace``. Safe under live traffic; one sweeper at a time (a blob
        lease); stops at ``time_budget`` and resumes there next run.

        :param dry_run: count what would be deleted, delete nothing.
        :param max_parallel: partitions scanned at once.
        """
        from .._record import sweep as _sweep
        from .._sessions.users import sweep_index

        return await self._run(_sweep.sweep(self._rules, dry_run=dry_run, time_budget=time_budget,
                                      orphan_grace=orphan_grace, max_parallel=max_parallel,
                                      extra_pass=sweep_index),
                         background=True)

    async def storage_stats(self) -> StorageStats:
        """Count sessions, expired sessions, bytes, overflowed sessions and a size
        histogram for this app (scans the app's partitions; no payloads read)."""
        from .._sessions import admin as _admin

        return await self._run(_admin.storage_stats(self._rules), background=True)

    async def inspect(self, session_id: str, *, show_data: bool = False) -> dict[str, Any] | None:
        """Return a session's metadata (and its data only with ``show_data``), or None.

        For operators: unlike :meth:`get`, it also shows expired sessions and
        never refreshes anything.
        """
        from .._sessions import admin as _admin

        return await self._run(_admin.inspect(self._rules, session_id, show_data=show_data),
                         background=True)
