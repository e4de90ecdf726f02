"""Large fragments deflated in pieces on several cores (tablesessions/_record/deflate.py):
the result is one plain zlib stream, the helpers really share the work, and a
caller never waits behind a busy pool or loses a helper's error."""

from __future__ import annotations

import os
import random
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from tablesessions._record import deflate
from tablesessions._record.payload import assemble, decode_entries, encode_key, split

KIB = 1024


def _json_text(size: int, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    items = [{"sku": f"SKU-{rng.randrange(10**6)}", "qty": rng.randrange(9),
              "name": rng.choice(["Oak Lamp", "Linen Throw", "Brass Hook"])}
             for _ in range(size // 40 + 1)]
    return orjson.dumps(items)[:size]


@pytest.mark.parametrize("level", [1, 3, 6, 9])
@pytest.mark.parametrize("extra", [-1, 0, 1, 777])
def test_pieces_make_one_zlib_stream_the_stdlib_inflates(level: int, extra: int) -> None:
    piece = 64 * KIB
    for data in (_json_text(5 * piece + extra), os.urandom(3 * piece + extra)):
        stream = deflate.compress_in_pieces(data, level, helpers=2, piece=piece)
        assert zlib.decompress(stream) == data  # header, every piece and the Adler-32
        d = zlib.decompressobj()
        assert d.decompress(stream) == data and d.eof and d.unused_data == b""


def test_the_header_is_zlibs_own_for_each_level() -> None:
    for level in range(1, 10):
        assert deflate._zlib_header(level) == zlib.compress(b"x", level)[:2]


def test_adler32_combine_equals_the_checksum_of_the_whole() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a = rng.randbytes(rng.randrange(0, 3 * 65521))
        b = rng.randbytes(rng.randrange(0, 3 * 65521))
        combined = deflate.adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b))
        assert combined == zlib.adler32(a + b)


def test_a_short_input_is_one_plain_stream() -> None:
    data = _json_text(10 * KIB)
    assert deflate.compress_in_pieces(data, 1, helpers=2, piece=64 * KIB) == \
        deflate._compress_whole(data, 1)


def test_compress_takes_the_pieces_path_from_its_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = deflate.compress_in_pieces

    def spy(data: bytes, level: int, helpers: int, piece: int = deflate.PIECE) -> bytes:
        calls.append(len(data))
        return real(data, level, helpers, piece)

    monkeypatch.setattr(deflate, "compress_in_pieces", spy)
    monkeypatch.setattr(deflate, "_helper_count", lambda: 1)
    small = _json_text(deflate.PARALLEL_FROM - 1)
    large = _json_text(deflate.PARALLEL_FROM)
    assert zlib.decompress(deflate.compress(small, 1)) == small
    assert zlib.decompress(deflate.compress(large, 1)) == large
    assert calls == [deflate.PARALLEL_FROM]
    monkeypatch.setattr(deflate, "_helper_count", lambda: 0)  # one core: one stream
    assert deflate.compress(large, 1) == deflate._compress_whole(large, 1)


def _recording(monkeypatch: pytest.MonkeyPatch, wait_for_helper: bool = False,
               helpers_fail: bool = False) -> list[int]:
    """Make every piece record the thread that deflates it. With
    ``wait_for_helper``, the caller's pieces wait (up to 10 s) until a helper
    thread has started one, so the test does not depend on how fast the helper
    is scheduled; with ``helpers_fail``, a helper's piece raises MemoryError."""
    seen: list[int] = []
    real = deflate._raw_compressor
    caller = threading.get_ident()
    helper_started = threading.Event()

    class Recording:
        def __init__(self, level: int) -> None:
            self._inner = real(level)

        def compress(self, data: Any) -> bytes:
            seen.append(threading.get_ident())
            if threading.get_ident() == caller:
                if wait_for_helper:
                    assert helper_started.wait(10), "no helper thread took a piece"
            else:
                helper_started.set()
                if helpers_fail:
                    raise MemoryError("no memory for this piece")
            return self._inner.compress(data)

        def flush(self, mode: int = zlib.Z_FINISH) -> bytes:
            return self._inner.flush(mode)

    monkeypatch.setattr(deflate, "_raw_compressor", Recording)
    return seen


def test_helpers_share_the_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _recording(monkeypatch, wait_for_helper=True)
    data = _json_text(8 * 64 * KIB)
    stream = deflate.compress_in_pieces(data, 1, helpers=1, piece=64 * KIB)
    assert zlib.decompress(stream) == data
    assert len(seen) == 8
    assert len(set(seen)) == 2, "the helper thread deflated none of the pieces"
    assert threading.get_ident() in seen


def test_a_busy_pool_never_holds_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every helper thread is stuck on other work: the caller deflates every
    piece itself and returns, instead of waiting for a thread to come free."""
    release = threading.Event()
    pool = deflate._POOL.get()
    blockers = [pool.submit(release.wait, 30) for _ in range(deflate.MAX_HELPERS)]
    try:
        seen = _recording(monkeypatch)
        data = _json_text(6 * 64 * KIB)
        started = time.monotonic()
        stream = deflate.compress_in_pieces(data, 1, helpers=deflate.MAX_HELPERS,
                                            piece=64 * KIB)
        assert time.monotonic() - started < 10
        assert zlib.decompress(stream) == data
        assert set(seen) == {threading.get_ident()}
    finally:
        release.set()
        for blocker in blockers:
            blocker.result(timeout=30)


def test_with_no_pool_to_take_work_the_caller_deflates_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At interpreter shutdown a pool takes no new work (RuntimeError): a save
    from an atexit hook still gets its stream."""
    closed = ThreadPoolExecutor(1)
    closed.shutdown()
    monkeypatch.setattr(deflate._POOL, "get", lambda: closed)
    seen = _recording(monkeypatch)
    data = _json_text(4 * 64 * KIB)
    assert zlib.decompress(deflate.compress_in_pieces(data, 1, 2, 64 * KIB)) == data
    assert set(seen) == {threading.get_ident()} and len(seen) == 4


def test_a_helpers_error_is_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    _recording(monkeypatch, wait_for_helper=True, helpers_fail=True)
    data = _json_text(8 * 64 * KIB)
    with pytest.raises(MemoryError, match="no memory for this piece"):
        deflate.compress_in_pieces(data, 1, helpers=1, piece=64 * KIB)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX")
def test_a_forked_child_gets_a_pool_of_its_own() -> None:
    data = _json_text(8 * 64 * KIB)
    parent_pool = deflate._POOL.get()
    assert zlib.decompress(deflate.compress_in_pieces(data, 1, 1, 64 * KIB)) == data
    pid = os.fork()
    if pid == 0:  # the child: the inherited pool has no threads
        code = 1
        try:
            fresh = deflate._POOL.get() is not parent_pool
            ok = zlib.decompress(deflate.compress_in_pieces(data, 1, 1, 64 * KIB)) == data
            code = 0 if fresh and ok else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_large_session_key_round_trips_through_the_payload(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deflate, "_helper_count", lambda: 1)
    cart = [{"sku": f"SKU-{i}", "name": "Classic Oak Lamp", "qty": i % 4}
            for i in range(60_000)]
    entry = encode_key("cart", cart)
    assert len(entry.fragment) >= deflate.PARALLEL_FROM
    flags, stored = entry.packed(1024, 1)
    assert flags == 1 and zlib.decompress(stored) == entry.fragment
    assert stored != deflate._compress_whole(entry.fragment, 1)  # it did take the pieces path
    assert decode_entries(split(assemble({"cart": entry})))["cart"] == cart
