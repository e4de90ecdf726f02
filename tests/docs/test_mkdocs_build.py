"""The documentation site builds with ``mkdocs build --strict``: a broken link, a
missing page or a page left out of the nav fails CI."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mkdocs_is_installed() -> None:
    # Fail, never skip: a CI machine without the docs toolchain must not pass silently.
    for module in ("mkdocs", "material"):
        assert importlib.util.find_spec(module) is not None, (
            f"{module} is missing: install mkdocs and mkdocs-material (the dev extra)")


def test_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"
    assert (tmp_path / "site" / "index.html").is_file()


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f": {page.name}" in config, f"docs/{page.name} is not in mkdocs.yml's nav"
