# The C check of tablesessions/_scan.c (see its comments and serialization._fast).
from typing import Any

def kinds(value: Any, allowed: tuple[type, ...], max_depth: int, floats: bool,
          /) -> set[type] | None: ...
