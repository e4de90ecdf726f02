"""Smoke of the memory benchmark: it runs, and a large session stays well within 3x."""

from __future__ import annotations

from benchmarks.bench_memory import measure


def test_large_session_peak_memory_stays_within_three_times_the_payload() -> None:
    # Allocation counts (tracemalloc), not timings: stable on a noisy machine.
    figures = measure(64)  # the size issue 3 names; smaller sizes are dominated by the
    # SDK's fixed 8 MiB range buffers
    assert figures["save_peak_extra_x"] < 3
    assert figures["get_peak_extra_x"] < 3
