"""The set-up scripts: apt locks are waited for, not fatal; CI runs the README's gate."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_BROWSER = REPO_ROOT / "scripts" / "install-browser.sh"

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="install-browser.sh takes its no-root path otherwise")


def fake_apt(tmp_path: Path, locked_calls: int) -> tuple[Path, Path]:
    """An apt-get that reports the dpkg lock held for its first ``locked_calls`` calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    script = bin_dir / "apt-get"
    script.write_text(f"""#!/usr/bin/env bash
echo "$*" >>{calls}
n=$(wc -l <{calls})
if [ "$n" -le {locked_calls} ]; then
    echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42" >&2
    exit 100
fi
exit 0
""")
    script.chmod(0o755)
    return bin_dir, calls


def run(tmp_path: Path, bin_dir: Path, wait: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "CHROMIUM_BIN": str(tmp_path / "no-chromium"),
           "CHROMEDRIVER_BIN": str(tmp_path / "no-chromedriver"),
           "INSTALL_BROWSER_LOCK_WAIT": str(wait), "INSTALL_BROWSER_POLL": "0.2"}
    return subprocess.run(["bash", str(INSTALL_BROWSER)], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@needs_root
def test_a_held_apt_lock_is_waited_for_then_the_install_runs(tmp_path: Path) -> None:
    bin_dir, calls = fake_apt(tmp_path, locked_calls=2)
    done = run(tmp_path, bin_dir, wait=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("apt is locked by another process; waiting") == 1
    lines = calls.read_text().splitlines()
    assert len(lines) == 4 and all("DPkg::Lock::Timeout=" in line for line in lines)
    assert "update" in lines[2] and "install" in lines[3] and "chromium-driver" in lines[3]
    assert "install-browser: done" in done.stdout


@needs_root
def test_apt_locked_for_good_carries_on_and_says_the_test_will_skip(tmp_path: Path) -> None:
    bin_dir, calls = fake_apt(tmp_path, locked_calls=10_000)
    done = run(tmp_path, bin_dir, wait=1)
    assert done.returncode == 0  # not 100: the gate goes on
    assert "the browser test will skip" in done.stderr
    assert "stayed locked" in done.stderr
    assert len(calls.read_text().splitlines()) > 1  # it retried within the bound


def test_ci_runs_exactly_the_readmes_gate() -> None:
    ci = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == 'exec scripts/test.sh "$@"'
    readme = (REPO_ROOT / "README.md").read_text()
    assert "scripts/test.sh     # the whole gate" in readme
    gate = (REPO_ROOT / "scripts" / "test.sh").read_text()
    # Exit 5 (no tests ran) is not swallowed: the script exits with pytest's status.
    assert 'exit "$status"' in gate and "|| status=$?" in gate
