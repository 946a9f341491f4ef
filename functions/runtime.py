"""Builds the engine for one invocation from the app settings; no module-level clients."""

from __future__ import annotations

import os
from collections.abc import Mapping

from azure.identity import DefaultAzureCredential
from shared.settings import Settings
from shared.state import StateStore

from shared.engine import SyncEngine
from shared.runqueue import RunQueue
from shared.telemetry import Telemetry


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    return Settings.from_env(os.environ if env is None else env)


def build_state(settings: Settings) -> StateStore:
    return StateStore.from_settings(settings)


def build_engine(settings: Settings) -> SyncEngine:
    state = build_state(settings)
    telemetry = Telemetry(settings.applicationinsights_connection_string)
    return SyncEngine(settings, state, telemetry=telemetry)


def build_run_queue(settings: Settings) -> RunQueue:
    if settings.state_storage_connection_string is not None:
        queue = RunQueue.from_connection_string(settings.state_storage_connection_string.get_secret_value())
    else:
        credential = DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)
        queue = RunQueue.from_account(str(settings.state_storage_account), credential)
    return queue
