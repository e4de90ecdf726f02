"""Offline validation of infra/: Bicep syntax, structure and policy.

No Bicep compiler, ARM what-if or Azure subscription is available to the project's CI, so
the deployable templates are checked three ways here:

1. every ``infra/**/*.bicep`` parses with pycep-parser (the parser checkov itself uses, pinned
   to the version checkov pins), which is a syntax gate;
2. structural assertions on the parsed dict pin the security settings the design relies on
   (no shared keys, TLS 1.2, private containers, managed identity roles, lifecycle backstop);
3. checkov scans the templates and must report no failed check, no undocumented skip and no
   parsing error (checkov exits 0 when a file fails to parse, so the JSON is checked).

The tools are installed by ``scripts/bootstrap-infra.sh`` (checkov, in ``.venv-infra``) and
the ``dev`` extra (pycep-parser). A missing tool FAILS these tests: CI installs everything.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"
MAIN_BICEP = INFRA_DIR / "main.bicep"
PARAMETERS_FILE = INFRA_DIR / "main.parameters.json"
BOOTSTRAP = "scripts/bootstrap-infra.sh"

TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-2cbc-4b55-b9bd-0d5b3e0b0f27"

# Every checkov check that infra/ may skip, with the reason. A skip needs BOTH a
# `// checkov:skip=ID:reason` comment inside the resource in the .bicep file and an entry
# here, so that adding one is a reviewed change in two places.
ALLOWED_CHECKOV_SKIPS: dict[str, str] = {
    "CKV_AZURE_35": "storage default network rule Allow: no VNet integration in this template",
    "CKV_AZURE_59": "storage public network access: no private endpoints without a VNet",
    "CKV_AZURE_206": "no geo-replication for short-lived session state (ZRS by default)",
    "CKV_AZURE_43": "storage name is an expression checkov cannot evaluate",
    "CKV_AZURE_225": "Flex Consumption zone redundancy is optional for a periodic sweeper",
    "CKV_AZURE_222": "zip deploy uses the app's public SCM endpoint; no HTTP functions",
    "CKV_AZURE_17": "client certificates guard HTTP only; timer-only app",
    "CKV_AZURE_212": "Flex Consumption has no fixed instance count",
    "CKV_AZURE_213": "health checks probe HTTP paths; timer-only app",
}

# App settings the sweeper (function_app.py + SessionStore.from_env) and the host need.
REQUIRED_APP_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "TABLESESSIONS_TABLE_ENDPOINT",
    "TABLESESSIONS_BLOB_ENDPOINT",
    "TABLESESSIONS_TABLE_NAME",
    "TABLESESSIONS_CONTAINER_NAME",
    "TABLESESSIONS_APP_NAME",
    "SWEEP_SCHEDULE",
}
# Flex Consumption rejects these (the runtime is set in functionAppConfig) and a key-based
# AzureWebJobsStorage / connection string would defeat allowSharedKeyAccess: false.
FORBIDDEN_APP_SETTINGS = {
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "AzureWebJobsStorage",
    "TABLESESSIONS_CONNECTION_STRING",
}

Json = dict[str, Any]


# --------------------------------------------------------------------------------------------
# pycep: parsing and helpers
# --------------------------------------------------------------------------------------------


def _bicep_files() -> list[Path]:
    return sorted(INFRA_DIR.rglob("*.bicep"))


def _parse(path: Path) -> Json:
    try:
        from pycep import BicepParser
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.fail(
            "pycep-parser is not importable in this environment "
            f"({exc}); install the project's dev extra (pycep-parser==0.5.1)",
            pytrace=False,
        )
    return cast(Json, BicepParser().parse(file_path=path))


@pytest.fixture(scope="module")
def template() -> Json:
    return _parse(MAIN_BICEP)


def _resources(template: Json, resource_type: str) -> dict[str, Json]:
    """Resources of one ARM type, by symbolic name (``existing`` references excluded)."""
    found = {
        name: cast(Json, res["config"])
        for name, res in template["resources"].items()
        if res["type"].lower() == resource_type.lower() and not res.get("existing")
    }
    assert found, f"main.bicep declares no {resource_type}"
    return found


def _single(template: Json, resource_type: str) -> tuple[str, Json]:
    found = _resources(template, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return next(iter(found.items()))


def _resolve(template: Json, value: Any) -> Any:
    """Follow a bare identifier to its variable's value (pycep keeps identifiers as str)."""
    variables = template.get("variables", {})
    seen: set[str] = set()
    while isinstance(value, str) and value in variables and value not in seen:
        seen.add(value)
        value = variables[value]["value"]
    return value


def _param_default(template: Json, name: str) -> Any:
    return template["parameters"][name].get("default")


def _walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_strings(item)


# --------------------------------------------------------------------------------------------
# Syntax gate
# --------------------------------------------------------------------------------------------


def test_infra_has_bicep_files() -> None:
    assert MAIN_BICEP in _bicep_files()


@pytest.mark.parametrize("path", _bicep_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_bicep_file_parses(path: Path) -> None:
    try:
        parsed = _parse(path)
    except Exception as exc:  # lark raises several unrelated exception types
        pytest.fail(
            f"{path.relative_to(REPO_ROOT)} does not parse with pycep-parser: {exc}\n"
            "Note: the pinned parser cannot read `func`, `import`, nullable types (`string?`) "
            "or user-defined types, and allows at most 5 comment lines in a row between two "
            "properties (10 right after an opening brace).",
            pytrace=False,
        )
    assert parsed.get("resources") or parsed.get("modules"), "parsed file declares nothing"


def test_bicep_avoids_syntax_the_pinned_parser_cannot_read() -> None:
    for path in _bicep_files():
        text = path.read_text(encoding="utf-8")
        code = "\n".join(line.split("//", 1)[0] for line in text.splitlines())
        assert not re.search(r"^\s*(func|import|type)\s", code, re.MULTILINE), path
        assert not re.search(r"\b(string|int|bool|object|array)\?", code), path


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------


def test_storage_account_is_locked_down(template: Json) -> None:
    _, storage = _single(template, "Microsoft.Storage/storageAccounts")
    assert storage["kind"] == "StorageV2"
    props = storage["properties"]
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowBlobPublicAccess"] is False
    assert props["allowSharedKeyAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    assert props.get("defaultToOAuthAuthentication") is True


def test_no_account_keys_or_connection_strings_anywhere() -> None:
    for path in _bicep_files():
        text = path.read_text(encoding="utf-8")
        for needle in ("listKeys", "AccountKey=", "SharedAccessSignature", "listAccountSas"):
            assert needle not in text, f"{path.name} uses {needle}: everything is identity-based"


def test_sessions_table_and_containers(template: Json) -> None:
    tables = _resources(template, "Microsoft.Storage/storageAccounts/tableServices/tables")
    assert [t["name"] for t in tables.values()] == ["tableName"]
    assert _param_default(template, "tableName") == "sessions"

    containers = _resources(template, "Microsoft.Storage/storageAccounts/blobServices/containers")
    names = {c["name"] for c in containers.values()}
    assert names == {"containerName", "deploymentContainerName"}
    assert _param_default(template, "containerName") == "sessions-overflow"
    for container in containers.values():
        assert container["properties"]["publicAccess"] == "None"


def test_lifecycle_rule_deletes_old_overflow_blobs(template: Json) -> None:
    _, policy = _single(template, "Microsoft.Storage/storageAccounts/managementPolicies")
    assert policy["name"] == "default"
    rules = policy["properties"]["policy"]["rules"]
    overflow_rules = [
        rule
        for rule in rules
        if "${containerName}/" in rule["definition"]["filters"].get("prefixMatch", [])
    ]
    assert len(overflow_rules) == 1, rules
    rule = overflow_rules[0]
    assert rule["enabled"] is True
    assert rule["type"] == "Lifecycle"
    assert "blockBlob" in rule["definition"]["filters"]["blobTypes"]
    delete = rule["definition"]["actions"]["baseBlob"]["delete"]
    assert set(delete.values()) == {"orphanBlobMaxAgeDays"}, delete
    (condition,) = delete
    assert condition in {"daysAfterModificationGreaterThan", "daysAfterLastAccessTimeGreaterThan"}
    days = template["parameters"]["orphanBlobMaxAgeDays"]
    assert days["type"] == "int"
    assert isinstance(days["default"], int)
    assert days["default"] >= 1
    if condition == "daysAfterLastAccessTimeGreaterThan":
        # The condition silently never matches unless access tracking is on.
        _, blob_service = _single(template, "Microsoft.Storage/storageAccounts/blobServices")
        assert blob_service["properties"]["lastAccessTimeTrackingPolicy"]["enable"] is True


# --------------------------------------------------------------------------------------------
# Function App
# --------------------------------------------------------------------------------------------


def test_plan_is_flex_consumption(template: Json) -> None:
    _, plan = _single(template, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True  # Linux


def test_function_app_is_flex_python_with_system_identity(template: Json) -> None:
    _, app = _single(template, "Microsoft.Web/sites")
    assert app["kind"] == "functionapp,linux"
    assert app["identity"]["type"] == "SystemAssigned"
    props = app["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["ftpsState"] == "Disabled"
    assert props["siteConfig"]["minTlsVersion"] == "1.2"

    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "SystemAssignedIdentity"
    assert "deploymentContainerName" in storage["value"]


def test_function_app_settings(template: Json) -> None:
    _, app = _single(template, "Microsoft.Web/sites")
    settings = {s["name"]: s["value"] for s in app["properties"]["siteConfig"]["appSettings"]}
    missing = REQUIRED_APP_SETTINGS - settings.keys()
    assert not missing, f"app settings missing: {sorted(missing)}"
    forbidden = FORBIDDEN_APP_SETTINGS & settings.keys()
    assert not forbidden, f"app settings not allowed on Flex / with identity: {sorted(forbidden)}"

    table_endpoint = _resolve(template, settings["TABLESESSIONS_TABLE_ENDPOINT"])
    blob_endpoint = _resolve(template, settings["TABLESESSIONS_BLOB_ENDPOINT"])
    assert table_endpoint.startswith("https://")
    assert ".table." in table_endpoint
    assert blob_endpoint.startswith("https://")
    assert ".blob." in blob_endpoint
    assert settings["TABLESESSIONS_TABLE_NAME"] == "tableName"
    assert settings["TABLESESSIONS_CONTAINER_NAME"] == "containerName"
    assert settings["TABLESESSIONS_APP_NAME"] == "appName"
    assert settings["SWEEP_SCHEDULE"] == "sweepSchedule"
    # The cache the Function also sweeps: off (an empty table name) unless a deployment names it.
    assert settings["TABLESESSIONS_CACHE_TABLE_NAME"] == "cacheTableName"
    assert settings["TABLESESSIONS_CACHE_CONTAINER_NAME"] == "cacheContainerName"
    assert settings["TABLESESSIONS_CACHE_APP_NAME"] == "cacheAppName"
    assert _param_default(template, "cacheTableName") == ""
    assert _param_default(template, "cacheContainerName") == "cache-overflow"
    assert _param_default(template, "appName") == "default"
    assert _param_default(template, "sweepSchedule") == "0 */5 * * * *"


def test_sweep_time_budget_fits_in_function_timeout(template: Json) -> None:
    budget = template["parameters"]["sweepTimeBudgetSeconds"]
    maximum = next(d["argument"] for d in budget["decorators"] if d["type"] == "max_value")
    host = json.loads((INFRA_DIR / "function_app" / "host.json").read_text(encoding="utf-8"))
    hours, minutes, seconds = (int(part) for part in host["functionTimeout"].split(":"))
    timeout = hours * 3600 + minutes * 60 + seconds
    assert budget["default"] < timeout
    assert maximum < timeout, "a budget at the allowed maximum would hit functionTimeout"


def _role_name(assignment: Json) -> Any:
    """The role GUID (or the variable holding it) of subscriptionResourceId(roleDefinitions, X)."""
    role = assignment["properties"]["roleDefinitionId"]["function"]
    assert role["type"] == "subscription_resource_id", role
    assert role["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    return role["parameters"]["resource_name_1"]


def test_role_assignments_for_the_app_identity(template: Json) -> None:
    assignments = _resources(template, "Microsoft.Authorization/roleAssignments")
    roles: set[str] = set()
    for name, assignment in assignments.items():
        # Deterministic names, so a redeploy updates rather than duplicates.
        assert assignment["name"]["function"]["type"] == "guid", name
        props = assignment["properties"]
        assert props["principalType"] == "ServicePrincipal", name
        principal = json.dumps(props["principalId"])
        assert "identity" in principal, name
        assert "principalId" in principal, name
        roles.add(str(_resolve(template, _role_name(assignment))))
    storage_name, _ = _single(template, "Microsoft.Storage/storageAccounts")
    on_storage = {
        str(_resolve(template, _role_name(a)))
        for a in assignments.values()
        if a.get("scope") == storage_name
    }
    for role in (TABLE_DATA_CONTRIBUTOR, BLOB_DATA_CONTRIBUTOR, BLOB_DATA_OWNER,
                 QUEUE_DATA_CONTRIBUTOR):
        assert role in on_storage, f"role {role} not assigned on the storage account"
    assert on_storage <= roles


def test_application_insights_is_workspace_based(template: Json) -> None:
    _, insights = _single(template, "Microsoft.Insights/components")
    _resources(template, "Microsoft.OperationalInsights/workspaces")
    assert "WorkspaceResourceId" in insights["properties"]
    assert "logAnalytics" in json.dumps(insights["properties"]["WorkspaceResourceId"])


def test_outputs(template: Json) -> None:
    outputs = template["outputs"]
    for name in ("functionAppName", "storageAccountName", "tableEndpoint", "blobEndpoint"):
        assert name in outputs, f"missing output {name}"


# --------------------------------------------------------------------------------------------
# Parameters file
# --------------------------------------------------------------------------------------------


def test_parameters_file_matches_template(template: Json) -> None:
    data = json.loads(PARAMETERS_FILE.read_text(encoding="utf-8"))
    assert "deploymentParameters.json" in data["$schema"]
    given = data["parameters"]
    declared = template["parameters"]
    unknown = set(given) - set(declared)
    assert not unknown, f"main.parameters.json sets parameters main.bicep lacks: {unknown}"
    required = {name for name, p in declared.items() if "default" not in p}
    assert required <= set(given), f"parameters without default not set: {required - set(given)}"

    python_types = {"string": str, "int": int, "bool": bool, "object": dict, "array": list}
    for name, entry in given.items():
        value: Any = entry["value"]
        param = declared[name]
        expected = python_types[param["type"]]
        assert isinstance(value, expected), f"{name}: {value!r} is not a Bicep {param['type']}"
        if isinstance(value, bool) and expected is int:
            pytest.fail(f"{name}: {value!r} is a bool, not a Bicep int")
        for decorator in param.get("decorators", []):
            kind, arg = decorator["type"], decorator.get("argument")
            if kind == "allowed":
                assert value in arg, f"{name}: {value!r} not in @allowed {arg}"
            elif kind == "min_value":
                assert value >= arg, f"{name}: {value} < @minValue({arg})"
            elif kind == "max_value":
                assert value <= arg, f"{name}: {value} > @maxValue({arg})"
            elif kind == "min_length":
                assert len(cast(str, value)) >= arg, f"{name}: shorter than @minLength({arg})"
            elif kind == "max_length":
                assert len(cast(str, value)) <= arg, f"{name}: longer than @maxLength({arg})"


# --------------------------------------------------------------------------------------------
# checkov
# --------------------------------------------------------------------------------------------


def _checkov_bin() -> Path:
    override = os.environ.get("CHECKOV_BIN")
    path = Path(override) if override else REPO_ROOT / ".venv-infra" / "bin" / "checkov"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"checkov not found at {path}. Run `bash {BOOTSTRAP}` (creates .venv-infra with "
            "the pinned checkov), or set CHECKOV_BIN to a checkov executable.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def checkov_run() -> tuple[int, Json]:
    """Run checkov once over infra/: (exit code, the Bicep report)."""
    checkov = _checkov_bin()
    proc = subprocess.run(
        [
            str(checkov),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
            "--directory",
            str(INFRA_DIR),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO_ROOT,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov (exit {proc.returncode}) printed no JSON report\n"
            f"stdout:\n{proc.stdout[-5000:]}\nstderr:\n{proc.stderr[-5000:]}",
            pytrace=False,
        )
    # One framework gives one report object; several would give a list of them. With no
    # file to scan checkov prints a bare summary without "check_type".
    reports = report if isinstance(report, list) else [report]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    if not bicep:
        pytest.fail(f"checkov found no Bicep file to scan under {INFRA_DIR}: {report}",
                    pytrace=False)
    return proc.returncode, cast(Json, bicep[0])


@pytest.fixture(scope="module")
def checkov_report(checkov_run: tuple[int, Json]) -> Json:
    return checkov_run[1]


def test_checkov_exits_zero(checkov_run: tuple[int, Json]) -> None:
    returncode, report = checkov_run
    assert returncode == 0, f"checkov exited {returncode}: {report['summary']}"


def test_checkov_parsed_every_bicep_file(checkov_report: Json) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0, checkov_report["results"].get("parsing_errors")
    assert not checkov_report["results"].get("parsing_errors")
    assert summary["resource_count"] > 0
    assert summary["passed"] > 0


def test_checkov_has_no_failed_checks(checkov_report: Json) -> None:
    failed = [
        f"{c['check_id']} {c['check_name']} ({c['resource']}, {c['file_path']})"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)


def test_checkov_skips_are_documented(checkov_report: Json) -> None:
    for check in checkov_report["results"]["skipped_checks"]:
        check_id = check["check_id"]
        assert check_id in ALLOWED_CHECKOV_SKIPS, (
            f"{check_id} is skipped in {check['file_path']} but not allowed in "
            "ALLOWED_CHECKOV_SKIPS (tests/infra/test_bicep.py)"
        )
        reason = check["check_result"].get("suppress_comment", "")
        assert reason not in ("", "No comment provided"), (
            f"{check_id} is skipped without a reason: write `// checkov:skip={check_id}:why`"
        )
