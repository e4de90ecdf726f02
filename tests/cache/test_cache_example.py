"""The two-instance cache example runs and tells its story (examples/cache_rate_limit)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_two_instances_share_one_limit_and_one_fragment() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(  # the example starts and stops its own Azurite
        [sys.executable, "-m", "examples.cache_rate_limit"], cwd=REPO_ROOT, env=env,
        capture_output=True, text=True, timeout=300, check=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "instance A: page fragment: rendered it and cached it" in out
    assert "instance B: page fragment: read it from the cache (not rendered)" in out
    passed = [int(n) for n in re.findall(r"instance [AB]: (\d+) of 30 requests passed", out)]
    assert len(passed) == 2 and sum(passed) == 40
    assert "together: 40 passed, 20 refused; the shared counter is at 60" in out
    assert out.rstrip().endswith("Both instances shared one limit and one fragment.")
