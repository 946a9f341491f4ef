"""mappings/orders-to-sales.yaml and mappings/invoices.yaml against the real schema catalogue.

Realistic F&O rows (shaped like sandbox/datagen.py's) are mapped and the payloads compared with
what `reference/templates.md` §7 and §8 prescribe, written out by hand here; selection rules are
checked through the engine's own filter evaluator. Pure: no files besides the YAML and catalogue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.datagen import PRICE_LIST_NAMES, SALES_UNIT_NAMES
from shared.engine.filters import compile_filter
from shared.ids import deterministic_id
from shared.mapping import (
    Catalogue,
    CompiledMapping,
    MapContext,
    MappedRecord,
    MappingFailure,
    ReferenceMissing,
    TaskMapping,
    load_catalogue,
    load_mapping,
)
from tests.unit.mapping.helpers import FakeResolver

ROOT = Path(__file__).resolve().parents[3]
ORDER_ID = "66666666-0000-0000-0000-000000000001"
INVOICE_ID = "77777777-0000-0000-0000-000000000001"
EACH = "22222222-0000-0000-0000-000000000001"
USD_PRICES = "44444444-0000-0000-0000-000000000001"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(ROOT / "sandbox" / "schemas")


@pytest.fixture(scope="module")
def orders(catalogue: Catalogue) -> CompiledMapping:
    return load_mapping(ROOT / "mappings" / "orders-to-sales.yaml", catalogue)


@pytest.fixture(scope="module")
def invoices(catalogue: Catalogue) -> CompiledMapping:
    return load_mapping(ROOT / "mappings" / "invoices.yaml", catalogue)


def resolver() -> FakeResolver:
    return FakeResolver(
        {
            ("synced:orders-to-sales.header", "source_key", "USMF-SO000001"): ORDER_ID,
            ("synced:invoices.header", "source_key", "USMF-CIV000001"): INVOICE_ID,
            ("uom", "name", "Each"): EACH,
            ("pricelevel", "name", "CRM Service USA (sample)"): USD_PRICES,
        }
    )


def mapped(task: TaskMapping, row: dict[str, Any], company: str = "usmf") -> MappedRecord:
    out = task.map(row, MapContext(company=company, resolver=resolver()))
    assert isinstance(out, MappedRecord), out
    return out


def header_row(**over: Any) -> dict[str, Any]:
    row = {
        "dataAreaId": "usmf",
        "SalesOrderNumber": "USMF-SO000001",
        "SalesOrderName": "Contoso Bikes",
        "CustomersOrderReference": "PO-12345",
        "OrderingCustomerAccountNumber": "ACC-00001-ABCDEF",
        "InvoiceCustomerAccountNumber": "ACC-00001-ABCDEF",
        "OrderingCustomerIsExternallyMaintained": "Yes",
        "InvoiceCustomerIsExternallyMaintained": "Yes",
        "CurrencyCode": "USD",
        "DeliveryAddressStreet": "1 Main St",
        "DeliveryAddressStreetNumber": "Dock 4",
        "DeliveryAddressCity": "Redmond",
        "DeliveryAddressStateId": "WA",
        "DeliveryAddressZipCode": "98052",
        "DeliveryAddressCountryRegionISOCode": "US",
        "InvoiceAddressStreet": "1 Main St",
        "InvoiceAddressStreetNumber": None,
        "InvoiceAddressCity": "Redmond",
        "InvoiceAddressStateId": "WA",
        "InvoiceAddressZipCode": "98052",
        "InvoiceAddressCountryRegionId": "USA",
        "SalesOrderProcessingStatus": "Delivered",
        "SalesOrderOriginType": "NotSpecified",
        "AreTotalsUpdated": "Yes",
        "OrderTotalAmount": 1133.0,
        "TotalDiscountAmount": 0.0,
        "OrderTotalTaxAmount": 83.0,
        "OrderTotalChargesAmount": 25.0,
        "OrderHeaderTaxAmount": 2.0,
    }
    row.update(over)
    return row


def line_row(**over: Any) -> dict[str, Any]:
    row = {
        "dataAreaId": "usmf",
        "SalesOrderNumber": "USMF-SO000001",
        "LineCreationSequenceNumber": 3,
        "ProductNumber": "D00001",
        "ProductName": "Speaker Pro",
        "OrderedSalesQuantity": 2.0,
        "SalesUnitSymbol": "ea",
        "SalesPrice": 500.0,
        "TotalDiscountAmount": 50.0,
        "LineAmount": 950.0,
        "TotalTaxAmount": 76.0,
        "CurrencyCode": "USD",
        "DeliveryAddressStreet": "1 Main St",
        "DeliveryAddressCity": "Redmond",
        "DeliveryAddressStateId": "WA",
        "DeliveryAddressZipCode": "98052",
        "DeliveryAddressCountryRegionISOCode": "US",
        "OrderingCustomerIsExternallyMaintained": "Yes",
        "InvoiceCustomerIsExternallyMaintained": "Yes",
        "SalesOrderProcessingStatus": "Confirmed",
        "AreTotalsCalculated": "Yes",
        "SalesOrderOriginType": "NotSpecified",
    }
    row.update(over)
    return row


# -- orders-to-sales ------------------------------------------------------------------------------


def test_task_order_and_keys(orders: CompiledMapping) -> None:
    assert [t.name for t in orders.tasks] == ["header", "line", "freight_tax"]  # header first
    header, line, freight = orders.tasks
    assert header.key_columns == ["SalesOrderNumber"] and header.target_key_fields == ["ordernumber"]
    assert line.key_columns == ["SalesOrderNumber", "LineCreationSequenceNumber"]
    assert line.target_key_fields == []  # no alternate key: deterministic ids
    assert "synced:orders-to-sales.header" in line.parent_entities
    assert "synced:orders-to-sales.header" in freight.parent_entities


def test_header_payload_follows_the_template(orders: CompiledMapping) -> None:
    record = mapped(orders.task("header"), header_row())
    assert record.source_key == "USMF-SO000001"
    assert record.target_key == {"ordernumber": "USMF-SO000001"}
    assert record.target_id == deterministic_id("salesorder", "usmf", "USMF-SO000001")
    assert record.payload == {
        "ordernumber": "USMF-SO000001",
        "name": "Contoso Bikes",
        "description": "PO-12345",
        "customerid_account@odata.bind": "accounts(accountnumber='ACC-00001-ABCDEF')",
        "transactioncurrencyid@odata.bind": "transactioncurrencies(isocurrencycode='USD')",
        "pricelevelid@odata.bind": f"pricelevels({USD_PRICES})",  # 26: USD -> CRM Service USA (sample)
        "msdynce_processingstatus": 647390007,  # Delivered -> Shipped
        "totalamount": 1133,
        "discountamount": 0,
        "totaltax": 83,
        "freightamount": 25,
        "msdynce_misctax": 2,
        "shipto_line1": "1 Main St",
        "shipto_line2": "Dock 4",
        "shipto_city": "Redmond",
        "shipto_stateorprovince": "WA",
        "shipto_postalcode": "98052",
        "shipto_country": "US",
        "billto_line1": "1 Main St",
        "billto_city": "Redmond",
        "billto_stateorprovince": "WA",
        "billto_postalcode": "98052",
        "billto_country": "United States",
        "statecode": 0,
        "statuscode": 1,
        "msdynce_ismaintainedexternally": True,
        "ispricelocked": True,
    }


def test_processing_status_map_covers_every_fno_member(orders: CompiledMapping, catalogue: Catalogue) -> None:
    members = catalogue.enum_members("SalesOrderProcessingStatus")
    assert set(members) >= {"Confirmed", "Invoiced", "Canceled"}
    task = orders.task("header")
    seen = {
        member: mapped(task, header_row(SalesOrderProcessingStatus=member)).payload[
            "msdynce_processingstatus"
        ]
        for member in members
    }
    assert seen["Confirmed"] == 647390001 and seen["Invoiced"] == 647390003 and seen["Canceled"] == 647390010
    assert seen["PartiallyInvoiced"] == seen["DeliveredPartiallyInvoiced"] == 647390009
    unknown = task.map(
        header_row(SalesOrderProcessingStatus="Teleported"), MapContext(company="usmf", resolver=resolver())
    )
    assert isinstance(unknown, MappingFailure) and unknown.field == "msdynce_processingstatus"


@pytest.mark.parametrize(
    ("change", "chosen"),
    [
        ({}, True),
        ({"SalesOrderProcessingStatus": "Active"}, False),  # not confirmed: Sales owns it
        ({"SalesOrderProcessingStatus": "Canceled"}, True),  # cancellation reaches Sales
        ({"OrderingCustomerIsExternallyMaintained": "No"}, False),
        ({"InvoiceCustomerIsExternallyMaintained": "No"}, False),
        ({"AreTotalsUpdated": "No"}, False),
        ({"SalesOrderOriginType": "WorkOrderIntegration"}, False),
    ],
)
def test_header_selection(orders: CompiledMapping, change: dict[str, Any], chosen: bool) -> None:
    assert compile_filter(orders.task("header").source.filter)(header_row(**change)) is chosen


def test_freight_tax_line_only_for_header_tax(orders: CompiledMapping) -> None:
    task = orders.task("freight_tax")
    select = compile_filter(task.source.filter)
    assert select(header_row(OrderHeaderTaxAmount=2.0))
    assert not select(header_row(OrderHeaderTaxAmount=0.0))
    assert not select(header_row(OrderHeaderTaxAmount=2.0, SalesOrderProcessingStatus="Active"))
    record = mapped(task, header_row())
    # its own id, never one of the order's product lines (keyed number|sequence)
    assert record.target_id == deterministic_id("salesorderdetail", "usmf", "USMF-SO000001")
    assert record.target_id != deterministic_id("salesorderdetail", "usmf", "USMF-SO000001|1")
    assert record.payload["productdescription"] == "Freight Tax"
    assert record.payload["priceperunit"] == record.payload["extendedamount"] == 2
    assert record.payload["quantity"] == 1 and record.payload["msdynce_ismisctax"] is True
    assert record.payload["salesorderid@odata.bind"] == f"salesorders({ORDER_ID})"


def test_line_payload_follows_the_template(orders: CompiledMapping) -> None:
    record = mapped(orders.task("line"), line_row())
    assert record.source_key == "USMF-SO000001|3"
    assert record.target_id == deterministic_id("salesorderdetail", "usmf", "USMF-SO000001|3")
    assert record.payload["salesorderid@odata.bind"] == f"salesorders({ORDER_ID})"
    assert record.payload["productid@odata.bind"] == "products(productnumber='D00001')"
    assert record.payload["uomid@odata.bind"] == f"uoms({EACH})"  # row 15: ea -> Each
    assert {
        k: record.payload[k]
        for k in (
            "msdynce_ordernumber",
            "sequencenumber",
            "quantity",
            "priceperunit",
            "ispriceoverridden",
            "manualdiscountamount",
            "tax",
            "extendedamount",
            "description",
            "msdynce_ismaintainedexternally",
        )
    } == {
        "msdynce_ordernumber": "USMF-SO000001",
        "sequencenumber": 3,
        "quantity": 2,
        "priceperunit": 500,
        "ispriceoverridden": True,
        "manualdiscountamount": 50,
        "tax": 76,
        "extendedamount": 950,
        "description": "Speaker Pro",
        "msdynce_ismaintainedexternally": True,
    }


def test_line_of_unsynced_header_is_deferred_not_failed(orders: CompiledMapping) -> None:
    task = orders.task("line")
    with pytest.raises(ReferenceMissing) as missing:
        task.map(line_row(SalesOrderNumber="USMF-SO000099"), MapContext(company="usmf", resolver=resolver()))
    assert missing.value.entity in task.parent_entities


def test_same_order_number_in_two_companies_gets_two_records(orders: CompiledMapping) -> None:
    task = orders.task("line")
    usmf = mapped(task, line_row(), "usmf")
    demf = task.map(
        line_row(dataAreaId="demf"),
        MapContext(
            company="demf",
            resolver=FakeResolver(
                {
                    ("synced:orders-to-sales.header", "source_key", "USMF-SO000001"): "other",
                    ("uom", "name", "Each"): EACH,
                }
            ),
        ),
    )
    assert isinstance(demf, MappedRecord) and demf.target_id != usmf.target_id


def test_value_maps_match_the_sales_reference_data(
    orders: CompiledMapping, invoices: CompiledMapping
) -> None:
    """Units and price lists must exist in Sales under these names (datagen seeds the real ones)."""
    for mapping in (orders, invoices):
        assert mapping.spec.value_maps["sales_unit_names"] == SALES_UNIT_NAMES
        assert mapping.spec.value_maps["price_lists"] == PRICE_LIST_NAMES


# -- invoices -------------------------------------------------------------------------------------


def invoice_row(**over: Any) -> dict[str, Any]:
    row = {
        "dataAreaId": "usmf",
        "InvoiceNumber": "USMF-CIV000001",
        "InvoiceDate": "2026-11-20T00:00:00Z",
        "LedgerVoucher": "USMF-ARI000001",
        "SalesOrderNumber": "USMF-SO000001",
        "InvoiceCustomerAccountNumber": "ACC-00001-ABCDEF",
        "CustomersOrderReference": "PO-12345",
        "InvoiceAddressStreet": "1 Main St",
        "InvoiceAddressCity": "Redmond",
        "InvoiceAddressState": "WA",
        "InvoiceAddressZipCode": "98052",
        "InvoiceAddressCountryRegionISOCode": "US",
        "CurrencyCode": "USD",
        "TotalChargeAmount": 25.0,
        "TotalDiscountAmount": 50.0,
        "TotalDiscountCustomerGroupCode": 0.0,
        "TotalTaxAmount": 76.0,
        "TotalInvoiceAmount": 1051.0,
    }
    row.update(over)
    return row


def test_invoice_tasks_read_by_date_cursor(invoices: CompiledMapping) -> None:
    assert [t.name for t in invoices.tasks] == ["header", "line"]
    assert all(t.cursor == "InvoiceDate" for t in invoices.tasks)
    assert invoices.task("line").key_columns == ["InvoiceNumber", "LineCreationSequenceNumber"]
    assert "synced:invoices.header" in invoices.task("line").parent_entities


def test_invoice_header_payload(invoices: CompiledMapping) -> None:
    record = mapped(invoices.task("header"), invoice_row())
    assert record.target_key == {"invoicenumber": "USMF-CIV000001"}
    assert record.payload == {
        "invoicenumber": "USMF-CIV000001",
        "name": "USMF-CIV000001",
        "customerid_account@odata.bind": "accounts(accountnumber='ACC-00001-ABCDEF')",
        "salesorderid@odata.bind": "salesorders(ordernumber='USMF-SO000001')",
        "transactioncurrencyid@odata.bind": "transactioncurrencies(isocurrencycode='USD')",
        "pricelevelid@odata.bind": f"pricelevels({USD_PRICES})",
        "msdynce_invoicedate": "2026-11-20T00:00:00Z",
        "description": "PO-12345",
        "billto_line1": "1 Main St",
        "billto_city": "Redmond",
        "billto_stateorprovince": "WA",
        "billto_postalcode": "98052",
        "billto_country": "US",
        "discountamount": 0,
        "totalamount": 1051,
        "freightamount": 25,
        "totaldiscountamount": 50,
        "totaltax": 76,
        "ispricelocked": True,
        "statecode": 0,
        "statuscode": 4,
        "msdynce_ismaintainedexternally": True,
    }


def test_free_text_invoice_has_no_order_link(invoices: CompiledMapping) -> None:
    record = mapped(invoices.task("header"), invoice_row(SalesOrderNumber=None))
    assert "salesorderid@odata.bind" not in record.payload


def test_invoice_line_payload(invoices: CompiledMapping) -> None:
    row = {
        "dataAreaId": "usmf",
        "InvoiceNumber": "USMF-CIV000001",
        "InvoiceDate": "2026-11-20T00:00:00Z",
        "LedgerVoucher": "USMF-ARI000001",
        "LineCreationSequenceNumber": 7,
        "ProductNumber": "D00001",
        "ProductName": "Speaker Pro",
        "InvoicedQuantity": 2.0,
        "SalesUnitSymbol": "ea",
        "SalesPrice": 500.0,
        "LineTotalDiscountAmount": 50.0,
        "LineAmount": 950.0,
        "LineTotalTaxAmount": 76.0,
        "CurrencyCode": "USD",
    }
    record = mapped(invoices.task("line"), row)
    assert record.source_key == "USMF-CIV000001|7"
    assert record.payload["invoiceid@odata.bind"] == f"invoices({INVOICE_ID})"
    assert record.payload["uomid@odata.bind"] == f"uoms({EACH})"
    assert record.payload["productid@odata.bind"] == "products(productnumber='D00001')"
    assert {
        k: record.payload[k]
        for k in (
            "sequencenumber",
            "quantity",
            "priceperunit",
            "manualdiscountamount",
            "extendedamount",
            "tax",
            "msdynce_invoicenumber",
            "description",
            "producttypecode",
            "propertyconfigurationstatus",
            "ispriceoverridden",
        )
    } == {
        "sequencenumber": 7,
        "quantity": 2,
        "priceperunit": 500,
        "manualdiscountamount": 50,
        "extendedamount": 950,
        "tax": 76,
        "msdynce_invoicenumber": "USMF-CIV000001",
        "description": "Speaker Pro",
        "producttypecode": 1,
        "propertyconfigurationstatus": 2,
        "ispriceoverridden": True,
    }
