"""Deflating one JSON fragment on one core against in pieces on several, by size:
the figures behind ``PARALLEL_FROM`` and ``PIECE`` in tablesessions/_record/deflate.py.

    .venv/bin/python -m benchmarks.bench_deflate [--sizes-kib 512 1024 2048 4096 16384]

No storage: the fragment is the benchmark cart's orjson encoding (the overflow
JSON scenario's data), level 1 (the default). For each size it prints the median
of ``--repeat`` timings of ISA-L's one-shot ``compress`` (what a fragment below
the threshold gets) and of ``compress_in_pieces`` with the helpers this machine
gets, at several piece sizes, each checked to inflate back to the fragment.
The pieces' wall time includes the Adler-32s and the join.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import zlib
from collections.abc import Callable

import orjson

from tablesessions._record import deflate

from .payloads import KIB, session_data


def _median_ms(action: Callable[[], bytes], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        action()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-kib", type=int, nargs="+",
                        default=[512, 1024, 2048, 4096, 16384])
    parser.add_argument("--pieces-kib", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    helpers = deflate._helper_count()
    cores = os.cpu_count()
    print(f"{cores} CPUs, {helpers} helper thread(s) besides the caller, level 1, "
          f"median of {args.repeat}")
    if not helpers:
        print("one core: compress() never takes the pieces path here")
    items = session_data(64 * KIB)["cart"]
    head = "| fragment | one core ms | " + " | ".join(
        f"pieces of {p} KiB ms (x faster)" for p in args.pieces_kib) + " |"
    print(head)
    print("|---:|---:|" + "---:|" * len(args.pieces_kib))
    for kib in args.sizes_kib:
        fragment = orjson.dumps(items * max(1, kib // 64))
        def one_core(f: bytes = fragment) -> bytes:
            return deflate._compress_whole(f, 1)
        whole = _median_ms(one_core, args.repeat)
        cells = []
        for piece_kib in args.pieces_kib:
            def pieces(f: bytes = fragment, p: int = piece_kib * KIB) -> bytes:
                return deflate.compress_in_pieces(f, 1, max(1, helpers), p)
            assert zlib.decompress(pieces()) == fragment
            ms = _median_ms(pieces, args.repeat)
            cells.append(f"{ms:.2f} ({whole / ms:.2f}x)")
        print(f"| {len(fragment) / KIB / 1024:.1f} MiB | {whole:.2f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
