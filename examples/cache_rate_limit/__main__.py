"""``python -m examples.cache_rate_limit``: see :mod:`examples.cache_rate_limit`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from examples.cache_rate_limit.instance import LIMIT, SECONDS
from tablesessions import TableCache
from tablesessions.testing import AzuriteServer

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = 30  # per instance: 60 in all, against a limit of 40


def _start(name: str, window: int, start_at: float,
           env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "examples.cache_rate_limit.instance",
                             name, str(window), str(start_at), str(REQUESTS)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def _line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"an instance exited early (code {proc.wait()})")
    result: dict[str, Any] = json.loads(line)
    return result


def main() -> int:
    with AzuriteServer() as azurite:
        env = {**os.environ, "TABLESESSIONS_CONNECTION_STRING": azurite.connection_string,
               "PYTHONPATH": str(ROOT)}
        with TableCache.from_connection_string(
                azurite.connection_string, table_name="democache",
                container_name="democache", app_name="shop") as cache:
            cache.create_storage()
            # Both instances count in the same window, whatever the clock says meanwhile.
            window = int(time.time() // SECONDS)
            start_at = time.time() + 4.0
            print(f"Limit: {LIMIT} requests per {SECONDS} s window for user alice, "
                  f"two instances, {REQUESTS} requests each, at the same time")
            a = _start("A", window, start_at, env)
            a_fragment = _line(a)  # A has rendered and cached it before B starts
            b = _start("B", window, start_at, env)
            b_fragment = _line(b)
            for name, got in (("A", a_fragment), ("B", b_fragment)):
                where = "rendered it and cached it" if got["rendered_here"] \
                    else "read it from the cache (not rendered)"
                print(f"  instance {name}: page fragment: {where}")
            a_run, b_run = _line(a), _line(b)
            codes = a.wait(timeout=120), b.wait(timeout=120)
            for name, got in (("A", a_run), ("B", b_run)):
                print(f"  instance {name}: {got['passed']} of {got['requests']} requests passed")
            total = a_run["passed"] + b_run["passed"]
            counter = cache.get(f"rate:alice:{window}")
            print(f"  together: {total} passed, {2 * REQUESTS - total} refused; "
                  f"the shared counter is at {counter}")
            ok = (codes == (0, 0) and total == LIMIT and counter == 2 * REQUESTS
                  and (a_fragment["rendered_here"], b_fragment["rendered_here"]) == (True, False)
                  and a_fragment["fragment"] == b_fragment["fragment"])
    print("Both instances shared one limit and one fragment." if ok else "UNEXPECTED RESULT")
    return 0 if ok else 1


raise SystemExit(main())
