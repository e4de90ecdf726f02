"""One instance: ``python -m examples.cache_rate_limit.instance NAME WINDOW START_AT REQUESTS``.

Reads ``TABLESESSIONS_CONNECTION_STRING`` (``TableCache.from_env``). Prints one
JSON line once it has the page fragment (rendered here, or read from the
cache), then, from ``START_AT`` (epoch seconds) on, serves ``REQUESTS``
requests of user alice through the shared rate limit and prints how many passed.
"""

from __future__ import annotations

import json
import sys
import time

from examples.cache_rate_limit.limiter import allow
from tablesessions import TableCache

LIMIT, SECONDS = 40, 60


def render_fragment() -> str:
    time.sleep(0.2)  # the expensive part a cache saves
    return "<ul><li>top seller</li><li>new arrival</li></ul>"


def main(argv: list[str]) -> int:
    name, window, start_at, requests = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    rendered = []

    def fragment() -> str:
        rendered.append(name)
        return render_fragment()

    with TableCache.from_env(table_name="democache", container_name="democache",
                             app_name="shop") as cache:
        html = cache.get_or_set("fragment:home", fragment, ttl=300)
        print(json.dumps({"rendered_here": bool(rendered), "fragment": html}), flush=True)
        time.sleep(max(0.0, start_at - time.time()))
        passed = sum(allow(cache, "alice", window, limit=LIMIT, seconds=SECONDS)
                     for _ in range(requests))
    print(json.dumps({"passed": passed, "requests": requests}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
