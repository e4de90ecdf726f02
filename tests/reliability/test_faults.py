"""Faults through the real proxy: one retry layer, and the 20%-fault model run.

The model run's figures are printed (``pytest -s``) and are what
``docs/reliability.md`` reports; ``benchmarks/reliability.py`` runs the same
scenario standalone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from azure.core.exceptions import AzureError

from tablesessions import RetryPolicy
from tablesessions.testing import AzuriteServer, Fault, FaultProxyPair
from tests.budgets import EXHAUSTIVE
from tests.conftest import Face, FakeClock, MakeStore
from tests.reliability.scenario import FAULT_KINDS, Figures, run_both_faces

#: 2,000 per face in CI (the figures docs/reliability.md reports); 500 in the everyday
#: gate, still enough for the 16-24% fault-share bound to hold (tests/budgets.py).
OPERATIONS = 2000 if EXHAUSTIVE else 500


def _check(figures: Figures) -> None:
    """Issue 14's targets: <= 0.5% of operations surface an error, no acknowledged
    write is lost, p99 within the deadline."""
    face = figures.face
    assert figures.operations >= OPERATIONS, face
    assert figures.surfaced <= 0.005 * figures.operations, f"{face}: {figures.errors}"
    assert figures.mismatches == [], f"{face}: state differs from the model"
    assert figures.lost_writes == 0, face
    assert figures.latency_ms(0.99) <= 1000 * figures.deadline, face
    # A failed write may leave its new blob behind (the sweeper's to remove); no
    # row may point at a missing one.
    assert figures.missing_blobs == 0, face
    assert figures.orphan_blobs <= 2 * figures.surfaced, face
    # The proxies really injected ~20% faults of every kind of the mix, and they
    # were retried.
    share = figures.faults_injected / figures.requests
    assert 0.16 <= share <= 0.24, f"{face}: {share:.1%} of requests faulted"
    assert set(figures.faults) == {Fault(kind).value for kind in FAULT_KINDS}, face
    assert figures.retries > 0, face
    assert figures.acknowledged_writes > OPERATIONS // 4, face


@pytest.mark.slow
async def test_twenty_percent_faults_lose_nothing(azurite: AzuriteServer) -> None:
    """2,000+ operations per face under the default request policy, 20% of
    requests faulted with issue 14's mix (resets, 503s, 0.2-3 s latency, held
    answers, half-open connections): at most 0.5% surface an error, every
    acknowledged write is there, storage equals the model, p99 within the
    deadline. About 7.5 minutes (the hung requests wait out their timeouts)."""
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


# -- hung connections (issue 14, item 2) -----------------------------------------
# With the defaults an app gets (RetryPolicy(): 4 attempts within 2 s; read_timeout
# 5 s), a held answer or a half-open connection on the first attempt must be
# abandoned early enough for a retry on a fresh connection to succeed, within the
# deadline. Before per-attempt timeouts came from the deadline, the first attempt
# waited min(5 s, 2 s) and the operation failed with ServiceResponseTimeoutError.

HUNG = [Fault.HOLD, Fault.HALF_OPEN]
DEADLINE = RetryPolicy().deadline


@pytest.mark.parametrize("op", ["get", "save_update", "save_new"])
@pytest.mark.parametrize("kind", HUNG, ids=lambda k: k.value)
async def test_a_hung_first_attempt_is_retried_within_the_deadline(
    make_store: MakeStore, fault_proxy: FaultProxyPair, kind: Fault, op: str
) -> None:
    clean = await make_store()
    stored = clean.new()
    stored["n"] = 1
    await clean.save(stored)
    proxied = await make_store(fault_proxy.connection_string)  # the library's defaults
    assert proxied.config.read_timeout > DEADLINE  # so the share of the deadline is what acts
    loaded = await proxied.get(stored.id)
    assert loaded is not None
    fault_proxy.configure(hold=30.0)  # far past the deadline
    method = {"get": "GET", "save_update": "PUT", "save_new": "POST"}[op]
    fault_proxy.table.fail_next(kind, methods={method})
    fault_proxy.reset_stats()

    started = time.monotonic()
    if op == "get":
        result = await proxied.get(stored.id)
        assert result is not None and dict(result) == {"n": 1}
    elif op == "save_update":
        loaded["n"] = 2
        await proxied.save(loaded)
    else:
        fresh = proxied.new()
        fresh["n"] = 3
        await proxied.save(fresh)
    elapsed = time.monotonic() - started

    assert elapsed < DEADLINE, f"{op} took {elapsed:.2f} s"
    assert fault_proxy.table.stats.faults == {kind: 1}
    assert fault_proxy.table.stats.seen >= 2, "the hung attempt was not retried"
    if op == "save_update":
        after = await clean.get(stored.id)
        assert after is not None and dict(after) == {"n": 2}
        # A held update landed before its answer was lost: the retry met it (412) and
        # recognised it as its own (token); the session's next save is one replace.
        fault_proxy.reset_stats()
        loaded["n"] = 4
        await proxied.save(loaded)
        assert fault_proxy.table.stats.seen == 1
    if op == "save_new":
        after = await clean.get(fresh.id)
        assert after is not None and dict(after) == {"n": 3}


async def test_a_late_refresh_never_sets_the_expiry_back(
    make_store: MakeStore, fault_proxy: FaultProxyPair, clock: FakeClock
) -> None:
    """Found by the 20%-fault run with 0.2-3 s latency: a refresh whose first attempt
    is delayed past its timeout is retried and acknowledged; the next save writes a
    later expiry; then the delayed first attempt reaches the service. It must not
    set the expiry back (data is never affected: a refresh writes one column)."""
    clean = await make_store()
    proxied = await make_store(fault_proxy.connection_string)
    session = proxied.new()
    session["n"] = 1
    await proxied.save(session)
    clock.advance(dt.timedelta(minutes=15))  # past the refresh threshold (20 min idle)
    fault_proxy.configure(delay=1.6)  # past the first attempt's 1 s, within the deadline
    fault_proxy.table.fail_next(Fault.DELAY, methods={"PATCH", "MERGE"})
    await proxied.save(session)  # the refresh: attempt 1 delayed, attempt 2 lands
    clock.advance(dt.timedelta(minutes=1))
    session["n"] = 2
    await proxied.save(session)  # a later expiry
    await asyncio.sleep(1.5)  # the delayed attempt reaches Azurite

    stored = await clean.get(session.id)
    assert stored is not None and dict(stored) == {"n": 2}
    assert stored.expires_at == session.expires_at, "a late refresh set the expiry back"
