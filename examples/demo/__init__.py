"""The multi-instance demo: one session shared by a Flask and a Starlette instance.

``scripts/demo.sh`` (or ``python -m examples.demo``) starts a private Azurite,
runs instance A (Flask, sync store) and instance B (Starlette, async store) on
free loopback ports against one table, and drives them with a scripted client
that hops between them: login, a counter, a 2 MB upload that overflows to a
blob, logout, then idle expiry and a sweep. ``--serve`` keeps them running for
a browser instead.
"""
