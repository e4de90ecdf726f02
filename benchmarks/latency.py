"""Library and floor at a modelled network latency: the same scenarios, both sides
through a loopback proxy that holds every request a fixed time before forwarding.

This is a **model, not Azure**: a fixed delay per request (2 ms, about an
in-region call; 10 ms, about a cross-region one), no bandwidth limit, no jitter,
no TLS, and the proxy (``tablesessions.testing.FaultProxy``, Python threads on
the same machine) adds its own forwarding cost to both sides alike. It shows how
the library's fixed client cost shrinks as a share when the network dominates;
it measures nothing about Azure itself.
"""

from __future__ import annotations

from .flask_flows import flask_scenarios
from .harness import Comparison
from .payloads import KIB, MIB
from .scenarios import Plan, Rig, inline_scenarios, overflow_scenarios

DELAYS_MS = (2, 10)


def plan_for(quick: bool) -> Plan:
    if quick:
        return Plan(small=2, large=2, overflow_1m=1, overflow_5m=1, warmup=1)
    return Plan(small=60, large=60, overflow_1m=20, overflow_5m=10, warmup=5)


def latency_scenarios(azurite: object, quick: bool) -> list[Comparison]:
    """Run the 1 KiB and 64 KiB scenarios, overflow 1 MiB and the Flask flows at
    each modelled delay; each scenario's name ends with its delay."""
    from tablesessions.testing import AzuriteServer, Fault, FaultPlan, FaultProxyPair

    assert isinstance(azurite, AzuriteServer)
    plan = plan_for(quick)
    results: list[Comparison] = []
    for ms in DELAYS_MS:
        delay = FaultPlan(rate=1.0, kinds={Fault.DELAY: 1.0}, delay=ms / 1000)
        with FaultProxyPair(azurite, plan=delay) as proxies, \
                Rig.open(proxies.connection_string) as rig:
            found: list[Comparison] = []
            for size in (KIB, 64 * KIB):
                found += inline_scenarios(rig, size, plan)
            found += overflow_scenarios(rig, MIB, plan)
            found += flask_scenarios(rig, plan.small, plan.warmup)
        for c in found:
            c.scenario = f"{c.scenario} @ +{ms} ms"
            c.target = None
        results += found
    return results
