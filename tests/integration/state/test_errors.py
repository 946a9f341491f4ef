"""Retry store against Azurite: attempts, back-off, parking, due, requeue, resolve, counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableClient

from shared.state import ErrorRecord, StateStore
from shared.state.errors import ErrorStore
from tests.fixtures.table_requests import ResetOnce

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def err(
    key: str = "CUST-1", *, kind: str = "failed", company: str = "usmf", task: str = "customers"
) -> ErrorRecord:
    return ErrorRecord(
        template="accounts",
        source_key=key,
        company=company,
        task=task,
        kind=kind,
        error_class="RecordRejected",
        message="CustomerGroupId 'X' does not exist",
        field="CustomerGroupId",
        payload_excerpt='{"CustomerAccount": "CUST-1"}',
        run_id="r1",
    )


def test_lifecycle_attempts_backoff_park_requeue_resolve(state: StateStore) -> None:
    s = state.errors
    first = s.record(err(), park_after=3, now=T0)
    assert (first.attempts, first.status) == (1, "retrying")
    assert first.next_due == T0 + timedelta(minutes=1)
    assert first.first_seen == T0 and first.last_seen == T0
    assert s.due("accounts", T0) == []
    assert [r.source_key for r in s.due("accounts", T0 + timedelta(minutes=1))] == ["CUST-1"]

    t1 = T0 + timedelta(minutes=5)
    second = s.record(err(), park_after=3, now=t1)
    assert (second.attempts, second.status) == (2, "retrying")
    assert second.next_due == t1 + timedelta(minutes=2)
    assert second.first_seen == T0 and second.last_seen == t1

    t2 = T0 + timedelta(minutes=10)
    third = s.record(err(), park_after=3, now=t2)
    assert (third.attempts, third.status) == (3, "parked")
    assert s.due("accounts", T0 + timedelta(days=30)) == []  # parked records are never due
    assert s.counts("accounts") == {"retrying": 0, "parked": 1, "resolved": 0}

    assert s.requeue("accounts", now=t2) == 1
    again = s.list("accounts")[0]
    assert (again.attempts, again.status, again.next_due) == (0, "retrying", t2)
    assert [r.source_key for r in s.due("accounts", t2)] == ["CUST-1"]

    assert s.resolve("accounts", "CUST-1", "usmf") == 1
    assert s.counts("accounts") == {"retrying": 0, "parked": 0, "resolved": 1}
    assert s.due("accounts", T0 + timedelta(days=30)) == []
    kept = s.list("accounts", status="resolved")
    assert len(kept) == 1 and kept[0].first_seen == T0  # history kept
    assert s.requeue("accounts") == 0  # resolved rows are not requeued

    reopened = s.record(err(), park_after=3, now=t2 + timedelta(hours=1))
    assert (reopened.attempts, reopened.status) == (1, "retrying")
    assert reopened.first_seen == t2 + timedelta(hours=1)


def test_backoff_is_capped_at_six_hours(state: StateStore) -> None:
    rec = None
    for n in range(12):
        rec = state.errors.record(err(), park_after=100, now=T0 + timedelta(days=n))
    assert rec is not None and rec.attempts == 12
    assert rec.next_due == T0 + timedelta(days=11, hours=6)


def test_deferred_records_are_due_again_soon(state: StateStore) -> None:
    for _ in range(4):
        rec = state.errors.record(err(kind="deferred"), park_after=10, now=T0)
    assert rec.attempts == 4 and rec.next_due == T0 + timedelta(minutes=1)


def test_keys_are_per_company_and_task(state: StateStore) -> None:
    s = state.errors
    s.record(err("K", company="usmf"), park_after=5, now=T0)
    s.record(err("K", company="demf"), park_after=5, now=T0)
    s.record(err("K", company="usmf", task="contacts"), park_after=5, now=T0)
    assert s.counts("accounts")["retrying"] == 3
    assert s.resolve("accounts", "K", "usmf") == 2  # both tasks of that company
    left = s.list("accounts", status="retrying")
    assert [(r.company, r.task) for r in left] == [("demf", "customers")]


def test_due_respects_limit_and_template(state: StateStore) -> None:
    for i in range(5):
        state.errors.record(err(f"K{i}"), park_after=5, now=T0)
    assert len(state.errors.due("accounts", T0 + timedelta(hours=1), limit=2)) == 2
    assert len(state.errors.due("accounts", T0 + timedelta(hours=1))) == 5
    assert state.errors.due("contacts", T0 + timedelta(hours=1)) == []
    assert state.errors.counts("contacts") == {"retrying": 0, "parked": 0, "resolved": 0}


def test_requeue_selected_keys_only(state: StateStore) -> None:
    for key in ("a/b#c?d\\e", "B", "C"):
        state.errors.record(err(key), park_after=1, now=T0)
    assert state.errors.counts("accounts")["parked"] == 3
    assert state.errors.requeue("accounts", keys=["a/b#c?d\\e", "C", "unknown"], now=T0) == 2
    retrying = state.errors.list("accounts", status="retrying")
    assert sorted(r.source_key for r in retrying) == ["C", "a/b#c?d\\e"]
    assert [r.source_key for r in state.errors.list("accounts", status="parked")] == ["B"]


def test_awkward_and_long_keys_and_large_payloads(state: StateStore) -> None:
    long_key = "Ünï/😀" * 500
    rec = err(long_key)
    rec.payload_excerpt = "p" * 200_000
    rec.message = "m" * 100_000
    saved = state.errors.record(rec, park_after=5, now=T0)
    assert len(saved.payload_excerpt) <= 8_000 and saved.payload_excerpt.endswith("[truncated]")
    again = state.errors.record(err(long_key), park_after=5, now=T0)
    assert again.attempts == 2
    listed = state.errors.list("accounts")
    assert [r.source_key for r in listed] == [long_key]
    assert state.errors.resolve("accounts", long_key, "usmf") == 1


def test_as_dict_and_validation(state: StateStore) -> None:
    saved = state.errors.record(err(), park_after=5, now=T0)
    data = saved.as_dict()
    assert data["next_due"] == "2026-05-01T08:01:00+00:00" and data["status"] == "retrying"
    with pytest.raises(ValueError, match="kind"):
        state.errors.record(err(kind="weird"), park_after=5)
    with pytest.raises(ValueError, match="status"):
        state.errors.list("accounts", status="open")


def test_a_reset_connection_during_resolve_is_retried(
    azurite_connection_string: str, state: StateStore
) -> None:
    state.errors.record(err("CUST-9"), park_after=3, now=T0)
    transport = ResetOnce()  # the resolve's merge transaction is the first POST through it
    table = TableClient.from_connection_string(
        azurite_connection_string, state.table_names["errors"], transport=transport, retry_backoff_factor=0.01
    )
    assert ErrorStore(table).resolve("accounts", "CUST-9", "usmf") == 1
    assert transport.resets == 1
    assert state.errors.counts("accounts")["resolved"] == 1
