"""The benchmark's workload table and seeds: every order the seeds generate can resolve its parents."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.workloads import (
    COMPANY,
    DEFAULT_WORKLOADS,
    WORKLOADS,
    available_workloads,
    fno_line_selected,
    sales_line_selected,
)
from sandbox import Sandbox, SandboxConfig
from sandbox.datagen import FO_ORDER_HEADERS, FO_ORDER_LINES


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    """The sandbox's stores only (no servers are started): seeds load straight into them."""
    yield Sandbox(SandboxConfig(seed=1))


def test_workload_table() -> None:
    assert set(WORKLOADS) == {"accounts", "orders-to-fno", "orders-to-sales"}
    assert WORKLOADS["accounts"].direction == "sales_to_fno"
    assert WORKLOADS["accounts"].prerequisites == ()
    assert WORKLOADS["orders-to-fno"].direction == "sales_to_fno"
    assert WORKLOADS["orders-to-fno"].prerequisites == ("accounts",)
    assert WORKLOADS["orders-to-sales"].direction == "fno_to_sales"
    assert WORKLOADS["orders-to-sales"].prerequisites == ()
    for name, workload in WORKLOADS.items():
        assert workload.template == name
        assert workload.available()


def test_default_workloads_are_the_two_templates_with_lines() -> None:
    assert DEFAULT_WORKLOADS == ("orders-to-fno", "orders-to-sales")
    ready, missing = available_workloads(None)
    assert [w.template for w in ready] == ["orders-to-fno", "orders-to-sales"]
    assert missing == []
    ready, missing = available_workloads(["accounts", "no-such-template"])
    assert [w.template for w in ready] == ["accounts"]
    assert missing == ["no-such-template"]


def test_fno_orders_seed_names_only_what_sales_has(sb: Sandbox) -> None:
    WORKLOADS["orders-to-sales"].seed(sb, 300)
    headers = sb.finops.rows(FO_ORDER_HEADERS, company=COMPANY)
    lines = sb.finops.rows(FO_ORDER_LINES, company=COMPANY)
    assert 200 <= len(lines) <= 400  # size = order lines, roughly
    accounts = {r["accountnumber"] for r in sb.dataverse.rows("accounts")}
    products = {r["productnumber"] for r in sb.dataverse.rows("products")}
    uoms = {r["name"] for r in sb.dataverse.rows("uoms")}
    currencies = {r["isocurrencycode"] for r in sb.dataverse.rows("transactioncurrencies")}
    pricelists = {r["name"] for r in sb.dataverse.rows("pricelevels")}
    assert all(h["AreTotalsUpdated"] == "Yes" for h in headers)
    external = [h for h in headers if h["OrderingCustomerIsExternallyMaintained"] == "Yes"]
    assert external and all(h["OrderingCustomerAccountNumber"] in accounts for h in external)
    assert {h["CurrencyCode"] for h in headers} <= currencies
    assert "CRM Service USA (sample)" in pricelists
    selected = [line for line in lines if fno_line_selected(line)]
    assert selected and all(line["ProductNumber"] in products for line in selected)
    assert {"Each", "Piece", "Box", "Kilogram", "Hour"} <= uoms
    # every selected line's header is selected too (else the line would wait for it forever)
    by_number = {h["SalesOrderNumber"]: h for h in headers}
    for line in selected:
        header = by_number[line["SalesOrderNumber"]]
        assert header["SalesOrderProcessingStatus"] != "Active"
        assert header["AreTotalsUpdated"] == "Yes"


def test_sales_orders_seed_uses_account_customers_and_synced_products(sb: Sandbox) -> None:
    WORKLOADS["orders-to-fno"].seed(sb, 300)
    orders = sb.dataverse.rows("salesorders")
    lines = sb.dataverse.rows("salesorderdetails")
    assert 200 <= len(lines) <= 400
    accounts = {r["accountid"] for r in sb.dataverse.rows("accounts")}
    products = {r["productid"] for r in sb.dataverse.rows("products")}
    assert all(o["_customerid_value"] in accounts for o in orders)  # no contact customers
    selected = [line for line in lines if sales_line_selected(line)]
    assert selected and all(line["_productid_value"] in products for line in selected)
    ids = {o["salesorderid"] for o in orders}
    assert all(line["_salesorderid_value"] in ids for line in lines)


@pytest.mark.parametrize("name", ["orders-to-fno", "orders-to-sales"])
def test_change_touches_one_percent_of_selected_lines(sb: Sandbox, name: str) -> None:
    workload = WORKLOADS[name]
    workload.seed(sb, 1000)
    if name == "orders-to-fno":
        before = {r["salesorderdetailid"]: r["quantity"] for r in sb.dataverse.rows("salesorderdetails")}
    else:
        before = {
            r["LineCreationSequenceNumber"]: r["OrderedSalesQuantity"]
            for r in sb.finops.rows(FO_ORDER_LINES, company=COMPANY)
        }
    changed = workload.change(sb, 0.01)
    if name == "orders-to-fno":
        after = {r["salesorderdetailid"]: r["quantity"] for r in sb.dataverse.rows("salesorderdetails")}
        selected = sum(1 for r in sb.dataverse.rows("salesorderdetails") if sales_line_selected(r))
    else:
        after = {
            r["LineCreationSequenceNumber"]: r["OrderedSalesQuantity"]
            for r in sb.finops.rows(FO_ORDER_LINES, company=COMPANY)
        }
        selected = sum(1 for r in sb.finops.rows(FO_ORDER_LINES, company=COMPANY) if fno_line_selected(r))
    differing = sum(1 for k in before if before[k] != after[k])
    assert differing == changed == -(-selected // 100)
