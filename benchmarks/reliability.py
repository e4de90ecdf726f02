"""The 20%-fault reliability run, standalone: its own Azurite, the figures as markdown.

Runs the scenario of ``tests/reliability/scenario.py`` (the one the test suite
asserts on) on the sync and async stores side by side, and prints one table::

    .venv/bin/python benchmarks/reliability.py [--operations 2000] [--seed 20240]
                                               [--rate 0.2] [--face both|sync|async]

Exits non-zero when an error escaped, a write was lost or storage differs from
the model, so it doubles as a soak test (e.g. ``--operations 20000 --seed 7``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=2000,
                        help="session operations per face (default: 2000)")
    parser.add_argument("--seed", type=int, default=20240, help="scenario and fault seed")
    parser.add_argument("--rate", type=float, default=0.2,
                        help="share of requests that get a fault (default: 0.2)")
    parser.add_argument("--face", choices=("both", "sync", "async"), default="both")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))  # the scenario lives with the tests
    from tablesessions.testing import AzuriteServer
    from tests.reliability.scenario import Figures, run_both_faces, run_fault_scenario

    kwargs = {"operations": args.operations, "seed": args.seed, "fault_rate": args.rate}
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
    failed = [f for f in results
              if f.mismatches or f.lost_writes or f.orphan_blobs or f.missing_blobs]
    for figures in failed:
        print(f"\n{figures.face}: {figures.mismatches[:10]}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(_run(_parse(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
