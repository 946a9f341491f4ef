"""Entity-group transactions through our own codec, against Azurite: what the SDK would store."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from azure.data.tables import TableClient

from shared.state import StateStore
from shared.state.transactions import MAX_OPERATIONS, TransactionFailed, entity_json, upsert_transaction
from tests.fixtures.table_requests import ResetOnce

pytestmark = pytest.mark.integration

WHEN = datetime(2026, 5, 1, 12, 0, 1, 250000, tzinfo=UTC)


@pytest.fixture
def table(state: StateStore) -> TableClient:
    return state.crosswalk.table


def test_values_round_trip_as_the_sdk_reads_them(table: TableClient) -> None:
    pk, rk = "part O'Neil é 100%", "row 'a' b+c&d=e 客户"
    upsert_transaction(
        table,
        [{"PartitionKey": pk, "RowKey": rk, "S": "x'y", "D": WHEN, "B": True, "I": 7, "L": 2**40, "F": 1.5}],
    )
    got = table.get_entity(pk, rk)
    assert got["S"] == "x'y"
    assert got["D"] == WHEN
    assert got["B"] is True
    assert got["I"] == 7
    assert got["L"].value == 2**40
    assert got["F"] == 1.5


def test_replace_drops_old_properties_and_merge_keeps_them(table: TableClient) -> None:
    upsert_transaction(table, [{"PartitionKey": "p", "RowKey": "r", "A": "1", "B": "1"}])
    upsert_transaction(table, [{"PartitionKey": "p", "RowKey": "r", "A": "2"}])
    assert "B" not in table.get_entity("p", "r")
    upsert_transaction(table, [{"PartitionKey": "p", "RowKey": "r", "C": "3"}], merge=True)
    got = table.get_entity("p", "r")
    assert (got["A"], got["C"]) == ("2", "3")


def test_a_full_transaction_is_stored_whole(table: TableClient) -> None:
    rows = [{"PartitionKey": "full", "RowKey": f"k{i:03d}", "N": i} for i in range(MAX_OPERATIONS)]
    upsert_transaction(table, rows)
    stored = sorted(int(e["N"]) for e in table.query_entities("PartitionKey eq 'full'"))
    assert stored == list(range(MAX_OPERATIONS))


def test_a_rejected_transaction_names_the_operation_and_applies_nothing(table: TableClient) -> None:
    rows = [{"PartitionKey": "bad", "RowKey": "a", "N": 1}, {"PartitionKey": "bad", "RowKey": "a", "N": 2}]
    with pytest.raises(TransactionFailed) as caught:
        upsert_transaction(table, rows)
    assert caught.value.status == 400
    assert caught.value.index == 1
    assert list(table.query_entities("PartitionKey eq 'bad'")) == []


def test_limits_are_checked_before_sending(table: TableClient) -> None:
    with pytest.raises(ValueError, match="one partition"):
        two = [{"PartitionKey": "a", "RowKey": "1"}, {"PartitionKey": "b", "RowKey": "1"}]
        upsert_transaction(table, two)
    too_many = [{"PartitionKey": "a", "RowKey": str(i)} for i in range(MAX_OPERATIONS + 1)]
    with pytest.raises(ValueError, match="at most 100"):
        upsert_transaction(table, too_many)


def test_naive_datetimes_and_unknown_types_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        entity_json({"PartitionKey": "p", "RowKey": "r", "D": datetime(2026, 1, 1)})
    with pytest.raises(TypeError, match="bytes"):
        entity_json({"PartitionKey": "p", "RowKey": "r", "X": b"raw"})


def test_a_missing_table_is_a_clear_failure(azurite_connection_string: str) -> None:
    missing = TableClient.from_connection_string(azurite_connection_string, "nosuchtable")
    with pytest.raises(TransactionFailed, match="TableNotFound"):
        upsert_transaction(missing, [{"PartitionKey": "p", "RowKey": "r"}])


def test_a_reset_connection_is_retried_not_fatal(azurite_connection_string: str, state: StateStore) -> None:
    transport = ResetOnce()
    name = state.table_names["crosswalk"]
    table = TableClient.from_connection_string(
        azurite_connection_string, name, transport=transport, retry_backoff_factor=0.01
    )
    rows = [{"PartitionKey": "reset", "RowKey": f"k{i}", "N": i} for i in range(3)]
    upsert_transaction(table, rows)
    assert transport.resets == 1
    assert sorted(int(e["N"]) for e in table.query_entities("PartitionKey eq 'reset'")) == [0, 1, 2]
