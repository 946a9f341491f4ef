"""Run lock (blob lease) and run reports (append blob) against Azurite."""

from __future__ import annotations

import time

import pytest
from azure.storage.blob import BlobLeaseClient

from shared.state import LeaseLost, StateStore

pytestmark = pytest.mark.integration


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_lease_contention_between_two_locks(state: StateStore, azurite_connection_string: str) -> None:
    other_store = StateStore.from_connection_string(azurite_connection_string, prefix=state.prefix)
    first = state.lock("accounts")
    second = other_store.lock("accounts")
    assert first.acquire() is True
    try:
        assert second.acquire() is False
        assert not second.held and first.held
        assert state.lock("contacts").acquire() is True  # other templates are independent
    finally:
        first.release()
    assert second.acquire() is True
    second.release()
    second.release()  # idempotent


def test_lock_creates_missing_container_and_blob(azurite_connection_string: str, unique_name: str) -> None:
    store = StateStore.from_connection_string(azurite_connection_string, prefix=f"n{unique_name}")
    lock = store.lock("products")  # no ensure(): container and blob do not exist yet
    with lock:
        assert lock.held
        assert store.lock("products").acquire() is False
    assert store.lock("products").acquire() is True


def test_renewal_keeps_the_lease(state: StateStore) -> None:
    lock = state.lock("orders", lease_seconds=15, renew_interval=0.2)
    assert lock.acquire()
    try:
        before = lock._last_renewed
        assert wait_until(lambda: lock._last_renewed > before)
        lock.check()
        props = lock.blob.get_blob_properties()
        assert props.lease.state == "leased"
    finally:
        lock.release()
    assert lock.blob.get_blob_properties().lease.state == "available"


def test_broken_lease_is_detected(state: StateStore) -> None:
    lock = state.lock("quotes", lease_seconds=15, renew_interval=0.2)
    assert lock.acquire()
    try:
        lock.check()
        BlobLeaseClient(lock.blob).break_lease(lease_break_period=0)
        assert wait_until(lambda: lock.lost)
        with pytest.raises(LeaseLost, match="quotes"):
            lock.check()
        assert lock.acquire() is True  # a lost lock can be taken afresh once the lease is free
        lock.check()
        assert state.lock("quotes").acquire() is False
    finally:
        lock.release()
    fresh = state.lock("quotes")
    assert fresh.acquire() is True
    fresh.release()


def test_break_lease_frees_a_crashed_holders_lock(state: StateStore) -> None:
    assert state.lock("never-locked").break_lease() is False  # no blob yet
    crashed = state.lock("contacts")
    assert crashed.acquire()
    crashed._stop.set()  # the holder "crashes": no more renewals, no release
    assert state.lock("contacts").acquire() is False
    assert state.lock("contacts").break_lease() is True
    successor = state.lock("contacts")
    assert successor.acquire() is True
    successor.release()
    assert state.lock("contacts").break_lease() is False  # released: nothing held


def test_unrenewed_lease_counts_as_lost(state: StateStore) -> None:
    lock = state.lock("invoices", lease_seconds=15, renew_interval=10)
    assert lock.acquire()
    try:
        lock._last_renewed -= 16  # as if renewals had been failing for longer than the lease lasts
        assert lock.lost
        with pytest.raises(LeaseLost):
            lock.check()
    finally:
        lock.release()


def test_context_manager_raises_when_busy(state: StateStore) -> None:
    holder = state.lock("accounts")
    assert holder.acquire()
    try:
        with pytest.raises(LeaseLost, match="held by another run"), state.lock("accounts"):
            pass
    finally:
        holder.release()


def test_invalid_lease_settings() -> None:
    with pytest.raises(ValueError):
        StateStore.from_connection_string(
            "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=YQ==;BlobEndpoint=http://127.0.0.1:1/a;"
            "TableEndpoint=http://127.0.0.1:1/a;"
        ).lock("accounts", lease_seconds=10)


def test_report_writer_flushes_blocks_and_reads_back(state: StateStore) -> None:
    state.reports.flush_every = 3
    lines = [{"outcome": "created", "key": f"K{i}", "note": "ünï/😀"} for i in range(8)]
    writer = state.reports.writer("accounts", "20260501T080000-abcd")
    for line in lines[:7]:
        writer.write(line)
    assert writer.lines_written == 6  # two blocks flushed, one line buffered
    assert state.reports.read("accounts", "20260501T080000-abcd") == lines[:6]
    writer.write(lines[7])
    writer.close()
    writer.close()
    assert state.reports.read("accounts", "20260501T080000-abcd") == lines
    with pytest.raises(ValueError):
        writer.write({"late": True})


def test_empty_report_exists_and_missing_report_is_empty(state: StateStore) -> None:
    with state.reports.writer("contacts", "run-empty"):
        pass
    assert state.reports.read("contacts", "run-empty") == []
    assert state.reports.read("contacts", "never") == []
    with pytest.raises(ValueError):
        state.reports.writer("contacts", "../escape/x")


def test_report_writer_for_same_run_appends(state: StateStore) -> None:
    with state.reports.writer("orders", "r1") as w:
        w.write({"outcome": "created", "key": "A"})
    with state.reports.writer("orders", "r1") as w:
        w.write({"outcome": "updated", "key": "A"})
    assert [x["outcome"] for x in state.reports.read("orders", "r1")] == ["created", "updated"]


def test_oversized_report_line_is_cut(state: StateStore) -> None:
    with state.reports.writer("orders", "big") as w:
        w.write({"outcome": "failed", "key": "K", "payload": "x" * 1_000_000})
    assert state.reports.read("orders", "big") == [{"outcome": "failed", "key": "K", "truncated": True}]
