"""``python -m examples.demo``: see :mod:`examples.demo.run`."""

from __future__ import annotations

from examples.demo.run import main

raise SystemExit(main())
