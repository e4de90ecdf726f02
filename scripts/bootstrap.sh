#!/usr/bin/env bash
# Idempotent set-up from a fresh clone: a .venv with the package and its dev
# extras, and the pinned Azurite emulator in node_modules. Needs python3 (>= 3.10)
# and node/npm. Re-running it is cheap: each step is skipped when already done.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
EXTRAS="dev,flask,django,starlette,encryption"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# A venv whose interpreter no longer runs (the base Python moved) is rebuilt.
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c "" >/dev/null 2>&1; then
    echo "bootstrap: $VENV is broken; recreating it"
    rm -rf -- "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml (dependencies, extras, entry points) changed
# since the last successful install, or the editable install went missing.
stamp="$VENV/.tablesessions-bootstrap"
want="$(sha256sum <pyproject.toml | cut -d' ' -f1) $EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
    || ! "$VENV/bin/python" -m pip show --quiet tablesessions >/dev/null 2>&1; then
    echo "bootstrap: installing tablesessions[$EXTRAS] into $VENV"
    "$VENV/bin/python" -m pip install --quiet --editable ".[$EXTRAS]"
    echo "$want" >"$stamp"
fi

# checkov lives in its own venv: its pinned dependencies clash with ours.
scripts/bootstrap-infra.sh

if [ ! -x node_modules/.bin/azurite ]; then
    echo "bootstrap: installing Azurite (npm)"
    if [ -f package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    else
        npm install --no-audit --no-fund --loglevel=error
    fi
    [ -x node_modules/.bin/azurite ] || { echo "bootstrap: azurite missing after npm install" >&2; exit 1; }
fi
