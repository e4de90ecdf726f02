"""Peak extra memory of saving and loading a large overflowed session.

    .venv/bin/python -m benchmarks.bench_memory [--mib 64]

Two figures for each of save and get (the get includes decoding the value):

* **resident** (the target, issues 3 and 18: at most 3x the payload): the
  process's resident-set high-water mark above its level before the operation
  (Linux ``/proc/self/status`` VmHWM, reset through ``/proc/self/clear_refs``);
  pages really touched, ours and the SDK's.
* **tracemalloc**: every Python allocation's size, touched or not. It overstates
  a one-GET read: the SDK gathers the response with ``list(generator)``, and the
  generator's ``__len__`` is the Content-Length, so ``list`` reserves 8 bytes of
  pointers per byte of body (8x the payload) and uses 64 of them. That
  reservation is address space, never resident (the "resident" figure shows it).

The figure is the extra memory beyond the session's own data, which exists
before the save starts (and, for the get, is the result).
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


def _status(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def resident_peak_extra(action: Callable[[], Any]) -> tuple[int | None, Any]:
    """Run ``action``; return (resident high-water bytes above the start, its
    result). None where Linux's /proc is not available."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current resident size
        base = _status("VmHWM")
    except OSError:
        return None, action()
    result = action()
    return _status("VmHWM") - base, result


def measure(mib: int) -> dict[str, float | None]:
    size = mib * 2**20
    with AzuriteServer() as azurite, tablesessions.SessionStore.from_connection_string(
            azurite.connection_string, table_name=unique_name("mem"),
            container_name=unique_name("mem")) as store:
        store.create_storage()

        def saved() -> str:
            session = store.new()
            session["upload"] = os.urandom(size)  # incompressible
            figures["save_traced"] = peak_extra(lambda: store.save(session))[0] / size
            return session.id

        def get_and_read() -> tablesessions.Session:
            loaded = store.get(sid)
            assert loaded is not None
            assert len(loaded["upload"]) == size  # decoded inside the measurement
            return loaded

        figures: dict[str, float | None] = {"payload_mib": mib}
        sid = saved()
        # A second session measured resident (the first warmed the connections).
        session = store.new()
        session["upload"] = os.urandom(size)
        resident, _ = resident_peak_extra(lambda: store.save(session))
        figures["save_peak_extra_x"] = None if resident is None else resident / size
        traced, _ = peak_extra(get_and_read)
        # The loaded session's own data is the result, not overhead.
        figures["get_traced"] = (traced - size) / size
        resident, loaded = resident_peak_extra(get_and_read)
        figures["get_peak_extra_x"] = None if resident is None else (resident - size) / size
        del loaded
    return figures


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args(argv)
    figures = measure(args.mib)
    print("| payload | save: resident peak extra (tracemalloc) "
          "| get + decode: resident peak extra beyond the result (tracemalloc) |")
    print("|---|---|---|")
    print(f"| {args.mib} MiB | {_x(figures['save_peak_extra_x'])} "
          f"({_x(figures['save_traced'])}) | {_x(figures['get_peak_extra_x'])} "
          f"({_x(figures['get_traced'])}) |")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
