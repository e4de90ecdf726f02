#!/usr/bin/env bash
# The demo from a fresh clone: set up (.venv + Azurite), then run two instances
# of an example app (Flask and Starlette) on one session store and drive them
# with a scripted client. `scripts/demo.sh --serve` keeps them up for a browser.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/bootstrap.sh
exec .venv/bin/python -m examples.demo "$@"
