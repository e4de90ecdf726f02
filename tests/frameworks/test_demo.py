"""The README's demo, end to end: Azurite, a Flask and a Starlette instance, the script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def transcript() -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(  # the demo starts and stops its own Azurite
        [sys.executable, "-m", "examples.demo"], cwd=REPO_ROOT, env=env, capture_output=True,
        text=True, timeout=300, check=False)


def test_the_demo_exits_zero(transcript: subprocess.CompletedProcess[str]) -> None:
    assert transcript.returncode == 0, transcript.stdout + transcript.stderr
    assert "All steps behaved as expected. Stopped: instance A, instance B, Azurite." \
        in transcript.stdout


def test_the_transcript_tells_the_story(transcript: subprocess.CompletedProcess[str]) -> None:
    out = transcript.stdout
    assert re.search(r"instance A\s+Flask\s+http://127\.0\.0\.1:\d+", out)
    assert re.search(r"instance B\s+Starlette\s+http://127\.0\.0\.1:\d+", out)
    # Login regenerates the id, and the old one is dead.
    assert re.search(r"POST /login user=alice\s+-> alice, count 1\n\s+Set-Cookie: "
                     r"session=sid#\w{8} \(was sid#\w{8}\); (?:Max-Age=\d+; )?Path=/; HttpOnly; "
                     r"SameSite=Lax", out)
    assert "the pre-login cookie now opens nothing" in out
    # The counter survives every hop, alternating instances.
    hops = re.findall(r"  ([AB]) \w+\s+POST /count\s+-> alice, count (\d)", out)
    assert hops == [("B", "2"), ("A", "3"), ("B", "4"), ("A", "5")]
    # The upload overflows to a blob, is read back elsewhere, and goes at logout.
    assert "-> alice, count 5, upload 2,000,000 bytes" in out
    assert re.search(r"blob container: demo/\w+\.\.\. \(2,0\d\d,\d{3} bytes\)", out)
    assert "instance A read the session back through the blob" in out
    assert "Set-Cookie clears the cookie (Max-Age=0)" in out
    assert "blob container: empty" in out
    # Expiry, then the sweep.
    assert "expired anyway: every read checks the deadlines" in out
    assert re.search(r"store\.sweep\(\): scanned=\d+ deleted=[1-9]\d* .*errors=0 "
                     r"complete=True", out)
    assert "table: 0 session rows" in out


def test_demo_script_runs_bootstrap_then_the_demo() -> None:
    script = (REPO_ROOT / "scripts" / "demo.sh").read_text()
    assert os.access(REPO_ROOT / "scripts" / "demo.sh", os.X_OK)
    assert script.index("scripts/bootstrap.sh") < script.index(
        'exec .venv/bin/python -m examples.demo "$@"')
    subprocess.run(["bash", "-n", str(REPO_ROOT / "scripts" / "demo.sh")], check=True)
