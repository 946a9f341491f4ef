"""`synced:` look-ups for the naive baseline, the way a straightforward integration does them.

The product finds a parent (the F&O customer of a Sales account, the F&O order of a Sales line, the
Sales order of an F&O line) in its crosswalk. The naive client keeps no state, so it asks the
service that holds the parent: one GET per look-up, by the number both sides share (account number,
order number), cached for the run as any sensible client would. A parent that is not there is a
`ReferenceMissing`, like the product's, and the naive client skips the record.

One handler per (parent template, task, match), by direction:

- Sales → F&O (`orders-to-fno`): the customer (`synced:accounts` by origin: the Sales account id)
  and the order (`synced:orders-to-fno.header` by origin: the Sales order id) are found in F&O by
  number; the number itself comes from the Sales row the id names (one GET there too).
- F&O → Sales (`orders-to-sales`): the Sales order of a line (`synced:orders-to-sales.header` by
  source key: the order number) is found in Sales by its alternate key `ordernumber`.

Anything else (a contact customer, the optional "line that came from Sales") has no naive
equivalent here and is reported missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.mapping import ReferenceMissing, synced_entity

if TYPE_CHECKING:
    from bench.naive import NaiveSync

Handler = Callable[["NaiveSync", str, str], dict[str, Any] | None]


def _text(value: str) -> str:
    """An OData string literal, URL-encoded."""
    return quote("'" + value.replace("'", "''") + "'", safe="'")


def _first(body: dict[str, Any]) -> dict[str, Any] | None:
    rows = body.get("value", [])
    return rows[0] if rows else None


def _sales_number(naive: NaiveSync, entity_set: str, row_id: str, column: str) -> str | None:
    """The number a Sales row carries (one GET of that row)."""
    row = naive.get("dataverse", f"{entity_set}({row_id})?$select={column}")
    value = row.get(column) if row else None
    return str(value) if value else None


def _fno_row(
    naive: NaiveSync, entity_set: str, company: str, column: str, value: str
) -> dict[str, Any] | None:
    """The F&O row of `company` whose `column` is `value` (one GET)."""
    query = (
        f"{entity_set}?cross-company=true&$filter=dataAreaId%20eq%20{_text(company)}"
        f"%20and%20{column}%20eq%20{_text(value)}&$top=1"
    )
    body = naive.get("finops", query)
    return _first(body) if body else None


def fno_customer_of_account(naive: NaiveSync, company: str, account_id: str) -> dict[str, Any] | None:
    """`synced:accounts` by origin: the F&O customer whose account is the Sales account's number."""
    number = _sales_number(naive, "accounts", account_id, "accountnumber")
    return _fno_row(naive, "CustomersV2", company, "CustomerAccount", number) if number else None


def fno_order_of_sales_order(naive: NaiveSync, company: str, order_id: str) -> dict[str, Any] | None:
    """`synced:orders-to-fno.header` by origin: the F&O order with the Sales order's number."""
    number = _sales_number(naive, "salesorders", order_id, "ordernumber")
    return _fno_row(naive, "CDSSalesOrderHeaders", company, "SalesOrderNumber", number) if number else None


def sales_order_by_number(naive: NaiveSync, company: str, number: str) -> dict[str, Any] | None:
    """`synced:orders-to-sales.header` by source key: the Sales order with that `ordernumber`."""
    body = naive.get(
        "dataverse", f"salesorders?$filter=ordernumber%20eq%20{_text(number)}&$select=salesorderid"
    )
    row = _first(body) if body else None
    return {"target_id": row["salesorderid"]} if row else None


HANDLERS: dict[tuple[str, str | None, str], Handler] = {
    ("accounts", None, "origin"): fno_customer_of_account,
    ("orders-to-fno", "header", "origin"): fno_order_of_sales_order,
    ("orders-to-sales", "header", "source_key"): sales_order_by_number,
}


class NaiveParents:
    """Answers `synced:` look-ups with GETs to the services; each distinct question asked once."""

    def __init__(self, naive: NaiveSync) -> None:
        self.naive = naive
        self._cache: dict[tuple[str, str, str, str], dict[str, Any] | None] = {}

    def resolve(self, company: str, entity: str, by: str, value: Any, return_field: str) -> Any:
        parsed = synced_entity(entity)
        handler = HANDLERS.get((parsed[0], parsed[1], by)) if parsed else None
        if handler is None or value is None or value == "":
            raise ReferenceMissing(entity, by, value)
        key = (company, entity, by, str(value))
        if key not in self._cache:
            self._cache[key] = handler(self.naive, company, str(value))
        row = self._cache[key]
        if row is None or row.get(return_field) in (None, ""):
            raise ReferenceMissing(entity, by, value)
        return row[return_field]


class NaiveResolver:
    """The resolver the mapping sees: reference tables from the cache, parents from `NaiveParents`."""

    def __init__(self, references: Any, parents: NaiveParents, company: str) -> None:
        self.references = references
        self.parents = parents
        self.company = company

    def resolve(self, entity: str, by: str, value: Any, return_field: str) -> Any:
        if synced_entity(entity) is not None:
            return self.parents.resolve(self.company, entity, by, value, return_field)
        return self.references.resolve(entity, by, value, return_field)
