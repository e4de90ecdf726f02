"""``python -m tablesessions``: the same as the ``tablesessions`` command."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
