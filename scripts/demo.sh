#!/usr/bin/env bash
# The demo from a fresh clone: set up what the demo uses (.venv with the demo extra,
# and Azurite; not checkov, not the browser: those are the gate's), then run two
# instances of an example app (Flask and Starlette) on one session store and drive
# them with a scripted client. `scripts/demo.sh --serve` keeps them up for a browser.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh demo
echo "demo: starting Azurite and two app instances (~5-10 s), then the scripted client"
exec .venv/bin/python -m examples.demo "$@"
