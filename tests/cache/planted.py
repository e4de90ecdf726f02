"""A planted pickle and a spy on ``pickle.loads``, shared by the suites that
prove a pickle that fails verification is never loaded (signed_pickle, cachelib).

The fixtures that go with them (``loads_calls``, and clearing ``RAN`` before
every test) are in tests/cache/conftest.py."""

from __future__ import annotations

from typing import Any

#: What a pickle payload ran when it was loaded: the proof that loading runs code.
RAN: list[str] = []


def _record(marker: str) -> str:
    RAN.append(marker)
    return marker


class Payload:
    """Loading its pickle calls _record: a stand-in for an attacker's os.system."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _record, ("payload ran",)
