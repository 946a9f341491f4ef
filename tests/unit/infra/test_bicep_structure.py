"""Structure of bicep/: resource types and API versions, Flex Consumption shape, identity-based
storage, least-privilege roles, Key Vault references, wiring, azd files, no secrets in the open."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.infra.bicep_model import (
    BICEP,
    MAIN,
    PARAMS,
    ROOT,
    all_resources,
    app_settings,
    bicep_files,
    module_path,
    parse,
    resource_body,
    strings,
    unquote,
)

#: Resource type -> API version (azure.md §6.3, §7.2; storage/resource group: current GA versions).
API_VERSIONS = {
    "Microsoft.Resources/resourceGroups": "2022-09-01",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "2023-01-31",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.Insights/components": "2020-02-02",
    "Microsoft.Storage/storageAccounts": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2023-05-01",
    "Microsoft.Storage/storageAccounts/tableServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices": "2023-05-01",
    "Microsoft.Storage/storageAccounts/queueServices/queues": "2023-05-01",
    "Microsoft.KeyVault/vaults": "2023-07-01",
    "Microsoft.KeyVault/vaults/secrets": "2023-07-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.Web/serverfarms": "2024-04-01",
    "Microsoft.Web/sites": "2024-04-01",
    "Microsoft.Web/sites/config": "2024-04-01",
    "Microsoft.Insights/actionGroups": "2023-01-01",
    "Microsoft.Insights/scheduledQueryRules": "2023-12-01",
}

#: Built-in role definition GUIDs (azure.md §7.2; Secrets Officer: built-in roles reference).
ROLE_GUIDS = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "keyVaultSecretsOfficer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
#: What the app's identity gets, and on which resource (the `existing` symbol in rbac.bicep).
APP_ROLES = {
    "storageBlobDataOwner": "stg",
    "storageTableDataContributor": "stg",
    "storageQueueDataContributor": "stg",
    "keyVaultSecretsUser": "kv",
    "monitoringMetricsPublisher": "appi",
}

try:
    from shared.templates import TEMPLATES

    TEMPLATE_SETTINGS = {t.name: t.schedule_setting for t in TEMPLATES}
except ImportError:  # registry not there yet: the names of docs/internals.md
    TEMPLATE_SETTINGS = {n: n.upper().replace("-", "_") + "_SCHEDULE" for n in (
        "products", "accounts", "contacts", "contacts-to-customers", "quotes", "orders-to-fno",
        "orders-to-sales", "invoices")}


def _resources_of(rel: str) -> dict[str, Any]:
    res: dict[str, Any] = parse(BICEP / rel)["resources"]
    return res


def _by_type(rtype: str) -> list[tuple[Path, str, dict[str, Any]]]:
    return [(p, n, r) for p, n, r in all_resources() if r["type"] == rtype]


# --- resource types and API versions ---------------------------------------------------------


def test_every_resource_uses_a_known_type_and_api_version() -> None:
    seen = set()
    for path, name, res in all_resources():
        assert res["type"] in API_VERSIONS, f"{path.name}:{name} {res['type']}"
        assert res["api_version"] == API_VERSIONS[res["type"]], f"{path.name}:{name}"
        seen.add(res["type"])
    assert seen == set(API_VERSIONS)


def test_no_preview_api_versions() -> None:
    for path, name, res in all_resources():
        assert "preview" not in res["api_version"], f"{path.name}:{name}"


# --- Flex Consumption function app -------------------------------------------------------------


def test_flex_consumption_plan_is_linux_fc1() -> None:
    plan = resource_body(_resources_of("modules/functionapp.bicep")["plan"])
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True


def test_function_app_shape() -> None:
    site = resource_body(_resources_of("modules/functionapp.bicep")["site"])
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    props = site["properties"]
    assert props["httpsOnly"] is True
    assert props["keyVaultReferenceIdentity"] == "identityId"
    cfg = props["functionAppConfig"]
    assert cfg["runtime"] == {"name": "python", "version": "pythonVersion"}
    storage = cfg["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    assert "maximumInstanceCount" in cfg["scaleAndConcurrency"]
    assert "azd-service-name" in set(strings(site["tags"]))
    main = parse(MAIN)
    assert main["parameters"]["pythonVersion"]["default"] == "3.11"
    assert main["modules"]["functionApp"]["config"]["params"]["serviceName"] == "api"


def test_flex_rejects_runtime_app_settings() -> None:
    """Flex takes the runtime from functionAppConfig; these settings are deprecated there."""
    settings = app_settings()
    for name in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                 "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE",
                 "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "AzureWebJobsStorage"):
        assert name not in settings


def test_host_storage_is_identity_based() -> None:
    s = app_settings()
    assert s["AzureWebJobsStorage__accountName"] == "storageAccountName"
    assert s["AzureWebJobsStorage__credential"] == "managedidentity"
    assert s["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert s["P2C_STATE_STORAGE_ACCOUNT"] == "storageAccountName"
    assert s["P2C_MANAGED_IDENTITY_CLIENT_ID"] == "identityClientId"
    assert s["AZURE_CLIENT_ID"] == "identityClientId"


def test_telemetry_settings_match_what_the_worker_expects() -> None:
    s = app_settings()
    assert s["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert "Authorization=AAD" in s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert "ConnectionString" in set(strings(s["APPLICATIONINSIGHTS_CONNECTION_STRING"]))
    appi = resource_body(_resources_of("modules/monitoring.bicep")["appi"])
    assert appi["properties"]["DisableLocalAuth"] is True
    assert appi["properties"]["WorkspaceResourceId"] == "law.id" or "law" in set(
        strings(appi["properties"]["WorkspaceResourceId"]))
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    assert host.get("telemetryMode") == "OpenTelemetry"


# --- storage -----------------------------------------------------------------------------------


def test_storage_disables_shared_keys_and_public_blobs() -> None:
    stg = resource_body(_resources_of("modules/storage.bicep")["stg"])
    props = stg["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True


def test_state_tables_containers_and_queues() -> None:
    params = parse(BICEP / "modules" / "storage.bicep")["parameters"]
    assert params["stateTables"]["default"] == ["checkpoints", "crosswalk", "runs", "errors"]
    assert params["stateContainers"]["default"] == ["locks", "reports"]
    main_queues = parse(MAIN)["parameters"]["queueNames"]["default"]
    try:
        import shared.runqueue as runqueue

        run_queue = runqueue.RUN_QUEUE
    except ImportError:
        run_queue = "p2c-runs"
    assert run_queue in main_queues
    res = _resources_of("modules/storage.bicep")
    assert res["tables"]["config"]["loop_type"]["detail"]["array_name"] == "stateTables"
    assert res["containers"]["config"]["loop_type"]["detail"]["array_name"] == "stateContainers"
    assert res["queues"]["config"]["loop_type"]["detail"]["array_name"] == "queueNames"


# --- identity and roles ------------------------------------------------------------------------


def test_role_guids_are_the_built_in_roles() -> None:
    roles = parse(BICEP / "modules" / "rbac.bicep")["variables"]["roles"]["value"]
    assert roles == ROLE_GUIDS


def test_app_identity_gets_exactly_the_least_privilege_roles() -> None:
    assigned: dict[str, str] = {}
    for path, name, res in _by_type("Microsoft.Authorization/roleAssignments"):
        assert path.name == "rbac.bicep", name
        body = resource_body(res)
        props = body["properties"]
        fn = props["roleDefinitionId"]["function"]
        assert fn["type"] == "subscription_resource_id"
        assert fn["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        role = fn["parameters"]["resource_name_1"]["operator"]["operands"]["operand_2"]
        assert role in ROLE_GUIDS, name
        assert body["name"]["function"]["type"] == "guid", name  # idempotent names
        if props["principalId"] == "principalId":  # the app's identity
            assert props["principalType"] == "ServicePrincipal"
            assert role not in assigned, f"{role} assigned twice"
            assigned[role] = body["scope"]
        else:
            assert props["principalId"] == "userPrincipalId" and role == "keyVaultSecretsOfficer"
            assert res["config"].get("condition") is not None  # only when a user is given
    assert assigned == APP_ROLES


def test_rbac_is_applied_before_the_app_starts() -> None:
    fa = parse(MAIN)["modules"]["functionApp"]["config"]
    assert "rbac" in fa.get("dependsOn", [])


# --- secrets ------------------------------------------------------------------------------------


def test_d365_secrets_are_key_vault_references() -> None:
    fa = parse(BICEP / "modules" / "functionapp.bicep")
    s = app_settings()
    variables = {k: v["value"] for k, v in fa["variables"].items()}
    refs = (("P2C_CLIENT_SECRET", "secretRef"), ("P2C_CLIENT_CERTIFICATE_PASSWORD", "certPasswordRef"))
    for name, var in refs:
        assert var in set(strings(s[name])), name
        assert variables[var].startswith("@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/")
        assert variables[var].endswith("/)")  # versionless with trailing slash (azure.md §3.1)
    assert s["P2C_USE_MANAGED_IDENTITY"]["operator"]["operands"]["false_value"] == "false"


def test_key_vault_is_rbac_mode_with_purge_protection() -> None:
    kv = resource_body(_resources_of("modules/keyvault.bicep")["kv"])
    assert kv["properties"]["enableRbacAuthorization"] is True
    assert kv["properties"]["enablePurgeProtection"] is True


SECRETISH = re.compile(r"(?i)secret|password|key$|connectionstring")


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(BICEP).as_posix())
def test_no_secret_in_parameter_defaults_or_outputs(path: Path) -> None:
    model = parse(path)
    secure = set()
    for name, p in model["parameters"].items():
        decorators = {d["type"] for d in p["decorators"]}
        if "secure" in decorators:
            secure.add(name)
            assert p["default"] in (None, ""), f"{name} has a default"
        elif SECRETISH.search(name) and not name.endswith("Name"):
            pytest.fail(f"parameter {name} looks secret but is not @secure()")
    for name, out in model["outputs"].items():
        used = set(strings(out))
        assert not used & secure, f"output {name} exposes a secure parameter"
        assert not {"listKeys", "list_keys", "ConnectionString", "InstrumentationKey"} & used, name
        assert not SECRETISH.search(name), name


def test_secure_values_are_only_passed_to_key_vault() -> None:
    main = parse(MAIN)
    secure = {n for n, p in main["parameters"].items() if any(d["type"] == "secure" for d in p["decorators"])}
    assert secure == {"d365ClientSecret", "d365ClientCertificatePassword"}
    for name, mod in main["modules"].items():
        used = set(strings(mod["config"]["params"])) & secure
        assert not used or name == "keyVault", name
    kv = parse(BICEP / "modules" / "keyvault.bicep")
    for name in ("clientSecret", "certificatePassword"):
        assert kv["parameters"][name]["decorators"] == [{"type": "secure"}]


# --- wiring -------------------------------------------------------------------------------------


def test_module_parameters_match() -> None:
    for path in bicep_files():
        for name, mod in parse(path)["modules"].items():
            target = module_path(path, mod)
            assert target.exists(), f"{path.name}:{name} -> {target}"
            declared = parse(target)["parameters"]
            passed = set(mod["config"]["params"])
            assert passed <= set(declared), f"{name}: unknown {passed - set(declared)}"
            required = {n for n, p in declared.items() if p["default"] is None}
            assert required <= passed, f"{name}: missing {required - passed}"


def test_module_outputs_used_exist() -> None:
    main = parse(MAIN)
    outputs = {n: set(parse(module_path(MAIN, m))["outputs"]) for n, m in main["modules"].items()}
    checked: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            op = node.get("operator")
            if isinstance(op, dict) and op.get("type") == "property_accessor":
                a = op["operands"]
                inner = a["operand_2"]
                owner = a["operand_1"]
                module_ref = isinstance(owner, str) and owner in outputs
                if module_ref and isinstance(inner, dict) and "operator" in inner:
                    ia = inner["operator"]["operands"]
                    if ia["operand_1"] == "outputs":
                        assert ia["operand_2"] in outputs[owner], f"{owner}.{ia['operand_2']}"
                        checked.append(f"{owner}.{ia['operand_2']}")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(main["modules"])
    walk(main["outputs"])
    assert "keyVault.vaultUri" in checked and "storage.name" in checked  # the walk saw the references


def test_parameters_file_matches_main() -> None:
    params = parse(MAIN)["parameters"]
    values = json.loads(PARAMS.read_text(encoding="utf-8"))["parameters"]
    assert set(values) <= set(params), set(values) - set(params)
    required = {n for n, p in params.items() if p["default"] is None}
    assert required <= set(values), required - set(values)
    for name, v in values.items():
        assert re.fullmatch(r"\$\{[A-Z0-9_]+(=[^}]*)?\}", v["value"]), name
        assert not SECRETISH.search(name), f"{name}: secrets never go through the parameters file"


def test_azure_yaml_deploys_the_function_app() -> None:
    doc = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))
    assert doc["infra"] == {"provider": "bicep", "path": "bicep", "module": "main"}
    assert doc["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    assert parse(MAIN)["globals"]["scope"]["value"] == "subscription"


# --- schedules ----------------------------------------------------------------------------------


def _interval_minutes(cron: str) -> int:
    sec, minute, hour, *_ = cron.split()
    m = re.fullmatch(r"\*/(\d+)", minute)
    assert sec == "0" and m and hour == "*", f"cannot derive the interval of {cron!r}"
    return int(m.group(1))


def test_one_schedule_parameter_per_template() -> None:
    main = parse(MAIN)
    schedules = main["variables"]["schedules"]["value"]
    assert set(schedules) == set(TEMPLATE_SETTINGS.values())
    for setting, param in schedules.items():
        assert main["parameters"][param]["type"] == "string"
        assert len(main["parameters"][param]["default"].split()) == 6, setting
        assert {"type": "description", "argument": setting} in main["parameters"][param]["decorators"]
    s = app_settings()
    for setting in TEMPLATE_SETTINGS.values():
        assert s[setting]["operator"]["operands"] == {
            "operand_1": "schedules", "operand_2": setting}


def test_stale_thresholds_are_three_times_the_default_schedule() -> None:
    main = parse(MAIN)
    stale = {unquote(k): v for k, v in main["parameters"]["staleAfterMinutes"]["default"].items()}
    assert set(stale) == set(TEMPLATE_SETTINGS)
    schedules = main["variables"]["schedules"]["value"]
    for template, setting in TEMPLATE_SETTINGS.items():
        cron = main["parameters"][schedules[setting]]["default"]
        assert stale[template] == 3 * _interval_minutes(cron), template
        assert 0 < stale[template] <= 1440  # inside the stale rule's 1-day window
