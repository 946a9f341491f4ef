"""App settings: read once from the environment, validated as a whole, immutable afterwards.

Every setting name and default is pinned in docs/internals.md ("Settings"). `Settings.from_env`
collects *every* problem before failing, so an operator fixing a deployment sees the full list in
one go instead of one error per restart. Secrets are `SecretStr` so that `repr`, logs and the
`p2c validate` output never show them; an app setting that still holds a Key Vault reference
literal (the platform leaves it there when resolution fails) is reported as such, never echoed.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from shared.templates import TEMPLATE_NAMES

__all__ = [
    "DEFAULT_AUTHORITY_HOST",
    "DEFAULT_SCHEDULE",
    "KEY_VAULT_REFERENCE_PREFIX",
    "Company",
    "Settings",
    "SettingsError",
    "parse_companies",
    "schedule_setting_name",
    "validate_ncrontab",
]

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_SCHEDULE = "0 */15 * * * *"
KEY_VAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault("
_LOOPBACK_NAMES = frozenset({"localhost"})
_SECRET_SETTINGS = frozenset(
    {"P2C_CLIENT_SECRET", "P2C_CLIENT_CERTIFICATE_PASSWORD", "P2C_STATE_STORAGE_CONNECTION_STRING"}
)
#: F&O's DataAreaId extended data type is a string of at most 4 characters.
_COMPANY_ID = re.compile(r"^[a-z0-9]{1,4}$")
_STORAGE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")

T = TypeVar("T")


class SettingsError(ValueError):
    """One or more app settings are missing or invalid.

    `problems` holds one line per problem, each starting with the setting's name; `str()` is those
    lines joined by newlines (callers prefix it with "settings are invalid: ").
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Company:
    """An F&O legal entity the app serves and, optionally, the Sales business unit that owns its records."""

    id: str
    business_unit: str | None = None


def schedule_setting_name(template: str) -> str:
    """`orders-to-fno` -> `ORDERS_TO_FNO_SCHEDULE` (the same rule as `TemplateDef.schedule_setting`)."""
    return f"{template.upper().replace('-', '_')}_SCHEDULE"


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_url(name: str, value: str, *, allow_loopback_http: bool) -> str:
    """Validate an absolute service URL and return it without a trailing slash.

    Raises ValueError with a message naming the setting. Plain http is accepted only for a loopback
    host (a local stand-in); tokens must never travel over plain http to a real service.
    """
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"{name}: not a valid URL ({exc}), got {value!r}") from None
    del port
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{name}: expected an absolute https:// URL, got {value!r}")
    if parts.scheme == "http" and not (allow_loopback_http and _is_loopback(host)):
        raise ValueError(
            f"{name}: must use https:// (http is allowed only for a loopback host), got {value!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{name}: must not contain a query or fragment, got {value!r}")
    if parts.username or parts.password:
        raise ValueError(f"{name}: must not contain credentials")
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def parse_companies(value: str) -> tuple[Company, ...]:
    """Parse `usmf=Contoso US,demf=Contoso DE` or `usmf,demf` (ids are lower-cased).

    Business-unit names therefore cannot contain a comma. Raises ValueError listing what is wrong.
    """
    companies: list[Company] = []
    seen: set[str] = set()
    errors: list[str] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            errors.append("empty entry")
            continue
        company_id, sep, unit = item.partition("=")
        company_id = company_id.strip().lower()
        business_unit = unit.strip() or None
        if not _COMPANY_ID.match(company_id):
            errors.append(f"{company_id!r} is not an F&O company id (1-4 letters or digits)")
            continue
        if sep and business_unit is None:
            errors.append(f"{company_id!r} has '=' but no business unit name")
            continue
        if company_id in seen:
            errors.append(f"{company_id!r} is listed twice")
            continue
        seen.add(company_id)
        companies.append(Company(company_id, business_unit))
    if errors:
        raise ValueError("; ".join(errors))
    return tuple(companies)


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
#: (field name, low, high, names) of the six NCRONTAB fields, as Azure Functions' timer reads them.
_NCRONTAB_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_CRON_PART = re.compile(r"^(?:(\*)|([A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?)(?:/(\d+))?$")


def validate_ncrontab(expression: str) -> None:
    """Check the six-field NCRONTAB shape `{second} {minute} {hour} {day} {month} {day-of-week}`.

    A five-field (classic cron) expression is the usual mistake and is called out by name, because
    the Functions host would otherwise refuse to start the timer with a much less helpful error.
    """
    fields = expression.split()
    if len(fields) != 6:
        hint = " (classic 5-field cron? NCRONTAB starts with a seconds field)" if len(fields) == 5 else ""
        raise ValueError(f"expected 6 NCRONTAB fields, got {len(fields)}{hint}: {expression!r}")
    for text, (field, low, high, names) in zip(fields, _NCRONTAB_FIELDS, strict=True):
        for part in text.split(","):
            match = _CRON_PART.match(part)
            if not match:
                raise ValueError(f"{field} field {text!r} is not valid NCRONTAB in {expression!r}")
            _star, first, last, step = match.groups()
            for token in (first, last):
                if token is None:
                    continue
                if token.isdigit():
                    number = int(token)
                elif token.upper() in names:
                    number = names.index(token.upper()) + low
                else:
                    raise ValueError(f"{field} field {text!r}: {token!r} is not a {field} in {expression!r}")
                if not low <= number <= high:
                    raise ValueError(
                        f"{field} field {text!r}: {token} is outside {low}-{high} in {expression!r}"
                    )
            if step is not None and int(step) < 1:
                raise ValueError(f"{field} field {text!r}: step must be at least 1 in {expression!r}")


class Settings(BaseModel):
    """Validated, immutable app settings. Build with `Settings.from_env(os.environ)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataverse_url: str
    finops_url: str
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_certificate_path: str | None = None
    client_certificate_password: SecretStr | None = None
    use_managed_identity: bool = False
    managed_identity_client_id: str | None = None
    authority_host: str = DEFAULT_AUTHORITY_HOST
    ca_bundle: str | None = None
    state_storage_connection_string: SecretStr | None = None
    state_storage_account: str | None = None
    companies: tuple[Company, ...] = (Company("usmf"),)
    default_company: str = "usmf"
    schedules: dict[str, str] = {name: DEFAULT_SCHEDULE for name in TEMPLATE_NAMES}
    #: Dataverse serves up to 5,000 rows a page. A task holds up to three pages at once (the one
    #: being written, the next one read ahead and one being fetched), and a Sales order header row
    #: with its annotations is several kilobytes, so 2,500 halves what those pages take, for one
    #: more read request per 2,500 rows (a tenth of the write requests of the same rows, or less).
    dataverse_page_size: int = 2500
    #: F&O serves up to 10,000 rows a page. A task holds up to three pages at once (the one being
    #: written, the next one read ahead, and one held back until the source knows which page is
    #: last), so 5,000 halves what those pages take, for one more read request per 10,000 rows.
    #: 2,500 lowers a 20,000-record load's peak by a further 32 MB but not a 200,000-record one's,
    #: which the parents cached between pages set (docs/performance.md, fifth round).
    finops_page_size: int = 5000
    dataverse_bulk_size: int = 1000
    finops_batch_size: int = 100
    max_concurrency: int = 8
    http_timeout_seconds: float = 120.0
    max_retries: int = 8
    run_time_budget_seconds: float = 1500.0
    park_after_attempts: int = 5
    invoice_lookback_days: int = 3
    mappings_dir: str = "mappings"
    schema_catalogue_dir: str = "sandbox/schemas"
    applicationinsights_connection_string: str | None = None

    # --- derived -------------------------------------------------------------------------------

    @property
    def dataverse_api_url(self) -> str:
        return f"{self.dataverse_url}/api/data/v9.2"

    @property
    def finops_data_url(self) -> str:
        return f"{self.finops_url}/data"

    @property
    def dataverse_scope(self) -> str:
        """Client-credentials scope: the environment URL + `/.default` (apis.md, D-oauth)."""
        return f"{self.dataverse_url}/.default"

    @property
    def finops_scope(self) -> str:
        return f"{self.finops_url}/.default"

    @property
    def authority(self) -> str:
        """`{authority_host}/{tenant_id}`; `organizations` stands in when only managed identity is set up."""
        return f"{self.authority_host}/{self.tenant_id or 'organizations'}"

    @property
    def uses_certificate(self) -> bool:
        return not self.use_managed_identity and self.client_certificate_path is not None

    # --- output --------------------------------------------------------------------------------

    def redacted(self) -> dict[str, Any]:
        """Every setting by its app-setting name, secrets as `"***"` (unset ones as None), for display."""

        def secret(value: SecretStr | None) -> str | None:
            return None if value is None else "***"

        out: dict[str, Any] = {
            "P2C_DATAVERSE_URL": self.dataverse_url,
            "P2C_FINOPS_URL": self.finops_url,
            "P2C_TENANT_ID": self.tenant_id,
            "P2C_CLIENT_ID": self.client_id,
            "P2C_CLIENT_SECRET": secret(self.client_secret),
            "P2C_CLIENT_CERTIFICATE_PATH": self.client_certificate_path,
            "P2C_CLIENT_CERTIFICATE_PASSWORD": secret(self.client_certificate_password),
            "P2C_USE_MANAGED_IDENTITY": self.use_managed_identity,
            "P2C_MANAGED_IDENTITY_CLIENT_ID": self.managed_identity_client_id,
            "P2C_AUTHORITY_HOST": self.authority_host,
            "P2C_CA_BUNDLE": self.ca_bundle,
            "P2C_STATE_STORAGE_CONNECTION_STRING": secret(self.state_storage_connection_string),
            "P2C_STATE_STORAGE_ACCOUNT": self.state_storage_account,
            "P2C_COMPANIES": ",".join(
                c.id if c.business_unit is None else f"{c.id}={c.business_unit}" for c in self.companies
            ),
            "P2C_DEFAULT_COMPANY": self.default_company,
        }
        for template, schedule in self.schedules.items():
            out[schedule_setting_name(template)] = schedule
        out.update(
            {
                "P2C_DATAVERSE_PAGE_SIZE": self.dataverse_page_size,
                "P2C_FINOPS_PAGE_SIZE": self.finops_page_size,
                "P2C_DATAVERSE_BULK_SIZE": self.dataverse_bulk_size,
                "P2C_FINOPS_BATCH_SIZE": self.finops_batch_size,
                "P2C_MAX_CONCURRENCY": self.max_concurrency,
                "P2C_HTTP_TIMEOUT_SECONDS": self.http_timeout_seconds,
                "P2C_MAX_RETRIES": self.max_retries,
                "P2C_RUN_TIME_BUDGET_SECONDS": self.run_time_budget_seconds,
                "P2C_PARK_AFTER_ATTEMPTS": self.park_after_attempts,
                "P2C_INVOICE_LOOKBACK_DAYS": self.invoice_lookback_days,
                "P2C_MAPPINGS_DIR": self.mappings_dir,
                "P2C_SCHEMA_CATALOGUE_DIR": self.schema_catalogue_dir,
                # the App Insights connection string is an ingestion key, not a credential, but it
                # still has no business in a log line
                "APPLICATIONINSIGHTS_CONNECTION_STRING": (
                    None if self.applicationinsights_connection_string is None else "***"
                ),
            }
        )
        return out

    # --- parsing -------------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read and validate every setting of the internals table; raise SettingsError listing all problems.

        An empty (or blank) value counts as unset, because Bicep and local.settings.json write empty
        strings for settings that do not apply (e.g. the client secret under managed identity).
        """
        reader = _Reader(env)
        values: dict[str, Any] = {}

        values["dataverse_url"] = reader.url(
            "P2C_DATAVERSE_URL", forbidden_suffix="/api/data", example="https://contoso.crm.dynamics.com"
        )
        values["finops_url"] = reader.url(
            "P2C_FINOPS_URL", forbidden_suffix="/data", example="https://contoso.operations.dynamics.com"
        )
        values["tenant_id"] = reader.checked(
            "P2C_TENANT_ID", _TENANT.match, "expected a tenant id (GUID) or domain name"
        )
        values["client_id"] = reader.string("P2C_CLIENT_ID")
        values["client_secret"] = reader.secret("P2C_CLIENT_SECRET")
        values["client_certificate_path"] = reader.string("P2C_CLIENT_CERTIFICATE_PATH")
        values["client_certificate_password"] = reader.secret("P2C_CLIENT_CERTIFICATE_PASSWORD")
        values["use_managed_identity"] = reader.boolean("P2C_USE_MANAGED_IDENTITY", default=False)
        values["managed_identity_client_id"] = reader.string("P2C_MANAGED_IDENTITY_CLIENT_ID")
        authority_host = reader.string("P2C_AUTHORITY_HOST")
        if authority_host is not None:
            try:
                # MSAL only talks to https authorities, loopback included (the sandbox serves TLS)
                authority_host = _parse_url("P2C_AUTHORITY_HOST", authority_host, allow_loopback_http=False)
            except ValueError as exc:
                reader.problem(str(exc))
        values["authority_host"] = authority_host or DEFAULT_AUTHORITY_HOST
        ca_bundle = reader.string("P2C_CA_BUNDLE")
        if ca_bundle is not None and not Path(ca_bundle).is_file():
            reader.problem(f"P2C_CA_BUNDLE: file not found: {ca_bundle!r}")
        values["ca_bundle"] = ca_bundle
        values["state_storage_connection_string"] = reader.secret("P2C_STATE_STORAGE_CONNECTION_STRING")
        values["state_storage_account"] = reader.checked(
            "P2C_STATE_STORAGE_ACCOUNT",
            _STORAGE_ACCOUNT.match,
            "expected a storage account name (3-24 lower-case letters or digits)",
        )

        companies = reader.parsed("P2C_COMPANIES", parse_companies) or (Company("usmf"),)
        values["companies"] = companies
        default_company = (reader.string("P2C_DEFAULT_COMPANY") or companies[0].id).lower()
        if default_company not in {c.id for c in companies}:
            reader.problem(
                f"P2C_DEFAULT_COMPANY: {default_company!r} is not one of P2C_COMPANIES "
                f"({', '.join(c.id for c in companies)})"
            )
        values["default_company"] = default_company

        schedules: dict[str, str] = {}
        for template in TEMPLATE_NAMES:
            name = schedule_setting_name(template)
            schedule = reader.string(name) or DEFAULT_SCHEDULE
            try:
                validate_ncrontab(schedule)
            except ValueError as exc:
                reader.problem(f"{name}: {exc}")
            schedules[template] = schedule
        values["schedules"] = schedules

        values["dataverse_page_size"] = reader.integer("P2C_DATAVERSE_PAGE_SIZE", 2500, 1, 5000)
        values["finops_page_size"] = reader.integer("P2C_FINOPS_PAGE_SIZE", 5000, 1, 10000)
        values["dataverse_bulk_size"] = reader.integer("P2C_DATAVERSE_BULK_SIZE", 1000, 1, 1000)
        values["finops_batch_size"] = reader.integer("P2C_FINOPS_BATCH_SIZE", 100, 1, 1000)
        values["max_concurrency"] = reader.integer("P2C_MAX_CONCURRENCY", 8, 1, 64)
        values["http_timeout_seconds"] = reader.number("P2C_HTTP_TIMEOUT_SECONDS", 120.0, 1.0, 3600.0)
        values["max_retries"] = reader.integer("P2C_MAX_RETRIES", 8, 0, 30)
        values["run_time_budget_seconds"] = reader.number("P2C_RUN_TIME_BUDGET_SECONDS", 1500.0, 1.0, 86400.0)
        values["park_after_attempts"] = reader.integer("P2C_PARK_AFTER_ATTEMPTS", 5, 1, 100)
        values["invoice_lookback_days"] = reader.integer("P2C_INVOICE_LOOKBACK_DAYS", 3, 0, 365)
        values["mappings_dir"] = reader.string("P2C_MAPPINGS_DIR") or "mappings"
        values["schema_catalogue_dir"] = reader.string("P2C_SCHEMA_CATALOGUE_DIR") or "sandbox/schemas"
        values["applicationinsights_connection_string"] = reader.string(
            "APPLICATIONINSIGHTS_CONNECTION_STRING"
        )

        _check_credentials(reader, values)
        storage_names = {"P2C_STATE_STORAGE_CONNECTION_STRING", "P2C_STATE_STORAGE_ACCOUNT"}
        no_storage = all(values[n.removeprefix("P2C_").lower()] is None for n in storage_names)
        if no_storage and not reader.failed & storage_names:
            reader.problem(
                "P2C_STATE_STORAGE_ACCOUNT: required (or P2C_STATE_STORAGE_CONNECTION_STRING, e.g. "
                "UseDevelopmentStorage=true for Azurite)"
            )

        if reader.problems:
            raise SettingsError(reader.problems)
        return cls(**values)


def _check_credentials(reader: _Reader, values: dict[str, Any]) -> None:
    """Exactly one usable way to get a token: managed identity, client secret or client certificate."""
    if reader.failed & {"P2C_CLIENT_SECRET", "P2C_CLIENT_CERTIFICATE_PATH", "P2C_USE_MANAGED_IDENTITY"}:
        return  # the underlying problem is already reported; more would only confuse
    has_secret = values["client_secret"] is not None
    cert_path: str | None = values["client_certificate_path"]
    has_cert = cert_path is not None
    if values["client_certificate_password"] is not None and not has_cert:
        reader.problem("P2C_CLIENT_CERTIFICATE_PASSWORD: set, but P2C_CLIENT_CERTIFICATE_PATH is not")
    if values["use_managed_identity"]:
        for name, present in (("P2C_CLIENT_SECRET", has_secret), ("P2C_CLIENT_CERTIFICATE_PATH", has_cert)):
            if present:
                reader.problem(
                    f"{name}: set while P2C_USE_MANAGED_IDENTITY is true; configure exactly one credential "
                    "(clear it, or set P2C_USE_MANAGED_IDENTITY=false)"
                )
        return
    if has_secret and has_cert:
        reader.problem(
            "P2C_CLIENT_SECRET: set together with P2C_CLIENT_CERTIFICATE_PATH; "
            "configure exactly one credential"
        )
    elif not has_secret and not has_cert:
        reader.problem(
            "P2C_CLIENT_SECRET: no credential configured; set P2C_CLIENT_SECRET, or "
            "P2C_CLIENT_CERTIFICATE_PATH, or P2C_USE_MANAGED_IDENTITY=true"
        )
    for name in ("P2C_TENANT_ID", "P2C_CLIENT_ID"):
        if values[name.removeprefix("P2C_").lower()] is None and name not in reader.failed:
            reader.problem(f"{name}: required for a client secret or certificate (unless managed identity)")
    if cert_path is not None and not Path(cert_path).is_file():
        reader.problem(f"P2C_CLIENT_CERTIFICATE_PATH: file not found: {cert_path!r}")


class _Reader:
    """Reads raw values and accumulates problems instead of raising on the first one."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.failed: set[str] = set()

    def problem(self, message: str) -> None:
        self.problems.append(message)

    def _fail(self, name: str, message: str) -> None:
        self.failed.add(name)
        self.problems.append(f"{name}: {message}")

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value.startswith(KEY_VAULT_REFERENCE_PREFIX):
            # The platform leaves the literal reference in place when it cannot resolve it
            # (azure.md §3.1). The reference text is not a secret but the value it names is, so say
            # what happened and where to look, and do not print anything of the value.
            self._fail(
                name,
                "the Key Vault reference did not resolve (the app setting still holds the reference "
                "instead of the secret); check the portal's Key Vault reference status, that the secret "
                "exists and that the app's identity has 'Key Vault Secrets User' on the vault",
            )
            return None
        return value

    def string(self, name: str) -> str | None:
        return self.raw(name)

    def secret(self, name: str) -> SecretStr | None:
        value = self.raw(name)
        return None if value is None else SecretStr(value)

    def checked(self, name: str, ok: Callable[[str], object], expectation: str) -> str | None:
        value = self.raw(name)
        if value is not None and not ok(value):
            self._fail(name, f"{expectation}, got {value!r}")
            return None
        return value

    def parsed(self, name: str, parse: Callable[[str], T]) -> T | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            self._fail(name, f"{exc} (got {value!r})")
            return None

    def url(self, name: str, *, forbidden_suffix: str, example: str) -> str:
        value = self.raw(name)
        if value is None:
            if name not in self.failed:
                self._fail(name, f"required (the environment URL, e.g. {example})")
            return "https://invalid.invalid"
        try:
            url = _parse_url(name, value, allow_loopback_http=True)
        except ValueError as exc:
            self.failed.add(name)
            self.problem(str(exc))
            return "https://invalid.invalid"
        path = urlsplit(url).path.lower()
        if path.endswith(forbidden_suffix) or f"{forbidden_suffix}/" in path:
            self._fail(name, f"give the environment URL without {forbidden_suffix}..., got {value!r}")
        return url

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        self._fail(name, f"expected true or false, got {value!r}")
        return default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            self._fail(name, f"expected a whole number between {low} and {high}, got {value!r}")
            return default
        return number

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is None or math.isnan(number) or not low <= number <= high:
            self._fail(name, f"expected a number between {low:g} and {high:g}, got {value!r}")
            return default
        return number
