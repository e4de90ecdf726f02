"""Render the benchmark results as markdown and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .async_bench import AsyncResult
from .calls import CallCount
from .harness import Comparison


def _target(c: Comparison) -> str:
    if c.target is None:
        return ""
    return f"≥ {c.target:.2f} {'✅' if c.meets_target else '❌'}"


def comparisons_table(results: Sequence[Comparison]) -> str:
    rows = [
        "| scenario | library ms median (p90) | floor ms median (p90) | library ops/s "
        "| floor ops/s | library/floor | target | client CPU ms/op library / floor |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for c in results:
        lib, flo = c.library, c.floor
        rows.append(
            f"| {c.scenario} | {lib.median_ms:.2f} ({lib.p90_ms:.2f}) | "
            f"{flo.median_ms:.2f} ({flo.p90_ms:.2f}) | {lib.ops_per_s:,.0f} | "
            f"{flo.ops_per_s:,.0f} | **{c.ratio:.3f}** | {_target(c)} | "
            f"{lib.cpu_ms:.2f} / {flo.cpu_ms:.2f} |")
    return "\n".join(rows)


def floors_list(results: Sequence[Comparison]) -> str:
    return "\n".join(f"- *{c.scenario}*: {c.notes}" for c in results if c.notes)


def async_table(a: AsyncResult) -> str:
    d = a.to_dict()
    return "\n".join([
        "| variant | requests/s (median of rounds) | library/floor |",
        "|---|---:|---:|",
        f"| sync store, 1 thread | {a.sync_library:,.0f} | {d['sync_library_over_floor']:.2f} |",
        f"| async store, {d['tasks']} tasks | {a.async_library:,.0f} | "
        f"{d['async_library_over_floor']:.2f} |",
        f"| floor: sync TableClient, 1 thread | {a.sync_floor:,.0f} | |",
        f"| floor: aio TableClient, {d['tasks']} tasks | {a.async_floor:,.0f} | |",
        "",
        f"**Async/sync ratio: {a.async_over_sync:.2f}x** ({a.rounds} interleaved rounds of "
        f"{a.requests_per_round} requests; one request = get + set one key + save, 1 KiB).",
    ])


def calls_table(rows: Sequence[CallCount]) -> str:
    lines = ["| operation | storage calls | which | notes |", "|---|---:|---|---|"]
    lines += [f"| {r.operation} | {r.calls} | {r.breakdown} | {r.notes} |" for r in rows]
    return "\n".join(lines)


def markdown(results: dict[str, Any], comparisons: Sequence[Comparison],
             async_result: AsyncResult | None, calls: Sequence[CallCount],
             sweeper_md: str) -> str:
    meta = results["meta"]
    parts = [
        "# tablesessions benchmark",
        "",
        f"Command: `{meta['command']}` · {meta['when']} · Python {meta['python']} · "
        f"{meta['cpus']} CPUs · {meta['platform']} · Azurite 3.35.0 in memory · "
        f"load average {meta['load_before']} before, {meta['load_after']} after",
        "",
        "Library/floor is the library's throughput over the floor's (floor median / "
        "library median latency): 1.00 means as fast as the bare SDK calls. "
        "Both sides alternate per iteration in one process against one Azurite.",
        "",
        "## Library against the raw SDK floor",
        "",
        comparisons_table(comparisons),
        "",
        "Floors:",
        "",
        floors_list(comparisons),
        "",
        f"Data: {meta['data']}",
        "",
    ]
    if async_result is not None:
        parts += ["## Async store (32 tasks) against the sync store (1 thread)", "",
                  async_table(async_result), ""]
    parts += ["## Storage calls per operation (counted at the transport)", "",
              calls_table(calls), ""]
    parts += ["## Sweeper", "", sweeper_md, ""]
    return "\n".join(parts)
