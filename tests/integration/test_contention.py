"""Contention from 8 processes x 50 operations on ONE session, both faces (issue 14).

Runs ``benchmarks/contention.py``'s scenarios (the figures in
docs/concurrency.md come from the same code): read-modify-writes of distinct
keys (merge mode), a counter on one key through ``store.update``, and
whole-session writes in overwrite mode. Each must end in the exact final state
with no error surfaced to a caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest

from benchmarks import contention
from tablesessions.testing import AzuriteServer

WORKERS, TIMES = 8, 50
#: The request deadline these runs use. Under the default 2 s the target (exact,
#: 0 errors) is met on this shared 2-core machine while its load stays under
#: about 10, not reliably above (docs/concurrency.md, "Measured"), so a 2 s
#: assertion here would fail on other agents' load, not on ours.
DEADLINE = contention.TARGET_DEADLINE

pytestmark = pytest.mark.slow  # about 20-40 s per run on a loaded 2-core machine


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    with contention.pool(WORKERS) as executor:
        yield executor


@pytest.mark.parametrize("face", ["sync", "async"])
@pytest.mark.parametrize("scenario", contention.SCENARIOS)
def test_eight_processes_on_one_session_exact_and_no_errors(
        pool: ProcessPoolExecutor, azurite: AzuriteServer, storage_names: tuple[str, str],
        face: str, scenario: str) -> None:
    result = contention.run(pool, azurite.connection_string, storage_names, face, scenario,
                            WORKERS, TIMES, deadline=DEADLINE)
    assert result.errors == {}, result.row()
    assert result.exact, result.final
    assert len(result.latencies) == WORKERS * TIMES
