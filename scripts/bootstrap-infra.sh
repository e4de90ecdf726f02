#!/usr/bin/env bash
# Create (or refresh) .venv-infra: the offline infrastructure validators used by
# tests/infra/test_bicep.py.
#
#   * checkov scans infra/*.bicep for policy violations (--framework bicep --skip-download).
#   * pycep-parser is the Bicep parser checkov itself uses; the tests also import it.
#
# checkov lives in its own venv because its large, tightly pinned dependency tree (boto3,
# pydantic, networkx, ...) must not constrain the project's own dependencies.
# No Bicep compiler, Terraform or ARM schema validation can run on these machines, so these
# two tools are the whole offline gate for infra/ (see docs/deploy.md).
#
# Idempotent: does nothing when the pinned versions are already installed.
# Environment: PYTHON (interpreter used to create the venv, default python3),
#              INFRA_VENV (venv location, default <repo>/.venv-infra).
set -euo pipefail

CHECKOV_VERSION="3.3.30"
# checkov 3.3.30 requires exactly pycep-parser==0.5.1; pinning it here too makes a change of
# either pin an explicit, reviewed edit. Keep it equal to the dev extra in pyproject.toml.
PYCEP_VERSION="0.5.1"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${INFRA_VENV:-$repo_root/.venv-infra}"
python="${PYTHON:-python3}"

installed_version() {
    # Prints the installed version of distribution $1 in the venv, or nothing.
    "$venv/bin/python" - "$1" <<'PY' 2>/dev/null || true
import importlib.metadata
import sys

try:
    print(importlib.metadata.version(sys.argv[1]))
except importlib.metadata.PackageNotFoundError:
    pass
PY
}

if [[ -x "$venv/bin/checkov" ]] \
    && [[ "$(installed_version checkov)" == "$CHECKOV_VERSION" ]] \
    && [[ "$(installed_version pycep-parser)" == "$PYCEP_VERSION" ]]; then
    echo "bootstrap-infra: $venv already has checkov $CHECKOV_VERSION and pycep-parser $PYCEP_VERSION"
    exit 0
fi

# A venv whose interpreter no longer runs (e.g. the base Python moved) is rebuilt.
if [[ -d "$venv" ]] && ! "$venv/bin/python" -c "" >/dev/null 2>&1; then
    echo "bootstrap-infra: $venv is broken; recreating it"
    rm -rf -- "$venv"
fi
if [[ ! -x "$venv/bin/python" ]]; then
    echo "bootstrap-infra: creating $venv with $python"
    "$python" -m venv "$venv"
fi

echo "bootstrap-infra: installing checkov==$CHECKOV_VERSION pycep-parser==$PYCEP_VERSION (~1-2 min on a first run: a large, pinned dependency tree)"
"$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar on --upgrade pip
"$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar on \
    "checkov==$CHECKOV_VERSION" "pycep-parser==$PYCEP_VERSION"

# Fail here, not in the tests, if the install is not usable.
"$venv/bin/checkov" --version
"$venv/bin/python" -c "import pycep; pycep.BicepParser()"
echo "bootstrap-infra: done"
