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
    assert re.search(r"POST /login user=alice\s+-> alice, count 1  \[[^]]+\]\n\s+Set-Cookie: "
                     r"session=sid#\w{8} \(was sid#\w{8}\); (?:Max-Age=\d+; )?Path=/; HttpOnly; "
                     r"SameSite=Lax", out)
    assert "the pre-login cookie now opens nothing" in out
    # The counter survives every hop, alternating instances.
    hops = re.findall(r"  ([AB]) \w+\s+POST /count\s+-> alice, count (\d)  \[(.+?)\]", out)
    # ... and each hop costs one read and one conditional write, as the docs say.
    assert hops == [("B", "2", "1 read + 1 write"), ("A", "3", "1 read + 1 write"),
                    ("B", "4", "1 read + 1 write"), ("A", "5", "1 read + 1 write")]
    # An anonymous first visit touches no storage.
    assert re.search(r"A Flask\s+GET  /state\s+-> anonymous, count 0  \[no storage call\]", out)
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
    assert script.index("scripts/bootstrap.sh demo") < script.index(
        'exec .venv/bin/python -m examples.demo "$@"')
    subprocess.run(["bash", "-n", str(REPO_ROOT / "scripts" / "demo.sh")], check=True)


def test_the_demo_set_up_installs_only_what_the_demo_uses() -> None:
    """checkov and the browser are the gate's (scripts/test.sh), not the demo's."""
    demo = (REPO_ROOT / "scripts" / "demo.sh").read_text()
    bootstrap = (REPO_ROOT / "scripts" / "bootstrap.sh").read_text()
    for script in (demo, bootstrap):
        assert "bootstrap-infra" not in script
        assert "install-browser" not in script
    assert 'demo) EXTRAS="demo"' in bootstrap
    gate = (REPO_ROOT / "scripts" / "test.sh").read_text()
    assert "scripts/bootstrap-infra.sh" in gate and "scripts/install-browser.sh" in gate
    # The demo extra holds what examples/demo imports beyond the core (tomllib is 3.11+).
    line = re.search(r"^demo = \[(.*)\]$", (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert line is not None
    names = set(re.findall(r'"([A-Za-z0-9_.-]+)', line[1]))
    assert names == {"flask", "starlette", "uvicorn", "httpx"}


def test_the_page_has_an_upload_control_and_says_who_served_it() -> None:
    from examples.demo.meter import Calls
    from examples.demo.page import render

    data = {"instance": "A", "framework": "Flask", "user": "alice", "count": 2,
            "upload_bytes": 0}
    page = render(data, None, calls=Calls(reads=1), previous=("POST /count", Calls(1, 1)),
                  pid=4242)
    assert re.search(r'<form method="post" action="/upload" enctype="multipart/form-data">'
                     r'\s*<input type="file" name="file"', page)
    assert "Served by instance <b id='served-by'>A</b> (Flask, pid 4242)" in page
    assert "<span id='calls'>1 read</span>" in page
    assert "POST /count</span>, made <span id='previous-calls'>1 read + 1 write</span>" in page


def test_uploads_from_a_form_a_button_and_the_script_are_read_alike() -> None:
    from examples.demo.page import GENERATED_UPLOAD, upload_bytes

    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + b"\x00\x01binary\r\n" + f"--{boundary}--\r\n".encode()
    assert upload_bytes(f"multipart/form-data; boundary={boundary}", body) == \
        b"\x00\x01binary"
    generated = upload_bytes("application/x-www-form-urlencoded",
                             f"generate={GENERATED_UPLOAD}".encode())
    assert len(generated) == GENERATED_UPLOAD
    assert upload_bytes(None, b"raw") == b"raw"
