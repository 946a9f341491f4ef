"""StateStore wiring: ensure() is idempotent, prefixes isolate stores, settings pick the right client."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from shared.state import StateStore

pytestmark = pytest.mark.integration


def test_ensure_creates_everything_and_is_idempotent(
    azurite_connection_string: str, unique_name: str
) -> None:
    store = StateStore.from_connection_string(azurite_connection_string, prefix=f"e{unique_name}")
    store.ensure()
    store.ensure()
    tables = {t.name for t in store.tables.list_tables()}
    assert {f"e{unique_name}{n}" for n in ("checkpoints", "crosswalk", "runs", "errors")} <= tables
    containers = {c.name for c in store.blobs.list_containers()}
    assert {f"e{unique_name}locks", f"e{unique_name}reports"} <= containers


def test_prefixes_isolate_stores(azurite_connection_string: str, unique_name: str) -> None:
    a = StateStore.from_connection_string(azurite_connection_string, prefix=f"a{unique_name}")
    b = StateStore.from_connection_string(azurite_connection_string, prefix=f"b{unique_name}")
    a.ensure()
    b.ensure()
    cp = a.checkpoints.load("accounts", "accounts", "usmf")
    cp.cursor = "only-in-a"
    a.checkpoints.save(cp)
    assert b.checkpoints.load("accounts", "accounts", "usmf").cursor is None


def test_from_settings_prefers_the_connection_string(azurite_connection_string: str) -> None:
    settings = SimpleNamespace(
        state_storage_connection_string=SecretStr(azurite_connection_string),
        state_storage_account="ignored",
        managed_identity_client_id=None,
    )
    store = StateStore.from_settings(settings)
    assert store.tables.url.startswith("http://127.0.0.1")


def test_from_settings_uses_the_account_with_an_identity() -> None:
    settings = SimpleNamespace(
        state_storage_connection_string=None,
        state_storage_account="p2cstate",
        managed_identity_client_id="00000000-0000-0000-0000-000000000001",
    )
    store = StateStore.from_settings(settings)  # builds clients only; no request is made
    assert store.tables.url.startswith("https://p2cstate.table.core.windows.net")
    assert store.blobs.url.startswith("https://p2cstate.blob.core.windows.net")


def test_from_settings_without_storage_fails_clearly() -> None:
    settings = SimpleNamespace(
        state_storage_connection_string=None, state_storage_account=None, managed_identity_client_id=None
    )
    with pytest.raises(ValueError, match="P2C_STATE_STORAGE"):
        StateStore.from_settings(settings)


def test_bad_prefix_is_refused(azurite_connection_string: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        StateStore.from_connection_string(azurite_connection_string, prefix="bad-prefix")
