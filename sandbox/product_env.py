"""App settings that point the product at a running sandbox and Azurite.

The product reads only app settings (`shared.settings`), exactly as in Azure; the demo, the
integration tests and the benchmarks build those settings here from what the sandbox reports, so
they all configure the product the same way a user would in `local.settings.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def product_env(info: Any, storage_connection_string: str, **extra: str) -> dict[str, str]:
    """Settings for `Settings.from_env`: service URLs, Entra app, CA file, state storage."""
    env = {
        "P2C_DATAVERSE_URL": str(info.dataverse_url),
        "P2C_FINOPS_URL": str(info.finops_url),
        "P2C_TENANT_ID": str(info.tenant_id),
        "P2C_CLIENT_ID": str(info.client_id),
        "P2C_CLIENT_SECRET": str(info.client_secret),
        "P2C_AUTHORITY_HOST": str(info.authority_url),
        "P2C_CA_BUNDLE": str(info.ca_file),
        "P2C_STATE_STORAGE_CONNECTION_STRING": storage_connection_string,
        "P2C_COMPANIES": "usmf=Contoso US",
        "P2C_DEFAULT_COMPANY": "usmf",
        "P2C_MAPPINGS_DIR": str(ROOT / "mappings"),
        "P2C_SCHEMA_CATALOGUE_DIR": str(ROOT / "sandbox" / "schemas"),
    }
    env.update(extra)
    return env
