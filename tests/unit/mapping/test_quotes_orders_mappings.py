"""mappings/quotes.yaml and mappings/orders-to-fno.yaml against the real schema catalogue.

Pure: the YAML is compiled with the sandbox catalogue and rows are mapped with a dict resolver, so
the shape of each task (keys, parents, selection rule, payload) is checked without any service.
Expectations come from reference/templates.md §5 / §6, written by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.engine.filters import compile_filter
from shared.mapping import (
    Catalogue,
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
CATALOGUE_DIR = ROOT / "sandbox" / "schemas"
CUSTOMER_ID = "7f0dd114-e550-43f0-89c2-5509ec63505c"
CURRENCY_ID = "b2a6b689-9a39-e611-80d2-00155db44581"
HEADER_ID = "0711986e-9c10-4a1f-a58f-25e8df834dcd"
PRODUCT_ID = "56700efb-b0ba-45aa-a04d-77a08dfd94c6"
LINE_ID = "adc64850-122b-4b7f-98ad-4c30fe52e181"

# template -> (header set, number column, F&O number, F&O customer, F&O name, F&O total, line set,
#              line id, parent column, F&O quantity, F&O line set)
DOCS: dict[str, dict[str, str]] = {
    "quotes": {
        "number": "quotenumber",
        "fo_headers": "CDSSalesQuotationHeaders",
        "fo_number": "SalesQuotationNumber",
        "fo_customer": "RequestingCustomerAccountNumber",
        "fo_name": "SalesQuotationName",
        "fo_total": "QuotationTotalAmount",
        "line_id": "quotedetailid",
        "parent": "_quoteid_value",
        "fo_quantity": "RequestedSalesQuantity",
        "fo_lines": "CDSSalesQuotationLines",
    },
    "orders-to-fno": {
        "number": "ordernumber",
        "fo_headers": "CDSSalesOrderHeaders",
        "fo_number": "SalesOrderNumber",
        "fo_customer": "OrderingCustomerAccountNumber",
        "fo_name": "CustomersOrderReference",
        "fo_total": "OrderTotalAmount",
        "line_id": "salesorderdetailid",
        "parent": "_salesorderid_value",
        "fo_quantity": "OrderedSalesQuantity",
        "fo_lines": "CDSSalesOrderLines",
    },
}


@pytest.fixture(scope="module")
def real_catalogue() -> Catalogue:
    if not (CATALOGUE_DIR / "dataverse.json").exists():
        pytest.skip("schema catalogue sandbox/schemas/*.json not generated yet")
    return load_catalogue(CATALOGUE_DIR)


def tasks(template: str, catalogue: Catalogue) -> tuple[TaskMapping, TaskMapping]:
    mapping = load_mapping(ROOT / "mappings" / f"{template}.yaml", catalogue)
    assert mapping.template == template
    assert [t.name for t in mapping.tasks] == ["header", "lines"]  # headers before lines
    return mapping.tasks[0], mapping.tasks[1]


def resolver(template: str) -> FakeResolver:
    return FakeResolver(
        {
            ("synced:accounts", "origin", CUSTOMER_ID): "ACC-01000-BVRCPS",
            ("transactioncurrency", "transactioncurrencyid", CURRENCY_ID): "USD",
            (f"synced:{template}.header", "origin", HEADER_ID): "QUO-01000-ABCDEF",
            ("product", "productid", PRODUCT_ID): "D00001",
        }
    )


def header_row(template: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        DOCS[template]["number"]: "QUO-01000-ABCDEF",
        "name": "  Quote for Contoso " + "x" * 100,
        "_customerid_value": CUSTOMER_ID,
        "_transactioncurrencyid_value": CURRENCY_ID,
        "totalamount": 1234.567,
        "shipto_line1": "1 Microsoft Way",
        "shipto_line2": "Building 4",
        "shipto_city": "Redmond",
        "shipto_stateorprovince": "WA",
        "shipto_postalcode": "98052",
        "shipto_country": None,
        "billto_line2": "Bill-to suite",
        "billto_postalcode": "99999",
        "statuscode": 2,
        "msdynce_processingstatus": 647390000,
        "msdynce_hasexternallymaintainedproductsonly": True,
        "msdynce_ismaintainedexternally": False,
    }
    row.update(extra)
    return row


def line_row(template: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        DOCS[template]["line_id"]: LINE_ID,
        DOCS[template]["parent"]: HEADER_ID,
        "_productid_value": PRODUCT_ID,
        "sequencenumber": 3,
        "lineitemnumber": 99,
        "quantity": 3,
        "priceperunit": 10.0,
        "manualdiscountamount": 10.0,
        "msdynce_quotehasexternalmaintainedproductsonly": True,
        "msdynce_orderhasexternalmaintainedproductsonly": True,
        "msdynce_orderissubmitted": True,
        "msdynce_ismaintainedexternally": False,
    }
    row.update(extra)
    return row


def mapped(task: TaskMapping, row: dict[str, Any], template: str) -> MappedRecord:
    outcome = task.map(row, MapContext(company="usmf", resolver=resolver(template)))
    assert isinstance(outcome, MappedRecord), outcome
    return outcome


@pytest.mark.parametrize("template", list(DOCS))
def test_header_payload(real_catalogue: Catalogue, template: str) -> None:
    doc = DOCS[template]
    header, _ = tasks(template, real_catalogue)
    assert header.target.entity_set == doc["fo_headers"]
    # a missing customer (account or contact customer) defers, not fails
    assert header.parent_entities == ["synced:accounts", "synced:contacts-to-customers"]
    record = mapped(header, header_row(template), template)
    assert record.source_key == "QUO-01000-ABCDEF"
    assert record.target_key == {"dataAreaId": "usmf", doc["fo_number"]: "QUO-01000-ABCDEF"}
    assert record.payload == {
        doc["fo_number"]: "QUO-01000-ABCDEF",
        doc["fo_customer"]: "ACC-01000-BVRCPS",
        "CurrencyCode": "USD",
        doc["fo_name"]: ("Quote for Contoso " + "x" * 100)[:60],
        doc["fo_total"]: 1234.57,
        "DeliveryAddressStreet": "1 Microsoft Way",
        "DeliveryAddressStreetNumber": "Building 4",  # ship-to, not the template's bill-to quirk
        "DeliveryAddressCity": "Redmond",
        "DeliveryAddressStateId": "WA",
        "DeliveryAddressZipCode": "98052",
        "DeliveryAddressCountryRegionISOCode": "US",  # blank -> US
        "DeliveryAddressDescription": "Delivery address",
        "IsDeliveryAddressOrderSpecific": "Yes",
    }


@pytest.mark.parametrize("template", list(DOCS))
def test_header_address_name_and_country(real_catalogue: Catalogue, template: str) -> None:
    header, _ = tasks(template, real_catalogue)
    row = header_row(template, shipto_name="Receiving dock", shipto_country="Deutschland")
    payload = mapped(header, row, template).payload
    assert payload["DeliveryAddressName"] == payload["DeliveryAddressDescription"] == "Receiving dock"
    assert payload["DeliveryAddressCountryRegionISOCode"] == "DE"
    fallback = mapped(header, header_row(template, customeridname="Contoso Ltd"), template).payload
    assert fallback["DeliveryAddressName"] == "Contoso Ltd"


@pytest.mark.parametrize("template", list(DOCS))
def test_header_of_unsynced_customer_raises_reference_missing(
    real_catalogue: Catalogue, template: str
) -> None:
    header, _ = tasks(template, real_catalogue)
    with pytest.raises(ReferenceMissing):
        header.map(
            header_row(template, _customerid_value="00000000-0000-0000-0000-00000000abcd"),
            MapContext(company="usmf", resolver=resolver(template)),
        )


@pytest.mark.parametrize("template", list(DOCS))
def test_too_long_zip_fails_the_record_naming_the_field(real_catalogue: Catalogue, template: str) -> None:
    header, _ = tasks(template, real_catalogue)
    outcome = header.map(
        header_row(template, shipto_postalcode="12345678901"), MapContext("usmf", resolver(template))
    )
    assert isinstance(outcome, MappingFailure) and outcome.field == "DeliveryAddressZipCode"


@pytest.mark.parametrize("template", list(DOCS))
def test_line_payload(real_catalogue: Catalogue, template: str) -> None:
    doc = DOCS[template]
    _, lines = tasks(template, real_catalogue)
    assert lines.target.entity_set == doc["fo_lines"]
    assert lines.parent_entities == [f"synced:{template}.header"]
    record = mapped(lines, line_row(template), template)
    assert record.source_key == LINE_ID  # Dataverse lines: the primary id is the key
    assert record.target_key == {
        "dataAreaId": "usmf",
        doc["fo_number"]: "QUO-01000-ABCDEF",
        "LineCreationSequenceNumber": 3,
    }
    assert record.payload == {
        doc["fo_number"]: "QUO-01000-ABCDEF",
        "LineCreationSequenceNumber": 3,  # sequencenumber, not lineitemnumber
        "ProductNumber": "D00001",
        doc["fo_quantity"]: 3,
        "SalesPrice": 10,
        "TotalDiscountAmount": 10,
        # templates.md §6: 10.00 over 3 units → 3.33 per unit, remainder −0.01 as a charge
        "LineDiscountAmount": 3.33,
        "FixedPriceCharges": -0.01,
    }


@pytest.mark.parametrize("template", list(DOCS))
def test_line_of_unsynced_header_raises_reference_missing(real_catalogue: Catalogue, template: str) -> None:
    _, lines = tasks(template, real_catalogue)
    row = line_row(template, **{DOCS[template]["parent"]: "00000000-0000-0000-0000-00000000beef"})
    with pytest.raises(ReferenceMissing):
        lines.map(row, MapContext(company="usmf", resolver=resolver(template)))


def test_quote_selection_rule(real_catalogue: Catalogue) -> None:
    header, lines = tasks("quotes", real_catalogue)
    selects = compile_filter(header.source.filter)
    assert selects(header_row("quotes", statuscode=2))  # Active, In Progress
    assert selects(header_row("quotes", statuscode=3))  # Active, Open
    assert selects(header_row("quotes", statuscode=647390000))  # Closed, Submitted (P2C)
    for status in (1, 4, 5, 6, 7):  # Draft, Won, Lost, Canceled, Revised
        assert not selects(header_row("quotes", statuscode=status)), status
    assert not selects(header_row("quotes", msdynce_hasexternallymaintainedproductsonly=False))
    assert not selects(header_row("quotes", msdynce_ismaintainedexternally=True))
    line_selects = compile_filter(lines.source.filter)
    assert line_selects(line_row("quotes"))
    assert not line_selects(line_row("quotes", msdynce_quotehasexternalmaintainedproductsonly=False))
    assert not line_selects(line_row("quotes", _productid_value=None))  # write-in product


def test_order_selection_rule(real_catalogue: Catalogue) -> None:
    header, lines = tasks("orders-to-fno", real_catalogue)
    selects = compile_filter(header.source.filter)
    assert selects(header_row("orders-to-fno"))
    for status in (647390011, 647390001, 647390010):  # Draft, Confirmed, Cancelled
        assert not selects(header_row("orders-to-fno", msdynce_processingstatus=status)), status
    assert not selects(header_row("orders-to-fno", msdynce_hasexternallymaintainedproductsonly=False))
    assert not selects(header_row("orders-to-fno", msdynce_ismaintainedexternally=True))
    line_selects = compile_filter(lines.source.filter)
    assert line_selects(line_row("orders-to-fno"))
    assert not line_selects(line_row("orders-to-fno", msdynce_orderissubmitted=False))
    assert not line_selects(line_row("orders-to-fno", _productid_value=None))
