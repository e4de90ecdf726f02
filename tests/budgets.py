"""How many generated cases the property-based suites run.

The everyday gate (``scripts/test.sh`` on a developer's machine) runs a tenth of
each exhaustive budget, so it stays under ten minutes on two cores. CI runs the
full budgets: ``CI=true`` (set by CI) or ``TABLESESSIONS_EXHAUSTIVE=1`` turn them
on, and ``TABLESESSIONS_EXHAUSTIVE=0`` turns them off again.
"""

from __future__ import annotations

import os

#: The share of each budget the everyday gate runs.
GATE_SHARE = 10


def _flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


#: True when the full (exhaustive) budgets run.
EXHAUSTIVE: bool = next((v for v in (_flag("TABLESESSIONS_EXHAUSTIVE"), _flag("CI"))
                         if v is not None), False)


def cases(exhaustive: int) -> int:
    """The number of cases to run for a property whose exhaustive budget is ``exhaustive``."""
    return exhaustive if EXHAUSTIVE else max(10, exhaustive // GATE_SHARE)
