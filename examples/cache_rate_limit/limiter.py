"""A fixed-window rate limit on ``TableCache``: one counter per user and window."""

from __future__ import annotations

from tablesessions import TableCache


def allow(cache: TableCache, user: str, window: int, *, limit: int, seconds: int) -> bool:
    """Count one request of ``user`` in ``window``; True while within ``limit``.

    The common path is one ``incr`` (2 storage calls). The first request of a
    window finds no counter (``ValueError``) and creates it with ``add``, which
    is atomic: when two instances race, one creates it, and both then count.
    The counter expires after two windows; the sweeper removes it.
    """
    key = f"rate:{user}:{window}"
    try:
        count = cache.incr(key)
    except ValueError:
        cache.add(key, 0, ttl=2 * seconds)
        count = cache.incr(key)
    return count <= limit
