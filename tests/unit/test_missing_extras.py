"""Importing an integration without its framework names the extra to install (issue 17).

The interpreter is a fresh venv holding only the core install: tablesessions itself
and the closure of its core requirements (no extras), linked from this test run's
environment, so no download is needed and it takes a second or two.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[2]


def _core_closure() -> list[importlib.metadata.Distribution]:
    """tablesessions's core requirements (no extras), transitively, as installed here."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = [Requirement(r) for r in importlib.metadata.requires("tablesessions") or []]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", req.name).lower()
        if key in seen:
            continue
        try:
            dist = importlib.metadata.distribution(req.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional platform dependency not installed here
        seen[key] = dist
        todo += [Requirement(r) for r in dist.requires or []]
    return list(seen.values())


@pytest.fixture(scope="module")
def core_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv's interpreter that can import tablesessions and nothing of the extras."""
    root = tmp_path_factory.mktemp("corevenv")
    venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip())
    for dist in _core_closure():
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            target = site / top
            if (base / top).exists() and not target.exists():
                target.symlink_to(base / top)
    (site / "tablesessions-core.pth").write_text(str(REPO_ROOT) + "\n")  # the code itself
    return python


def test_the_core_venv_has_the_core_and_no_framework(core_python: Path) -> None:
    probe = ("import importlib.util as u, tablesessions, tablesessions.aio; "
             "print([m for m in ('django', 'flask', 'starlette', 'asgiref', 'anyio') "
             "if u.find_spec(m)])")
    done = subprocess.run([str(core_python), "-c", probe], capture_output=True, text=True,
                          timeout=120, cwd="/", env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("module", "extra"), [
    ("django", "django"), ("flask", "flask"), ("starlette", "starlette"),
    ("cachelib", "cachelib"), ("flask_caching", "flask-caching")])
def test_importing_an_integration_without_its_framework_names_the_extra(
        core_python: Path, module: str, extra: str) -> None:
    done = subprocess.run([str(core_python), "-c", f"import tablesessions.{module}"],
                          capture_output=True, text=True, timeout=120, cwd="/",
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: ")
    assert f'pip install "tablesessions[{extra}]"' in last
    assert last.split(': ', 1)[1].startswith(f"tablesessions.{module} needs ")
    assert "asgiref" not in last and "anyio" not in last


def test_the_check_passes_where_the_framework_is_installed() -> None:
    from tablesessions._extras import require

    require("flask", "flask", "json")  # installed: no error
    with pytest.raises(ModuleNotFoundError, match=r'pip install "tablesessions\[x\]"') as info:
        require("x", "no_such_module_xyz")
    assert info.value.name == "no_such_module_xyz"
