"""Smoke of ``python -m benchmarks.run --quick``: it completes in-process, writes
its report, and the storage calls per operation are exactly the documented ones.

Counts only, never timings: on a shared CI machine a timing means nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from benchmarks.run import Options, main, run

DOCS = Path(__file__).resolve().parents[2] / "docs"

#: The storage calls per operation as published in docs/cost.md (and
#: docs/performance.md): each HTTP request is one billed transaction.
DOCUMENTED_CALLS = {
    "create (new + save)": 1,
    "read (get; refresh not due)": 1,
    "read-only request (get + save, refresh not due)": 1,
    "read due for refresh (get + save)": 2,
    "modify (get + set + save)": 2,
    "logout (get + delete)": 2,
    "read of a missing or expired id": 1,
    "read of a malformed id": 0,
    "overflow write (new + save, 1 MiB)": 2,
    "overflow read (get, 1 MiB)": 2,
    # one blob GET at any size (issue 18: 8 MiB + 4 MiB ranges made this 5)
    "overflow read (get, 16 MiB)": 2,
    "overflow modify (get + set + save, 1 MiB)": 5,
    "flask: create": 1,
    "flask: read-only request": 1,
    "flask: modify request": 2,
    "flask: forged cookie": 0,
    "flask: view that never touches the session": 0,
    # 16 partition queries + the user-index query + checkpoint read + lease
    # acquire + orphan listing + lease release (the lock blob already exists)
    "sweep, nothing expired": 21,
    # ... + 1 delete batch per partition
    "sweep, 100 expired sessions (no blobs)": 37,
}

SCENARIOS = [
    *(name for size in ("1 KiB", "64 KiB")
      for name in (f"new+save {size}",
                   # informative: against a floor that asks for no echo, as the store does
                   f"new+save {size}, floor asks for no echo",
                   f"get {size}", f"modify+save {size}",
                   # informative: against floors on the store's own transport
                   f"get {size}, floor on the store's transport",
                   f"modify+save {size}, floor on the store's transport",
                   f"refresh {size}")),
    *(f"overflow {op} {size}" for size in ("1 MiB", "4 MiB", "5 MiB", "16 MiB")
      for op in ("new+save", "get", "modify+save")),
    "overflow new+save 16 MiB JSON",
    # informative: the same save against bare-SDK apps that encode the dict too
    "overflow new+save 16 MiB JSON, floor encodes (stdlib json + zlib)",
    "overflow new+save 16 MiB JSON, floor encodes (orjson + ISA-L)",
    # informative: the library against itself deflating on one core
    "overflow new+save 16 MiB JSON, floor is the library deflating on one core",
    "overflow get 16 MiB JSON", "overflow modify+save 16 MiB JSON",
    "flask create", "flask read-only", "flask modify",
    "flask create, floor asks for no echo",
    *(f"flask {flow}, floor on the store's transport and no echo"
      for flow in ("create", "read-only", "modify")),
]
LATENCY_SCENARIOS = [
    f"{name} @ +{ms} ms" for ms in (2, 10)
    for name in [*(f"{op} {size}" for size in ("1 KiB", "64 KiB")
                   for op in ("new+save", "get", "modify+save", "refresh")),
                 "overflow new+save 1 MiB", "overflow get 1 MiB", "overflow modify+save 1 MiB",
                 "flask create", "flask read-only", "flask modify"]
]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    return run(Options(quick=True, out=out, sweeper_sessions=200)), out


def test_quick_run_writes_markdown_and_json(quick: tuple[dict[str, Any], Path]) -> None:
    results, out = quick
    written = json.loads((out / "latest.json").read_text())
    assert written["meta"]["quick"] is True
    assert [c["scenario"] for c in written["comparisons"]] == SCENARIOS
    for c in written["comparisons"]:
        assert c["library"]["n"] == c["floor"]["n"] > 0
        # only the informative rows have no target: every other is held to one
        assert (c["target"] is None) == (", floor " in c["scenario"])
    assert [c["scenario"] for c in written["latency"]] == LATENCY_SCENARIOS
    for c in written["comparisons"]:
        if c["scenario"].startswith("flask") and c["target"] is not None:  # three ways
            assert c["flask_cookie_session"]["n"] == c["library"]["n"]
    assert all(v > 0 for v in written["async"]["cpu_ms_per_request"].values())
    assert written["async"]["tasks"] == 32
    markdown = (out / "latest.md").read_text()
    assert markdown.strip() == results["markdown"].strip()
    for heading in ("Library against the raw SDK floor", "Async store", "Flask flows, three ways",
                    "At a modelled network latency (a model, not Azure)",
                    "Storage calls per operation", "Sweeper"):
        assert heading in markdown
    assert written["sweeper"]["sweep"]["deleted"] == 100  # the other module really ran


def test_storage_calls_are_exactly_the_documented_ones(
        quick: tuple[dict[str, Any], Path]) -> None:
    results, _ = quick
    measured = {row["operation"]: row["calls"] for row in results["calls"]}
    assert measured == DOCUMENTED_CALLS


def test_the_cost_page_publishes_the_same_counts() -> None:
    text = (DOCS / "cost.md").read_text(encoding="utf-8")
    for operation, calls in DOCUMENTED_CALLS.items():
        row = re.search(rf"^\| {re.escape(operation)} \| (\d+) \|", text, re.MULTILINE)
        assert row is not None, f"docs/cost.md has no row for {operation!r}"
        assert int(row.group(1)) == calls, operation


def test_command_line_help_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--quick", "--out", "--sweeper-sessions", "--skip-sweeper", "--skip-latency",
                   "--only"):
        assert option in usage


def test_only_runs_the_named_families() -> None:
    results = run(Options(quick=True, out=None, only=("overflow",)))
    assert [c["scenario"] for c in results["comparisons"]] == [
        s for s in SCENARIOS if s.startswith("overflow")]
    assert results["async"] is None and results["calls"] == [] and results["latency"] == []
    assert results["meta"]["command"] == "python -m benchmarks.run --quick --only overflow"
