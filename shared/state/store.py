"""StateStore: the one entry point to everything a sync keeps in Azure Storage.

Tables ``checkpoints``, ``crosswalk``, ``runs``, ``errors`` and blob containers ``locks``,
``reports``. Locally (Azurite) it is built from a connection string; in Azure from the account
name and a managed identity, so no storage key ever sits in app settings. An optional ``prefix``
namespaces every table and container so tests (and side-by-side environments) never collide.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from shared.state.checkpoints import CheckpointStore
from shared.state.crosswalk import CrosswalkStore
from shared.state.errors import ErrorStore
from shared.state.lock import LEASE_SECONDS, RENEW_INTERVAL_SECONDS, RunLock
from shared.state.reports import ReportStore
from shared.state.runs import RunStore
from shared.state.transport import storage_transport

TABLES = ("checkpoints", "crosswalk", "runs", "errors")
CONTAINERS = ("locks", "reports")
_PREFIX = re.compile(r"^(?:[A-Za-z][A-Za-z0-9]{0,40})?$")


class StateStore:
    """Checkpoints, crosswalk, run history, retry store, run locks and run reports."""

    def __init__(self, tables: TableServiceClient, blobs: BlobServiceClient, *, prefix: str = "") -> None:
        if not _PREFIX.match(prefix):
            raise ValueError(f"state prefix {prefix!r} must be letters and digits, starting with a letter")
        self.prefix = prefix
        self.tables = tables
        self.blobs = blobs
        self.table_names = {name: f"{prefix}{name}" for name in TABLES}
        self.container_names = {name: f"{prefix.lower()}{name}" for name in CONTAINERS}
        self.checkpoints = CheckpointStore(tables.get_table_client(self.table_names["checkpoints"]))
        self.crosswalk = CrosswalkStore(tables.get_table_client(self.table_names["crosswalk"]))
        self.runs = RunStore(tables.get_table_client(self.table_names["runs"]))
        self.errors = ErrorStore(tables.get_table_client(self.table_names["errors"]))
        self.reports = ReportStore(blobs.get_container_client(self.container_names["reports"]))
        self._locks = blobs.get_container_client(self.container_names["locks"])

    @classmethod
    def from_connection_string(cls, cs: str, *, prefix: str = "") -> StateStore:
        return cls(
            TableServiceClient.from_connection_string(cs, transport=storage_transport()),
            BlobServiceClient.from_connection_string(cs, transport=storage_transport()),
            prefix=prefix,
        )

    @classmethod
    def from_account(cls, account: str, credential: Any, *, prefix: str = "") -> StateStore:
        """Identity-based access (needs Storage Table Data Contributor and Blob Data Contributor)."""
        return cls(
            TableServiceClient(
                endpoint=f"https://{account}.table.core.windows.net",
                credential=credential,
                transport=storage_transport(),
            ),
            BlobServiceClient(
                account_url=f"https://{account}.blob.core.windows.net",
                credential=credential,
                transport=storage_transport(),
            ),
            prefix=prefix,
        )

    @classmethod
    def from_settings(cls, settings: Any) -> StateStore:
        """Connection string when set (local/Azurite), else the account with the app's identity."""
        secret = getattr(settings, "state_storage_connection_string", None)
        if secret is not None:
            cs = secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)
            if cs:
                return cls.from_connection_string(cs)
        account = getattr(settings, "state_storage_account", None)
        if not account:
            raise ValueError(
                "state storage is not configured: set P2C_STATE_STORAGE_CONNECTION_STRING or "
                "P2C_STATE_STORAGE_ACCOUNT"
            )
        from azure.identity import DefaultAzureCredential

        client_id = getattr(settings, "managed_identity_client_id", None)
        credential = (
            DefaultAzureCredential(managed_identity_client_id=client_id)
            if client_id
            else DefaultAzureCredential()
        )
        return cls.from_account(str(account), credential)

    def ensure(self) -> None:
        """Create the tables and containers; cheap and idempotent, safe on every start."""
        for name in self.table_names.values():
            self.tables.create_table_if_not_exists(name)
        for name in self.container_names.values():
            with contextlib.suppress(ResourceExistsError):
                self.blobs.create_container(name)

    def lock(
        self,
        template: str,
        *,
        lease_seconds: int = LEASE_SECONDS,
        renew_interval: float = RENEW_INTERVAL_SECONDS,
    ) -> RunLock:
        """A (not yet acquired) run lock for one template."""
        return RunLock(self._locks, template, lease_seconds=lease_seconds, renew_interval=renew_interval)
