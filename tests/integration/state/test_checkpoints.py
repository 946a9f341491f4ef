"""Checkpoints against Azurite: load/save, ETag conflicts, long cursors, list and reset."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.state import Checkpoint, CheckpointConflict, StateStore

pytestmark = pytest.mark.integration


def test_missing_checkpoint_loads_empty(state: StateStore) -> None:
    cp = state.checkpoints.load("accounts", "accounts", "usmf")
    assert cp == Checkpoint(template="accounts", task="accounts", company="usmf")
    assert cp.cursor is None and cp.etag is None


def test_save_then_load_round_trips(state: StateStore) -> None:
    cp = state.checkpoints.load("accounts", "customers", "usmf")
    cp.cursor = "https://contoso.crm.dynamics.com/api/data/v9.2/accounts?$deltatoken=919042%2108%2f22%2f2017"
    cp.updated_at = datetime(2026, 5, 1, 10, 30, 15, 123456, tzinfo=UTC)
    cp.data = {"generation": 3, "note": "ünïcode"}
    state.checkpoints.save(cp)
    assert cp.etag is not None
    loaded = state.checkpoints.load("accounts", "customers", "usmf")
    assert loaded.cursor == cp.cursor
    assert loaded.updated_at == cp.updated_at and loaded.updated_at.tzinfo is not None
    assert loaded.data == {"generation": 3, "note": "ünïcode"}
    assert loaded.etag == cp.etag
    assert loaded.schema_version == 1
    # a second save with the fresh etag succeeds and moves the etag on
    loaded.cursor = "next"
    state.checkpoints.save(loaded)
    assert loaded.etag != cp.etag
    assert state.checkpoints.load("accounts", "customers", "usmf").cursor == "next"


def test_stale_etag_raises_conflict(state: StateStore) -> None:
    first = state.checkpoints.load("contacts", "contacts", "usmf")
    first.cursor = "c1"
    state.checkpoints.save(first)
    a = state.checkpoints.load("contacts", "contacts", "usmf")
    b = state.checkpoints.load("contacts", "contacts", "usmf")
    a.cursor = "from-a"
    state.checkpoints.save(a)
    b.cursor = "from-b"
    with pytest.raises(CheckpointConflict):
        state.checkpoints.save(b)
    assert state.checkpoints.load("contacts", "contacts", "usmf").cursor == "from-a"


def test_two_first_saves_conflict(state: StateStore) -> None:
    a = state.checkpoints.load("products", "products", "usmf")
    b = state.checkpoints.load("products", "products", "usmf")
    a.cursor = "a"
    state.checkpoints.save(a)
    b.cursor = "b"
    with pytest.raises(CheckpointConflict):
        state.checkpoints.save(b)


def test_save_after_reset_conflicts(state: StateStore) -> None:
    cp = state.checkpoints.load("quotes", "quotes", "usmf")
    cp.cursor = "q"
    state.checkpoints.save(cp)
    assert state.checkpoints.delete("quotes") == 1
    cp.cursor = "q2"
    with pytest.raises(CheckpointConflict):
        state.checkpoints.save(cp)


def test_very_long_cursor_is_split_and_restored(state: StateStore) -> None:
    cursor = "https://x/?$deltatoken=" + "ab/c#?" * 20_000  # 120K chars, beyond one string property
    cp = state.checkpoints.load("orders", "orders", "usmf")
    cp.cursor = cursor
    state.checkpoints.save(cp)
    assert state.checkpoints.load("orders", "orders", "usmf").cursor == cursor
    cp.cursor = "short"
    state.checkpoints.save(cp)
    assert state.checkpoints.load("orders", "orders", "usmf").cursor == "short"


def test_list_and_delete_cover_only_one_template(state: StateStore) -> None:
    for company in ("usmf", "demf", "a/b#c?d\\e"):
        cp = state.checkpoints.load("invoices", "invoice-headers", company)
        cp.cursor = f"2026-01-01|{company}"
        state.checkpoints.save(cp)
    other = state.checkpoints.load("accounts", "accounts", "usmf")
    other.cursor = "keep"
    state.checkpoints.save(other)
    listed = state.checkpoints.list("invoices")
    assert sorted(c.company for c in listed) == sorted(["usmf", "demf", "a/b#c?d\\e"])
    assert all(c.etag for c in listed)
    assert state.checkpoints.delete("invoices") == 3
    assert state.checkpoints.list("invoices") == []
    assert state.checkpoints.load("accounts", "accounts", "usmf").cursor == "keep"
