"""The 20%-fault reliability run, standalone: its own Azurite, the figures as markdown.

Runs the scenario of ``tests/reliability/scenario.py`` (the one the test suite
asserts on) on the sync and async stores side by side, and prints one table:
the fault mix, errors surfaced to the caller, lost acknowledged writes, p50/p99
latency. By default the stores use the request-path defaults an app gets
(``RetryPolicy()``: 4 attempts within 2 s), and the fault mix is issue 14's
(resets, 503s, 0.2-3 s latency, held answers, half-open connections)::

    .venv/bin/python benchmarks/reliability.py [--operations 2000] [--seed 20240]
        [--rate 0.2] [--face both|sync|async] [--all-kinds]
        [--attempt-share 0.5] [--read-timeout 5] [--max-attempts 4]

Exits non-zero when a target is missed: more than 0.5% of operations surfaced
an error, an acknowledged write was lost, storage differs from the model, a
blob is missing, or p99 latency exceeds the deadline. So it doubles as a soak
test (e.g. ``--operations 20000 --seed 7``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=2000,
                        help="session operations per face (default: 2000)")
    parser.add_argument("--seed", type=int, default=20240, help="scenario and fault seed")
    parser.add_argument("--rate", type=float, default=0.2,
                        help="share of requests that get a fault (default: 0.2)")
    parser.add_argument("--face", choices=("both", "sync", "async"), default="both")
    parser.add_argument("--all-kinds", action="store_true",
                        help="every fault kind the proxy knows (adds 500, 429, 408, drops)")
    parser.add_argument("--attempt-share", type=float, default=None,
                        help="RetryPolicy.attempt_share (default: the library's)")
    parser.add_argument("--max-attempts", type=int, default=None,
                        help="RetryPolicy.max_attempts (default: the library's)")
    parser.add_argument("--read-timeout", type=float, default=None,
                        help="the store's read_timeout (default: the library's)")
    return parser.parse_args(argv)


#: The targets of issue 14, item 2.
MAX_ERROR_SHARE = 0.005


async def _run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))  # the scenario lives with the tests
    from tablesessions import RetryPolicy
    from tablesessions.testing import AzuriteServer
    from tests.reliability.scenario import (
        ALL_KINDS,
        Figures,
        run_both_faces,
        run_fault_scenario,
    )

    policy: dict[str, Any] = {}
    if args.attempt_share is not None:
        policy["attempt_share"] = args.attempt_share
    if args.max_attempts is not None:
        policy["max_attempts"] = args.max_attempts
    kwargs: dict[str, Any] = {"operations": args.operations, "seed": args.seed,
                              "fault_rate": args.rate, "retry": RetryPolicy(**policy)}
    if args.all_kinds:
        kwargs["kinds"] = ALL_KINDS
    if args.read_timeout is not None:
        kwargs["read_timeout"] = args.read_timeout
    with AzuriteServer() as azurite:
        results: tuple[Figures, ...]
        if args.face == "both":
            results = await run_both_faces(azurite, **kwargs)
        else:
            results = (await run_fault_scenario(azurite, args.face, **kwargs),)

    columns = [dict(figures.rows()) for figures in results]
    print("| figure | " + " | ".join(c["face"] for c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name in columns[0]:
        if name != "face":
            print(f"| {name} | " + " | ".join(c[name] for c in columns) + " |")
    failed = [f for f in results if missed(f)]
    for figures in failed:
        print(f"\n{figures.face}: missed {missed(figures)}; {figures.mismatches[:10]}",
              file=sys.stderr)
    return 1 if failed else 0


def missed(figures: Any) -> list[str]:
    """The targets ``figures`` misses (empty when all are met)."""
    out = []
    if figures.surfaced > MAX_ERROR_SHARE * figures.operations:
        out.append(f"errors {figures.surfaced} > {MAX_ERROR_SHARE:.1%}")
    if figures.lost_writes or figures.mismatches:
        out.append("lost writes / state differs from the model")
    if figures.missing_blobs:
        out.append("missing blobs")
    if figures.latency_ms(0.99) > 1000 * figures.deadline:
        out.append("p99 over the deadline")
    return out


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_run(_parse(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
