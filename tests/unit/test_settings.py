"""Settings.from_env: parsing, defaults, every validation message, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.settings import (
    Company,
    Settings,
    SettingsError,
    parse_companies,
    schedule_setting_name,
    validate_ncrontab,
)
from shared.templates import TEMPLATE_NAMES, TEMPLATES

ROOT = Path(__file__).resolve().parents[2]
SECRET = "very-secret-value-123"
KV_REF = "@Microsoft.KeyVault(SecretUri=https://kv-p2c.vault.azure.net/secrets/d365-client-secret/)"


def base(**overrides: str) -> dict[str, str]:
    env = {
        "P2C_DATAVERSE_URL": "https://contoso.crm.dynamics.com",
        "P2C_FINOPS_URL": "https://contoso.operations.dynamics.com",
        "P2C_TENANT_ID": "00000000-0000-0000-0000-0000000000aa",
        "P2C_CLIENT_ID": "00000000-0000-0000-0000-0000000000bb",
        "P2C_CLIENT_SECRET": SECRET,
        "P2C_STATE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    }
    env.update(overrides)
    return env


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert str(info.value) == "\n".join(info.value.problems)
    assert isinstance(info.value, ValueError)
    return info.value.problems


def only_problem(env: dict[str, str]) -> str:
    found = problems(env)
    assert len(found) == 1, found
    return found[0]


# --- happy path and defaults ------------------------------------------------------------------------


def test_minimal_settings_and_defaults() -> None:
    s = Settings.from_env(base())
    assert s.dataverse_url == "https://contoso.crm.dynamics.com"
    assert s.dataverse_api_url == "https://contoso.crm.dynamics.com/api/data/v9.2"
    assert s.finops_data_url == "https://contoso.operations.dynamics.com/data"
    assert s.dataverse_scope == "https://contoso.crm.dynamics.com/.default"
    assert s.finops_scope == "https://contoso.operations.dynamics.com/.default"
    assert s.authority_host == "https://login.microsoftonline.com"
    assert s.authority == "https://login.microsoftonline.com/00000000-0000-0000-0000-0000000000aa"
    assert s.client_secret is not None and s.client_secret.get_secret_value() == SECRET
    assert s.use_managed_identity is False
    assert s.companies == (Company("usmf", None),)
    assert s.default_company == "usmf"
    assert s.schedules == {name: "0 */15 * * * *" for name in TEMPLATE_NAMES}
    assert (s.dataverse_page_size, s.finops_page_size, s.dataverse_bulk_size, s.finops_batch_size) == (
        2500, 5000, 1000, 100,
    )
    assert (s.max_concurrency, s.http_timeout_seconds, s.max_retries) == (8, 120.0, 8)
    assert (s.run_time_budget_seconds, s.park_after_attempts, s.invoice_lookback_days) == (1500.0, 5, 3)
    assert (s.mappings_dir, s.schema_catalogue_dir) == ("mappings", "sandbox/schemas")
    assert s.applicationinsights_connection_string is None
    assert s.ca_bundle is None and s.state_storage_account is None


def test_settings_are_immutable() -> None:
    s = Settings.from_env(base())
    with pytest.raises(ValueError, match="frozen"):
        s.max_retries = 1  # type: ignore[misc]


def test_urls_are_normalised_and_loopback_http_allowed() -> None:
    s = Settings.from_env(base(P2C_DATAVERSE_URL="https://contoso.crm.dynamics.com/",
                               P2C_FINOPS_URL="http://127.0.0.1:8443/"))
    assert s.dataverse_url == "https://contoso.crm.dynamics.com"
    assert s.finops_url == "http://127.0.0.1:8443"
    assert s.finops_data_url == "http://127.0.0.1:8443/data"
    s = Settings.from_env(base(P2C_FINOPS_URL="http://localhost:1234", P2C_DATAVERSE_URL="http://[::1]:99"))
    assert s.dataverse_scope == "http://[::1]:99/.default"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("http://contoso.crm.dynamics.com", "must use https://"),
        ("contoso.crm.dynamics.com", "expected an absolute https:// URL"),
        ("ftp://contoso.crm.dynamics.com", "expected an absolute https:// URL"),
        ("https://contoso.crm.dynamics.com/api/data/v9.2", "without /api/data"),
        ("https://contoso.crm.dynamics.com?x=1", "query or fragment"),
        ("https://contoso.crm.dynamics.com:notaport", "not a valid URL"),
    ],
)
def test_bad_dataverse_url(value: str, fragment: str) -> None:
    message = only_problem(base(P2C_DATAVERSE_URL=value))
    assert message.startswith("P2C_DATAVERSE_URL: ")
    assert fragment in message


def test_finops_url_must_not_end_in_data() -> None:
    assert "without /data" in only_problem(base(P2C_FINOPS_URL="https://contoso.operations.dynamics.com/data/"))
    # a path that merely starts with "data" is fine
    Settings.from_env(base(P2C_FINOPS_URL="https://127.0.0.1:4443/database-host"))


def test_every_problem_is_listed_one_per_line() -> None:
    found = problems({"P2C_MAX_CONCURRENCY": "abc", "ACCOUNTS_SCHEDULE": "*/5 * * * *"})
    names = [p.split(":", 1)[0] for p in found]
    assert names == [
        "P2C_DATAVERSE_URL",
        "P2C_FINOPS_URL",
        "ACCOUNTS_SCHEDULE",
        "P2C_MAX_CONCURRENCY",
        "P2C_CLIENT_SECRET",
        "P2C_TENANT_ID",
        "P2C_CLIENT_ID",
        "P2C_STATE_STORAGE_ACCOUNT",
    ]
    assert "P2C_MAX_CONCURRENCY: expected a whole number between 1 and 64, got 'abc'" in found
    assert any("classic 5-field cron" in p for p in found)


def test_empty_and_blank_values_count_as_unset() -> None:
    s = Settings.from_env(base(P2C_MAX_CONCURRENCY="", P2C_COMPANIES="  ", P2C_CA_BUNDLE="",
                               P2C_CLIENT_CERTIFICATE_PATH="", ACCOUNTS_SCHEDULE=""))
    assert s.max_concurrency == 8 and s.companies == (Company("usmf"),)
    assert s.schedules["accounts"] == "0 */15 * * * *"
    assert s.client_certificate_path is None


# --- numbers and booleans -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("P2C_MAX_CONCURRENCY", "abc",
         "P2C_MAX_CONCURRENCY: expected a whole number between 1 and 64, got 'abc'"),
        ("P2C_MAX_CONCURRENCY", "0",
         "P2C_MAX_CONCURRENCY: expected a whole number between 1 and 64, got '0'"),
        ("P2C_DATAVERSE_PAGE_SIZE", "5001",
         "P2C_DATAVERSE_PAGE_SIZE: expected a whole number between 1 and 5000, got '5001'"),
        ("P2C_DATAVERSE_BULK_SIZE", "1.5",
         "P2C_DATAVERSE_BULK_SIZE: expected a whole number between 1 and 1000, got '1.5'"),
        ("P2C_MAX_RETRIES", "-1", "P2C_MAX_RETRIES: expected a whole number between 0 and 30, got '-1'"),
        ("P2C_HTTP_TIMEOUT_SECONDS", "soon",
         "P2C_HTTP_TIMEOUT_SECONDS: expected a number between 1 and 3600, got 'soon'"),
        ("P2C_RUN_TIME_BUDGET_SECONDS", "nan",
         "P2C_RUN_TIME_BUDGET_SECONDS: expected a number between 1 and 86400, got 'nan'"),
        ("P2C_USE_MANAGED_IDENTITY", "maybe",
         "P2C_USE_MANAGED_IDENTITY: expected true or false, got 'maybe'"),
    ],
)
def test_number_and_boolean_messages(name: str, value: str, expected: str) -> None:
    assert expected in problems(base(**{name: value}))


def test_numbers_are_parsed() -> None:
    s = Settings.from_env(base(P2C_MAX_CONCURRENCY=" 16 ", P2C_HTTP_TIMEOUT_SECONDS="30.5",
                               P2C_INVOICE_LOOKBACK_DAYS="0", P2C_FINOPS_BATCH_SIZE="50"))
    assert (s.max_concurrency, s.http_timeout_seconds, s.invoice_lookback_days, s.finops_batch_size) == (
        16, 30.5, 0, 50,
    )


# --- credentials ----------------------------------------------------------------------------------------


def test_managed_identity_needs_no_tenant_or_client() -> None:
    env = base(P2C_USE_MANAGED_IDENTITY="TRUE", P2C_MANAGED_IDENTITY_CLIENT_ID="uami-client")
    for name in ("P2C_TENANT_ID", "P2C_CLIENT_ID", "P2C_CLIENT_SECRET"):
        env[name] = ""
    s = Settings.from_env(env)
    assert s.use_managed_identity and s.managed_identity_client_id == "uami-client"
    assert s.authority.endswith("/organizations")


def test_managed_identity_with_a_secret_is_ambiguous() -> None:
    message = only_problem(base(P2C_USE_MANAGED_IDENTITY="true"))
    assert message.startswith("P2C_CLIENT_SECRET: set while P2C_USE_MANAGED_IDENTITY is true")
    assert SECRET not in message


def test_no_credential_at_all() -> None:
    message = only_problem(base(P2C_CLIENT_SECRET=""))
    assert "P2C_CLIENT_CERTIFICATE_PATH" in message and "P2C_USE_MANAGED_IDENTITY=true" in message


def test_secret_and_certificate_together(tmp_path: Path) -> None:
    cert = tmp_path / "app.pem"
    cert.write_text("x")
    message = only_problem(base(P2C_CLIENT_CERTIFICATE_PATH=str(cert)))
    assert "exactly one credential" in message


def test_certificate_credential(tmp_path: Path) -> None:
    cert = tmp_path / "app.pem"
    cert.write_text("x")
    s = Settings.from_env(base(P2C_CLIENT_SECRET="", P2C_CLIENT_CERTIFICATE_PATH=str(cert),
                               P2C_CLIENT_CERTIFICATE_PASSWORD="pw"))
    assert s.uses_certificate and s.client_certificate_path == str(cert)
    assert s.client_certificate_password is not None


def test_certificate_file_must_exist(tmp_path: Path) -> None:
    message = only_problem(base(P2C_CLIENT_SECRET="", P2C_CLIENT_CERTIFICATE_PATH=str(tmp_path / "no.pem")))
    assert message.startswith("P2C_CLIENT_CERTIFICATE_PATH: file not found")


def test_certificate_password_without_certificate() -> None:
    message = only_problem(base(P2C_CLIENT_CERTIFICATE_PASSWORD="pw"))
    assert message.startswith("P2C_CLIENT_CERTIFICATE_PASSWORD: set, but P2C_CLIENT_CERTIFICATE_PATH is not")


def test_client_secret_needs_tenant_and_client() -> None:
    found = problems(base(P2C_TENANT_ID="", P2C_CLIENT_ID=""))
    assert [p.split(":")[0] for p in found] == ["P2C_TENANT_ID", "P2C_CLIENT_ID"]


def test_bad_tenant_id() -> None:
    assert only_problem(base(P2C_TENANT_ID="<tenant>")).startswith("P2C_TENANT_ID: expected a tenant id")


def test_authority_host() -> None:
    s = Settings.from_env(base(P2C_AUTHORITY_HOST="https://127.0.0.1:9443/"))
    assert s.authority == "https://127.0.0.1:9443/00000000-0000-0000-0000-0000000000aa"
    message = only_problem(base(P2C_AUTHORITY_HOST="http://127.0.0.1:9443"))
    assert message.startswith("P2C_AUTHORITY_HOST: must use https://")


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert Settings.from_env(base(P2C_CA_BUNDLE=str(ca))).ca_bundle == str(ca)
    message = only_problem(base(P2C_CA_BUNDLE=str(tmp_path / "nope.pem")))
    assert message.startswith("P2C_CA_BUNDLE: file not found")


# --- Key Vault references --------------------------------------------------------------------------------


def test_unresolved_key_vault_reference_is_reported_not_echoed() -> None:
    message = only_problem(base(P2C_CLIENT_SECRET=KV_REF))
    assert message.startswith("P2C_CLIENT_SECRET: the Key Vault reference did not resolve")
    assert "vault.azure.net" not in message and "d365-client-secret" not in message


def test_unresolved_key_vault_reference_in_any_setting() -> None:
    found = problems(base(P2C_STATE_STORAGE_CONNECTION_STRING=KV_REF, P2C_CLIENT_CERTIFICATE_PASSWORD=KV_REF))
    assert sorted(p.split(":")[0] for p in found) == [
        "P2C_CLIENT_CERTIFICATE_PASSWORD", "P2C_STATE_STORAGE_CONNECTION_STRING",
    ]
    assert all("Key Vault reference did not resolve" in p for p in found)


# --- storage ----------------------------------------------------------------------------------------------


def test_storage_account_or_connection_string() -> None:
    env = base(P2C_STATE_STORAGE_CONNECTION_STRING="", P2C_STATE_STORAGE_ACCOUNT="stp2cdev01")
    s = Settings.from_env(env)
    assert s.state_storage_account == "stp2cdev01" and s.state_storage_connection_string is None
    message = only_problem(base(P2C_STATE_STORAGE_CONNECTION_STRING=""))
    assert message.startswith("P2C_STATE_STORAGE_ACCOUNT: required")
    message = only_problem(base(P2C_STATE_STORAGE_ACCOUNT="Bad_Name"))
    assert message.startswith("P2C_STATE_STORAGE_ACCOUNT: expected a storage account name")


# --- companies -------------------------------------------------------------------------------------------


def test_companies_with_business_units() -> None:
    s = Settings.from_env(base(P2C_COMPANIES=" USMF=Contoso US , demf=Contoso DE"))
    assert s.companies == (Company("usmf", "Contoso US"), Company("demf", "Contoso DE"))
    assert s.default_company == "usmf"


def test_companies_plain_and_default_company() -> None:
    s = Settings.from_env(base(P2C_COMPANIES="usmf,demf", P2C_DEFAULT_COMPANY="DEMF"))
    assert [c.id for c in s.companies] == ["usmf", "demf"] and s.default_company == "demf"
    assert all(c.business_unit is None for c in s.companies)


def test_default_company_must_be_served() -> None:
    message = only_problem(base(P2C_COMPANIES="usmf,demf", P2C_DEFAULT_COMPANY="gbsi"))
    assert message == "P2C_DEFAULT_COMPANY: 'gbsi' is not one of P2C_COMPANIES (usmf, demf)"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("usmf,,demf", "empty entry"),
        ("usmf,usmf", "'usmf' is listed twice"),
        ("toolong", "'toolong' is not an F&O company id"),
        ("us-f", "'us-f' is not an F&O company id"),
        ("usmf=", "'usmf' has '=' but no business unit name"),
    ],
)
def test_bad_companies(value: str, fragment: str) -> None:
    message = only_problem(base(P2C_COMPANIES=value))
    assert message.startswith("P2C_COMPANIES: ") and fragment in message


def test_parse_companies_reports_all_errors() -> None:
    with pytest.raises(ValueError, match="empty entry; 'abcde' is not"):
        parse_companies("usmf,,abcde")


# --- schedules -------------------------------------------------------------------------------------------


def test_schedule_names_match_the_template_registry() -> None:
    assert [schedule_setting_name(t.name) for t in TEMPLATES] == [t.schedule_setting for t in TEMPLATES]
    s = Settings.from_env(
        base(ORDERS_TO_FNO_SCHEDULE="0 0 */2 * * MON-FRI", INVOICES_SCHEDULE="30 5 1 1 JAN *")
    )
    assert s.schedules["orders-to-fno"] == "0 0 */2 * * MON-FRI"
    assert s.schedules["invoices"] == "30 5 1 1 JAN *"


@pytest.mark.parametrize(
    "expression",
    ["0 */15 * * * *", "0 0,30 8-18 * * 1-5", "*/10 * * * * *", "0 0 0 1 JAN-MAR SUN", "5/15 0 0 31 12 6"],
)
def test_valid_ncrontab(expression: str) -> None:
    validate_ncrontab(expression)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("*/5 * * * *", "classic 5-field cron"),
        ("0 60 * * * *", "minute field '60': 60 is outside 0-59"),
        ("0 0 24 * * *", "hour field"),
        ("0 0 0 0 * *", "day field '0': 0 is outside 1-31"),
        ("0 0 0 * FOO *", "'FOO' is not a month"),
        ("0 0 0 * * 7", "day of week field"),
        ("0 */0 * * * *", "step must be at least 1"),
        ("0 ? * * * *", "not valid NCRONTAB"),
        ("00:05:00", "expected 6 NCRONTAB fields, got 1"),
    ],
)
def test_invalid_ncrontab(expression: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_ncrontab(expression)
    assert fragment in str(info.value)


def test_bad_schedule_names_the_setting() -> None:
    message = only_problem(base(CONTACTS_TO_CUSTOMERS_SCHEDULE="0 61 * * * *"))
    assert message.startswith("CONTACTS_TO_CUSTOMERS_SCHEDULE: minute field")


# --- secrets never shown --------------------------------------------------------------------------------


def test_repr_and_str_hide_secrets(tmp_path: Path) -> None:
    s = Settings.from_env(base(P2C_STATE_STORAGE_CONNECTION_STRING="AccountKey=topsecretkey;AccountName=x"))
    for text in (repr(s), str(s), f"{s}", repr(s.model_dump())):
        assert SECRET not in text and "topsecretkey" not in text
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    s = Settings.from_env(base(P2C_CLIENT_SECRET="", P2C_CLIENT_CERTIFICATE_PATH=str(cert),
                               P2C_CLIENT_CERTIFICATE_PASSWORD="certpass99"))
    assert "certpass99" not in repr(s)


def test_redacted() -> None:
    s = Settings.from_env(base(APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=abc",
                               P2C_COMPANIES="usmf=Contoso US,demf"))
    out = s.redacted()
    assert out["P2C_CLIENT_SECRET"] == "***"
    assert out["P2C_STATE_STORAGE_CONNECTION_STRING"] == "***"
    assert out["P2C_CLIENT_CERTIFICATE_PASSWORD"] is None
    assert out["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "***"
    assert out["P2C_COMPANIES"] == "usmf=Contoso US,demf"
    assert out["INVOICES_SCHEDULE"] == "0 */15 * * * *"
    assert SECRET not in json.dumps(out)
    # every documented setting is shown
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    documented = set(sample) - {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}
    assert documented == set(out)


# --- the sample file -------------------------------------------------------------------------------------


def test_sample_file_lists_every_setting_and_placeholders_are_rejected() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    assert sample["IsEncrypted"] is False
    values: dict[str, str] = sample["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    for secret in ("P2C_CLIENT_SECRET", "P2C_CLIENT_CERTIFICATE_PASSWORD"):
        assert values[secret] == ""
    # unedited placeholders fail loudly, naming each setting to fill in
    names = {p.split(":")[0] for p in problems(values)}
    assert names == {"P2C_DATAVERSE_URL", "P2C_FINOPS_URL", "P2C_TENANT_ID", "P2C_CLIENT_SECRET"}
    # filled in, the sample's defaults are valid and equal the documented defaults
    values = dict(values, P2C_DATAVERSE_URL="https://contoso.crm.dynamics.com",
                  P2C_FINOPS_URL="https://contoso.operations.dynamics.com",
                  P2C_TENANT_ID="contoso.onmicrosoft.com",
                  P2C_CLIENT_ID="client", P2C_CLIENT_SECRET="s")
    from_sample = Settings.from_env(values)
    defaults = Settings.from_env(base())
    assert from_sample.redacted() | {"P2C_TENANT_ID": None, "P2C_CLIENT_ID": None} == defaults.redacted() | {
        "P2C_TENANT_ID": None, "P2C_CLIENT_ID": None,
    }
