"""The synchronous :class:`SessionStore`: performs the core's storage effects."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from ._base import StoreBase, make_config
from ._record.sync_face import SyncFace, connection_string_clients, endpoint_clients
from ._sessions import ops as _ops
from ._sessions.rotation import RotationReport
from .config import TimeoutLike
from .models import Session, StorageStats, SweepReport

_IDLE = dt.timedelta(minutes=20)


class SessionStore(StoreBase, SyncFace):
    """Sessions in Azure Table Storage, large payloads in Blob Storage.

    Build it with :meth:`from_connection_string` (Azurite, account keys), with
    account endpoints and a token credential (the constructor; production needs
    no account keys), or :meth:`from_env`. It is thread-safe: share one per
    process, and :meth:`close` it (or use ``with``) to release connections.

    Storage failures propagate as ``azure.core.exceptions.*`` unless
    ``on_storage_error="empty"``. Service limits a caller can hit: sessions over
    ``max_session_bytes`` (default 128 MiB encoded) raise ``SessionTooLargeError``.
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
        """Connect with a token credential (default: ``DefaultAzureCredential()``).

        :param table_endpoint: e.g. ``https://<account>.table.core.windows.net``.
        :param blob_endpoint: e.g. ``https://<account>.blob.core.windows.net``.
        :param credential: any Azure credential; when omitted, a
            ``DefaultAzureCredential`` is created and closed with the store. Token
            credentials need https (the SDK refuses them over http).
        :param options: any other :class:`~tablesessions.config.StoreConfig` field.
        """
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
        """Connect with a storage connection string (Azurite, or account-key auth).

        :param options: any other :class:`~tablesessions.config.StoreConfig` field.
        :raises TypeError: for an unknown option. :raises ValueError: for a bad value.
        """
        config = make_config(table_name, container_name, app_name, idle_timeout,
                             absolute_timeout, options)
        store = cls.__new__(cls)
        StoreBase.__init__(store, config)
        store._attach(*connection_string_clients(config, conn_str), None)
        return store

    # -- public API ----------------------------------------------------------
    def get(self, session_id: str | None) -> Session | None:
        """Return the live session with this id, or None.

        None for an unknown, expired (idle or absolute), deleted or malformed id;
        a malformed id never reaches storage. Never raises for a bad id.

        :raises SessionDecodeError: when the stored payload fails its integrity check.
        """
        return self._run(_ops.get(self._rules, session_id), kind="read", default=None)

    def save(self, session: Session) -> None:
        """Write what changed: 1 insert for a new session, 1 conditional replace for
        a modified one, a merge of the expiry column when the idle refresh is due,
        and nothing otherwise.

        :raises SessionTooLargeError: before any write, when over ``max_session_bytes``.
        :raises TypeError: for an unsupported value, naming its key.
        :raises SessionConflictError: per the ``concurrency``/``key_conflict`` policy.
        """
        self._run(_ops.save(self._rules, session), kind="write", default=None)

    def delete(self, session: Session | str | None) -> None:
        """Delete a session (a ``Session`` or an id) and its overflow blob. Idempotent."""
        self._run(_ops.delete(self._rules, session), kind="write", default=None)

    def regenerate(self, session: Session) -> Session:
        """Return a saved copy of ``session`` under a new id and delete the old record.

        Call it at login to defeat session fixation. Never swallowed by
        ``on_storage_error="empty"``: a failed regeneration must not pass silently.
        """
        return self._run(_ops.regenerate(self._rules, session))

    def update(self, session_id: str | None,
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
        return self._run(_ops.update(self._rules, session_id, fn))

    @contextlib.contextmanager
    def lock(self, session_id: str | None, *, timeout: float = 10.0,
             lease: float = 30.0) -> Iterator[Session | None]:
        """Hold an exclusive lease on a session for the block, ASP.NET-style.

        ``with store.lock(sid, timeout=5, lease=30) as session:`` yields the
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
        from ._sessions import lock as _lock

        session = self._run(_lock.acquire(self._rules, session_id, timeout, lease),
                            per_call=True)
        try:
            yield session
        except BaseException:
            if session is not None:
                self._run(_lock.release(self._rules, session, save=False))
            raise
        if session is not None:
            self._run(_lock.release(self._rules, session, save=True))

    # -- users and keys ------------------------------------------------------------
    def bind_user(self, session: Session, user_id: str) -> None:
        """Tie ``session`` to a user, so :meth:`revoke_user` can end it, and save it.

        Costs: the user record read (created on first use), one index insert and
        the save. From then on each ``get`` of the session also reads the user
        record (one more point read) to check it was not revoked.

        :raises ValueError: for an empty or over-long ``user_id``.
        """
        from ._sessions import users as _users

        self._run(_users.bind_and_save(self._rules, session, user_id))

    def revoke_user(self, user_id: str) -> None:
        """End every session of the user on every instance: one conditional merge of
        the user's generation, whatever the number of sessions ("log out everywhere")."""
        from ._sessions import users as _users

        self._run(_users.revoke(self._rules, user_id))

    def user_sessions(self, user_id: str) -> list[dict[str, Any]]:
        """List the user's live sessions: metadata only, identified by a row key prefix."""
        from ._sessions import users as _users

        return self._run(_users.sessions_of(self._rules, user_id), background=True)

    def rotate_keys(self, *, time_budget: float | None = None,
                    max_parallel: int = 4) -> RotationReport:
        """Re-encrypt every session not yet under the key ring's primary key.

        Resumable: run it again after a time-out or crash and it continues.
        :raises ValueError: when the store has no ``key_ring``.
        """
        from ._sessions import rotation as _rotation

        return self._run(_rotation.rotate_keys(self._rules, time_budget=time_budget,
                                               max_parallel=max_parallel), background=True)

    # -- maintenance (tablesessions._sessions.admin) ----------------------------------------
    def sweep(self, *, dry_run: bool = False, time_budget: dt.timedelta | None = None,
              orphan_grace: dt.timedelta = dt.timedelta(hours=1),
              max_parallel: int = 4) -> SweepReport:
        """Delete expired sessions and their blobs, and orphan blobs older than
        ``orphan_grace``. Safe under live traffic; one sweeper at a time (a blob
        lease); stops at ``time_budget`` and resumes there next run.

        :param dry_run: count what would be deleted, delete nothing.
        :param max_parallel: partitions scanned at once.
        """
        from ._record import sweep as _sweep
        from ._sessions.users import sweep_index

        return self._run(_sweep.sweep(self._rules, dry_run=dry_run, time_budget=time_budget,
                                      orphan_grace=orphan_grace, max_parallel=max_parallel,
                                      extra_pass=sweep_index),
                         background=True)

    def storage_stats(self) -> StorageStats:
        """Count sessions, expired sessions, bytes, overflowed sessions and a size
        histogram for this app (scans the app's partitions; no payloads read)."""
        from ._sessions import admin as _admin

        return self._run(_admin.storage_stats(self._rules), background=True)

    def inspect(self, session_id: str, *, show_data: bool = False) -> dict[str, Any] | None:
        """Return a session's metadata (and its data only with ``show_data``), or None.

        For operators: unlike :meth:`get`, it also shows expired sessions and
        never refreshes anything.
        """
        from ._sessions import admin as _admin

        return self._run(_admin.inspect(self._rules, session_id, show_data=show_data),
                         background=True)
