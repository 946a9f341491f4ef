"""Sales Invoices (F&O → Sales) end to end: production engine and clients, sandbox over HTTPS, Azurite.

Golden expectations are written by hand from `reference/templates.md` §8 (21 header rows, 15 line
rows) and "Cross-template rules" (invoices run last, linked to their Sales order by number), not
derived from `mappings/invoices.yaml`. Posted invoices are immutable: the template reads them with a
date cursor on InvoiceDate and a look-back window (P2C_INVOICE_LOOKBACK_DAYS); the engine's clock is
pinned here so the window is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.engine import SyncEngine
from tests.fixtures.product import Product
from tests.integration.test_orders_to_sales_sync import (
    PRICE_LISTS,
    SALES_UNITS,
    compare,
    fo_rows,
    sales_ids,
    seed,
)

pytestmark = pytest.mark.integration

INV_HEADERS = "ExternallyMaintainedCustomerSalesInvoiceHeaders"
INV_LINES = "ExternallyMaintainedCustomerSalesInvoiceLines"


def at(product: Product, moment: datetime, **env: str) -> Product:
    """The same product (sandbox, state, settings) whose engine clock reads `moment`."""
    settings_product = product.with_settings(**env) if env else product
    engine = SyncEngine(settings_product.settings, product.state, clock=lambda: moment)
    return Product(product.sandbox, settings_product.settings, product.state, engine, settings_product.env)


def fo_date(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def prepare(product: Product) -> None:
    """Accounts, products and orders first (templates.md: invoices need their orders in Sales)."""
    seed(product)
    orders = product.run("orders-to-sales")
    assert orders.status == "succeeded", orders.message


def expected_invoice(
    header: dict[str, Any], ids: dict[str, dict[str, str]], order_ids: dict[str, str]
) -> dict[str, Any]:
    """templates.md §8 SalesInvoiceHeader rows 1-21."""
    h = header.get
    return {
        "_customerid_value": ids["account"][header["InvoiceCustomerAccountNumber"]],  # 1
        "billto_line1": h("InvoiceAddressStreet"),  # 2
        "billto_line2": h("InvoiceAddressStreetNumber"),  # 3
        "billto_city": h("InvoiceAddressCity"),  # 4
        "billto_country": h("InvoiceAddressCountryRegionISOCode"),  # 5
        "billto_postalcode": h("InvoiceAddressZipCode"),  # 6
        "billto_stateorprovince": h("InvoiceAddressState"),  # 7
        "description": h("CustomersOrderReference"),  # 8
        "discountamount": header["TotalDiscountCustomerGroupCode"],  # 9
        "_transactioncurrencyid_value": ids["currency"][header["CurrencyCode"]],  # 10
        "_pricelevelid_value": ids["pricelevel"][PRICE_LISTS[header["CurrencyCode"]]],  # 16
        "name": header["InvoiceNumber"],  # 12
        "invoicenumber": header["InvoiceNumber"],  # 13
        "_salesorderid_value": order_ids[header["SalesOrderNumber"]],  # 14
        "totalamount": header["TotalInvoiceAmount"],  # 15
        "freightamount": header["TotalChargeAmount"],  # 17
        "totaldiscountamount": header["TotalDiscountAmount"],  # 18
        "totaltax": header["TotalTaxAmount"],  # 19
        "ispricelocked": True,  # 20
        "statuscode": 4,  # 21 (Billed)
        "msdynce_ismaintainedexternally": True,
    }


def expected_invoice_line(
    line: dict[str, Any], ids: dict[str, dict[str, str]], invoice_id: str
) -> dict[str, Any]:
    """templates.md §8 SalesInvoiceLine rows 1-15."""
    return {
        "sequencenumber": line["LineCreationSequenceNumber"],  # 1
        "quantity": line["InvoicedQuantity"],  # 2
        "priceperunit": line["SalesPrice"],  # 4
        "_transactioncurrencyid_value": ids["currency"][line["CurrencyCode"]],  # 5
        "manualdiscountamount": line["LineTotalDiscountAmount"],  # 6
        "extendedamount": line["LineAmount"],  # 7
        "tax": line["LineTotalTaxAmount"],  # 8
        "_productid_value": ids["product"][line["ProductNumber"]],  # 9
        "_uomid_value": ids["uom"][SALES_UNITS[line["SalesUnitSymbol"]]],  # 3
        "msdynce_invoicenumber": line["InvoiceNumber"],  # 10
        "_invoiceid_value": invoice_id,  # 11
        "description": line.get("ProductName"),  # 12
        "producttypecode": 1,  # 13
        "propertyconfigurationstatus": 2,  # 14
        "ispriceoverridden": True,  # 15
    }


def assert_golden(product: Product, companies: tuple[str, ...]) -> None:
    """Every F&O invoice whose order is in Sales is a Sales invoice with its lines, field by field."""
    dv = product.sandbox.dataverse
    ids = sales_ids(product)
    order_ids = {o["ordernumber"]: o["salesorderid"] for o in dv.rows("salesorders")}
    headers = [h for h in fo_rows(product, INV_HEADERS, companies) if h["SalesOrderNumber"] in order_ids]
    assert len(headers) >= 5, "too few invoices of synced orders to mean anything"
    invoices = {r["invoicenumber"]: r for r in dv.rows("invoices")}
    assert set(invoices) == {h["InvoiceNumber"] for h in headers}
    problems: list[str] = []
    for header in headers:
        compare(
            header["InvoiceNumber"],
            invoices[header["InvoiceNumber"]],
            expected_invoice(header, ids, order_ids),
            problems,
        )
    details = dv.rows("invoicedetails")
    by_key = {(d.get("_invoiceid_value"), d.get("sequencenumber")): d for d in details}
    lines = [ln for ln in fo_rows(product, INV_LINES, companies) if ln["InvoiceNumber"] in invoices]
    assert len(details) == len(lines)
    for line in lines:
        invoice_id = invoices[line["InvoiceNumber"]]["invoiceid"]
        detail = by_key.get((invoice_id, line["LineCreationSequenceNumber"]))
        label = f"{line['InvoiceNumber']}/{line['LineCreationSequenceNumber']}"
        if detail is None:
            problems.append(f"{label}: no Sales invoice line")
            continue
        compare(label, detail, expected_invoice_line(line, ids, invoice_id), problems)
    assert not problems, "\n".join(problems[:40])


def invoice_writes(product: Product, companies: tuple[str, ...], since: datetime | None = None) -> int:
    dv = product.sandbox.dataverse
    orders = {o["ordernumber"] for o in dv.rows("salesorders")}
    headers = [
        h
        for h in fo_rows(product, INV_HEADERS, companies)
        if h["SalesOrderNumber"] in orders and (since is None or fo_date(h["InvoiceDate"]) >= since)
    ]
    numbers = {h["InvoiceNumber"] for h in headers}
    return len(headers) + sum(
        1 for ln in fo_rows(product, INV_LINES, companies) if ln["InvoiceNumber"] in numbers
    )


# -- tests -------------------------------------------------------------------------------------------


def test_golden_then_idle(product: Product) -> None:
    prepare(product)
    first = product.run("invoices")
    assert first.status == "succeeded", first.message
    assert first.counts.get("failed", 0) == 0
    assert first.counts["created"] == invoice_writes(product, ("usmf",))
    assert_golden(product, ("usmf",))
    # invoices of orders not in Sales (totals not updated, ...) wait for their order
    assert first.counts.get("deferred", 0) == sum(
        1
        for h in fo_rows(product, INV_HEADERS, ("usmf",))
        if not product.sandbox.dataverse.find("salesorders", ordernumber=h["SalesOrderNumber"])
    ) + sum(
        1
        for ln in fo_rows(product, INV_LINES, ("usmf",))
        if not product.sandbox.dataverse.find("invoices", invoicenumber=ln["InvoiceNumber"])
    )

    second = product.run("invoices")
    assert second.status == "succeeded", second.message
    assert second.counts.get("written", 0) == 0


def test_date_cursor_with_look_back(product: Product) -> None:
    """Outside the look-back an invoice is not read again; inside it is read but not written twice."""
    prepare(product)
    dates = sorted({fo_date(h["InvoiceDate"]) for h in fo_rows(product, INV_HEADERS, ("usmf",))})
    assert len(dates) >= 3
    first_run = dates[-1] + timedelta(hours=12)
    assert at(product, first_run).run("invoices").status == "succeeded"

    # a day later, with a 2-day look-back: the window starts 1.5 days before the newest invoice
    later = first_run + timedelta(days=1)
    window_start = first_run - timedelta(days=2)
    fo = product.sandbox.finops
    old = next(
        h
        for h in fo.rows(INV_HEADERS, company="usmf")
        if fo_date(h["InvoiceDate"]) < window_start
        and product.sandbox.dataverse.find("invoices", invoicenumber=h["InvoiceNumber"])
    )
    recent = [h for h in fo.rows(INV_HEADERS, company="usmf") if fo_date(h["InvoiceDate"]) >= window_start]
    assert recent
    # F&O never changes a posted invoice; if it did, outside the window nobody would look again
    fo.update(
        INV_HEADERS,
        {
            "dataAreaId": "usmf",
            "InvoiceNumber": old["InvoiceNumber"],
            "InvoiceDate": old["InvoiceDate"],
            "LedgerVoucher": old["LedgerVoucher"],
        },
        {"CustomersOrderReference": "PO-CHANGED"},
    )
    product.sandbox.log.reset()
    second = at(product, later, P2C_INVOICE_LOOKBACK_DAYS="2").run("invoices")
    assert second.status == "succeeded", second.message
    assert second.counts.get("written", 0) == 0
    [invoice] = product.sandbox.dataverse.find("invoices", invoicenumber=old["InvoiceNumber"])
    assert invoice["description"] == old["CustomersOrderReference"]
    recent_numbers = {h["InvoiceNumber"] for h in recent}
    recent_lines = [ln for ln in fo.rows(INV_LINES, company="usmf") if ln["InvoiceNumber"] in recent_numbers]
    assert second.counts["read"] == len(recent) + len(recent_lines)
    assert second.counts.get("unchanged", 0) + second.counts.get("deferred", 0) == second.counts["read"]

    # an invoice posted late, dated inside the window: written once, then not again
    template = recent[0]
    late = {**template, "InvoiceNumber": "USMF-CIV900001", "LedgerVoucher": "USMF-ARI900001"}
    fo.insert(INV_HEADERS, late)
    third = at(product, later + timedelta(hours=1), P2C_INVOICE_LOOKBACK_DAYS="2").run("invoices")
    assert third.status == "succeeded", third.message
    assert third.counts["created"] == 1
    fourth = at(product, later + timedelta(hours=2), P2C_INVOICE_LOOKBACK_DAYS="2").run("invoices")
    assert fourth.counts.get("written", 0) == 0
    assert len(product.sandbox.dataverse.find("invoices", invoicenumber="USMF-CIV900001")) == 1


def test_invoice_of_customer_not_in_sales_is_deferred_then_written(product: Product) -> None:
    prepare(product)
    now = datetime.now(UTC)
    assert at(product, now).run("invoices").status == "succeeded"
    template = next(
        h
        for h in product.sandbox.finops.rows(INV_HEADERS, company="usmf")
        if product.sandbox.dataverse.find("invoices", invoicenumber=h["InvoiceNumber"])
    )
    free_text = {
        **template,
        "InvoiceNumber": "USMF-CIV900002",
        "LedgerVoucher": "USMF-ARI900002",
        "InvoiceCustomerAccountNumber": "ACC-99002-NEWCUS",
        "SalesOrderNumber": None,
        "InvoiceDate": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    product.sandbox.finops.insert(INV_HEADERS, free_text)

    waiting = at(product, now + timedelta(minutes=5)).run("invoices")
    assert waiting.status == "succeeded", waiting.message
    assert waiting.counts.get("written", 0) == 0
    [error] = [
        e
        for e in product.state.errors.list("invoices", status="retrying")
        if e.source_key == "USMF-CIV900002"
    ]
    assert error.kind == "deferred" and "ACC-99002-NEWCUS" in (error.payload_excerpt or "")

    product.sandbox.dataverse.insert(
        "accounts", {"accountnumber": "ACC-99002-NEWCUS", "name": "Late Customer"}
    )
    # days later: the invoice is far outside the look-back; the retry store brings it back
    written = at(product, now + timedelta(days=20)).run("invoices")
    assert written.status == "succeeded", written.message
    [invoice] = product.sandbox.dataverse.find("invoices", invoicenumber="USMF-CIV900002")
    [account] = product.sandbox.dataverse.find("accounts", accountnumber="ACC-99002-NEWCUS")
    assert invoice["_customerid_value"] == account["accountid"]
    assert not invoice.get("_salesorderid_value")  # a free-text invoice has no order


def test_two_companies_keep_their_invoices_apart(product: Product) -> None:
    seed(product)
    both = product.with_settings(P2C_COMPANIES="usmf,demf")
    assert both.run("orders-to-sales").status == "succeeded"
    outcome = both.run("invoices")
    assert outcome.status == "succeeded", outcome.message
    assert outcome.counts["created"] == invoice_writes(product, ("usmf", "demf"))
    assert_golden(product, ("usmf", "demf"))
    demf = [i for i in product.sandbox.dataverse.rows("invoices") if i["invoicenumber"].startswith("DEMF-")]
    assert demf
    orders = {o["salesorderid"]: o["ordernumber"] for o in product.sandbox.dataverse.rows("salesorders")}
    assert all(orders[i["_salesorderid_value"]].startswith("DEMF-") for i in demf)
