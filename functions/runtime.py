"""Builds what one invocation needs from the app settings; no module-level clients.

Every function builds its clients per invocation: a Flex Consumption instance may live for hours,
and a client built at import would pin settings and connections that Key Vault rotation or a
restart of Azurite/storage should be able to replace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from azure.identity import DefaultAzureCredential

from shared.engine import SyncEngine
from shared.runqueue import RunQueue
from shared.settings import Settings
from shared.state import StateStore
from shared.telemetry import Telemetry


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the app settings (os.environ), validated; raises SettingsError."""
    return Settings.from_env(os.environ if env is None else env)


def build_state(settings: Settings, *, ensure: bool = False) -> StateStore:
    """The state store; `ensure` creates missing tables/containers (Azurite starts empty)."""
    state = StateStore.from_settings(settings)
    if ensure:
        state.ensure()
    return state


def build_engine(settings: Settings) -> SyncEngine:
    """An engine for one run; its state tables are created if missing before it writes to them."""
    state = build_state(settings, ensure=True)
    telemetry = Telemetry(settings.applicationinsights_connection_string)
    return SyncEngine(settings, state, telemetry=telemetry)


def build_run_queue(settings: Settings) -> RunQueue:
    """The manual-run queue in the state storage account (connection string locally, identity in Azure)."""
    if settings.state_storage_connection_string is not None:
        return RunQueue.from_connection_string(settings.state_storage_connection_string.get_secret_value())
    credential = DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)
    return RunQueue.from_account(str(settings.state_storage_account), credential)


def probe_storage(settings: Settings) -> None:
    """One cheap table-service call with a short timeout and a single retry; raises if unreachable.

    `GET /api/health` must answer quickly when storage is down, not after the SDK's default
    retry schedule, so it does not use the state store's clients.
    """
    from azure.data.tables import TableServiceClient

    options: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.2, "connection_timeout": 5}
    if settings.state_storage_connection_string is not None:
        cs = settings.state_storage_connection_string.get_secret_value()
        client = TableServiceClient.from_connection_string(cs, **options)
    else:
        credential = DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)
        endpoint = f"https://{settings.state_storage_account}.table.core.windows.net"
        client = TableServiceClient(endpoint=endpoint, credential=credential, **options)
    with client:
        next(iter(client.list_tables(results_per_page=1)), None)
