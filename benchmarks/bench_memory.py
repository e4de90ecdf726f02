"""Peak extra memory of saving and loading a large overflowed session.

    .venv/bin/python -m benchmarks.bench_memory [--mib 64]

tracemalloc counts every Python allocation (our buffers and the SDK's), so the
figure is the extra memory the library and the SDK need beyond the session's
own data, which exists before the save starts. The target (issue 3) is at most
3x the payload.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tracemalloc
from collections.abc import Callable
from typing import Any

import tablesessions
from tablesessions.testing import AzuriteServer, unique_name


def peak_extra(action: Callable[[], Any]) -> tuple[int, Any]:
    """Run ``action`` and return (peak bytes allocated above the start, its result)."""
    gc.collect()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    result = action()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - base, result


def _save_one(store: tablesessions.SessionStore, size: int) -> str:
    session = store.new()
    session["upload"] = os.urandom(size)  # incompressible
    _SAVE_PEAK[0], _ = peak_extra(lambda: store.save(session))
    return session.id


_SAVE_PEAK = [0]


def measure(mib: int) -> dict[str, float]:
    size = mib * 2**20
    with AzuriteServer() as azurite, tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=unique_name("mem"),
            container_name=unique_name("mem")) as store:
        store.create_storage()
        sid = _save_one(store, size)
        get_peak, loaded = peak_extra(lambda: store.get(sid))
        assert loaded is not None
        assert len(loaded["upload"]) == size
        # The loaded session's own data is the result, not overhead.
        get_extra = get_peak - size
    return {"payload_mib": mib, "save_peak_extra_x": _SAVE_PEAK[0] / size,
            "get_peak_extra_x": get_extra / size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args(argv)
    figures = measure(args.mib)
    print("| payload | save: peak extra | get: peak extra (beyond the result) |")
    print("|---|---|---|")
    print(f"| {args.mib} MiB | {figures['save_peak_extra_x']:.2f}x "
          f"| {figures['get_peak_extra_x']:.2f}x |")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
