"""Faults through the real proxy: one retry layer, and the 20%-fault model run.

The model run's figures are printed (``pytest -s``) and are what
``docs/reliability.md`` reports; ``benchmarks/reliability.py`` runs the same
scenario standalone.
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import AzureError

from tablesessions import RetryPolicy
from tablesessions.testing import AzuriteServer, Fault, FaultProxyPair
from tests.budgets import EXHAUSTIVE
from tests.conftest import Face, MakeStore
from tests.reliability.scenario import Figures, run_both_faces

#: 2,000 per face in CI (the figures docs/reliability.md reports); 500 in the everyday
#: gate, still enough for the 16-24% fault-share bound to hold (tests/budgets.py).
OPERATIONS = 2000 if EXHAUSTIVE else 500


def _check(figures: Figures) -> None:
    face = figures.face
    assert figures.operations >= OPERATIONS, face
    assert figures.mismatches == [], f"{face}: state differs from the model"
    assert figures.lost_writes == 0, face
    assert (figures.orphan_blobs, figures.missing_blobs) == (0, 0), face
    # The proxies really injected ~20% faults of every kind, and they were retried.
    share = figures.faults_injected / figures.requests
    assert 0.16 <= share <= 0.24, f"{face}: {share:.1%} of requests faulted"
    assert set(figures.faults) == {kind.value for kind in Fault}, face
    assert figures.retries > 0, face
    assert figures.acknowledged_writes > OPERATIONS // 4, face


@pytest.mark.slow
async def test_twenty_percent_faults_lose_nothing(azurite: AzuriteServer) -> None:
    """``OPERATIONS`` operations per face, 20% of requests faulted: no error escapes (the
    scenario raises if one does), every acknowledged write is there, and storage
    equals the model exactly."""
    results = await run_both_faces(azurite, operations=OPERATIONS)
    for figures in results:
        print(f"\n{figures.markdown()}")
    for figures in results:
        _check(figures)


# -- one retry layer -----------------------------------------------------------
# A fault on one request must be seen, and retried, by tenacity alone: with
# max_attempts=1 the operation fails after exactly one request; with 2, it
# succeeds after exactly two. The SDKs' retries are off (retry_total=0); these
# tests also catch retries below the SDK, in the HTTP transport.

ONE_FAULT_KINDS = [Fault.BUSY_503, Fault.ERROR_500, Fault.THROTTLE_429, Fault.TIMEOUT_408,
                   Fault.RESET]


async def _stored_session(make_store: MakeStore, fault_proxy: FaultProxyPair,
                          attempts: int) -> tuple[Face, str]:
    clean = await make_store()
    session = clean.new()
    session["n"] = 1
    await clean.save(session)
    proxied = await make_store(fault_proxy.connection_string,
                               retry=RetryPolicy(max_attempts=attempts))
    fault_proxy.reset_stats()
    return proxied, session.id


@pytest.mark.parametrize("kind", ONE_FAULT_KINDS, ids=lambda k: k.value)
async def test_one_fault_one_attempt_fails_after_one_request(
    make_store: MakeStore, fault_proxy: FaultProxyPair, kind: Fault
) -> None:
    proxied, sid = await _stored_session(make_store, fault_proxy, attempts=1)
    fault_proxy.table.fail_next(kind, methods={"GET"})
    with pytest.raises(AzureError):
        await proxied.get(sid)
    assert fault_proxy.table.stats.seen == 1, "a retry happened below tenacity"


@pytest.mark.parametrize("kind", ONE_FAULT_KINDS, ids=lambda k: k.value)
async def test_one_fault_two_attempts_succeed_after_two_requests(
    make_store: MakeStore, fault_proxy: FaultProxyPair, kind: Fault
) -> None:
    proxied, sid = await _stored_session(make_store, fault_proxy, attempts=2)
    fault_proxy.table.fail_next(kind, methods={"GET"})
    session = await proxied.get(sid)
    assert session is not None and dict(session) == {"n": 1}
    assert fault_proxy.table.stats.seen == 2


async def test_a_dropped_update_with_one_attempt_is_reported_not_retried(
    make_store: MakeStore, fault_proxy: FaultProxyPair
) -> None:
    """With no retries allowed, an ambiguous update must surface as an error: the
    caller was promised one attempt. (It did land: the next read shows it.)"""
    proxied, sid = await _stored_session(make_store, fault_proxy, attempts=1)
    session = await proxied.get(sid)
    assert session is not None
    session["n"] = 2
    fault_proxy.reset_stats()
    fault_proxy.table.fail_next(Fault.DROP_RESPONSE, methods={"PUT"})
    with pytest.raises(AzureError):
        await proxied.save(session)
    assert fault_proxy.table.stats.seen == 1, "the update was re-sent below tenacity"
