#!/usr/bin/env bash
# Idempotent set-up from a fresh clone: a .venv with the package and the extras a
# command needs, and the pinned Azurite emulator in node_modules. Needs python3
# (>= 3.10) and node/npm. Re-running it is cheap: each step is skipped when done.
#
#   scripts/bootstrap.sh demo   what scripts/demo.sh needs: the demo extra (Flask,
#                               Starlette, uvicorn, httpx) and Azurite
#   scripts/bootstrap.sh test   (the default) everything the gate needs: all extras
#                               and dev tools; scripts/test.sh adds checkov and the browser
#
# Every step says what it does and roughly how long it takes; pip shows its own
# progress (no --quiet), so a slow first run is never silent.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PROFILE="${1:-test}"
case "$PROFILE" in
    demo) EXTRAS="demo" ;;
    test) EXTRAS="dev,demo,flask,django,starlette,encryption,cachelib,flask-caching" ;;
    *) echo "bootstrap: unknown profile '$PROFILE' (demo or test)" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"
VENV=.venv
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { echo "bootstrap: $*"; }
started=$SECONDS
elapsed() { echo "$((SECONDS - started)) s"; }

# A venv whose interpreter no longer runs (the base Python moved) is rebuilt.
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c "" >/dev/null 2>&1; then
    step "$VENV is broken; recreating it"
    rm -rf -- "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    step "creating $VENV with $("$PYTHON" --version 2>&1) (~5 s)"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml (dependencies, extras, entry points), setup.py
# or the C check's source (tablesessions/_scan.c, built by the install) changed
# since the last successful install, the editable install went missing, or this
# profile needs extras the last install did not have. The stamp holds the hash of
# those files and the extras installed with it.
stamp="$VENV/.tablesessions-bootstrap"
hash="$(cat pyproject.toml setup.py tablesessions/_scan.c | sha256sum | cut -d' ' -f1)"
have_hash="" have_extras=""
if [ -f "$stamp" ]; then
    read -r have_hash have_extras <"$stamp" || true
fi
covered=yes
if [ "$have_hash" != "$hash" ]; then
    covered=no
else
    for extra in ${EXTRAS//,/ }; do
        case ",$have_extras," in *",$extra,"*) ;; *) covered=no ;; esac
    done
fi
if [ "$covered" = no ] || ! "$VENV/bin/python" -m pip show --quiet tablesessions >/dev/null 2>&1; then
    if [ "$PROFILE" = demo ]; then
        estimate="~30 s from the pip cache on an idle machine, ~2 min on a busy one"
    else
        estimate="~45 s from the pip cache on an idle machine, ~3 min on a busy one or without the cache"
    fi
    step "installing Python deps: tablesessions[$EXTRAS] into $VENV ($estimate)"
    # --progress-bar: pip shows one per download; it never runs silently for minutes.
    "$VENV/bin/python" -m pip install --progress-bar on --editable ".[$EXTRAS]"
    if [ "$have_hash" = "$hash" ] && [ -n "$have_extras" ]; then
        EXTRAS="$have_extras,$EXTRAS"  # still installed: a demo run after the gate keeps them
    fi
    echo "$hash $EXTRAS" >"$stamp"
    step "Python deps installed ($(elapsed) so far)"
fi
# The C check is optional (setup.py: a failed build is not an error); say which one runs.
if "$VENV/bin/python" -c "import tablesessions._scan" >/dev/null 2>&1; then
    step "the encoder's C check (tablesessions/_scan.c) is built"
else
    step "the encoder's C check was not built (no C compiler?): the Python check is used"
fi

if [ ! -x node_modules/.bin/azurite ]; then
    step "installing the Azurite emulator with npm (~20 s-1 min on a first run)"
    if [ -f package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    else
        npm install --no-audit --no-fund --loglevel=error
    fi
    [ -x node_modules/.bin/azurite ] || { echo "bootstrap: azurite missing after npm install" >&2; exit 1; }
    step "Azurite installed ($(elapsed) so far)"
fi
step "ready for '$PROFILE' ($(elapsed))"
