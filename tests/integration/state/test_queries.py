"""Crosswalk queries as plain JSON pages, against Azurite."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.state import StateStore
from shared.state.queries import keys_filter, query_pages, range_filter
from shared.state.transactions import upsert_transaction

pytestmark = pytest.mark.integration


@pytest.fixture
def table(state: StateStore) -> TableClient:
    return state.crosswalk.table


def test_pages_follow_the_continuation_to_the_end(table: TableClient) -> None:
    upsert_transaction(table, [{"PartitionKey": "q|a", "RowKey": f"r{i:03d}", "N": i} for i in range(25)])
    upsert_transaction(table, [{"PartitionKey": "q|b", "RowKey": f"r{i:03d}", "N": i} for i in range(5)])
    pages = list(query_pages(table, range_filter("q|a", "q|b"), per_page=10))
    assert [len(p.rows) for p in pages if p.rows] == [10, 10, 10]
    assert [p.more for p in pages][-1] is False and all(p.more for p in pages[:-1])
    keys = [(r["PartitionKey"], r["RowKey"]) for p in pages for r in p.rows]
    assert keys == sorted(keys) and len(set(keys)) == 30  # in key order, nothing twice


def test_key_look_ups_quote_awkward_keys_and_select_columns(table: TableClient) -> None:
    rows = [
        {"PartitionKey": "O'Neil|é", "RowKey": rk, "S": "x", "T": "y"} for rk in ("a'b", "客户 100%", "c")
    ]
    upsert_transaction(table, rows)
    pages = list(
        query_pages(table, keys_filter("O'Neil|é", ["a'b", "客户 100%", "zz"]), select=["RowKey", "S"])
    )
    found = {r["RowKey"]: r for p in pages for r in p.rows}
    assert set(found) == {"a'b", "客户 100%"}
    assert found["a'b"] == {"RowKey": "a'b", "S": "x"}  # nometadata: plain values, selected columns


def test_a_missing_table_raises_not_found(azurite_connection_string: str) -> None:
    missing = TableClient.from_connection_string(azurite_connection_string, "nosuchtable")
    with pytest.raises(ResourceNotFoundError, match="nosuchtable"):
        list(query_pages(missing, range_filter("a", "b")))
