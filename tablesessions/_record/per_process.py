"""Thread pools made on first use in each process (used by ``sync_face`` for the
lanes of a Parallel and by ``deflate`` for the pieces of a large fragment).

A pool inherited through ``fork`` has none of its threads in the child: a
pre-forking server may build the store, or save a large session, before it
forks. So the pool remembers the process that made it, and a call from another
process makes a new one there.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor


class PerProcessPool:
    """A ``ThreadPoolExecutor`` of at most ``max_workers`` threads per process,
    made on first use; its threads start on demand and idle ones are reused."""

    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._made: tuple[int, ThreadPoolExecutor] | None = None

    def get(self) -> ThreadPoolExecutor:
        """This process's pool, made now if it has none."""
        pid = os.getpid()
        made = self._made
        if made is None or made[0] != pid:
            with self._lock:
                made = self._made
                if made is None or made[0] != pid:
                    made = (pid, ThreadPoolExecutor(self._max_workers,
                                                    thread_name_prefix=self._prefix))
                    self._made = made
        return made[1]

    def current(self) -> ThreadPoolExecutor | None:
        """This process's pool if it has made one, else None (makes nothing)."""
        made = self._made
        return made[1] if made is not None and made[0] == os.getpid() else None

    def shutdown(self) -> None:
        """Stop this process's pool, if it made one, without waiting for running
        work; queued work is cancelled. A later :meth:`get` makes a new pool."""
        pool, self._made = self.current(), None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
