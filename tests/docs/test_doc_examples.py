"""Every ```python block in docs/*.md and README.md runs, against a live Azurite.

The convention (see docs/index.md, "Code examples"):

* The blocks of one page run in order in one namespace, as a reader would type
  them, so a later block may use what an earlier one defined.
* Each page's namespace starts with ``conn_str`` (also ``CONNECTION_STRING``): a
  connection string to the test run's Azurite; ``store``: a sync
  ``tablesessions.SessionStore`` on a fresh table and container, storage created;
  and ``async_store``: a ``tablesessions.aio.SessionStore`` on the same storage.
* A block may use ``await`` at top level, as in an async REPL: it runs on the
  page's event loop (the one ``async_store`` lives on). A block may also call
  ``asyncio.run(...)`` itself.
* The environment has ``TABLESESSIONS_CONNECTION_STRING`` set to the same string,
  and the working directory is a fresh temporary one.
* A block that cannot run here (it needs a real Azure account, a credential, a
  server that blocks) has ``<!-- no-run: the reason -->`` on the line right above
  its fence. The reason is mandatory.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tablesessions
import tablesessions.aio
from tablesessions.testing import AzuriteServer, unique_name

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [p for p in [ROOT / "README.md"] if p.exists()]
FENCE_OPEN = re.compile(r"^```+\s*(?P<lang>[\w+-]*)")
NO_RUN = re.compile(r"^<!--\s*no-run:(?P<reason>.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    code: str
    no_run: str | None  # the reason given, "" when the marker has none, None: runs

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The page's python blocks, with any no-run marker right above each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE_OPEN.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = lines[i][: len(lines[i]) - len(lines[i].lstrip("`"))]
        end = i + 1
        while end < len(lines) and not lines[end].startswith(fence):
            end += 1
        if opening["lang"] in ("python", "py"):
            above = lines[i - 1].strip() if i > 0 else ""
            marker = NO_RUN.match(above)
            found.append(Block(page, i + 1, "\n".join(lines[i + 1:end]) + "\n",
                               marker["reason"].strip() if marker else None))
        i = end + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks_of(page)]
RUNNABLE_PAGES = [page for page in PAGES if any(b.no_run is None for b in blocks_of(page))]


def test_the_docs_have_examples() -> None:
    assert PAGES, "no docs found"
    assert any(b.no_run is None for b in ALL_BLOCKS)


def test_every_skipped_block_says_why() -> None:
    unexplained = [b.where for b in ALL_BLOCKS if b.no_run == ""]
    assert not unexplained, f"<!-- no-run: --> without a reason at {unexplained}"


def test_no_run_markers_sit_on_python_blocks() -> None:
    """A marker followed by anything but a python fence is a typo that runs nothing."""
    misplaced = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            if NO_RUN.match(line.strip()):
                following = lines[n + 1] if n + 1 < len(lines) else ""
                if not re.match(r"^```+\s*(python|py)\b", following):
                    misplaced.append(f"{page.relative_to(ROOT)}:{n + 1}")
    assert not misplaced, f"no-run markers not right above a python block: {misplaced}"


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=lambda p: p.name)
def test_page_examples_run(page: Path, azurite: AzuriteServer, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    conn = azurite.connection_string
    monkeypatch.setenv("TABLESESSIONS_CONNECTION_STRING", conn)
    monkeypatch.chdir(tmp_path)
    table, container = unique_name("docs"), unique_name("docs")
    store = tablesessions.SessionStore.from_connection_string(
        conn, table_name=table, container_name=container)
    store.create_storage()
    loop = asyncio.new_event_loop()
    async_store = tablesessions.aio.SessionStore.from_connection_string(
        conn, table_name=table, container_name=container)
    # A real module, so that code which looks itself up (dataclasses, pickling,
    # typing.get_type_hints) works as it would in a file.
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    namespace.update(conn_str=conn, CONNECTION_STRING=conn, store=store, async_store=async_store)
    try:
        for block in blocks_of(page):
            if block.no_run is not None:
                continue
            # Padding to the block's line makes tracebacks point into the page.
            code = compile("\n" * block.line + block.code, block.where, "exec",
                           flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            try:
                if code.co_flags & inspect.CO_COROUTINE:
                    loop.run_until_complete(eval(code, namespace))
                else:
                    exec(code, namespace)
            except Exception as exc:
                raise AssertionError(f"the example at {block.where} failed: "
                                     f"{type(exc).__name__}: {exc}") from exc
    finally:
        store.close()
        loop.run_until_complete(async_store.close())
        loop.close()
