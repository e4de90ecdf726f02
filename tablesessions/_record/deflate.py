"""zlib streams of payload fragments; a large one is deflated on several cores.

A fragment of ``PARALLEL_FROM`` bytes or more is cut into ``PIECE``-byte pieces
that are deflated independently, each ending on a sync flush (the last one
finishes the stream), and joined under one zlib header and one Adler-32 of the
whole: pigz's method. The result is an ordinary zlib stream that every inflater
reads, the stdlib's included, so the codec id and the payload layout are
unchanged and rows written this way are readable by instances that deflate on
one core. The cost is a few bytes per piece (an empty stored block, and a
dictionary that restarts every 512 KiB: +0.02 % on the 16 MiB benchmark cart).

Why threads help: both ISA-L's and the stdlib's compressor objects release the
GIL while they deflate (ISA-L's one-shot ``compress`` does not, so it is not
used for pieces). On the 2-core benchmark VM a 16 MiB JSON fragment takes
~10-13 ms this way against ~18-21 ms on one core (docs/performance.md).

Who waits for whom: the calling thread deflates pieces itself and helper
threads take pieces from the same counter, so a call never queues behind
another caller's work; a helper that starts after the last piece was taken
finds nothing to do, and the caller only waits for pieces a helper is
actually deflating. The helpers live in one pool per process
(``per_process.py``: a pool inherited through ``fork`` has no threads).
"""

from __future__ import annotations

import itertools
import os
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from types import ModuleType
from typing import Any, Protocol

from .per_process import PerProcessPool

#: Fragments from this size are deflated in pieces on several cores. On two
#: cores 1 MiB gained 1.2-1.8x in most runs of ``python -m benchmarks.bench_deflate``
#: but lost 0.78-0.86x in three, when the second core was slow to come; from
#: 2 MiB the gain outweighs that (docs/performance.md).
PARALLEL_FROM = 2 * 1024 * 1024
#: Bytes per piece: small enough that two cores share the work evenly, large
#: enough that the per-piece flush and restarted dictionary cost next to nothing.
PIECE = 512 * 1024
#: Helper threads at most (besides the caller): past four cores the upload, not
#: the deflate, is the long pole of a large save.
MAX_HELPERS = 3


class _Compressor(Protocol):
    def compress(self, data: Any, /) -> bytes: ...

    def flush(self, mode: int = ..., /) -> bytes: ...


_isal: ModuleType | None
try:  # the same zlib format, ~4x faster at level 1 (docs/performance.md)
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - a core dependency; the stdlib's zlib still works
    _isal = None

#: The Adler-32 of the pieces: ISA-L's is ~5x the stdlib's.
_adler32: Callable[[Any, int], int] = _isal.adler32 if _isal is not None else zlib.adler32


def _deflater(level: int) -> Any:
    """ISA-L's ``isal_zlib`` at levels 1 to 3, else the stdlib's ``zlib`` (ISA-L
    has no levels past 3, and its level 0 still compresses)."""
    return _isal if _isal is not None and 1 <= level <= 3 else zlib


def _raw_compressor(level: int) -> _Compressor:
    """A raw-deflate compressor (no zlib header or trailer) at ``level``."""
    lib = _deflater(level)
    compressor: _Compressor = lib.compressobj(level, lib.DEFLATED, -15)
    return compressor


def compress(data: bytes, level: int) -> bytes:
    """A zlib stream of ``data``. Levels 1 to 3 (1 is the default) use ISA-L's
    deflate, whose zlib streams every inflater reads (the stdlib's ``zlib`` too,
    so rows stay readable by instances without it and the codec id is unchanged);
    the others use the stdlib's. Large fragments are deflated in pieces on
    several cores (the module docstring)."""
    if len(data) >= PARALLEL_FROM and level >= 1:
        helpers = _helper_count()
        if helpers:
            return compress_in_pieces(data, level, helpers)
    return _compress_whole(data, level)


def _compress_whole(data: bytes, level: int) -> bytes:
    compressed: bytes = _deflater(level).compress(data, level)
    return compressed


def compress_in_pieces(data: bytes, level: int, helpers: int, piece: int = PIECE) -> bytes:
    """``data`` deflated in ``piece``-byte pieces by this thread and up to
    ``helpers`` pool threads, as one zlib stream."""
    if len(data) <= piece:
        return _compress_whole(data, level)
    view = memoryview(data)
    count = -(-len(data) // piece)
    streams: list[bytes] = [b""] * count
    sums: list[int] = [1] * count  # Adler-32 of each piece (1 is that of no bytes)
    claim, claim_lock = itertools.count(), threading.Lock()  # each piece to one thread
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            with claim_lock:  # next() alone is atomic under the GIL, not without one
                i = next(claim)
            if i >= count:
                return
            chunk = view[i * piece:(i + 1) * piece]
            deflate = _raw_compressor(level)
            last = i == count - 1
            streams[i] = deflate.compress(chunk) + deflate.flush(
                zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
            sums[i] = _adler32(chunk, 1)

    futures: list[Future[None]] = []
    try:
        pool = _POOL.get()
        for _ in range(min(helpers, count - 1)):
            futures.append(pool.submit(work))
    except RuntimeError:  # the interpreter is shutting down: no new threads, deflate alone
        pass
    try:
        work()
    except BaseException:
        stop.set()
        raise
    finally:
        # Helpers still queued behind other work would find nothing left: drop
        # them, and wait only for the ones deflating a piece now.
        for future in futures:
            future.cancel()
        running = [f for f in futures if not f.cancelled()]
    for future in running:
        future.result()  # a helper's error (MemoryError) is the caller's
    total = sums[0]
    for i in range(1, count):
        total = adler32_combine(total, sums[i], min(piece, len(data) - i * piece))
    return b"".join((_zlib_header(level), *streams, total.to_bytes(4, "big")))


_ADLER_BASE = 65521


def adler32_combine(first: int, second: int, second_len: int) -> int:
    """The Adler-32 of ``a + b`` from that of ``a``, that of ``b`` and ``len(b)``
    (zlib's ``adler32_combine``, which Python's ``zlib`` does not expose)."""
    rem = second_len % _ADLER_BASE
    low1, high1 = first & 0xFFFF, first >> 16
    low2, high2 = second & 0xFFFF, second >> 16
    low = (low1 + low2 - 1) % _ADLER_BASE
    high = (high1 + high2 + rem * low1 - rem) % _ADLER_BASE
    return (high << 16) | low


def _zlib_header(level: int) -> bytes:
    """RFC 1950's two bytes: deflate with a 32 KiB window, the level hint zlib writes."""
    hint = 0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3
    cmf, flg = 0x78, hint << 6
    flg |= 31 - (cmf * 256 + flg) % 31
    return bytes((cmf, flg))


_POOL = PerProcessPool(MAX_HELPERS, "tablesessions-deflate")


def _helper_count() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    return max(0, min(MAX_HELPERS, cores - 1))
