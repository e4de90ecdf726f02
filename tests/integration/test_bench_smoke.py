"""Smoke of the sweeper benchmark: a tiny run completes and its counts add up.

No timing assertions: wall times on a shared CI machine mean nothing here.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.bench_sweeper import FIXED_REQUESTS, markdown, run


def test_sweeper_benchmark_smoke(tmp_path: Path) -> None:
    output = tmp_path / "sweeper.json"
    figures = run(400, output=output)

    assert json.loads(output.read_text()) == figures
    assert figures["expired"] == 200
    assert figures["live_left"] == {"sweep": 200, "one_per_entity": 200}
    sweep, naive, bound = figures["sweep"], figures["one_per_entity"], figures["bound"]
    assert sweep["deleted"] == naive["deleted"] == 200
    assert sweep["report"]["complete"] is True and sweep["report"]["errors"] == 0
    # Every transaction is a scan page, a delete batch or one of the fixed requests.
    assert sweep["delete_batches"] == bound["per_partition_batches"]
    assert sweep["scan_pages"] >= 16
    renewals = sweep["other"] - FIXED_REQUESTS  # one per 15 s of sweeping
    assert 0 <= renewals <= sweep["lease_renewals_allowed"]
    assert sweep["transactions"] == sweep["scan_pages"] + sweep["delete_batches"] + sweep["other"]
    assert sweep["dry_run"]["would_delete"] == 200
    # a page per partition, the orphan listing and the user-index query
    assert sweep["dry_run"]["transactions"] == 16 + 1 + 1
    # a first run: the acquire effect is 3 requests (acquire, 404, create, acquire)
    assert sweep["transactions"] == sweep["effects_reported"] + 2
    assert bound["within_partitioned_bound"]
    assert naive["single_deletes"] == 200
    assert naive["transactions"] == naive["scan_pages"] + 200
    assert "store.sweep()" in markdown(figures)
