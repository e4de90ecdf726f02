#!/usr/bin/env bash
# The full gate: set-up, lint, type-check, tests. Extra arguments go to pytest.
#
# pytest runs on two worker processes (pytest-xdist, one Azurite each; whole test
# files per worker, so module fixtures and in-file order hold) and prints one line
# per test as it finishes. TABLESESSIONS_TEST_WORKERS=1 runs it serially.
# Property-based suites run a tenth of their exhaustive budgets unless CI=true or
# TABLESESSIONS_EXHAUSTIVE=1 (tests/budgets.py). pytest's exit code 5 ("no tests
# ran") fails the gate like any other non-zero code.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
since() { echo "$((SECONDS - started)) s"; }

# checkov's venv (tests/infra only) builds in the background while the rest is set
# up and checked: on a first run it is the longest pip install.
infra_log="$(mktemp)"
echo "test: building the checkov venv for the Bicep tests in the background" \
    "(~1-2 min on a first run, instant after)"
scripts/bootstrap-infra.sh >"$infra_log" 2>&1 &
infra_pid=$!
# A failing step below must not leave it running.
trap '[ -z "${infra_pid:-}" ] || kill "$infra_pid" 2>/dev/null || true' EXIT

scripts/bootstrap.sh test
scripts/install-browser.sh
echo "test: ruff (~5 s) [$(since)]"
.venv/bin/ruff check .
echo "test: mypy --strict (~1-2 min cold, ~10 s with its cache) [$(since)]"
.venv/bin/mypy

infra_status=0
wait "$infra_pid" || infra_status=$?
infra_pid=""
if [ "$infra_status" != 0 ]; then
    cat "$infra_log" >&2
    echo "test: building the checkov venv failed" >&2
    exit 1
fi
sed 's/^/  /' "$infra_log"
rm -f "$infra_log"

workers="${TABLESESSIONS_TEST_WORKERS:-2}"
echo "test: pytest on $workers worker(s) (~2 min on an idle 2-core machine, ~4 min on a busy one) [$(since)]"
status=0
if [ "$workers" = 1 ]; then
    .venv/bin/python -m pytest -v --durations=15 "$@" || status=$?
else
    .venv/bin/python -m pytest -n "$workers" --dist loadfile -v --durations=15 "$@" \
        || status=$?
fi
if [ "$status" = 5 ]; then
    echo "test: pytest collected no tests (exit 5): that is a failure" >&2
fi
echo "test: gate finished with exit $status after $(since)"
exit "$status"
