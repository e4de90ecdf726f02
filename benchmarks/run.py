"""The tablesessions benchmark: one command, its own Azurite, the library against
the bare Azure SDK calls doing the same work, interleaved in one run.

    .venv/bin/python -m benchmarks.run            # the full run (a few minutes)
    .venv/bin/python -m benchmarks.run --quick    # a few operations per scenario (CI)
    .venv/bin/python -m benchmarks.run --out DIR  # where latest.md/latest.json go

It prints a markdown report and writes it to ``DIR/latest.md`` (default
``benchmarks/results/``), with the figures in ``DIR/latest.json``:

* new+save, get, modify+save and refresh of 1 KiB and 64 KiB sessions, and
  new+save, get and modify+save of overflowed 1, 4, 5 and 16 MiB sessions (random
  bytes) and of 16 MiB of compressible JSON
  (:mod:`benchmarks.scenarios`);
* Flask create, read-only and modify flows through the test client, three ways
  in one loop: the library, a plain app making the same SDK calls, and Flask's
  own cookie session (:mod:`benchmarks.flask_flows`);
* the 1 KiB, 64 KiB, overflow 1 MiB and Flask scenarios again through a proxy
  adding 2 ms and 10 ms per request: a latency model, not Azure
  (:mod:`benchmarks.latency`);
* the async store with 32 tasks against the sync store on one thread
  (:mod:`benchmarks.async_bench`);
* storage calls per operation, counted at the transport (:mod:`benchmarks.calls`);
* ``TableCache`` get/set (1 KiB, 64 KiB, 5 MiB), incr and get_many/set_many of
  100 keys against the bare SDK, and set_many against 100 sets
  (:mod:`benchmarks.cache`);
* the sweeper at scale (:mod:`benchmarks.bench_sweeper`, which starts its own Azurite).

Timings are never asserted anywhere; ``tests/benchmarks/test_bench_smoke.py``
runs ``--quick`` and checks the storage-call counts exactly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tablesessions.testing import AzuriteServer

from .async_bench import AsyncResult, async_benchmark
from .cache import cache_section
from .calls import CallCount, count_all
from .flask_flows import flask_scenarios
from .harness import Comparison
from .latency import latency_scenarios
from .payloads import KIB, MIB
from .report import markdown
from .scenarios import Plan, Rig, inline_scenarios, overflow_scenarios

FAMILIES = ("inline", "overflow", "flask", "async", "cache")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
DATA = ("inline sessions are seeded, realistic web-session JSON (user profile, roles, "
        "CSRF token, timestamps, a shopping cart grown to 1 KiB or 64 KiB of compact JSON; "
        "zlib takes 64 KiB to ~14 KB); overflow sessions add 1, 4, 5 or 16 MiB of "
        "incompressible seeded random bytes, or 16 MiB of cart items as JSON "
        "(zlib: about a fifth)")


@dataclass(frozen=True)
class Options:
    quick: bool = False
    out: Path | None = DEFAULT_OUT
    sweeper_sessions: int | None = None
    skip_sweeper: bool = False
    skip_latency: bool = False
    #: scenario families to run (``inline``, ``overflow``, ``flask``, ``async``, ``cache``);
    #: empty: all of them, plus the call counts, the latency model and the sweeper
    only: tuple[str, ...] = ()

    @property
    def sessions_for_sweeper(self) -> int:
        if self.sweeper_sessions is not None:
            return self.sweeper_sessions
        return 200 if self.quick else 10_000


def _load() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Linux/macOS
        return "n/a"


def sweeper_section(opts: Options) -> tuple[dict[str, Any], str]:
    """Run ``benchmarks.bench_sweeper`` (another module's entry point:
    ``run(sessions, output=None) -> dict`` and ``markdown(dict) -> str``)."""
    if opts.skip_sweeper:
        return {"skipped": True}, "Skipped (--skip-sweeper)."
    try:
        module = importlib.import_module("benchmarks.bench_sweeper")
    except ModuleNotFoundError:
        reason = "benchmarks/bench_sweeper.py is not there yet"
        return {"skipped": True, "reason": reason}, f"Not run: {reason}."
    figures: dict[str, Any] = module.run(opts.sessions_for_sweeper, output=None)
    text: str = module.markdown(figures)
    command = f"`.venv/bin/python -m benchmarks.bench_sweeper --sessions {figures['sessions']}`"
    return figures, f"From {command} (its own Azurite):\n\n{text}"


def run(opts: Options) -> dict[str, Any]:
    """Run everything; return the JSON-ready results (and write them, unless
    ``opts.out`` is None)."""
    command = "python -m benchmarks.run" + (" --quick" if opts.quick else "")
    if opts.only:
        command += "".join(f" --only {family}" for family in opts.only)
    wanted = set(opts.only) or set(FAMILIES)
    results: dict[str, Any] = {"meta": {
        "command": command, "quick": opts.quick,
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "platform": platform.platform(terse=True),
        "cpus": os.cpu_count(), "load_before": _load(), "data": DATA,
    }}
    started = time.perf_counter()
    plan = Plan.for_mode(opts.quick)
    comparisons: list[Comparison] = []
    async_result: AsyncResult | None = None
    with AzuriteServer() as azurite:
        conn = azurite.connection_string
        with Rig.open(conn) as rig:
            if "inline" in wanted:
                for size in (KIB, 64 * KIB):
                    comparisons += inline_scenarios(rig, size, plan, no_echo_floor=True)
            if "overflow" in wanted:
                for size in (MIB, 4 * MIB, 5 * MIB, 16 * MIB):
                    comparisons += overflow_scenarios(rig, size, plan)
                comparisons += overflow_scenarios(rig, 16 * MIB, plan, compressible=True)
            if "flask" in wanted:
                comparisons += flask_scenarios(rig, plan.small, plan.warmup,
                                               no_echo_floor=True)
            if "async" in wanted:
                async_result = async_benchmark(rig, rounds=1 if opts.quick else 15,
                                               per_task=1 if opts.quick else 3)
        calls: list[CallCount] = [] if opts.only else count_all(conn)
        cache_figures, cache_md = (({"skipped": True}, "") if opts.only and "cache" not in wanted
                                   else cache_section(conn, opts.quick))
        latency = ([] if opts.skip_latency or opts.only
                   else latency_scenarios(azurite, opts.quick))
    sweeper, sweeper_md = (({"skipped": True}, "Skipped (--only).") if opts.only
                           else sweeper_section(opts))
    results["meta"]["load_after"] = _load()
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    results["comparisons"] = [c.to_dict() for c in comparisons]
    results["latency"] = [c.to_dict() for c in latency]
    results["async"] = async_result.to_dict() if async_result is not None else None
    results["calls"] = [c.to_dict() for c in calls]
    results["sweeper"] = sweeper
    results["cache"] = cache_figures
    results["markdown"] = markdown(results, comparisons, async_result, calls, sweeper_md,
                                   latency) + "\n\n" + cache_md
    if opts.out is not None:
        opts.out.mkdir(parents=True, exist_ok=True)
        (opts.out / "latest.md").write_text(results["markdown"] + "\n")
        body = {k: v for k, v in results.items() if k != "markdown"}
        (opts.out / "latest.json").write_text(json.dumps(body, indent=2) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark tablesessions against the raw Azure SDK floor on Azurite.")
    parser.add_argument("--quick", action="store_true",
                        help="a few operations per scenario (CI smoke; numbers meaningless)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="directory for latest.md and latest.json "
                             "(default: benchmarks/results)")
    parser.add_argument("--sweeper-sessions", type=int, default=None,
                        help="sessions for the sweeper benchmark, half expired "
                             "(default 10,000; 200 with --quick)")
    parser.add_argument("--skip-sweeper", action="store_true",
                        help="leave out the sweeper benchmark")
    parser.add_argument("--skip-latency", action="store_true",
                        help="leave out the modelled-latency scenarios (a delaying proxy)")
    parser.add_argument("--only", action="append", choices=FAMILIES, default=[],
                        help="run only this scenario family (repeatable); leaves out the "
                             "call counts, the latency model and the sweeper")
    args = parser.parse_args(argv)
    results = run(Options(quick=args.quick, out=args.out,
                          sweeper_sessions=args.sweeper_sessions,
                          skip_sweeper=args.skip_sweeper, skip_latency=args.skip_latency,
                          only=tuple(args.only)))
    print(results["markdown"])
    print(f"\nWritten: {args.out / 'latest.md'} and {args.out / 'latest.json'} "
          f"({results['meta']['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
