"""Sales Orders (Sales → F&O) end to end: production engine and clients, sandbox over HTTPS, Azurite.

The golden expectations are written by hand from `reference/templates.md` §6 (and the choices in
`mappings/README.md`), not derived from `mappings/orders-to-fno.yaml`. The
document-generic expectations and checks live in `test_quotes_sync.py` (same shape as quotes).
Run order (templates.md "Cross-template rules"): accounts → orders-to-fno.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.product import Product
from tests.integration.test_quotes_sync import (
    Doc,
    assert_golden,
    check_awkward_values,
    check_changed_line_is_one_update,
    check_contact_customer_is_synced,
    check_golden_then_idle,
    check_line_discount,
    check_sales_unit,
    check_unsynced_customer_defers_then_syncs,
    ok,
    seed,
    written_headers,
    written_lines,
)

pytestmark = pytest.mark.integration

ACTIVE = 647390000  # msdynce_processingstatus Active: set by the P2C Activate action
DRAFT = 647390011
CONFIRMED = 647390001


def order_selected(order: dict[str, Any]) -> bool:
    """§6: activated orders with only externally maintained products, created in Sales."""
    return (
        order.get("msdynce_processingstatus") == ACTIVE
        and order.get("msdynce_hasexternallymaintainedproductsonly") is True
        and order.get("msdynce_ismaintainedexternally") is not True
    )


def order_line_selected(line: dict[str, Any]) -> bool:
    """Activate marks every line submitted; write-in products never sync."""
    return (
        line.get("msdynce_orderissubmitted") is True
        and line.get("msdynce_orderhasexternalmaintainedproductsonly") is True
        and line.get("msdynce_ismaintainedexternally") is not True
        and bool(line.get("_productid_value"))
    )


ORDERS = Doc(
    template="orders-to-fno",
    header_set="salesorders",
    header_id="salesorderid",
    number="ordernumber",
    line_set="salesorderdetails",
    line_id="salesorderdetailid",
    parent_ref="_salesorderid_value",
    fo_headers="CDSSalesOrderHeaders",
    fo_lines="CDSSalesOrderLines",
    fo_number="SalesOrderNumber",
    fo_customer="OrderingCustomerAccountNumber",
    fo_name="CustomersOrderReference",
    fo_total="OrderTotalAmount",
    fo_quantity="OrderedSalesQuantity",
    header_selected=order_selected,
    line_selected=order_line_selected,
    selected_header_state={"msdynce_processingstatus": ACTIVE, "statecode": 0, "statuscode": 1},
    selected_line_state={
        "msdynce_orderissubmitted": True,
        "msdynce_orderhasexternalmaintainedproductsonly": True,
        "msdynce_ismisctax": False,
    },
)


def test_golden_headers_and_lines_then_idle(product: Product) -> None:
    check_golden_then_idle(product, ORDERS)


def test_changed_line_is_one_update(product: Product) -> None:
    check_changed_line_is_one_update(product, ORDERS)


def test_order_of_unsynced_customer_is_deferred_then_synced(product: Product) -> None:
    check_unsynced_customer_defers_then_syncs(product, ORDERS)


def test_awkward_values(product: Product) -> None:
    check_awkward_values(product, ORDERS)


def test_activating_a_draft_order_writes_it_with_its_lines(product: Product) -> None:
    """Draft lines are not selected (not submitted); Activate flags header and lines, both sync."""
    seed(product, 40)
    ok(product.run("accounts"))
    ok(product.run("orders-to-fno"))
    dv = product.sandbox.dataverse
    accounts = {r["accountid"] for r in dv.rows("accounts")}
    draft = next(
        o
        for o in dv.rows("salesorders")
        if o["msdynce_processingstatus"] == DRAFT
        and o["msdynce_hasexternallymaintainedproductsonly"]
        and o["_customerid_value"] in accounts
    )
    lines = [x for x in dv.rows("salesorderdetails") if x["_salesorderid_value"] == draft["salesorderid"]]
    assert lines and draft["ordernumber"] not in written_headers(product, ORDERS)
    dv.update("salesorders", draft["salesorderid"], {"msdynce_processingstatus": ACTIVE})
    for line in lines:
        dv.update("salesorderdetails", line["salesorderdetailid"], {"msdynce_orderissubmitted": True})
    activated = ok(product.run("orders-to-fno"))
    assert activated.counts["written"] == 1 + len(lines) == activated.counts["created"], activated.counts
    assert activated.counts.get("deferred", 0) == 0
    assert {k[0] for k in written_lines(product, ORDERS)} >= {draft["ordernumber"]}
    assert_golden(product, ORDERS)


def test_order_confirmed_by_fno_is_left_to_fno(product: Product) -> None:
    """After F&O confirms (orders-to-sales writes the status back), Sales no longer writes the order."""
    seed(product, 40)
    ok(product.run("accounts"))
    ok(product.run("orders-to-fno"))
    number, header = next(iter(written_headers(product, ORDERS).items()))
    order = product.sandbox.dataverse.find("salesorders", ordernumber=number)[0]
    product.sandbox.dataverse.update(
        "salesorders",
        order["salesorderid"],
        {"msdynce_processingstatus": CONFIRMED, "name": "Changed in Sales"},
    )
    outcome = ok(product.run("orders-to-fno"))
    assert outcome.counts.get("written", 0) == 0
    assert (
        written_headers(product, ORDERS)[number]["CustomersOrderReference"]
        == header["CustomersOrderReference"]
    )


def test_order_of_contact_customer_is_synced(product: Product) -> None:
    check_contact_customer_is_synced(product, ORDERS)


def test_line_discount_conversion(product: Product) -> None:
    check_line_discount(product, ORDERS)


def test_sales_unit_symbol(product: Product) -> None:
    check_sales_unit(product, ORDERS)
