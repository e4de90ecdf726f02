#!/usr/bin/env bash
# The full gate: set-up, lint, type-check, tests. Extra arguments go to pytest.
#
# pytest runs on two worker processes (pytest-xdist, one Azurite each; whole test
# files per worker, so module fixtures and in-file order hold) and prints one line
# per test as it finishes. Set TABLESESSIONS_TEST_WORKERS=1 (or pass -p no:xdist)
# for a serial run. pytest's exit code 5 ("no tests ran") fails the gate like any
# other non-zero code.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
scripts/bootstrap.sh test
echo "test: checkov venv for the Bicep tests (~1-2 min on a first run, instant after)"
scripts/bootstrap-infra.sh
scripts/install-browser.sh
echo "test: ruff (~5 s)"
.venv/bin/ruff check .
echo "test: mypy --strict (~1-2 min cold, ~10 s with its cache)"
.venv/bin/mypy
echo "test: pytest on ${TABLESESSIONS_TEST_WORKERS:-2} workers (~8 min on an idle 2-core machine)"
status=0
.venv/bin/python -m pytest -n "${TABLESESSIONS_TEST_WORKERS:-2}" --dist loadfile -v --durations=15 "$@" \
    || status=$?
if [ "$status" = 5 ]; then
    echo "test: pytest collected no tests (exit 5): that is a failure" >&2
fi
echo "test: gate finished with exit $status after $((SECONDS - started)) s"
exit "$status"
