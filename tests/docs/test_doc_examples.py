"""Every code block in docs/*.md and README.md runs as written, or says it is a fragment.

The convention (see docs/index.md, "Code examples"):

* The ```python blocks of one page run in order in one namespace, as a reader would
  type them into one file, so a later block may use what an earlier one defined.
  Nothing else is defined for them: a block imports and builds what it uses.
* The one thing the test run provides is the environment a reader would set up:
  ``TABLESESSIONS_CONNECTION_STRING`` points at the test run's Azurite (a reader sets
  it to their storage account's), and the working directory is a fresh temporary one.
* No top-level ``await``: an async example runs itself with ``asyncio.run(...)``,
  as a script must.
* A block that cannot run here (it needs a real Azure account, a credential, a
  server that blocks, or it is a fragment of a larger example) has
  ``<!-- no-run: the reason -->`` on the line right above its fence. The reason is
  mandatory.
* Every fence names its language. Blocks in other languages (shell commands,
  Bicep, JSON, KQL, output) are not Python examples; the language is what marks them.
"""

from __future__ import annotations

import ast
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tablesessions.testing import AzuriteServer

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
    monkeypatch.setenv("TABLESESSIONS_CONNECTION_STRING", azurite.connection_string)
    for name in ("TABLESESSIONS_TABLE_ENDPOINT", "TABLESESSIONS_BLOB_ENDPOINT",
                 "TABLESESSIONS_TABLE_NAME", "TABLESESSIONS_CONTAINER_NAME",
                 "TABLESESSIONS_APP_NAME", "TABLESESSIONS_IDLE_TIMEOUT_SECONDS",
                 "TABLESESSIONS_ABSOLUTE_TIMEOUT_SECONDS", "TABLESESSIONS_ENCRYPTION_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    # A real module, so that code which looks itself up (dataclasses, pickling,
    # typing.get_type_hints) works as it would in a file.
    module = types.ModuleType(f"docs_{page.stem.replace('-', '_')}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace: dict[str, Any] = module.__dict__
    for block in blocks_of(page):
        if block.no_run is not None:
            continue
        # Padding to the block's line makes tracebacks point into the page.
        try:
            code = compile("\n" * block.line + block.code, block.where, "exec")
        except SyntaxError as exc:
            raise AssertionError(f"the example at {block.where} does not compile ({exc.msg}); "
                                 "an async example runs itself with asyncio.run(...)") from exc
        try:
            exec(code, namespace)
        except Exception as exc:
            raise AssertionError(f"the example at {block.where} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc


#: Fence languages that are not Python examples (the label marks them as such).
OTHER_LANGUAGES = frozenset({"bash", "console", "shell", "sh", "text", "json", "xml", "kusto",
                             "bicep", "toml", "ini", "yaml", "html", "http", "diff"})


def test_every_fence_names_its_language() -> None:
    """An unlabelled block could be Python that never runs; a new label must be added here."""
    unlabelled, unknown = [], []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            opening = FENCE_OPEN.match(lines[i])
            if not opening:
                i += 1
                continue
            fence = lines[i][: len(lines[i]) - len(lines[i].lstrip("`"))]
            where = f"{page.relative_to(ROOT)}:{i + 1}"
            lang = opening["lang"]
            if not lang:
                unlabelled.append(where)
            elif lang not in OTHER_LANGUAGES | {"python", "py"}:
                unknown.append(f"{where} ({lang})")
            i += 1
            while i < len(lines) and not lines[i].startswith(fence):
                i += 1
            i += 1
    assert not unlabelled, f"code blocks without a language: {unlabelled}"
    assert not unknown, f"unknown fence languages (python runs; add others here): {unknown}"


def test_no_example_relies_on_names_it_does_not_define() -> None:
    """The old convention pre-bound ``conn_str``, ``store`` and ``async_store``; a block
    that still uses one without defining it on its page would only fail at run time."""
    for page in RUNNABLE_PAGES:
        defined: set[str] = set()
        for block in blocks_of(page):
            if block.no_run is not None:
                continue
            tree = ast.parse(block.code)
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    defined.add(node.id)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defined.add(node.name)
                elif isinstance(node, ast.alias):
                    defined.add((node.asname or node.name).split(".")[0])
                elif isinstance(node, ast.arg):
                    defined.add(node.arg)
            used = {n.id for n in ast.walk(tree)
                    if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            stale = used & {"conn_str", "CONNECTION_STRING", "async_store", "store"} - defined
            assert not stale, f"{block.where} uses {sorted(stale)} without defining it"
