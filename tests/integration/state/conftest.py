"""A fresh, uniquely prefixed StateStore per test on the session's Azurite."""

from __future__ import annotations

import pytest

from shared.state import StateStore


@pytest.fixture
def state(azurite_connection_string: str, unique_name: str) -> StateStore:
    store = StateStore.from_connection_string(azurite_connection_string, prefix=f"t{unique_name}")
    store.ensure()
    return store
