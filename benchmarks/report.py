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


def flask_table(results: Sequence[Comparison]) -> str:
    """The Flask flows three ways, interleaved in one loop: tablesessions, a plain
    Flask app making the same SDK calls (the floor), and Flask's own cookie session
    (no storage: the framework's cost)."""
    rows = [
        "| flow | tablesessions ms (CPU ms) | plain app + same SDK calls ms (CPU ms) "
        "| Flask cookie session, no storage, ms (CPU ms) | integration's own CPU ms "
        "(tablesessions minus plain app) |",
        "|---|---:|---:|---:|---:|",
    ]
    for c in results:
        cookie = c.extra.get("flask_cookie_session")
        if cookie is None:
            continue
        rows.append(
            f"| {c.scenario} | {c.library.median_ms:.2f} ({c.library.cpu_ms:.2f}) | "
            f"{c.floor.median_ms:.2f} ({c.floor.cpu_ms:.2f}) | "
            f"{cookie['median_ms']:.2f} ({cookie['cpu_ms']:.2f}) | "
            f"{c.library.cpu_ms - c.floor.cpu_ms:+.2f} |")
    return "\n".join(rows)


def async_table(a: AsyncResult) -> str:
    d = a.to_dict()

    def cpu(name: str) -> str:
        return f"{a.cpu_ms[name]:.2f}" if name in a.cpu_ms else ""

    return "\n".join([
        "| variant | requests/s (median of rounds) | library/floor | client CPU ms/request |",
        "|---|---:|---:|---:|",
        f"| sync store, 1 thread | {a.sync_library:,.0f} | {d['sync_library_over_floor']:.2f} "
        f"| {cpu('sync_library')} |",
        f"| async store, {d['tasks']} tasks | {a.async_library:,.0f} | "
        f"{d['async_library_over_floor']:.2f} | {cpu('async_library')} |",
        f"| floor: sync TableClient, 1 thread | {a.sync_floor:,.0f} | | {cpu('sync_floor')} |",
        f"| floor: aio TableClient, {d['tasks']} tasks | {a.async_floor:,.0f} | "
        f"| {cpu('async_floor')} |",
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
             sweeper_md: str, latency: Sequence[Comparison] = ()) -> str:
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
    flask = [c for c in comparisons if "flask_cookie_session" in c.extra]
    if flask:
        parts += ["## Flask flows, three ways in one loop", "", flask_table(flask), ""]
    if async_result is not None:
        parts += ["## Async store (32 tasks) against the sync store (1 thread)", "",
                  async_table(async_result), ""]
    if latency:
        parts += ["## At a modelled network latency (a model, not Azure)", "",
                  "Both sides through a loopback proxy that holds every request a fixed "
                  "time (2 ms, about an in-region call; 10 ms, about a cross-region one) "
                  "before forwarding it: no bandwidth limit, no jitter, no TLS, and the "
                  "proxy's own forwarding cost on both sides. It shows the library's "
                  "fixed client cost as a share when the network dominates; it is not a "
                  "measurement of Azure.", "", comparisons_table(latency), ""]
    parts += ["## Storage calls per operation (counted at the transport)", "",
              calls_table(calls), ""]
    parts += ["## Sweeper", "", sweeper_md, ""]
    return "\n".join(parts)
