"""The naive baseline's parent look-ups: one GET per distinct parent, cached, missing → ReferenceMissing."""

from __future__ import annotations

from typing import Any

import pytest

from bench.naive_lookups import NaiveParents, NaiveResolver
from shared.mapping import ReferenceMissing


class FakeNaive:
    """Answers `get` from canned rows by (service, path prefix); records every GET."""

    def __init__(self, answers: dict[tuple[str, str], dict[str, Any] | None]) -> None:
        self.answers = answers
        self.gets: list[tuple[str, str]] = []

    def get(self, service: str, path: str) -> dict[str, Any] | None:
        self.gets.append((service, path))
        for (s, prefix), body in self.answers.items():
            if s == service and path.startswith(prefix):
                return body
        return None


def test_customer_of_an_account_is_found_in_fno_once_per_run() -> None:
    naive = FakeNaive(
        {
            ("dataverse", "accounts(a1)"): {"accountnumber": "ACC-1"},
            ("finops", "CustomersV2?"): {"value": [{"CustomerAccount": "ACC-1", "dataAreaId": "usmf"}]},
        }
    )
    parents = NaiveParents(naive)  # type: ignore[arg-type]
    for _ in range(3):
        assert parents.resolve("usmf", "synced:accounts", "origin", "a1", "CustomerAccount") == "ACC-1"
    assert len(naive.gets) == 2  # one GET to each service, then cached
    assert "CustomerAccount%20eq%20'ACC-1'" in naive.gets[1][1]


def test_sales_order_of_an_fno_line_by_number() -> None:
    naive = FakeNaive({("dataverse", "salesorders?"): {"value": [{"salesorderid": "so-1"}]}})
    parents = NaiveParents(naive)  # type: ignore[arg-type]
    found = parents.resolve("usmf", "synced:orders-to-sales.header", "source_key", "USMF-SO1", "target_id")
    assert found == "so-1"
    assert "ordernumber%20eq%20'USMF-SO1'" in naive.gets[0][1]


def test_missing_parent_and_unsupported_lookup_raise_reference_missing() -> None:
    naive = FakeNaive(
        {("dataverse", "salesorders("): {"ordernumber": "ORD-1"}, ("finops", "CDS"): {"value": []}}
    )
    parents = NaiveParents(naive)  # type: ignore[arg-type]
    with pytest.raises(ReferenceMissing):
        parents.resolve("usmf", "synced:orders-to-fno.header", "origin", "so-9", "SalesOrderNumber")
    with pytest.raises(ReferenceMissing):
        parents.resolve("usmf", "synced:contacts-to-customers", "origin", "c1", "CustomerAccount")
    with pytest.raises(ReferenceMissing):
        parents.resolve("usmf", "synced:orders-to-fno.lines", "target_key", "SO|1", "origin")


def test_resolver_sends_reference_tables_to_the_cache() -> None:
    class Refs:
        def resolve(self, entity: str, by: str, value: Any, return_field: str) -> Any:
            return f"{entity}:{value}"

    resolver = NaiveResolver(Refs(), NaiveParents(FakeNaive({})), "usmf")  # type: ignore[arg-type]
    assert resolver.resolve("uom", "name", "Each", "uomid") == "uom:Each"
